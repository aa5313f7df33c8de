"""A gateway is fair to every sender, on real Kafka: a co-recipient that reuses a message id
it saw cannot suppress the real message (ids are the sender's), and hostile envelopes that
break the store's own rules cost one decision each, never a stall of honest traffic.

The parties: IND sends a dossier to the municipality and the NGO; the NGO, authenticated
but hostile, seals envelopes of its own with ids it chose.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
import uuid
from datetime import datetime, timedelta

import pytest

from broker.audit import Finding, verify_stream
from broker.errors import RejectReason
from broker.gateway import Gateway
from broker.models import AvroModel, PartyRole
from broker.topics import audit, dlq, inbox
from broker.transport import Record
from demo.examples import example
from tests.crypto_net import NOW, A, Net
from tests.kafka_gateways import KafkaNetwork
from tests.support import eventually

pytestmark = pytest.mark.kafka

NET = Net()
IND, MUNI, NGO = A[PartyRole.IND], A[PartyRole.MUNICIPALITY], A[PartyRole.NGO]
WAIT_S = 60.0


class Clock:
    """A gateway clock the test moves: hostile ids must outlive their guard entries."""

    def __init__(self, at: datetime) -> None:
        self.at = at

    def __call__(self) -> datetime:
        return self.at


def response_of(sender: str, case_id: uuid.UUID | None = None) -> AvroModel:
    """A scenario response the NGO may send the municipality, about ``case_id``."""
    message = example("ScenarioResponse")
    update: dict[str, object] = {"recorded_by": sender}
    if case_id is not None:
        update["case_id"] = case_id
    return message.model_copy(update=update)


def headers(record: Record) -> dict[str, str]:
    return {name: value.decode() for name, value in record.headers}


# --- 2. a co-recipient cannot suppress a message by reusing its id --------------------------


async def test_a_co_recipient_reusing_a_message_id_cannot_suppress_it(lvv: KafkaNetwork) -> None:
    """IND sends M to the municipality and the NGO; the municipality is behind. The NGO seals
    a message of its own to the municipality under M's id, and the municipality reads that
    one first. Both are delivered (the ids are each sender's), IND's is receipted, and the
    verifier names the reuse while the report stays clean."""
    clock = Clock(NOW)
    ind = await lvv.gateway(IND, clock)
    muni = await lvv.gateway(MUNI, clock)
    ngo = await lvv.gateway(NGO, clock)
    dossier = example("DossierDelivered")
    message_id = await ind.send(dossier, [MUNI, NGO])
    (at_ngo,) = await lvv.records(inbox(NGO, lvv.prefix))
    await ngo.handle(at_ngo)  # the NGO has the message, and so its id

    forged = NET.forge(response_of(NGO), NGO, [MUNI], message_id=message_id)
    await lvv.inject_inbox(MUNI, forged, key=uuid.uuid4().bytes)
    at_muni = await lvv.records(inbox(MUNI, lvv.prefix))
    (real,) = [r for r in at_muni if r.value != forged]
    (fake,) = [r for r in at_muni if r.value == forged]
    await muni.handle(fake)  # the municipality reads the NGO's first
    await muni.handle(real)

    delivered = {(i.sender, i.message_id, i.message_type) for i in muni.store.inbox(limit=10)}
    assert delivered == {
        (NGO, message_id, "nl.lvv.v1.ScenarioResponse"),
        (IND, message_id, "nl.lvv.v1.DossierDelivered"),
    }
    assert await lvv.records(dlq(MUNI, lvv.prefix)) == []
    for record in await lvv.records(inbox(IND, lvv.prefix)):  # the receipts of M
        await ind.handle(record)
    for record in await lvv.records(inbox(NGO, lvv.prefix)):  # its receipt for the fake
        await ngo.handle(record)
    status = ind.store.sent_status(message_id)
    assert status is not None and status.status == "RECEIPTED"
    assert set(status.receipts) == {MUNI, NGO}
    # the NGO was receipted its own message, and that receipt is not counted for IND's
    assert ind.store.receipted_records() == 2

    for gw in (ind, muni, ngo):
        await gw.checkpoint_if_due(now=True)
    records = [r for p in (IND, MUNI, NGO) for r in await lvv.records(audit(p, lvv.prefix))]
    report = verify_stream(records, NET.directory, now=NOW + timedelta(hours=1))
    assert report.clean, [i.as_json() for i in report.errors]
    assert report.accounted == report.sent == 1
    (reuse,) = [i for i in report.issues if i.kind is Finding.MESSAGE_ID_REUSED]
    assert reuse.message_id == message_id
    assert IND in reuse.detail and NGO in reuse.detail


# --- 3. hostile records cost one decision each, never a stall --------------------------------


async def _honest_latencies(lvv: KafkaNetwork, ind: Gateway, muni: Gateway, *, count: int,
                            hostile: list[bytes]) -> list[float]:  # fmt: skip
    """Send ``count`` dossiers from IND to the municipality, with the ``hostile`` envelopes
    injected among them; the seconds from each send to its visibility in the inbox."""
    sent_at: dict[uuid.UUID, float] = {}
    seen_at: dict[uuid.UUID, float] = {}
    stop = asyncio.Event()

    async def watch() -> None:
        while not stop.is_set():
            now = time.monotonic()
            for item in muni.store.inbox(limit=1000):
                if item.sender == IND:
                    seen_at.setdefault(item.message_id, now)
            await asyncio.sleep(0.005)  # the measurement's resolution: a sample every 5 ms

    watcher = asyncio.create_task(watch())
    every = max(1, count // max(1, len(hostile)))
    pending = list(hostile)
    for n in range(count):
        started = time.monotonic()
        message_id = await ind.send(example("DossierDelivered"), [MUNI])
        sent_at[message_id] = started
        if n % every == 0 and pending:
            await lvv.inject_inbox(MUNI, pending.pop(), key=uuid.uuid4().bytes)
        await asyncio.sleep(0.05)  # the load's pacing: a steady stream, not a burst
    for value in pending:
        await lvv.inject_inbox(MUNI, value, key=uuid.uuid4().bytes)
    try:
        await eventually(
            lambda: set(sent_at) <= set(seen_at), f"{count} honest deliveries", timeout_s=WAIT_S
        )
    finally:
        stop.set()
        await watcher
    return sorted(seen_at[m] - sent_at[m] for m in sent_at)


async def test_reused_expired_ids_are_refused_once_each_without_stalling_honest_traffic(
    lvv: KafkaNetwork, caplog: pytest.LogCaptureFixture
) -> None:
    """20 envelopes of the NGO reuse ids of its own earlier messages whose guard entries
    have expired (the inbox still holds those messages: the store's uniqueness rule). Each
    is refused REPLAY once — one dead letter, no retries, no traceback — and the honest
    dossiers around them arrive as fast as in a run without them (within 1 s)."""
    clock = Clock(NOW)
    ind = await lvv.gateway(IND, clock, run=True)
    muni = await lvv.gateway(MUNI, clock, run=True)
    await lvv.gateway(NGO, clock, run=True)  # takes the municipality's receipts

    # earlier: 20 short-lived messages of the NGO, delivered
    ids = [uuid.uuid4() for _ in range(20)]
    for message_id in ids:
        first = NET.forge(
            response_of(NGO), NGO, [MUNI], message_id=message_id, now=NOW, ttl=timedelta(minutes=1)
        )
        await lvv.inject_inbox(MUNI, first, key=uuid.uuid4().bytes)
    await eventually(
        lambda: len(muni.store.inbox(limit=100)) == 20, "the NGO's first messages", timeout_s=WAIT_S
    )

    clock.at = NOW + timedelta(hours=1)  # their guard entries have expired (1 min + skew)
    baseline = await _honest_latencies(lvv, ind, muni, count=40, hostile=[])
    later = NOW + timedelta(hours=1)
    hostile = [
        NET.forge(response_of(NGO), NGO, [MUNI], message_id=message_id, now=later)
        for message_id in ids
    ]
    caplog.set_level(logging.INFO)
    attacked = await _honest_latencies(lvv, ind, muni, count=40, hostile=hostile)

    digests = {hashlib.sha256(h).digest() for h in hostile}
    await eventually(
        lambda: len(muni.store.rejection_reasons()) >= 20, "the hostile refusals", timeout_s=WAIT_S
    )
    dead = [r for r in await lvv.records(dlq(MUNI, lvv.prefix))
            if bytes.fromhex(headers(r)["lvv-envelope-sha256"]) in digests]  # fmt: skip
    assert len(dead) == 20, "each hostile envelope in the DLQ exactly once"
    assert {headers(r)["lvv-reason"] for r in dead} == {RejectReason.REPLAY.value}
    assert muni.store.rejection_reasons() == [RejectReason.REPLAY.value] * 20
    assert sum(i.sender == NGO for i in muni.store.inbox(limit=1000)) == 20  # the first ones only

    gateway_lines = [r for r in caplog.records if r.name.startswith("lvvx")]
    assert not [r for r in gateway_lines if r.exc_info], "bad input never gets a traceback"
    refusals = [r for r in gateway_lines if "REPLAY" in r.getMessage()]
    assert refusals and all(r.levelno == logging.WARNING for r in refusals)
    print(
        f"honest end-to-end: max {max(baseline):.3f} s without, {max(attacked):.3f} s among 20 hostile"
    )
    assert max(attacked) <= max(baseline) + 1.0, (
        f"honest end-to-end latency {max(attacked):.2f} s under attack, {max(baseline):.2f} s without"
    )
