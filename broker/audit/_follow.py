"""`lvvx audit follow`: the verifier and the case monitor, live, for DT&V's operators —
re-verifies the stream as it grows and tells each new finding once. Each report goes to an
observer hook (``on_report``); `broker.audit.metrics` turns it into Prometheus gauges.

Parties come and go while it runs (docs/OPERATING.md, Audit): the audit topic of a party a
newer directory adds is read from its first event, by a `TopicReader` of its own (the topic
may not exist yet: its gateway starts after the directory is published); a party a newer
directory drops keeps its chain as verified — its topic is still read and its events are
checked with the keys of the newest directory that listed it, so neither its past events
nor the messages it exchanged turn into findings."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta

from broker.audit._events import VerifiedBatches
from broker.audit._verify import DEFAULT_GRACE, Issue, Report, verify_stream
from broker.crypto import Directory
from broker.transport import Consumer, Record, TopicReader, Transport

VERIFY_EVERY_S = 2.0
"""How often the whole stream is verified again: findings show within seconds."""

POLL_MAX_RECORDS = 500
"""Records one poll takes from one source (the first topics' consumer, or the reader of an
added topic): a long chain read from its start comes in steps, and passes still run."""

NEW_TOPICS_PER_PASS = 4
"""Readers started per pass for topics of added parties: each is a connection, so a
directory that adds dozens of parties is taken up over a few passes, not in one stall."""

Topics = Sequence[str] | Callable[[Directory], Sequence[str]]


async def follow(
    transport: Transport,
    topics: Topics,
    directory: Directory | Callable[[], Directory],
    *,
    stop: asyncio.Event,
    on_issue: Callable[[Issue], None],
    on_report: Callable[[Report, datetime], None] | None = None,
    grace: timedelta = DEFAULT_GRACE,
) -> Report | None:
    """Read the stream as it grows until ``stop``; returns the last report. ``on_issue``
    hears of each finding once, ``on_report`` of every report (with its time). Given a
    callable ``directory``, each pass verifies with what it returns then: the directory
    followed live (`broker.directory_feed.DirectoryFeed`), so keys rotated since verify.
    Given a callable ``topics`` (the audit topics of a directory), each pass also reads the
    topics of that pass's directory not read yet, from their start: parties added since."""
    current = directory() if callable(directory) else directory
    first = list(topics(current) if callable(topics) else topics)
    stream = _Stream(transport, first)
    former: dict[str, Directory] = {}  # party no longer listed → the newest directory that did
    records: list[Record] = []
    seen: set[tuple[str, str | None, int | None, str | None]] = set()
    await stream.start()
    report = None
    last = 0.0
    batches = VerifiedBatches()  # a pass checks only the batch signatures new since the last
    try:
        while not stop.is_set():
            records += await stream.poll()
            if time.monotonic() - last < VERIFY_EVERY_S:
                continue
            last = time.monotonic()
            now = datetime.now(UTC)
            before, current = current, directory() if callable(directory) else directory
            for party in before.parties.keys() - current.parties.keys():
                former[party] = before
            if callable(topics):
                await stream.add(topics(current))
            ordered = sorted(records, key=lambda r: (r.topic, r.partition, r.offset))
            report = verify_stream(ordered, current, now=now, grace=grace, batches=batches,
                                   former=former)  # fmt: skip
            for issue in report.issues:
                key = (issue.kind.value, issue.gateway, issue.seq, str(issue.message_id))
                if key not in seen:
                    seen.add(key)
                    on_issue(issue)
            if on_report is not None:
                on_report(report, now)
    finally:
        await stream.close()
    return report


class _Stream:
    """The audit topics read: those of the start through one consumer of a fresh group, each
    added later through a `TopicReader` of its own (a group's subscription is fixed)."""

    def __init__(self, transport: Transport, topics: list[str]) -> None:
        self._transport = transport
        group = f"{topics[0].rsplit('.audit.', 1)[0]}.audit-follow" if topics else "none"
        self._consumer: Consumer = transport.consumer(f"{group}.{uuid.uuid4().hex[:8]}", topics)
        self._readers: dict[str, TopicReader] = {}
        self._read = set(topics)
        self._behind = False  # a source gave a full poll last time: poll again without waiting

    async def start(self) -> None:
        await self._consumer.start()

    async def add(self, topics: Sequence[str]) -> None:
        """Start reading up to `NEW_TOPICS_PER_PASS` of ``topics`` not read yet."""
        for topic in sorted(set(topics) - self._read)[:NEW_TOPICS_PER_PASS]:
            reader = self._transport.reader(topic)
            await reader.start()
            self._readers[topic] = reader
            self._read.add(topic)

    async def poll(self) -> list[Record]:
        """What every source has now, waiting up to half a second unless one is behind."""
        wait_ms = 0 if self._behind else 500
        sources: list[Consumer | TopicReader] = [self._consumer, *self._readers.values()]
        polled = await asyncio.gather(
            *(s.poll(timeout_ms=wait_ms, max_records=POLL_MAX_RECORDS) for s in sources)
        )
        self._behind = any(len(batch) >= POLL_MAX_RECORDS for batch in polled)
        return [record for batch in polled for record in batch]

    async def close(self) -> None:
        for source in (self._consumer, *self._readers.values()):
            with contextlib.suppress(Exception):
                await source.close()
