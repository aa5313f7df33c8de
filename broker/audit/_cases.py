"""The case monitor (casusmonitoring) for DT&V and the programme office, from audit metadata
only: which step each case is in, since when, its rest-period deadline and whether it has
passed without a scenario, open escalations and whether one is past its answer date, the
rules of the flow a case broke (`broker.caseflow.Warning`), and the time spent in each step.

It reads the SENT events — type, case id and time of every message, never content — and
runs them through the case-flow table (`broker.caseflow`).
"""

from __future__ import annotations

import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from broker.audit._verify import Report
from broker.caseflow import CaseState, Step, advance
from broker.models import AuditAction


@dataclass
class CaseView:
    case_id: uuid.UUID
    state: CaseState = field(default_factory=CaseState)
    opened_at: datetime | None = None
    last_message_at: datetime | None = None
    messages: int = 0
    time_in_step: dict[str, float] = field(default_factory=dict)  # seconds, closed steps only

    def as_json(self, now: datetime) -> dict[str, Any]:
        s = self.state
        return {
            "case_id": str(self.case_id), "step": s.step.value,
            "in_step_since": s.entered_step_at.isoformat() if s.entered_step_at else None,
            "rest_period_ends": s.rest_period_ends.isoformat() if s.rest_period_ends else None,
            "rest_period_overdue": s.rest_period_overdue(now), "open_escalation": s.open_escalation,
            "escalation_answer_due": (s.escalation_answer_due.isoformat()
                                      if s.escalation_answer_due else None),
            "escalation_overdue": s.escalation_overdue(now),
            "messages": self.messages, "time_in_step_seconds": self.time_in_step,
            "warnings": [w.value for w in s.warnings],
        }  # fmt: skip


def case_views(report: Report) -> list[CaseView]:
    """Every case the stream mentions, from its SENT events in time order."""
    sent: dict[uuid.UUID, tuple[datetime, str, uuid.UUID]] = {}
    for chain in report.chains.values():
        for event, _ in chain.events.values():
            if (
                event.action is AuditAction.SENT
                and event.message_id
                and event.case_id
                and event.message_type
            ):
                sent.setdefault(
                    event.message_id, (event.occurred_at, event.message_type, event.case_id)
                )
    views: dict[uuid.UUID, CaseView] = {}
    for at, message_type, case_id in sorted(sent.values(), key=lambda s: s[0]):
        view = views.setdefault(case_id, CaseView(case_id, opened_at=at))
        before = view.state
        view.state, _ = advance(before, message_type, at)
        if view.state.step is not before.step and before.entered_step_at is not None:
            spent = (at - before.entered_step_at).total_seconds()
            view.time_in_step[before.step.value] = (
                view.time_in_step.get(before.step.value, 0.0) + spent
            )
        view.messages += 1
        view.last_message_at = at
    return sorted(views.values(), key=lambda v: v.opened_at or datetime.min)


def summary(views: list[CaseView], now: datetime) -> dict[str, Any]:
    by_step: dict[str, int] = {step.value: 0 for step in Step if step is not Step.NONE}
    for v in views:
        if v.state.step is not Step.NONE:
            by_step[v.state.step.value] += 1
    return {
        "cases": len(views), "by_step": by_step,
        "rest_periods_overdue": sum(v.state.rest_period_overdue(now) for v in views),
        "open_escalations": sum(v.state.open_escalation for v in views),
        "escalations_overdue": sum(v.state.escalation_overdue(now) for v in views),
        "broken_rules": dict(sorted(Counter(w.value for v in views for w in v.state.warnings).items())),
    }  # fmt: skip


def broken_rules(views: list[CaseView], now: datetime) -> dict[uuid.UUID, list[str]]:
    """Each case that broke a rule of the flow, with the rules: its warnings, and a rest
    period or an escalation's answer date passed with nothing done (`OVERDUE_RULES`)."""
    found: dict[uuid.UUID, list[str]] = {}
    for v in views:
        rules = [w.value for w in v.state.warnings]
        if v.state.rest_period_overdue(now):
            rules.append(REST_PERIOD_OVERDUE)
        if v.state.escalation_overdue(now):
            rules.append(ESCALATION_OVERDUE)
        if rules:
            found[v.case_id] = rules
    return found


REST_PERIOD_OVERDUE = "REST_PERIOD_OVERDUE"
ESCALATION_OVERDUE = "ESCALATION_OVERDUE"
OVERDUE_RULES = (REST_PERIOD_OVERDUE, ESCALATION_OVERDUE)
"""Rules a case breaks by what has not happened yet, judged at ``now``."""
