"""The audit follower's Prometheus gauges: the service edge of `lvvx audit follow` (and of
the demo's verifier). `follow` hands each report to `FollowMetrics.update`, which sets every gauge from that report:
a finding that is gone takes its gauge down with it, and the gauges are as fresh as the last
pass (`broker.audit._follow.STALE_BOUND_S`).

Only bounded labels: gateway (party) ids, finding kinds and case-flow steps."""

from __future__ import annotations

import time
from datetime import datetime

from prometheus_client import CollectorRegistry, Gauge, start_http_server

from broker.audit._cases import case_views, summary
from broker.audit._verify import Finding, Report
from broker.caseflow import Step


class FollowMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = r = registry
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
        self.known = Gauge(
            "lvv_audit_known_until_timestamp_seconds",
            "How far the follower knows a gateway's chain (event time): messages are judged "
            "against it only up to here.",
            ["gateway"],
            registry=r,
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
        # a message missing at two recipients is two findings, one lost message
        self.lost.set(len({i.message_id for i in report.issues if i.kind is Finding.LOST}))
        for gateway, known in report.horizons.items():
            if known.year > 1:  # not NEVER: something is known of the chain
                self.known.labels(gateway).set(known.timestamp())
        self.pending.set(report.pending)
        cases = summary(case_views(report), now)
        for step in Step:
            if step is not Step.NONE:
                self.cases.labels(step.value).set(cases["by_step"][step.value])
        self.overdue.set(cases["rest_periods_overdue"])
        self.escalations.set(cases["open_escalations"])
        self.verified.set(time.time())


def serve_follow_metrics(port: int, *, host: str = "0.0.0.0") -> FollowMetrics:
    """Gauges of their own registry, served on ``http://host:port/metrics``."""
    registry = CollectorRegistry()
    metrics = FollowMetrics(registry)
    start_http_server(port, addr=host, registry=registry)
    return metrics
