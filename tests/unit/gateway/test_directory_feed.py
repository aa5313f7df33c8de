"""The key directory distributed live (`broker.directory_feed`): the acceptance rules as a
pure function — each refusal with its reason — and gateways on the embedded log that take a
directory published to the directory topic without a restart, refuse and count anything
else, and keep the one they have."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from prometheus_client import generate_latest

from broker.crypto import (
    AnchorKey,
    Directory,
    build_directory,
    key_id,
    load_directory,
    sign_directory,
)
from broker.directory_feed import (
    EXPIRY_WARNING,
    MAX_ISSUE_SKEW,
    PublishAction,
    expires_soon,
    judge_directory,
    newest_directory,
    publish_directory,
)
from broker.errors import DirectoryCheck, DirectoryRejected, LocalError, UnknownParty
from broker.gateway import Gateway
from broker.gateway.metrics import PrometheusObserver
from broker.models import DossierDelivered, PartyRole
from broker.topics import directory as directory_topic
from broker.topics import directory_key, inbox
from broker.transport import TopicSpec
from tests.crypto_net import ANCHOR, NOW, PINNED, A, Net
from tests.embedded_gateways import EmbeddedNetwork
from tests.support import eventually, example_of

NET = Net()
NETWORK = "lvv-test"
IND = A[PartyRole.IND]
MUNI = A[PartyRole.MUNICIPALITY]
NEWCOMER = "ngo-perspectief"
"""A party missing from the first directory and added in a later one."""
FOREIGN = Ed25519PrivateKey.from_private_bytes(b"\x17" * 32)


def signed(
    serial: int, *, network: str = NETWORK, issued: datetime = NOW - timedelta(days=1),
    validity: timedelta = timedelta(days=30), anchor: Ed25519PrivateKey = ANCHOR,
    without: frozenset[str] = frozenset(),
) -> bytes:  # fmt: skip
    entries = [p.entry for pid, p in NET.parties.items() if pid not in without]
    document = build_directory(
        entries, serial=serial, network=network, now=issued, validity=validity
    )
    return sign_directory(document, anchor)


def judge(
    data: bytes, *, in_use: int = 5, anchor: AnchorKey = PINNED, now: datetime = NOW
) -> Directory | None:
    return judge_directory(data, anchor=anchor, network=NETWORK, serial_in_use=in_use, now=now)


def refusal(data: bytes, **kw: object) -> DirectoryCheck:
    with pytest.raises(DirectoryRejected) as caught:
        judge(data, **kw)  # type: ignore[arg-type]
    return caught.value.check


# --- the acceptance rules, without I/O ------------------------------------------------------


def test_a_newer_directory_of_the_network_signed_by_the_anchor_is_taken() -> None:
    taken = judge(signed(6))
    assert taken is not None and taken.serial == 6


def test_the_directory_in_use_again_is_nothing_to_do() -> None:
    assert judge(signed(5)) is None


@pytest.mark.parametrize(
    ("data", "check"),
    [
        pytest.param(signed(4), DirectoryCheck.OLDER_SERIAL, id="older serial"),
        pytest.param(signed(6, anchor=FOREIGN), DirectoryCheck.FOREIGN_ANCHOR, id="foreign-signed"),
        pytest.param(
            signed(6, network="lvv-other"), DirectoryCheck.OTHER_NETWORK, id="other network"
        ),
        pytest.param(
            signed(6, issued=NOW - timedelta(days=31)), DirectoryCheck.EXPIRED, id="expired"
        ),
        pytest.param(
            signed(6, issued=NOW + timedelta(hours=1)),
            DirectoryCheck.NOT_YET_VALID,
            id="not yet valid",
        ),
        pytest.param(b"\x00garbage\xff" * 7, DirectoryCheck.MALFORMED, id="garbage bytes"),
        pytest.param(b"", DirectoryCheck.MALFORMED, id="empty"),
        pytest.param(b"\x00" * (4 * 1024 * 1024 + 1), DirectoryCheck.TOO_LARGE, id="too large"),
    ],
)
def test_everything_else_is_refused_with_its_reason(data: bytes, check: DirectoryCheck) -> None:
    assert refusal(data) is check


def test_a_signature_by_another_key_under_the_anchors_key_id_is_a_bad_signature() -> None:
    impostor = AnchorKey(PINNED.key_id, FOREIGN.public_key())
    assert refusal(signed(6), anchor=impostor) is DirectoryCheck.BAD_SIGNATURE


def test_a_pinned_anchor_past_its_window_takes_nothing() -> None:
    public = ANCHOR.public_key()
    ended = AnchorKey(key_id(public.public_bytes_raw()), public, NOW - timedelta(days=400),
                      NOW - timedelta(days=1))  # fmt: skip
    assert refusal(signed(6), anchor=ended) is DirectoryCheck.ANCHOR_EXPIRED


def test_a_directory_issued_within_the_allowed_skew_is_taken() -> None:
    assert judge(signed(6, issued=NOW + MAX_ISSUE_SKEW)) is not None


def test_signature_is_checked_before_anything_the_directory_says() -> None:
    """A foreign-signed directory that is also older, expired and of another network is
    refused for its signature: nothing it says counts before that."""
    data = signed(1, network="lvv-other", issued=NOW - timedelta(days=90), anchor=FOREIGN)
    assert refusal(data) is DirectoryCheck.FOREIGN_ANCHOR


def test_about_to_expire_within_the_warning_threshold() -> None:
    d = load_directory(signed(6), anchor=PINNED, now=NOW)
    assert not expires_soon(d, d.expires_at - EXPIRY_WARNING - timedelta(seconds=1))
    assert expires_soon(d, d.expires_at - EXPIRY_WARNING)


# --- publishing -----------------------------------------------------------------------------


async def test_publish_is_idempotent_and_refuses_a_lower_serial(lvv: EmbeddedNetwork) -> None:
    first = await publish_directory(lvv.log, signed(6), anchor=PINNED, now=NOW, dry_run=True)
    assert (first.action, first.written, first.newest_on_topic) == (
        PublishAction.PUBLISH,
        False,
        None,
    )
    assert await lvv.log.read_topic(directory_topic()) == []

    done = await publish_directory(lvv.log, signed(6), anchor=PINNED, now=NOW)
    assert (done.action, done.written) == (PublishAction.PUBLISH, True)
    (record,) = await lvv.log.read_topic(directory_topic())
    assert record.key == directory_key(NETWORK, PINNED.key_id)

    again = await publish_directory(lvv.log, signed(6), anchor=PINNED, now=NOW)
    assert (again.action, again.written, again.newest_on_topic) == (
        PublishAction.UNCHANGED,
        False,
        6,
    )
    with pytest.raises(LocalError) as older:
        await publish_directory(lvv.log, signed(5), anchor=PINNED, now=NOW)
    assert older.value.reason == "OLDER_SERIAL"
    with pytest.raises(DirectoryRejected):  # checked against the anchor before anything
        await publish_directory(lvv.log, signed(7, anchor=FOREIGN), anchor=PINNED, now=NOW)
    assert len(await lvv.log.read_topic(directory_topic())) == 1


# --- a gateway follows the topic ------------------------------------------------------------


def first_directory() -> Directory:
    return load_directory(signed(1, without=frozenset({NEWCOMER})), anchor=PINNED, now=NOW)


async def newcomer(lvv: EmbeddedNetwork) -> Gateway:
    """The new party's gateway, started on the newer directory (its inbox exists from here)."""
    return await lvv.gateway(NEWCOMER, directory=load_directory(signed(2), anchor=PINNED, now=NOW))


def refused(observer: PrometheusObserver, reason: DirectoryCheck) -> float:
    value = observer.registry.get_sample_value(
        "lvv_directories_refused_total", {"party": IND, "reason": reason.value}
    )
    return value or 0.0


async def test_a_published_directory_is_taken_live_and_its_new_party_is_sendable(
    lvv: EmbeddedNetwork,
) -> None:
    observer = PrometheusObserver(IND)
    ind = await lvv.gateway(
        IND, run=True, directory=first_directory(), anchor=PINNED, observer=observer
    )
    observer.watch_directory(lambda: ind.directory, lambda: NOW)
    new = await newcomer(lvv)
    with pytest.raises(UnknownParty):
        await ind.send(example_of(DossierDelivered), [NEWCOMER])

    await publish_directory(lvv.log, signed(2), anchor=PINNED, now=NOW)
    await eventually(lambda: ind.directory.serial == 2, "the gateway to take serial 2")

    await ind.send(example_of(DossierDelivered), [NEWCOMER])  # no restart
    assert len(await lvv.records(inbox(NEWCOMER))) == 1
    assert ind.store.directory_serial() == 2  # a restart cannot go back either
    assert observer.registry.get_sample_value("lvv_directories_taken_total", {"party": IND}) == 1
    assert observer.registry.get_sample_value("lvv_directory_serial", {"party": IND}) == 2
    seconds = observer.registry.get_sample_value("lvv_directory_expiry_seconds", {"party": IND})
    assert seconds == (ind.directory.expires_at - NOW).total_seconds()
    assert new.directory.serial == 2


async def test_at_start_the_newest_directory_on_the_topic_is_taken(lvv: EmbeddedNetwork) -> None:
    await publish_directory(lvv.log, signed(2), anchor=PINNED, now=NOW)
    await publish_directory(lvv.log, signed(3), anchor=PINNED, now=NOW)
    ind = await lvv.gateway(IND, directory=first_directory(), anchor=PINNED)
    assert ind.directory.serial == 3  # before start returned: the file is only the bootstrap


async def test_anything_else_is_refused_counted_and_the_current_kept(
    lvv: EmbeddedNetwork, caplog: pytest.LogCaptureFixture
) -> None:
    observer = PrometheusObserver(IND)
    ind = await lvv.gateway(
        IND, run=True, directory=first_directory(), anchor=PINNED, observer=observer
    )
    await publish_directory(lvv.log, signed(3), anchor=PINNED, now=NOW)
    await eventually(lambda: ind.directory.serial == 3, "the gateway to take serial 3")
    topic, key = directory_topic(), directory_key(NETWORK, PINNED.key_id)
    hostile = {
        DirectoryCheck.OLDER_SERIAL: signed(2),
        DirectoryCheck.FOREIGN_ANCHOR: signed(9, anchor=FOREIGN),
        DirectoryCheck.OTHER_NETWORK: signed(9, network="lvv-other"),
        DirectoryCheck.EXPIRED: signed(9, issued=NOW - timedelta(days=40)),
        DirectoryCheck.NOT_YET_VALID: signed(9, issued=NOW + timedelta(days=1)),
        DirectoryCheck.MALFORMED: b"not a directory",
    }
    for data in hostile.values():
        await lvv.inject(topic, data, key=key)
        await lvv.inject(topic, data, key=key)  # twice: counted twice, logged once

    await eventually(
        lambda: all(refused(observer, r) == 2 for r in hostile), "every refusal counted"
    )
    assert ind.directory.serial == 3
    assert ind.store.directory_serial() == 3
    refusals = [
        r.getMessage() for r in caplog.records if "refused a published directory" in r.getMessage()
    ]
    assert sorted(next(c for c in hostile if f"({c})" in line) for line in refusals) == sorted(
        hostile
    )


async def test_at_start_superseded_versions_are_no_refusals(lvv: EmbeddedNetwork) -> None:
    """Older versions of the network's directory, superseded on the topic (compaction would
    drop them), are not refusals at every restart; a record planted after the newest good
    one is, and does not hide it."""
    observer = PrometheusObserver(IND)
    await lvv.log.ensure_topics([TopicSpec(directory_topic(), partitions=1)])
    for serial in (1, 2, 3):
        await lvv.inject(
            directory_topic(), signed(serial), key=directory_key(NETWORK, PINNED.key_id)
        )
    # planted after the newest good one: refused, and it does not hide that one
    await lvv.inject(
        directory_topic(), signed(9, anchor=FOREIGN), key=directory_key(NETWORK, PINNED.key_id)
    )
    ind = await lvv.gateway(IND, directory=first_directory(), anchor=PINNED, observer=observer)
    assert ind.directory.serial == 3
    assert refused(observer, DirectoryCheck.OLDER_SERIAL) == 0
    assert refused(observer, DirectoryCheck.FOREIGN_ANCHOR) == 1


async def test_a_gateway_without_an_anchor_does_not_follow(lvv: EmbeddedNetwork) -> None:
    await publish_directory(lvv.log, signed(2), anchor=PINNED, now=NOW)
    ind = await lvv.gateway(IND, run=True, directory=first_directory())
    await asyncio.sleep(0.1)
    assert ind.directory.serial == 1 and ind.directory_feed is None


def test_prometheus_page_names_the_directory_figures() -> None:
    observer = PrometheusObserver(IND)
    d = first_directory()
    observer.watch_directory(lambda: d, lambda: NOW)
    observer.directory_refused(DirectoryCheck.BAD_SIGNATURE)
    page = generate_latest(observer.registry).decode()
    line = f'lvv_directories_refused_total{{party="{IND}",reason="BAD_SIGNATURE"}} 1.0'
    assert line in page
    assert "lvv_directory_expiry_seconds" in page


# --- tools that read the network once: the newest on the topic -------------------------------


async def test_tools_check_with_the_newest_directory_on_the_topic(lvv: EmbeddedNetwork) -> None:
    current = first_directory()
    assert await newest_directory(lvv.log, anchor=PINNED, current=current, now=NOW) is current
    await publish_directory(lvv.log, signed(2), anchor=PINNED, now=NOW)
    await publish_directory(lvv.log, signed(3), anchor=PINNED, now=NOW)
    await lvv.inject(
        directory_topic(), signed(9, anchor=FOREIGN), key=directory_key(NETWORK, PINNED.key_id)
    )
    assert (await newest_directory(lvv.log, anchor=PINNED, current=current, now=NOW)).serial == 3
    await lvv.inject(directory_topic(), signed(4, network="lvv-other"), key=b"lvv-other")
    found = await newest_directory(lvv.log, anchor=PINNED, current=current, now=NOW)
    assert (found.serial, found.document.network) == (3, NETWORK)


async def test_an_anchor_rollover_publishes_both_directories_and_each_gateway_takes_its_own(
    lvv: EmbeddedNetwork,
) -> None:
    """During a rollover the programme office publishes each directory signed by the old
    anchor and by the new one: each lives under its own key (compaction keeps both), a
    gateway takes the one its pinned anchor signed and passes the other by without counting
    a refusal; re-pinned to the new anchor, it takes the new one's."""
    new_anchor = Ed25519PrivateKey.from_private_bytes(b"\x51" * 32)
    new_pinned = AnchorKey(
        key_id(new_anchor.public_key().public_bytes_raw()), new_anchor.public_key()
    )
    old_side, new_side = PrometheusObserver(IND), PrometheusObserver(MUNI)
    ind = await lvv.gateway(
        IND, run=True, directory=first_directory(), anchor=PINNED, observer=old_side
    )
    muni = await lvv.gateway(
        MUNI, run=True, directory=first_directory(), anchor=new_pinned, observer=new_side
    )
    await publish_directory(lvv.log, signed(3), anchor=PINNED, now=NOW)
    await publish_directory(lvv.log, signed(4, anchor=new_anchor), anchor=new_pinned, now=NOW)
    await eventually(
        lambda: (ind.directory.serial, muni.directory.serial) == (3, 4), "each its own"
    )
    assert {r.key for r in await lvv.records(directory_topic())} == {
        directory_key(NETWORK, PINNED.key_id),
        directory_key(NETWORK, new_pinned.key_id),
    }
    for observer, party in ((old_side, IND), (new_side, MUNI)):
        counted = [s for m in observer.registry.collect() if m.name == "lvv_directories_refused"
                   for s in m.samples if s.labels.get("party") == party and s.value]  # fmt: skip
        assert counted == [], counted
    # the old anchor's gateway re-pinned (its restart with the new anchor file) takes serial 4
    await lvv.shut(ind)
    repinned = await lvv.gateway(IND, directory=first_directory(), anchor=new_pinned)
    assert repinned.directory.serial == 4
