"""A party's local case register: its view of each case, advanced through the case-flow
table (`broker.caseflow`) with every message it sends or receives."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Generic, TypeVar

from broker import caseflow
from broker import models as m
from broker.caseflow import TRANSITIONS, CaseState, Step, advance
from broker.errors import LocalError


class UnknownCase(LocalError):
    """The back office asked about a case this party has not heard of."""

    reason = "UNKNOWN_CASE"


@dataclass(frozen=True)
class CaseRecord:
    """What one party knows of one case. Replaced, never mutated, on each update; party kinds
    extend it with what they need."""

    case_id: uuid.UUID
    state: CaseState = field(default_factory=CaseState)
    parties: tuple[str, ...] = ()
    """Every party seen on the case, as sender or recipient: who hears of the close."""
    municipality: str | None = None
    ngo: str | None = None
    scenario: m.Scenario | None = None
    decision_id: uuid.UUID | None = None
    outcome: m.CaseOutcome | None = None

    @property
    def step(self) -> Step:
        return self.state.step

    @property
    def warnings(self) -> tuple[caseflow.Warning, ...]:
        return self.state.warnings


RecordT = TypeVar("RecordT", bound=CaseRecord)


class CaseRegister(Generic[RecordT]):
    """A party's local case register: case id → its latest `CaseRecord`."""

    def __init__(self, new: Callable[[uuid.UUID], RecordT]) -> None:
        self._new = new
        self._records: dict[uuid.UUID, RecordT] = {}

    def __getitem__(self, case_id: uuid.UUID) -> RecordT:
        try:
            return self._records[case_id]
        except KeyError:
            raise UnknownCase(f"no case {case_id}") from None

    def get(self, case_id: uuid.UUID) -> RecordT | None:
        return self._records.get(case_id)

    def __contains__(self, case_id: object) -> bool:
        return case_id in self._records

    def __iter__(self) -> Iterator[RecordT]:
        return iter(list(self._records.values()))

    def __len__(self) -> int:
        return len(self._records)

    def put(self, record: RecordT) -> RecordT:
        self._records[record.case_id] = record
        return record

    def restore(self, case_id: uuid.UUID, record: RecordT | None) -> None:
        """Put back an earlier record (None: the case was not known)."""
        if record is None:
            self._records.pop(case_id, None)
        else:
            self._records[case_id] = record

    def note(
        self, case_id: uuid.UUID, message_type: str, at: datetime, parties: Sequence[str]
    ) -> RecordT:
        """Advance the case with a message sent or received, opening it if new."""
        record = self._records.get(case_id) or self._new(case_id)
        state = record.state
        if (
            _short(message_type) == "EscalationDecision"
            and not state.open_escalation
            and state.step in TRANSITIONS["EscalationRequest"][0]
        ):
            # Only the desk ever sees an EscalationRequest (broker.policy); the decision
            # proves there was one, so a party bound by it infers the request.
            state, _ = advance(state, "EscalationRequest", at)
        state, _ = advance(state, message_type, at)
        known = tuple(dict.fromkeys((*record.parties, *parties)))
        return self.put(replace(record, state=state, parties=known))


def _short(message_type: str) -> str:
    return message_type.rsplit(".", 1)[-1]
