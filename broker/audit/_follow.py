"""`lvvx audit follow`: the verifier and the case monitor, live, for DT&V's operators —
re-verifies the stream as it grows and tells each new finding once. Each report goes to an
observer hook (``on_report``); `broker.audit.metrics` turns it into Prometheus gauges."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from broker.audit._events import VerifiedBatches
from broker.audit._verify import DEFAULT_GRACE, Issue, Report, verify_stream
from broker.crypto import Directory
from broker.transport import Record, Transport

VERIFY_EVERY_S = 2.0
"""How often the whole stream is verified again: findings show within seconds."""


async def follow(
    transport: Transport,
    topics: list[str],
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
    followed live (`broker.directory_feed.DirectoryFeed`), so keys rotated since verify."""
    records: list[Record] = []
    seen: set[tuple[str, str | None, int | None, str | None]] = set()
    group = (
        f"{topics[0].rsplit('.audit.', 1)[0]}.audit-follow.{uuid.uuid4().hex[:8]}"
        if topics
        else "none"
    )
    consumer = transport.consumer(group, topics)
    await consumer.start()
    report = None
    last = 0.0
    batches = VerifiedBatches()  # a pass checks only the batch signatures new since the last
    try:
        while not stop.is_set():
            records += await consumer.poll(timeout_ms=500)
            if time.monotonic() - last < VERIFY_EVERY_S:
                continue
            last = time.monotonic()
            now = datetime.now(UTC)
            ordered = sorted(records, key=lambda r: (r.topic, r.partition, r.offset))
            current = directory() if callable(directory) else directory
            report = verify_stream(ordered, current, now=now, grace=grace, batches=batches)
            for issue in report.issues:
                key = (issue.kind.value, issue.gateway, issue.seq, str(issue.message_id))
                if key not in seen:
                    seen.add(key)
                    on_issue(issue)
            if on_report is not None:
                on_report(report, now)
    finally:
        with contextlib.suppress(Exception):
            await consumer.close()
    return report
