"""The key directory distributed live: the network's signed directory, published to the
compacted topic ``<prefix>.directory`` (`publish_directory`, `lvvx directory publish`), keyed
by the network's name, is taken by every gateway as it arrives, without a restart — as
X-Road's security servers take the signed global configuration. The file a gateway starts
with stays its bootstrap.

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
already newest on the topic is not written again, and a lower one is refused.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from broker.crypto import MAX_CLOCK_SKEW, AnchorKey, Directory, load_directory
from broker.errors import DirectoryCheck, DirectoryRejected, LocalError, TransportError
from broker.log_throttle import Throttle
from broker.topics import (
    DEFAULT_PREFIX,
    DIRECTORY_CONFIG,
    DIRECTORY_PARTITIONS,
    directory,
    directory_key,
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
        """The newest record of each key up to the end the topic has now — what compaction
        leaves of it — judged in offset order; older records of a key are superseded."""
        ends = {
            tp: end
            for tp, end in (await self._transport.end_offsets([self._topic])).items()
            if end > 0
        }
        seen: dict[TopicPartition, int] = {}
        newest: dict[bytes | None, Record] = {}
        deadline = asyncio.get_running_loop().time() + CATCH_UP_TIMEOUT.total_seconds()
        while any(seen.get(tp, 0) < end for tp, end in ends.items()):
            if asyncio.get_running_loop().time() > deadline:
                log.warning("gateway %s: the directory topic was not read to its end in %s",
                            self._party, CATCH_UP_TIMEOUT)  # fmt: skip
                break
            for record in await reader.poll(timeout_ms=FOLLOW_POLL_MS):
                seen[record.topic_partition] = record.offset + 1
                newest[record.key] = record
        for record in sorted(newest.values(), key=lambda r: (r.partition, r.offset)):
            await self._consider(record)
        self.caught_up.set()
        self._warn_if_expiring()

    async def _consider(self, record: Record) -> None:
        now = self._clock()
        try:
            directory = judge_directory(
                record.value, anchor=self._anchor, network=self._network,
                serial_in_use=self._in_use().serial, now=now,
            )  # fmt: skip
            if directory is None:
                return
            await self._take(directory)  # may still refuse an older serial (the store's)
        except DirectoryRejected as exc:
            self._refused(exc.check)
            self._quiet.warning(exc.check, "gateway %s: refused a published directory (%s): %s; "
                                "keeping serial %d", self._party, exc.check, exc.message,
                                self._in_use().serial)  # fmt: skip
            return
        self.taken += 1
        log.info("gateway %s: took directory serial %d of network %s (%d parties, valid until %s)",
                 self._party, directory.serial, self._network, len(directory.parties),
                 directory.expires_at.isoformat())  # fmt: skip

    def _warn_if_expiring(self) -> None:
        directory = self._in_use()
        if expires_soon(directory, self._clock()):
            self._expiry_quiet.warning("expiring", "gateway %s: directory serial %d expires at %s; "
                                "publish a newer one", self._party, directory.serial,
                                directory.expires_at.isoformat())  # fmt: skip


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


def newest_serial(
    records: list[Record], *, anchor: AnchorKey, network: str, now: datetime
) -> int | None:
    """The highest serial among ``records`` that are directories of ``network`` signed by
    ``anchor`` and valid now; what does not verify is not counted (its serial is untrusted)."""
    serials = []
    for record in records:
        if record.key != directory_key(network):
            continue
        try:
            serials.append(
                load_directory(record.value, anchor=anchor, now=now, network=network).serial
            )
        except DirectoryRejected:
            continue
    return max(serials, default=None)


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
    newest = newest_serial(
        await transport.read_topic(topic), anchor=anchor, network=network, now=now
    )
    if newest is not None and checked.serial < newest:
        raise LocalError(
            f"directory serial {checked.serial} is older than serial {newest}, the newest of "
            f"network {network!r} on {topic}; gateways would refuse it",
            reason="OLDER_SERIAL",
        )
    if newest == checked.serial:
        return Publication(checked, topic, PublishAction.UNCHANGED, newest, written=False)
    if not dry_run:
        await transport.ensure_topics(
            [TopicSpec(topic, partitions=DIRECTORY_PARTITIONS, config=DIRECTORY_CONFIG)]
        )
        async with transport.producer() as producer:
            await producer.send(topic, data, key=directory_key(network))
    return Publication(checked, topic, PublishAction.PUBLISH, newest, written=not dry_run)
