"""A revocation reaching every gateway live, on real Kafka: three gateways follow the
directory topic; the anchor publishes a directory revoking the sender's signing key from the
leak on; from the start of the publish a thief keeps putting envelopes signed with that key,
dated after the leak, in each gateway's inbox, until every gateway refuses them
SENDER_KEY_INVALID. The delay from the publish to each gateway refusing, and to all, is
printed (run with ``-s``); only a generous bound is asserted. What the key signed before the
leak is still delivered afterwards."""

from __future__ import annotations

import asyncio
import functools
import time
import uuid
from datetime import timedelta

import pytest

from broker.crypto import revoke_key
from broker.directory_feed import publish_directory
from broker.gateway.metrics import PrometheusObserver
from broker.models import DossierDelivered, PartyRole, RevocationReason
from tests.crypto_net import NOW, PINNED, A, Net, signed_directory
from tests.kafka_gateways import KafkaNetwork
from tests.support import eventually, example_of

pytestmark = pytest.mark.kafka

NET = Net()
IND = A[PartyRole.IND]
GATEWAYS = ("gemeente-amsterdam", "gemeente-rotterdam", "ngo-perspectief")
LEAK = NOW - timedelta(hours=1)
DOSSIER = example_of(DossierDelivered)
WAIT_S = 30.0
OFFER_EVERY_S = 0.005
"""The pause between rounds of offers, one thief's envelope to each gateway not yet refusing;
a round also waits for Kafka to take the envelopes. The printed round time is the
resolution of the measured delays."""


def count(observer: PrometheusObserver, metric: str, **labels: str) -> float:
    value = observer.registry.get_sample_value(metric, {"party": observer.party, **labels})
    return value or 0.0


def refused(observer: PrometheusObserver) -> float:
    return count(observer, "lvv_messages_rejected_total", reason="SENDER_KEY_INVALID")


def delivered(observer: PrometheusObserver) -> float:
    return count(observer, "lvv_messages_delivered_total", type="DossierDelivered",
                 sender=IND)  # fmt: skip


def directory(serial: int, *, revoking: bool) -> bytes:
    entries = [p.entry for p in NET.parties.values()]
    key = NET.parties[IND].entry.signing_keys[0].key_id
    done = revoke_key(NET.parties[IND].entry, key, at=LEAK, now=NOW,
                      reason=RevocationReason.KEY_COMPROMISE)  # fmt: skip
    if revoking:
        entries = [done.entry if e.party_id == IND else e for e in entries]
    return signed_directory(entries, serial=serial)


async def publish(lvv: KafkaNetwork, data: bytes) -> None:
    await publish_directory(lvv.transport, data, anchor=PINNED, now=NOW, prefix=lvv.prefix)


async def test_a_revocation_reaches_every_gateway_and_what_the_key_signed_before_still_opens(
    lvv: KafkaNetwork,
) -> None:
    observers = {party: PrometheusObserver(party) for party in GATEWAYS}
    for party in GATEWAYS:
        gw = await lvv.gateway(party, run=True, anchor=PINNED, observer=observers[party])
        # the directory serial gauge, wired as `lvvx gateway run` wires it
        observers[party].watch_directory(functools.partial(getattr, gw, "directory"), lambda: NOW)
    await lvv.gateway(IND, run=True)  # the owner's gateway: its inbox takes the receipts

    async def offer(party: str, *, made: timedelta = timedelta(0)) -> None:
        """An envelope the key signed, dated ``made`` from now, in ``party``'s inbox."""
        data = NET.seal(DOSSIER, IND, [party], now=NOW + made)
        await lvv.inject_inbox(party, data, key=uuid.uuid4().bytes)

    await publish(lvv, directory(2, revoking=False))  # a network's topic has directories
    for party in GATEWAYS:  # before the revocation, the thief's envelopes are delivered
        await offer(party)
    await eventually(lambda: all(delivered(o) == 1 and count(o, "lvv_directory_serial") == 2
                                 for o in observers.values()),
                     "serial 2 taken, the stolen key's first envelopes delivered", timeout_s=WAIT_S)  # fmt: skip

    revoking = directory(3, revoking=True)
    started = time.monotonic()
    publishing = asyncio.create_task(publish(lvv, revoking))
    refusing: dict[str, float] = {}
    rounds = 0
    while len(refusing) < len(GATEWAYS):
        assert time.monotonic() - started < WAIT_S, f"only {sorted(refusing)} refuse"
        for party in GATEWAYS:
            if party not in refusing and refused(observers[party]):
                refusing[party] = time.monotonic() - started
        await asyncio.gather(*(offer(p) for p in GATEWAYS if p not in refusing))
        await asyncio.sleep(OFFER_EVERY_S)
        rounds += 1
    await publishing
    through = {p: int(delivered(o)) - 1 for p, o in observers.items()}
    print(
        f"\npublish-to-refusing on Kafka: every gateway {max(refusing.values()) * 1000:.0f} ms; "
        + ", ".join(
            f"{p} {t * 1000:.0f} ms ({through[p]} let through)" for p, t in refusing.items()
        )
        + f"; one offer every {max(refusing.values()) / rounds * 1000:.0f} ms"
    )
    assert max(refusing.values()) < WAIT_S
    for party, observer in observers.items():  # the operator's check: every gateway's serial
        assert count(observer, "lvv_directory_serial") == 3, party

    settled = {p: int(delivered(o)) for p, o in observers.items()}
    for party in GATEWAYS:  # signed before the leak: still delivered, after the revocation
        await offer(party, made=LEAK - NOW - timedelta(minutes=1))
    await eventually(
        lambda: all(delivered(observers[p]) == settled[p] + 1 for p in GATEWAYS),
        "envelopes signed before the leak delivered",
        timeout_s=WAIT_S,
    )
    for party in GATEWAYS:  # and after it, refused, whichever gateway
        before = refused(observers[party])
        await offer(party, made=timedelta(seconds=1))
        await eventually(lambda p=party, b=before: refused(observers[p]) == b + 1,  # type: ignore[misc]
                         f"{party} to refuse a stolen envelope", timeout_s=WAIT_S)  # fmt: skip
    assert {p: int(delivered(o)) for p, o in observers.items()} == {
        p: settled[p] + 1 for p in GATEWAYS
    }
