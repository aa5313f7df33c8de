"""What the console shows, held in memory: the latest report of the live follower
(`broker.audit.follow`), the findings as it told them (new, then resolved), and views of it
for each page — the network, the cases, one case's timeline, a message's proofs.

Pure: no HTTP here. The follower's callbacks (`on_report`, `on_issue`, `on_resolved`) feed it
and the pages read it, all on one event loop, so nothing is locked. Everything in it is audit
metadata: ids, types, parties, times, hashes — no personal data ever reaches an audit event
(DESIGN §1), so none reaches the console.
"""

from __future__ import annotations

import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from broker.audit import CaseView, Issue, Report, case_views, prove, summary
from broker.caseflow import Step
from broker.models import AuditAction, AuditEvent

RESOLVED_KEPT = 200
"""Resolved findings the network page lists (newest first): enough for a shift, bounded."""


@dataclass
class Seen:
    """A finding as the console heard of it."""

    issue: Issue
    since: datetime
    resolved_at: datetime | None = None


@dataclass(frozen=True)
class ChainRow:
    gateway: str
    events: int
    checkpoints: int
    ok: bool
    known_until: datetime | None
    last_checkpoint: tuple[int, str] | None  # tree size, root hash (hex)


@dataclass(frozen=True)
class CaseFilter:
    """The cases page's filter (GET query): by step, only overdue rest periods, only open
    escalations."""

    step: Step | None = None
    overdue: bool = False
    escalation: bool = False

    def keeps(self, view: CaseView, now: datetime) -> bool:
        s = view.state
        return (
            (self.step is None or s.step is self.step)
            and (not self.overdue or s.rest_period_overdue(now))
            and (not self.escalation or s.open_escalation)
        )


@dataclass
class ConsoleState:
    """The latest verified state of the network. ``clock`` is the console's now (what an
    overdue rest period is judged against): the follower's clock, so both agree."""

    clock: Callable[[], datetime] = lambda: datetime.now(UTC)
    report: Report | None = None
    verified_at: datetime | None = None
    views: list[CaseView] = field(default_factory=list)
    open: dict[Any, Seen] = field(default_factory=dict)
    resolved: deque[Seen] = field(default_factory=lambda: deque(maxlen=RESOLVED_KEPT))
    _chains: list[ChainRow] = field(default_factory=list)

    # --- the follower's hooks ----------------------------------------------------------------

    def on_report(self, report: Report, now: datetime) -> None:
        self.report, self.verified_at = report, now
        self.views = case_views(report)
        self._chains = _chain_rows(report)  # once per pass, not per page: a scan of every event
        # the set of findings is the report's: one told before the console started is open too
        current = {i.key for i in report.issues}
        for issue in report.issues:
            self.open.setdefault(issue.key, Seen(issue, now))
        for key in set(self.open) - current:
            self._resolve(key, now)

    def on_issue(self, issue: Issue) -> None:
        self.open.setdefault(issue.key, Seen(issue, self.clock()))

    def on_resolved(self, issue: Issue) -> None:
        self._resolve(issue.key, self.clock())

    def _resolve(self, key: Any, at: datetime) -> None:
        seen = self.open.pop(key, None)
        if seen is not None:
            seen.resolved_at = at
            self.resolved.appendleft(seen)

    # --- the pages' views --------------------------------------------------------------------

    @property
    def ready(self) -> bool:
        """A first report is in (until then the pages say they are waiting for it)."""
        return self.report is not None

    def chains(self) -> list[ChainRow]:
        return list(self._chains)

    def findings(self) -> list[Seen]:
        """The findings open now: errors first, then notices, each newest first."""
        return sorted(self.open.values(), key=lambda s: (s.issue.notice, -s.since.timestamp()))

    def totals(self) -> dict[str, Any]:
        """The counts the pages head with: messages, findings and the case summary."""
        now = self.clock()
        report = self.report
        return {
            "sent": report.sent if report else 0,
            "accounted": report.accounted if report else 0,
            "pending": report.pending if report else 0,
            "findings": sum(not s.issue.notice for s in self.open.values()),
            "notices": sum(s.issue.notice for s in self.open.values()),
            "chains": len(report.chains) if report else 0,
            "broken": sum(not c.ok for c in report.chains.values()) if report else 0,
            **summary(self.views, now),
        }

    def cases(self, wanted: CaseFilter) -> list[CaseView]:
        now = self.clock()
        return [v for v in self.views if wanted.keeps(v, now)]

    def case(self, case_id: uuid.UUID) -> CaseView | None:
        return next((v for v in self.views if v.case_id == case_id), None)

    def timeline(self, case_id: uuid.UUID) -> list[AuditEvent]:
        """Every audit event about the case, of every chain, in time order."""
        if self.report is None:
            return []
        events = [e for chain in self.report.chains.values() for e, _ in chain.events.values()
                  if e.case_id == case_id]  # fmt: skip
        return sorted(events, key=lambda e: (e.occurred_at, e.gateway, e.seq))

    def proof(self, message_id: uuid.UUID) -> dict[str, Any] | None:
        """What `lvvx audit prove` writes for the message, or None when no event names it."""
        if self.report is None:
            return None
        document = prove(self.report, message_id)
        if not document["proofs"] and not document["not_yet_covered"]:
            return None
        return document


def _chain_rows(report: Report) -> list[ChainRow]:
    """Each chain of ``report``: its state, size, last checkpoint and how far it is known."""
    rows = []
    for gateway, chain in sorted(report.chains.items()):
        heads = [e.checkpoint for e, _ in chain.events.values()
                 if e.action is AuditAction.CHECKPOINT and e.checkpoint is not None]  # fmt: skip
        last = max(heads, key=lambda h: h.tree_size, default=None)
        known = report.horizons.get(gateway)
        rows.append(ChainRow(
            gateway, len(chain.events), chain.checkpoints, chain.ok,
            known if known is not None and known.year > 1 else chain.latest,
            (last.tree_size, last.root_hash.hex()) if last is not None else None,
        ))  # fmt: skip
    return rows
