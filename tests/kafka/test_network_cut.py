"""A network cut on real Kafka: two gateways reach Kafka only through a TCP proxy
(`tests.faults.proxy`), which is cut while messages flow and then restored. Pass: every send
ended in an acknowledgement or an error (no hang); nothing acknowledged is lost (no false
acknowledgement); nothing is delivered twice, or out of order within a case; every
acknowledged message is receipted; nothing is dead-lettered.

The broker is `tests.proxied_kafka`'s, whose clients reach it only through the proxy (why
that takes a broker of its own is told there), started once per session if none listens.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from broker.errors import LvvError
from broker.gateway import Gateway, InboxItem
from broker.models import PartyRole
from broker.topics import audit, dlq, inbox
from broker.transport import TopicSpec
from broker.transport.kafka import KafkaOptions, KafkaTransport
from demo.examples import example
from tests.crypto_net import A, Net
from tests.faults.proxy import CutMode, TcpProxy
from tests.live_gateways import caught_up, running_gateways
from tests.proxied_kafka import DIRECT, PROXIED
from tests.support import eventually

pytestmark = pytest.mark.kafka

NET = Net()
SENDER, RECIPIENT = A[PartyRole.IND], A[PartyRole.MUNICIPALITY]

WORKERS, CASES_PER_WORKER, PER_CASE = 4, 2, 10
"""Concurrent back-office senders, each with its own cases, so several sends are in flight
when the cut comes and order per case is still defined (one sender per case)."""

REFUSED_WAIT_S = 1.0
"""A back office's pause after a send refused during a known outage: it does not burn
through its cases before the network is back."""

CUT_AFTER = 20
"""Acknowledged sends before the cut: traffic flows in both directions by then."""

SEND_TIMEOUT_MS = 6_000
CUT_S = 2.5 * SEND_TIMEOUT_MS / 1000
"""Longer than a send may take and than the group's session: sends must fail, and the
recipient loses its group membership and has to rejoin."""

ANSWER_BOUND_S = CUT_S + 3 * SEND_TIMEOUT_MS / 1000
"""A send must be answered, acknowledged or refused, within this: a hang is a failure. Not
`SEND_TIMEOUT_MS`: a transaction cut short by the timeout still ends (aborts or commits)
before the send returns, and that needs the network back."""

SETTLE_S = 120
"""After the restore, everything must be delivered and receipted within this."""

OPTIONS = KafkaOptions(
    bootstrap_servers=PROXIED, client_id="network-cut",
    request_timeout_ms=5_000, send_timeout_ms=SEND_TIMEOUT_MS,
    session_timeout_ms=6_000, heartbeat_interval_ms=1_000,
)  # fmt: skip


@pytest.fixture
async def direct(proxied_kafka: None) -> AsyncIterator[KafkaTransport]:
    """A client that bypasses the proxy: for setting up and checking around the cut."""
    transport = KafkaTransport(KafkaOptions(bootstrap_servers=DIRECT))
    try:
        yield transport
    finally:
        await transport.close()


@dataclass
class Outcomes:
    """What each send told its back office: message id (acknowledged) or error, by seq."""

    acked: dict[int, uuid.UUID] = field(default_factory=dict)
    failed: dict[int, str] = field(default_factory=dict)
    acked_after_restore: int = 0
    slowest_s: float = 0.0


async def _send_cases(
    gateway: Gateway, worker: int, out: Outcomes, restored: asyncio.Event
) -> None:
    """One back office: its own cases in turn, each message tagged with its seq (its
    dossier id), so a message can be recognised also when its send failed."""
    cases = [uuid.uuid4() for _ in range(CASES_PER_WORKER)]
    dossier = example("DossierDelivered")
    for round_ in range(PER_CASE):
        for c, case in enumerate(cases):
            seq = (round_ * CASES_PER_WORKER + c) * WORKERS + worker
            message = dossier.model_copy(update={"case_id": case, "dossier_id": uuid.UUID(int=seq)})
            started = time.monotonic()
            try:
                out.acked[seq] = await gateway.send(message, [RECIPIENT])
                out.acked_after_restore += restored.is_set()
            except LvvError as exc:
                out.failed[seq] = type(exc).__name__
            out.slowest_s = max(out.slowest_s, time.monotonic() - started)
            # the load's pacing; refused at once during a known outage (nothing sent): wait as
            # told to (Retry-After)
            await asyncio.sleep(
                REFUSED_WAIT_S if out.failed.get(seq) == "TransportUnavailable" else 0.05
            )


@pytest.mark.parametrize("mode", [pytest.param("drop", marks=pytest.mark.faults), "hang"])
async def test_a_cut_network_loses_nothing_and_acknowledges_nothing_falsely(
    tmp_path: Path, proxy: TcpProxy, direct: KafkaTransport, mode: CutMode
) -> None:
    prefix = f"lvv.netcut-{uuid.uuid4().hex[:8]}.v1"
    await direct.ensure_topics(
        [TopicSpec(t(p, prefix)) for p in (SENDER, RECIPIENT) for t in (inbox, dlq)]
    )
    async with running_gateways(NET, (SENDER, RECIPIENT), options=OPTIONS, prefix=prefix,
                                state=tmp_path) as live:  # fmt: skip
        sender, recipient = live.gateways
        out, restored = Outcomes(), asyncio.Event()
        workers = [
            asyncio.create_task(_send_cases(sender, w, out, restored)) for w in range(WORKERS)
        ]
        total = WORKERS * CASES_PER_WORKER * PER_CASE
        try:
            await eventually(lambda: len(out.acked) >= CUT_AFTER, "traffic before the cut",
                             timeout_s=120, every_s=0.05)  # fmt: skip
            connections = proxy.connections
            await proxy.cut(mode)
            await asyncio.sleep(CUT_S)  # the scenario: the network is away this long
            await proxy.restore()
            restored.set()

            async def settled() -> bool:  # and every record the recipient has is handled
                return (
                    all(w.done() for w in workers)
                    and set(out.acked.values()) <= {i.message_id for i in _inbox(recipient)}
                    and sender.store.counts()["awaiting_receipt"] == 0
                    and await caught_up(direct, RECIPIENT, prefix)
                )

            def state() -> str:
                loops_now = [t.exception() if t.done() else "running" for t in live.loops]
                return (f"the restore to settle: {len(out.acked)} acknowledged, "
                        f"{len(_inbox(recipient))} delivered, sender {sender.store.counts()}, "
                        f"gateway loops {loops_now}, workers done {[w.done() for w in workers]}")  # fmt: skip

            await eventually(settled, state, timeout_s=SETTLE_S, every_s=0.5)
            await asyncio.gather(*workers)  # done: what one raised, it raises here
            delivered = _inbox(recipient)
            seqs = [i.message["dossier_id"] for i in delivered]
            seqs = [uuid.UUID(s).int for s in seqs]
            print(f"\n{mode}: {len(out.acked)} acknowledged, {len(out.failed)} refused "
                  f"({sorted(set(out.failed.values()))}), {len(delivered)} delivered, "
                  f"slowest answer {out.slowest_s:.1f} s, {proxy.connections - connections} reconnections")  # fmt: skip
            assert len(out.acked) + len(out.failed) == total
            assert out.slowest_s < ANSWER_BOUND_S, "a send hung instead of answering"
            held = out.slowest_s > SEND_TIMEOUT_MS / 1000
            assert out.failed or held, "the cut did not bite: no send failed or waited it out"
            assert out.acked_after_restore > 0, "the sender did not recover after the restore"
            assert len(seqs) == len(set(seqs)), "delivered twice"
            assert set(out.acked) <= set(seqs), "acknowledged but lost (a false acknowledgement)"
            assert set(seqs) <= set(out.acked) | set(out.failed), "delivered but never sent"
            ids = {i.message_id for i in delivered}
            assert {out.acked[s] for s in out.acked} <= ids
            by_case: dict[uuid.UUID, list[int]] = {}
            for item, seq in zip(delivered, seqs, strict=True):
                by_case.setdefault(item.case_id, []).append(seq)
            assert all(s == sorted(s) for s in by_case.values()), "out of order within a case"
            assert sender.store.counts()["receipted"] == len(out.acked)
            assert sum((await direct.end_offsets([dlq(RECIPIENT, prefix)])).values()) == 0
            assert recipient.store.rejection_reasons() == sender.store.rejection_reasons() == []
            for party in (SENDER, RECIPIENT):  # each audit chain a line: no gap, no fork
                records = await direct.read_topic(audit(party, prefix))
                seqs = [int(dict(r.headers)["lvv-audit-seq"]) for r in records]
                assert seqs == list(range(len(seqs))), f"{party}'s audit chain forked or has a gap"
        finally:
            for task in workers:
                task.cancel()
            await proxy.restore()


def _inbox(gateway: Gateway) -> list[InboxItem]:
    return gateway.store.inbox(limit=1000, include_acked=True)
