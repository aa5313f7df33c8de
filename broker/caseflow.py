"""The LVV case flow as a transition table (DESIGN §1; the 2018 agreement).

Rules, top to bottom:

1. A case opens with IntakeRegistered by the municipality (step INTAKE).
2. IND and DT&V each deliver a dossier. The first delivery starts the 14-day rest period
   (rusttermijn) and moves the case to REST_PERIOD.
3. After the rest period the local partners set a scenario (SCENARIO_SET); the person
   answers (ScenarioResponse), which keeps the case in SCENARIO_SET.
4. Stuck cases go to the national desk (ESCALATED) and come back with its decision
   (SCENARIO_SET again). The desk answers within `ESCALATION_ANSWER_PERIOD` of the request
   (the answer time the network asks of it); a decision after that date is accepted with
   ESCALATION_ANSWERED_LATE, and an escalation still open past it is overdue.
5. AVIM's identity report and COA's transfer request/confirmation support any open step
   and do not move the case.
6. CaseClosed ends it (CLOSED). Nothing follows a closed case.

Messages cross the network on different paths (IND's dossier and the municipality's
scenario decision do not share a queue), so a receiver may see them out of order. The flow
therefore never refuses a message that passed the envelope checks: a message that does not
fit the table is ACCEPTED WITH A WARNING naming the rule it breaks, the case moves as the
message says, and the warning is shown to operators and the case monitor. Refusing would
lose information the partners need; the warning makes the irregularity visible.

Who may send which message is the policy's job (`broker.policy`), checked before this.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from enum import StrEnum

REST_PERIOD = timedelta(days=14)
"""The agreement's rest period after dossier delivery, before a scenario is set."""

ESCALATION_ANSWER_PERIOD = timedelta(days=14)
"""How long the national desk takes at most to answer an escalation: the answer time the
network asks of it (`adapters` asks this ``decision_wanted_by``), one more rest period's
length. The agreement sets no term; the request's own date travels encrypted, so the case
monitor, which reads metadata only, judges by this one."""


class Step(StrEnum):
    NONE = "NONE"  # nothing known of the case yet
    INTAKE = "INTAKE"
    REST_PERIOD = "REST_PERIOD"
    SCENARIO_SET = "SCENARIO_SET"
    ESCALATED = "ESCALATED"
    CLOSED = "CLOSED"


class Warning(StrEnum):
    BEFORE_INTAKE = "BEFORE_INTAKE"  # a message about a case whose intake was not seen
    REPEATED_INTAKE = "REPEATED_INTAKE"
    SCENARIO_BEFORE_DOSSIER = "SCENARIO_BEFORE_DOSSIER"
    SCENARIO_IN_REST_PERIOD = "SCENARIO_IN_REST_PERIOD"
    RESPONSE_WITHOUT_SCENARIO = "RESPONSE_WITHOUT_SCENARIO"
    DECISION_WITHOUT_ESCALATION = "DECISION_WITHOUT_ESCALATION"
    AFTER_CLOSE = "AFTER_CLOSE"
    ESCALATION_ANSWERED_LATE = "ESCALATION_ANSWERED_LATE"  # after ESCALATION_ANSWER_PERIOD


_S = Step

# message type → (steps it is expected in, step it moves the case to; None: stays)
TRANSITIONS: dict[str, tuple[frozenset[Step], Step | None]] = {
    "IntakeRegistered": (frozenset({_S.NONE}), _S.INTAKE),
    "DossierDelivered": (
        frozenset({_S.INTAKE, _S.REST_PERIOD, _S.SCENARIO_SET, _S.ESCALATED}),
        None,
    ),
    "ScenarioDecision": (frozenset({_S.REST_PERIOD, _S.SCENARIO_SET}), _S.SCENARIO_SET),
    "ScenarioResponse": (frozenset({_S.SCENARIO_SET}), None),
    "EscalationRequest": (frozenset({_S.INTAKE, _S.REST_PERIOD, _S.SCENARIO_SET}), _S.ESCALATED),
    "EscalationDecision": (frozenset({_S.ESCALATED}), _S.SCENARIO_SET),
    "IdentityReport": (frozenset({_S.INTAKE, _S.REST_PERIOD, _S.SCENARIO_SET, _S.ESCALATED}), None),
    "TransferRequest": (
        frozenset({_S.INTAKE, _S.REST_PERIOD, _S.SCENARIO_SET, _S.ESCALATED}),
        None,
    ),
    "TransferConfirmed": (
        frozenset({_S.INTAKE, _S.REST_PERIOD, _S.SCENARIO_SET, _S.ESCALATED}),
        None,
    ),
    "CaseClosed": (
        frozenset({_S.INTAKE, _S.REST_PERIOD, _S.SCENARIO_SET, _S.ESCALATED}),
        _S.CLOSED,
    ),
}


@dataclass(frozen=True)
class CaseState:
    """What is known of one case from the messages seen so far (metadata only)."""

    step: Step = Step.NONE
    dossier_delivered_at: datetime | None = None
    entered_step_at: datetime | None = None
    open_escalation: bool = False
    escalated_at: datetime | None = None  # the open (or last) escalation's request
    warnings: tuple[Warning, ...] = field(default=())

    @property
    def rest_period_ends(self) -> datetime | None:
        return self.dossier_delivered_at + REST_PERIOD if self.dossier_delivered_at else None

    @property
    def escalation_answer_due(self) -> datetime | None:
        """When the open escalation must be answered by; None without one."""
        if not self.open_escalation or self.escalated_at is None:
            return None
        return self.escalated_at + ESCALATION_ANSWER_PERIOD

    def escalation_overdue(self, now: datetime) -> bool:
        """An escalation is open past its answer date."""
        due = self.escalation_answer_due
        return due is not None and now >= due

    def rest_period_overdue(self, now: datetime) -> bool:
        """The rest period is over and still no scenario has been set."""
        ends = self.rest_period_ends
        return ends is not None and now >= ends and self.step is Step.REST_PERIOD


def _short(message_type: str) -> str:
    return message_type.rsplit(".", 1)[-1]


def advance(state: CaseState, message_type: str, at: datetime) -> tuple[CaseState, Warning | None]:
    """The case after a message of ``message_type`` at ``at``, and the warning if the
    message does not fit the flow. Never refuses (see the module docstring)."""
    name = _short(message_type)
    if name not in TRANSITIONS:
        return state, None  # receipts and other network records do not move cases
    expected, target = TRANSITIONS[name]
    warning = _warning(state, name, at) if state.step not in expected else None
    new = state
    if name == "DossierDelivered" and state.dossier_delivered_at is None:
        new = replace(new, dossier_delivered_at=at)
        if state.step in (Step.INTAKE, Step.NONE):
            target = Step.REST_PERIOD
    if (
        name == "ScenarioDecision"
        and state.step is Step.REST_PERIOD
        and state.rest_period_ends
        and at < state.rest_period_ends
    ):
        warning = warning or Warning.SCENARIO_IN_REST_PERIOD
    if name == "EscalationRequest":
        new = replace(new, open_escalation=True, escalated_at=at)
    if name == "EscalationDecision":
        due = state.escalation_answer_due
        if due is not None and at > due:
            warning = warning or Warning.ESCALATION_ANSWERED_LATE
        new = replace(new, open_escalation=False)
    if target is not None and state.step is not Step.CLOSED and target is not new.step:
        new = replace(new, step=target, entered_step_at=at)
    if warning is not None:
        new = replace(new, warnings=(*new.warnings, warning))
    return new, warning


def _warning(state: CaseState, name: str, at: datetime) -> Warning:
    del at
    if state.step is Step.CLOSED:
        return Warning.AFTER_CLOSE
    if name == "IntakeRegistered":
        return Warning.REPEATED_INTAKE
    if state.step is Step.NONE:
        return Warning.BEFORE_INTAKE
    if name == "ScenarioDecision":
        return Warning.SCENARIO_BEFORE_DOSSIER
    if name == "ScenarioResponse":
        return Warning.RESPONSE_WITHOUT_SCENARIO
    if name == "EscalationDecision":
        return Warning.DECISION_WITHOUT_ESCALATION
    return Warning.BEFORE_INTAKE  # pragma: no cover - every expected set includes INTAKE


def event_time(message: object) -> datetime | None:
    """When the step a message reports happened, by the message's own account (its
    ``registered_at``, ``delivered_at``, ``decided_at``, … — the first ``*_at`` field)."""
    fields = getattr(type(message), "model_fields", {})
    for name in fields:
        if name.endswith("_at"):
            value = getattr(message, name)
            if isinstance(value, datetime):
                return value
    return None
