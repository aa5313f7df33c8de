"""`lvvx audit follow`: the verifier and the case monitor, live, for DT&V's operators —
re-verifies the stream as it grows, prints each new finding once, and exposes the results as
Prometheus gauges."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from prometheus_client import CollectorRegistry, Gauge

from broker.audit._cases import case_views, summary
from broker.audit._verify import DEFAULT_GRACE, Finding, Issue, Report, verify_stream
from broker.caseflow import Step
from broker.crypto import Directory
from broker.transport import Record, Transport

VERIFY_EVERY_S = 2.0
"""How often the whole stream is verified again: findings show within seconds."""


class FollowMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        r = registry
        self.events = Gauge(
            "lvv_audit_events", "Audit events per gateway chain.", ["gateway"], registry=r
        )
        self.chain_ok = Gauge(
            "lvv_audit_chain_ok", "1 while a gateway's chain verifies.", ["gateway"], registry=r
        )
        self.findings = Gauge(
            "lvv_audit_findings", "Verifier findings by kind.", ["kind"], registry=r
        )
        self.lost = Gauge(
            "lvv_messages_lost",
            "Messages sent but not delivered or refused within the grace period.",
            registry=r,
        )
        self.pending = Gauge(
            "lvv_messages_in_flight", "Messages sent and still within the grace period.", registry=r
        )
        self.cases = Gauge("lvv_cases", "Cases by step of the case flow.", ["step"], registry=r)
        self.overdue = Gauge(
            "lvv_rest_periods_overdue",
            "Cases whose 14-day rest period passed without a scenario.",
            registry=r,
        )
        self.escalations = Gauge(
            "lvv_escalations_open", "Escalations awaiting the national desk's decision.", registry=r
        )
        self.verified = Gauge(
            "lvv_audit_last_verified_timestamp_seconds",
            "When the stream was last verified.",
            registry=r,
        )

    def update(self, report: Report, now: datetime) -> None:
        for gateway, chain in report.chains.items():
            self.events.labels(gateway).set(len(chain.events))
            self.chain_ok.labels(gateway).set(1.0 if chain.ok else 0.0)
        for kind in Finding:
            self.findings.labels(kind.value).set(sum(i.kind is kind for i in report.issues))
        self.lost.set(sum(i.kind is Finding.LOST for i in report.issues))
        self.pending.set(report.pending)
        cases = summary(case_views(report), now)
        for step in Step:
            if step is not Step.NONE:
                self.cases.labels(step.value).set(cases["by_step"][step.value])
        self.overdue.set(cases["rest_periods_overdue"])
        self.escalations.set(cases["open_escalations"])
        self.verified.set(time.time())


async def follow(
    transport: Transport,
    topics: list[str],
    directory: Directory,
    *,
    stop: asyncio.Event,
    on_issue: Callable[[Issue], None],
    metrics: FollowMetrics | None = None,
    grace: timedelta = DEFAULT_GRACE,
) -> Report | None:
    """Read the stream as it grows until ``stop``; returns the last report."""
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
    try:
        while not stop.is_set():
            records += await consumer.poll(timeout_ms=500)
            if time.monotonic() - last < VERIFY_EVERY_S:
                continue
            last = time.monotonic()
            now = datetime.now(UTC)
            ordered = sorted(records, key=lambda r: (r.topic, r.partition, r.offset))
            report = verify_stream(ordered, directory, now=now, grace=grace)
            for issue in report.issues:
                key = (issue.kind.value, issue.gateway, issue.seq, str(issue.message_id))
                if key not in seen:
                    seen.add(key)
                    on_issue(issue)
            if metrics is not None:
                metrics.update(report, now)
    finally:
        with contextlib.suppress(Exception):
            await consumer.close()
    return report
