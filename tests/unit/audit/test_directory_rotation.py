"""The audit verifier checks with the directory published to the directory topic: a gateway
whose signing key was rotated in a newer directory signs its events with the new key, which
the directory file the verifier was given does not list; with the topic's newest directory
(`newest_directory`, as `lvvx audit verify` and `lvvx cases` read it, and `follow` with a
callable directory, as `lvvx audit follow` keeps it) the stream verifies clean."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path

from broker.audit import follow, read_audit, verify_stream
from broker.audit._verify import Report
from broker.crypto import Directory, build_directory, generate_party, load_directory, sign_directory
from broker.directory_feed import newest_directory, publish_directory
from broker.gateway import Gateway
from broker.models import DossierDelivered, PartyRole
from tests.crypto_net import ANCHOR, KEY_START, NOW, PINNED, A, Net
from tests.embedded_gateways import EmbeddedNetwork
from tests.support import eventually, example_of

NET = Net()
IND, MUNI = A[PartyRole.IND], A[PartyRole.MUNICIPALITY]
ROTATED = generate_party(
    IND, PartyRole.IND, now=KEY_START + timedelta(days=1), seed=b"ind, rotated"
)
"""IND's new keys, added next to its old ones in the second directory."""


def second_directory() -> bytes:
    old = NET.parties[IND].entry
    both = old.model_copy(update={
        "signing_keys": (*old.signing_keys, *ROTATED.entry.signing_keys),
        "encryption_keys": (*old.encryption_keys, *ROTATED.entry.encryption_keys),
    })  # fmt: skip
    entries = [both if pid == IND else p.entry for pid, p in NET.parties.items()]
    document = build_directory(entries, serial=2, network="lvv-test", now=NOW - timedelta(days=1))
    return sign_directory(document, ANCHOR)


async def rotated_traffic(lvv: EmbeddedNetwork, newer: Directory) -> None:
    """IND, on its new key, sends the municipality a dossier, delivered and receipted."""
    muni = await lvv.gateway(MUNI, run=True, directory=newer)
    ind = Gateway(keys=ROTATED.keys, directory=newer, transport=lvv.log, store=lvv.store(IND),
                  clock=lambda: NOW)  # fmt: skip
    lvv.gateways.append(ind)
    await ind.start()
    lvv.run(ind)
    message_id = await ind.send(example_of(DossierDelivered), [MUNI])
    await eventually(lambda: ind.store.counts()["receipted"] == 1, "the receipt")
    assert muni.store.counts()["unacked"] == 1 and message_id
    await lvv.halt_all()


async def test_the_verifier_checks_events_of_a_rotated_key_with_the_topics_directory(
    tmp_path: Path,
) -> None:
    lvv = EmbeddedNetwork(tmp_path, NET)
    try:
        await publish_directory(lvv.log, second_directory(), anchor=PINNED, now=NOW)
        newer = load_directory(second_directory(), anchor=PINNED, now=NOW)
        await rotated_traffic(lvv, newer)
        file_directory = NET.directory  # serial 1: IND's new key is not in it
        records = await read_audit(lvv.log, file_directory, "lvv.v1")

        stale = verify_stream(records, file_directory, now=NOW)
        assert not stale.clean, "events of the new key must not verify with the old directory"

        live = await newest_directory(lvv.log, anchor=PINNED, current=file_directory, now=NOW)
        assert live.serial == 2
        assert verify_stream(records, live, now=NOW).clean

        # live: `follow` verifies each pass with the directory the callable gives then
        reports: list[Report] = []
        stop = asyncio.Event()
        in_use = [file_directory]
        topics = [f"lvv.v1.audit.{p}" for p in (IND, MUNI)]
        following = asyncio.create_task(
            follow(
                lvv.log,
                topics,
                lambda: in_use[0],
                stop=stop,
                on_issue=lambda _: None,
                on_report=lambda r, _: reports.append(r),
            )
        )
        await eventually(lambda: reports and not reports[-1].clean, "a report with the old key",
                         timeout_s=15)  # fmt: skip
        in_use[0] = live
        seen = len(reports)
        await eventually(lambda: len(reports) > seen and reports[-1].clean, "a clean report",
                         timeout_s=15)  # fmt: skip
        stop.set()
        await following
    finally:
        await lvv.aclose()
