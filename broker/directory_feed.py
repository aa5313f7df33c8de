"""The key directory distributed live: the network's signed directory, published to the
compacted topic ``<prefix>.directory`` (`publish_directory`, `lvvx directory publish`), keyed
by the network's name and the signing anchor's key id, is taken by every gateway as it
arrives, without a restart — as X-Road's security servers take the signed global
configuration. The file a gateway starts with stays its bootstrap. A record keyed to the
network and another anchor is the other half of an anchor rollover: a gateway pinning this
anchor passes it by, neither taking nor refusing it; any other record is judged.

A published directory is taken only if it passes every check below, in this order; the
first that fails names the refusal (`DirectoryCheck`, the metric's ``reason`` label), and
the gateway keeps the directory it has:

| # | check | refused as |
| --- | --- | --- |
| 1 | at most `MAX_DIRECTORY_BYTES` | `TOO_LARGE` |
| 2 | decodes as a signed directory | `MALFORMED` |
| 3 | a format version we know | `UNSUPPORTED_FORMAT` |
| 4 | names the pinned anchor's key | `FOREIGN_ANCHOR` |
| 5 | the pinned anchor is valid now | `ANCHOR_NOT_YET_VALID`, `ANCHOR_EXPIRED` |
| 6 | the anchor's signature | `BAD_SIGNATURE` |
| 7 | the signed directory decodes | `MALFORMED` |
| 8 | not expired | `EXPIRED` |
| 9 | of this gateway's network | `OTHER_NETWORK` |
| 10 | every party has a role and usable keys | `BAD_KEY` |
| 11 | issued no later than now (within `MAX_ISSUE_SKEW`) | `NOT_YET_VALID` |
| 12 | a serial higher than the one in use | `OLDER_SERIAL` (the same serial: nothing to do) |

Checks 1–10 are `broker.crypto.load_directory`'s, which the bootstrap file passes too.
`judge_directory` is the pure part (bytes, anchor, network, serial and clock in); the
`DirectoryFeed` is the I/O edge around it: it reads the topic from its start when the
gateway starts — the newest record per key, as compaction would leave it — and then
follows it, as a task next to the receive loop.

Publishing checks the directory against the anchor first, and is idempotent: the serial
already newest on the topic is not written again, and a lower one is refused; so is one
that ends a key in use too soon (`keys_ended_too_soon`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from broker.crypto import MAX_CLOCK_SKEW, AnchorKey, Directory, load_directory
from broker.errors import DirectoryCheck, DirectoryRejected, LocalError, TransportError
from broker.log_throttle import Throttle
from broker.models import KeyStatus, PublicKey
from broker.topics import (
    DEFAULT_PREFIX,
    DIRECTORY_CONFIG,
    DIRECTORY_PARTITIONS,
    directory,
    directory_key,
    other_anchors_directory,
)
from broker.transport import Record, TopicPartition, TopicReader, TopicSpec, Transport

log = logging.getLogger("lvvx.gateway.directory")

MAX_ISSUE_SKEW = MAX_CLOCK_SKEW
"""A directory issued this far in our future is still taken: the anchor's clock and ours
may differ by as much as two parties' clocks may (docs/ENVELOPE.md §7)."""

EXPIRY_WARNING = timedelta(days=7)
"""A directory that expires within this is about to: a week leaves the programme office
time to publish the next one before gateways refuse to work (the alert
``LvvDirectoryExpiringSoon`` fires at the same threshold)."""

CATCH_UP_TIMEOUT = timedelta(seconds=10)
"""At start, how long reading the topic to its end may take before the gateway goes on with
the directory it has (it keeps following, and takes a newer one when it comes)."""

FOLLOW_POLL_MS = 500
"""One poll of the followed topic: bounds how quickly a stop is noticed."""

RETRY_S = 3.0
"""The wait before trying the topic again while the log is away."""

EXPIRY_LOG_EVERY_S = 3600.0
"""A directory about to expire is logged hourly; the metric and the alert say it at once."""


def judge_directory(
    data: bytes, *, anchor: AnchorKey, network: str, serial_in_use: int, now: datetime
) -> Directory | None:
    """The directory in ``data`` if this gateway should take it now; None if it is the one
    in use (the same serial); otherwise raise `DirectoryRejected` with the failed check as
    its ``check`` (the module's table gives the order)."""
    directory = load_directory(data, anchor=anchor, now=now, network=network)
    if directory.document.issued_at > now + MAX_ISSUE_SKEW:
        raise DirectoryRejected(
            f"directory issued at {directory.document.issued_at.isoformat()}, in the future",
            check=DirectoryCheck.NOT_YET_VALID,
        )
    if directory.serial == serial_in_use:
        return None
    if directory.serial < serial_in_use:
        raise DirectoryRejected(
            f"directory serial {directory.serial} is older than the one in use ({serial_in_use})",
            check=DirectoryCheck.OLDER_SERIAL,
        )
    return directory


def expires_soon(directory: Directory, now: datetime) -> bool:
    return directory.expires_at - now <= EXPIRY_WARNING


class DirectoryFeed:
    """Reads ``topic`` from its start, then follows it; hands each directory that passes
    `judge_directory` to ``take`` and tells ``refused`` the check of every other one."""

    def __init__(
        self,
        *,
        transport: Transport,
        topic: str,
        anchor: AnchorKey,
        network: str,
        in_use: Callable[[], Directory],
        take: Callable[[Directory], Awaitable[None]],
        refused: Callable[[DirectoryCheck], None],
        clock: Callable[[], datetime],
        party: str,
    ) -> None:
        self._transport = transport
        self._topic = topic
        self._anchor = anchor
        self._network = network
        self._in_use = in_use
        self._take = take
        self._refused = refused
        self._clock = clock
        self._party = party
        self._quiet = Throttle(log)
        self._expiry_quiet = Throttle(log, every_s=EXPIRY_LOG_EVERY_S)
        self.caught_up = asyncio.Event()
        """Set once the topic was read to the end it had at start (or that took too long)."""
        self.taken = 0

    async def run(self, stop: asyncio.Event) -> None:
        """Follow the topic until ``stop``; a log that is away is waited out."""
        while not stop.is_set():
            reader = self._transport.reader(self._topic)
            try:
                await reader.start()
                if not self.caught_up.is_set():
                    await self._catch_up(reader)
                while not stop.is_set():
                    for record in await reader.poll(timeout_ms=FOLLOW_POLL_MS):
                        await self._consider(record)
                    self._warn_if_expiring()
            except Exception as exc:  # the log away, or a fault of ours: try again later
                self._quiet.warning(
                    "log", "gateway %s: cannot follow the directory topic: %s", self._party, exc
                )
                self.caught_up.set()  # go on with the directory in use; read again later
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), RETRY_S)
            finally:
                with contextlib.suppress(TransportError):
                    await reader.close()

    async def _catch_up(self, reader: TopicReader) -> None:
        """Everything up to the end the topic has now: the best directory in it taken
        (`best_directory`); of the refused, only the newest record of a key counted."""
        ends = await self._transport.end_offsets([self._topic])
        ends = {tp: end for tp, end in ends.items() if end > 0}
        seen: dict[TopicPartition, int] = {}
        records: list[Record] = []
        deadline = asyncio.get_running_loop().time() + CATCH_UP_TIMEOUT.total_seconds()
        while any(seen.get(tp, 0) < end for tp, end in ends.items()):
            if asyncio.get_running_loop().time() > deadline:
                log.warning("gateway %s: the directory topic was not read to its end in %s",
                            self._party, CATCH_UP_TIMEOUT)  # fmt: skip
                break
            for record in await reader.poll(timeout_ms=FOLLOW_POLL_MS):
                seen[record.topic_partition] = record.offset + 1
                records.append(record)
        best, refusals = best_directory(records, anchor=self._anchor, network=self._network,
                                        serial_in_use=self._in_use().serial, now=self._clock())  # fmt: skip
        for refusal in refusals:
            self._refuse(refusal)
        if best is not None:
            await self._take_logged(best)
        self.caught_up.set()
        self._warn_if_expiring()

    async def _consider(self, record: Record) -> None:
        if other_anchors_directory(record.key, self._network, self._anchor.key_id):
            return  # a rollover's other directory (`directory_key`)
        try:
            directory = judge_directory(record.value, anchor=self._anchor, network=self._network,
                                        serial_in_use=self._in_use().serial, now=self._clock())  # fmt: skip
        except DirectoryRejected as exc:
            self._refuse(exc)
            return
        if directory is not None:
            await self._take_logged(directory)

    async def _take_logged(self, directory: Directory) -> None:
        try:
            await self._take(directory)  # may still refuse an older serial (the store's)
        except DirectoryRejected as exc:
            self._refuse(exc)
            return
        self.taken += 1
        log.info("gateway %s: took directory serial %d of network %s (%d parties, valid until %s)",
                 self._party, directory.serial, self._network, len(directory.parties),
                 directory.expires_at.isoformat())  # fmt: skip

    def _refuse(self, exc: DirectoryRejected) -> None:
        self._refused(exc.check)
        self._quiet.warning(exc.check, "gateway %s: refused a published directory (%s): %s; "
                            "keeping serial %d", self._party, exc.check, exc.message,
                            self._in_use().serial)  # fmt: skip

    def _warn_if_expiring(self) -> None:
        directory = self._in_use()
        if expires_soon(directory, self._clock()):
            self._expiry_quiet.warning("expiring", "gateway %s: directory serial %d expires at %s; "
                                "publish a newer one", self._party, directory.serial,
                                directory.expires_at.isoformat())  # fmt: skip


def best_directory(
    records: Sequence[Record], *, anchor: AnchorKey, network: str, serial_in_use: int,
    now: datetime,
) -> tuple[Directory | None, list[DirectoryRejected]]:  # fmt: skip
    """Of the directory topic's ``records``, the directory with the highest serial that
    `judge_directory` takes (None: none newer than ``serial_in_use``), and the refusals of
    the records that are the newest of their key. Every record is judged — one planted after
    a good one does not hide it — but a version its key has superseded (compaction would
    drop it) is not a refusal to report."""
    records = [r for r in records if not other_anchors_directory(r.key, network, anchor.key_id)]
    newest = {r.key: r for r in records}
    best: Directory | None = None
    refusals = []
    for record in records:
        try:
            found = judge_directory(record.value, anchor=anchor, network=network,
                                    serial_in_use=best.serial if best else serial_in_use, now=now)  # fmt: skip
        except DirectoryRejected as exc:
            if newest[record.key] is record and exc.check is not DirectoryCheck.OLDER_SERIAL:
                refusals.append(exc)
            continue
        if found is not None:
            best = found
    return best, refusals


async def newest_directory(
    transport: Transport, *, anchor: AnchorKey, current: Directory, now: datetime,
    prefix: str = DEFAULT_PREFIX,
) -> Directory:  # fmt: skip
    """The newest directory of ``current``'s network on the directory topic that passes
    `judge_directory`, else ``current`` itself: what a tool that reads the network once
    (`lvvx audit verify`, `lvvx cases`) checks with, so events signed by keys added since
    the file it was given verify. What is refused is logged."""
    records = await transport.read_topic(directory(prefix))
    best, refusals = best_directory(records, anchor=anchor, network=current.document.network,
                                    serial_in_use=current.serial, now=now)  # fmt: skip
    for exc in refusals:
        log.warning("refused a directory on %s (%s): %s", directory(prefix), exc.check, exc.message)
    return best or current


# --- publishing -----------------------------------------------------------------------------


class PublishAction(StrEnum):
    PUBLISH = "PUBLISH"
    """The directory is newer than any on the topic: written (or, in a dry run, would be)."""
    UNCHANGED = "UNCHANGED"
    """The topic's newest directory of the network has this serial already: nothing written."""


@dataclass(frozen=True, slots=True)
class Publication:
    """What `publish_directory` did, or in a dry run would do."""

    directory: Directory
    topic: str
    action: PublishAction
    newest_on_topic: int | None
    """The highest serial of the network's directories on the topic that verify (None: none)."""
    written: bool


def newest_on_topic(
    records: list[Record], *, anchor: AnchorKey, network: str, now: datetime
) -> Directory | None:
    """The directory of the highest serial among ``records`` that are directories of
    ``network`` signed by ``anchor`` and valid now; what does not verify is not counted (its
    serial is untrusted)."""
    found: list[Directory] = []
    for record in records:
        if record.key != directory_key(network, anchor.key_id):
            continue
        try:
            found.append(load_directory(record.value, anchor=anchor, now=now, network=network))
        except DirectoryRejected:
            continue
    return max(found, key=lambda d: d.serial, default=None)


KEY_CHANGE_NOTICE = timedelta(seconds=10)
"""A directory that ends a key in use must reach the gateways at least this long before the
end: a gateway takes a published directory within a second (docs/OPERATING.md)."""


def keys_ended_too_soon(current: Directory, new: Directory, now: datetime,
                        notice: timedelta = KEY_CHANGE_NOTICE) -> list[str]:  # fmt: skip
    """Keys valid now under ``current`` whose window ``new`` ends before ``now + notice``
    (or which it drops) — for a party in both and not by a revocation. Published, such a
    directory would make gateways refuse, as signed by an ended key, what the party's
    gateway signed before it took the directory: a rotation published after its
    activation. (A revocation ends a key at once on purpose; so does removing a party.)"""
    soon = now + notice
    found = []
    for party, entry in new.parties.items():
        if party not in current.parties:
            continue
        old = current.parties[party]
        listed = {k.key_id: k for k in (*entry.signing_keys, *entry.encryption_keys)}
        for key in (*old.signing_keys, *old.encryption_keys):
            if not _active(key, now):
                continue
            after = listed.get(key.key_id)
            if after is None and key in old.encryption_keys:
                continue  # a retired encryption key: nothing signed needs it
            if after is not None and after.status is KeyStatus.REVOKED:
                continue
            if (
                after is None
                or not _active(after, now)
                or (_active(key, soon) and not _active(after, soon))
            ):
                found.append(f"{party}/{key.key_id}")
    return found


def _active(key: PublicKey, at: datetime) -> bool:
    return key.status is KeyStatus.ACTIVE and key.valid_from <= at < key.valid_until


async def publish_directory(
    transport: Transport,
    data: bytes,
    *,
    anchor: AnchorKey,
    now: datetime,
    prefix: str = DEFAULT_PREFIX,
    dry_run: bool = False,
) -> Publication:
    """Write the signed directory ``data`` to the directory topic, keyed by its network, if
    it verifies against ``anchor`` and its serial is higher than the topic's newest. The
    same serial again is a no-op (`PublishAction.UNCHANGED`); a lower one is refused
    (`LocalError` ``OLDER_SERIAL``): gateways would refuse it anyway."""
    checked = load_directory(data, anchor=anchor, now=now)
    network, topic = checked.document.network, directory(prefix)
    current = newest_on_topic(
        await transport.read_topic(topic), anchor=anchor, network=network, now=now
    )
    newest = current.serial if current is not None else None
    if newest is not None and checked.serial < newest:
        raise LocalError(
            f"directory serial {checked.serial} is older than serial {newest}, the newest of "
            f"network {network!r} on {topic}; gateways would refuse it",
            reason="OLDER_SERIAL",
        )
    if newest == checked.serial:
        return Publication(checked, topic, PublishAction.UNCHANGED, newest, written=False)
    if current is not None and (cut := keys_ended_too_soon(current, checked, now)):
        raise LocalError(
            f"this directory ends keys in use within {KEY_CHANGE_NOTICE.seconds} s of now or "
            f"before it: {', '.join(cut)}; gateways would refuse what those parties sign "
            "until they take it. Rotate with an activation further ahead (lvvx keys rotate "
            "--activate-in), or revoke the key if that is what is meant",
            reason="KEY_ENDS_TOO_SOON",
        )
    if not dry_run:
        await transport.ensure_topics(
            [TopicSpec(topic, partitions=DIRECTORY_PARTITIONS, config=DIRECTORY_CONFIG)]
        )
        async with transport.producer() as producer:
            await producer.send(topic, data, key=directory_key(network, anchor.key_id))
    return Publication(checked, topic, PublishAction.PUBLISH, newest, written=not dry_run)
