"""`lvvx audit follow`: the verifier and the case monitor, live, for DT&V's operators —
re-verifies the stream as it grows, tells each new finding once and each finding that is
gone as resolved. Each report goes to an observer hook (``on_report``);
`broker.audit.metrics` turns it into Prometheus gauges.

**When a message is judged.** Not by the follower's clock: a follower that starts on a
finished network, or falls behind under load, has not read yet what answered a message, and
the wall clock would call it lost. Each chain is known up to a *horizon*, by event time: the
time of the latest event read from it, or — once a poll of its topic came back empty, so
everything committed before that poll was read — the poll's time less `CAUGHT_UP_SLACK`. A
message sent at t is judged (LOST, RECEIPT_LOST) only once the chain that should answer it
(each recipient's for the delivery, the sender's for a receipt) is known past t + grace;
until then it is pending. A chain whose gateway is down or idle is known through the second
rule only while the follower keeps up with its topic, so an answer that never came is still
found, the same as `lvvx audit verify` finds it then.

**Findings as a set.** Each pass's findings are compared with the last pass's: a new one is
told (``on_issue``), one that is gone — a message delivered after all, late — is told as
resolved (``on_resolved``), and the gauges come from the current set.

**How stale.** A pass first reads every topic until each is caught up or `READ_BUDGET_S` is
spent, then verifies only the records new since the last pass (`Taken`), at most every
`VERIFY_EVERY_S`: a record committed at c is in a report by c + `STALE_BOUND_S` while the
follower keeps up (it is behind if the network writes faster than it reads; the horizon
gauge shows by how much).

**Stopping.** ``stop`` is looked at after every poll (at most `POLL_WAIT_MS`) and pass;
closing the readers is given `CLOSE_BUDGET_S` in all (a Kafka client's goodbye to a broker
that does not answer is abandoned), so a follower stops within 2 s.

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
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta

from broker.audit._events import VerifiedBatches
from broker.audit._verify import DEFAULT_GRACE, FindingKey, Issue, Report, Taken, judge
from broker.crypto import Directory
from broker.transport import Record, TopicReader, Transport

VERIFY_EVERY_S = 2.0
"""How often the stream is verified again: findings show within seconds."""

POLL_MAX_RECORDS = 500
"""Records one poll takes from one topic: a long chain read from its start comes in steps."""

POLL_WAIT_MS = 250
"""How long a poll of caught-up topics waits for more: bounds how late a stop is noticed."""

READ_BUDGET_S = 1.0
"""How long a pass may read before it verifies anyway (a follower far behind still reports)."""

STALE_BOUND_S = VERIFY_EVERY_S + READ_BUDGET_S + POLL_WAIT_MS / 1000
"""How far a report may be behind the topics while the follower keeps up with them."""

CLOSE_BUDGET_S = 0.5
"""All readers' closes together: past this the follower stops without their goodbyes."""

CAUGHT_UP_SLACK = timedelta(seconds=5)
"""A topic read to its end at W holds every event committed before W; one committed just
before may carry an earlier time by its gateway's clock and the write's duration."""

NEW_TOPICS_PER_PASS = 4
"""Readers started per pass for topics of added parties: each is a connection, so a
directory that adds dozens of parties is taken up over a few passes, not in one stall."""

NEVER = datetime.min.replace(tzinfo=UTC)
"""The horizon of a chain nothing is known of yet."""

Topics = Sequence[str] | Callable[[Directory], Sequence[str]]


async def follow(
    transport: Transport,
    topics: Topics,
    directory: Directory | Callable[[], Directory],
    *,
    stop: asyncio.Event,
    on_issue: Callable[[Issue], None],
    on_report: Callable[[Report, datetime], None] | None = None,
    on_resolved: Callable[[Issue], None] | None = None,
    grace: timedelta = DEFAULT_GRACE,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> Report | None:
    """Read the stream as it grows until ``stop``; returns the last report. ``on_issue``
    hears of each finding when it appears, ``on_resolved`` when it is gone, ``on_report``
    of every report (with its time). Given a callable ``directory``, each pass verifies with
    what it returns then: the directory followed live (`broker.directory_feed.DirectoryFeed`),
    so keys rotated since verify. Given a callable ``topics`` (the audit topics of a
    directory), each pass also reads the topics of that pass's directory not read yet, from
    their start: parties added since."""
    current = directory() if callable(directory) else directory
    stream = _Stream(transport, clock)
    former: dict[str, Directory] = {}  # party no longer listed → the newest directory that did
    records: list[Record] = []  # every record read: taken again when the directory changes
    taken, taken_with, fresh = Taken(), current, 0
    findings: dict[FindingKey, Issue] = {}
    report = None
    batches = VerifiedBatches()  # a pass checks only the batch signatures new since the last
    try:
        await stream.add(topics(current) if callable(topics) else topics, limit=None)
        last = float("-inf")
        while not stop.is_set():
            records += await stream.read(stop)
            if stop.is_set() or time.monotonic() - last < VERIFY_EVERY_S:
                continue
            last = time.monotonic()
            now = clock()
            before, current = current, directory() if callable(directory) else directory
            for party in before.parties.keys() - current.parties.keys():
                former[party] = before
            if callable(topics):
                await stream.add(topics(current), limit=NEW_TOPICS_PER_PASS)
            if current is not taken_with:  # other keys, other parties: take all again
                taken, taken_with, fresh = Taken(), current, 0
            ordered = sorted(records[fresh:], key=lambda r: (r.topic, r.partition, r.offset))
            taken.take(ordered, current, former, batches)
            fresh = len(records)
            horizons = stream.horizons(taken, [*current.parties, *former])
            report = judge(taken, now=now, grace=grace, horizons=horizons)
            findings = _tell(findings, report, on_issue, on_resolved)
            if on_report is not None:
                on_report(report, now)
    finally:
        await stream.close()
    return report


def _tell(before: dict[FindingKey, Issue], report: Report,
          on_issue: Callable[[Issue], None],
          on_resolved: Callable[[Issue], None] | None) -> dict[FindingKey, Issue]:  # fmt: skip
    """Tell what is new in ``report`` and what is gone since ``before``; the current set."""
    now = {issue.key: issue for issue in report.issues}
    for key, issue in now.items():
        if key not in before:
            on_issue(issue)
    if on_resolved is not None:
        for key, issue in before.items():
            if key not in now:
                on_resolved(issue)
    return now


def party_of(topic: str) -> str:
    """The party whose audit topic ``topic`` is (`broker.topics.audit`)."""
    return topic.rsplit(".audit.", 1)[-1]


class _Stream:
    """Every audit topic through a `TopicReader` of its own (no consumer group: each topic's
    reader tells when it is caught up, which a group over all topics cannot), and when each
    was last read to its end."""

    def __init__(self, transport: Transport, clock: Callable[[], datetime]) -> None:
        self._transport = transport
        self._clock = clock
        self._readers: dict[str, TopicReader] = {}
        self._caught_up: dict[str, datetime] = {}  # topic → when it was last read to its end
        self._next: dict[tuple[str, int], int] = {}  # (topic, partition) → next offset to read

    async def add(self, topics: Sequence[str], *, limit: int | None) -> None:
        """Start reading up to ``limit`` of ``topics`` not read yet (all at once)."""
        new = sorted(set(topics) - self._readers.keys())[:limit]
        readers = {topic: self._transport.reader(topic) for topic in new}
        self._readers.update(readers)
        await asyncio.gather(*(reader.start() for reader in readers.values()))

    async def read(self, stop: asyncio.Event) -> list[Record]:
        """What the topics have now: polls until every topic came back empty once,
        `READ_BUDGET_S` is spent or ``stop`` is set. A topic is caught up as of this read's
        start W when it came back empty and what was read of it reaches the end offsets
        asked for at W — less one: on Kafka the last offset of a committed transaction is
        its marker, never a record; on the embedded log the empty poll itself is exact. An
        empty poll alone is not enough: a Kafka reader's first fetch may not be back yet."""
        records: list[Record] = []
        deadline = time.monotonic() + READ_BUDGET_S
        at = self._clock()
        ends = await self._transport.end_offsets(sorted(self._readers))
        behind = set(self._readers)
        while behind and not stop.is_set():
            topics = sorted(behind)
            polled = await asyncio.gather(*(self._readers[t].poll(
                timeout_ms=POLL_WAIT_MS, max_records=POLL_MAX_RECORDS) for t in topics))  # fmt: skip
            for topic, batch in zip(topics, polled, strict=True):
                records += batch
                for r in batch:
                    self._next[(topic, r.partition)] = r.offset + 1
                if not batch:
                    behind.discard(topic)
            if time.monotonic() > deadline:
                break
        for topic in set(self._readers) - behind:
            if all(self._next.get((tp.topic, tp.partition), 0) >= end - 1
                   for tp, end in ends.items() if tp.topic == topic):  # fmt: skip
                self._caught_up[topic] = at
        return records

    def horizons(self, taken: Taken, parties: Sequence[str]) -> dict[str, datetime]:
        """How far each party's chain is known: its latest event read, or its topic's last
        catch-up less `CAUGHT_UP_SLACK`; `NEVER` for a party whose topic is not read yet."""
        known = {party: NEVER for party in parties}
        for topic, at in self._caught_up.items():
            party = party_of(topic)
            known[party] = max(known.get(party, NEVER), at - CAUGHT_UP_SLACK)
        for gateway, chain in taken.chains.items():
            if chain.latest is not None and gateway in known:
                known[gateway] = max(known[gateway], chain.latest)
        return known

    async def close(self) -> None:
        closing = [asyncio.ensure_future(reader.close()) for reader in self._readers.values()]
        if not closing:
            return
        done, pending = await asyncio.wait(closing, timeout=CLOSE_BUDGET_S)
        for task in pending:
            task.cancel()
        for task in done:
            with contextlib.suppress(Exception):
                task.result()
