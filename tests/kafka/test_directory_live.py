"""The key directory distributed live, on real Kafka: a gateway follows the directory topic,
takes a newer directory published there (`publish_directory`, what `lvvx directory publish`
does) without a restart — a party added in it becomes sendable — and refuses and counts an
older or foreign-signed one, keeping its own. The publish-to-taken delay is measured and
printed (run with ``-s`` to see it); it is not asserted beyond a generous bound."""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from broker.crypto import Directory, build_directory, load_directory, sign_directory
from broker.directory_feed import publish_directory
from broker.errors import DirectoryCheck, UnknownParty
from broker.gateway.metrics import PrometheusObserver
from broker.models import DossierDelivered, PartyRole
from broker.topics import directory, directory_key, inbox
from tests.crypto_net import ANCHOR, NOW, PINNED, A, Net
from tests.kafka_gateways import KafkaNetwork
from tests.support import eventually, example_of

pytestmark = pytest.mark.kafka

NET = Net()
IND = A[PartyRole.IND]
NETWORK = "lvv-test"
NEWCOMER = "ngo-perspectief"
FOREIGN = Ed25519PrivateKey.from_private_bytes(b"\x23" * 32)
WAIT_S = 30.0


def signed(serial: int, *, without: frozenset[str] = frozenset(),
           anchor: Ed25519PrivateKey = ANCHOR) -> bytes:  # fmt: skip
    entries = [p.entry for pid, p in NET.parties.items() if pid not in without]
    document = build_directory(entries, serial=serial, network=NETWORK, now=NOW - timedelta(days=1))
    return sign_directory(document, anchor)


def checked(data: bytes) -> Directory:
    return load_directory(data, anchor=PINNED, now=NOW)


async def publish(lvv: KafkaNetwork, data: bytes) -> None:
    """Publish ``data`` as `lvvx directory publish` does (checked, then written)."""
    await publish_directory(lvv.transport, data, anchor=PINNED, now=NOW, prefix=lvv.prefix)


def refused(observer: PrometheusObserver, reason: DirectoryCheck) -> float:
    labels = {"party": IND, "reason": reason.value}
    return observer.registry.get_sample_value("lvv_directories_refused_total", labels) or 0.0


async def test_a_gateway_on_kafka_takes_a_newer_directory_live_and_refuses_older_or_foreign(
    lvv: KafkaNetwork,
) -> None:
    observer = PrometheusObserver(IND)
    first = checked(signed(1, without=frozenset({NEWCOMER})))
    ind = await lvv.gateway(IND, run=True, directory=first, anchor=PINNED, observer=observer)
    await lvv.gateway(NEWCOMER, run=True, directory=checked(signed(2)))  # its inbox exists
    with pytest.raises(UnknownParty):
        await ind.send(example_of(DossierDelivered), [NEWCOMER])

    delays = []  # from the start of the publish (its checks and the write included) to taken
    for serial in (2, 3, 4, 5, 6):
        started = time.monotonic()
        publishing = asyncio.create_task(publish(lvv, signed(serial)))
        await eventually(lambda s=serial: ind.directory.serial == s,  # type: ignore[misc]
                         f"the gateway to take serial {serial}", timeout_s=WAIT_S, every_s=0.001)  # fmt: skip
        delays.append(time.monotonic() - started)
        await publishing
    print(f"\npublish-to-taken on Kafka: {', '.join(f'{d * 1000:.0f} ms' for d in delays)}")
    assert max(delays) < WAIT_S

    await ind.send(example_of(DossierDelivered), [NEWCOMER])  # the new party, no restart
    assert len(await lvv.records(inbox(NEWCOMER, lvv.prefix))) == 1

    await lvv.inject(directory(lvv.prefix), signed(5), directory_key(NETWORK, PINNED.key_id))
    await lvv.inject(
        directory(lvv.prefix), signed(9, anchor=FOREIGN), directory_key(NETWORK, PINNED.key_id)
    )
    await eventually(
        lambda: (
            refused(observer, DirectoryCheck.OLDER_SERIAL) == 1
            and refused(observer, DirectoryCheck.FOREIGN_ANCHOR) == 1
        ),
        "the older and the foreign-signed directory refused",
        timeout_s=WAIT_S,
    )
    assert ind.directory.serial == 6 and ind.store.directory_serial() == 6
    with pytest.raises(Exception, match="OLDER_SERIAL"):  # the publisher refuses it too
        await publish(lvv, signed(3))
