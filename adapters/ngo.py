"""The NGO's adapter. The NGO guides the person: it reads both dossiers and the scenario,
records the person's answer to the scenario, and may escalate when guidance is stuck."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, replace

from adapters._base import Received, merged_vulnerability, type_names
from adapters._register import CaseRecord
from adapters._requests import Escalating
from broker import models as m
from broker.errors import LocalError


class UnknownDecision(LocalError):
    """The answer names a scenario decision that is not the case's current one."""

    reason = "UNKNOWN_DECISION"


@dataclass(frozen=True)
class NgoCase(CaseRecord):
    family_name: str = ""
    given_names: str = ""
    languages: tuple[str, ...] = ()
    dossiers_from: tuple[m.PartyRole, ...] = ()
    vulnerability: m.VulnerabilityFlags | None = None
    medical_notes: tuple[str, ...] = ()
    plan: tuple[m.PlanStep, ...] = ()
    decision_message_id: uuid.UUID | None = None
    """The message that brought the current decision: the answer's causation."""
    answer: m.ScenarioAnswer | None = None
    instructions: str | None = None


class NgoAdapter(Escalating[NgoCase]):
    ROLE = m.PartyRole.NGO
    SENDS = type_names(m.ScenarioResponse, m.EscalationRequest)
    RECEIVES = type_names(
        m.IntakeRegistered, m.DossierDelivered, m.ScenarioDecision, m.EscalationDecision,
        m.CaseClosed,
    )  # fmt: skip

    def new_record(self, case_id: uuid.UUID) -> NgoCase:
        return NgoCase(case_id, ngo=self.party_id)

    async def record_answer(
        self,
        case_id: uuid.UUID,
        decision_id: uuid.UUID,
        answer: m.ScenarioAnswer,
        conditions: str | None = None,
        notes: str | None = None,
    ) -> m.ScenarioResponse:
        """Send the person's answer to the scenario to the municipality and DT&V. Only the
        case's current decision can be answered: a superseded plan is no longer on offer."""
        record = self.register[case_id]
        if record.decision_id != decision_id:
            raise UnknownDecision(f"{decision_id} is not the current decision of {case_id}")
        now = self.clock()
        response = m.ScenarioResponse(
            case_id=case_id, decision_id=decision_id, responded_at=now,
            recorded_by=self.party_id, answer=answer, conditions=conditions, notes=notes,
        )  # fmt: skip
        to = [self._municipality_of(case_id), self.network.only(m.PartyRole.DTV)]
        await self._send(response, to, at=now, causation_id=record.decision_message_id)
        self.register.put(replace(self.register[case_id], answer=answer))
        return response

    async def on_intake_registered(self, message: m.IntakeRegistered, received: Received) -> None:
        person = message.person
        self.register.put(
            replace(
                self.register[message.case_id],
                municipality=message.municipality,
                family_name=person.family_name,
                given_names=person.given_names,
                languages=person.languages,
            )
        )

    async def on_dossier_delivered(self, message: m.DossierDelivered, received: Received) -> None:
        record, person = self.register[message.case_id], message.person
        notes = (*record.medical_notes, message.medical_notes) if message.medical_notes else ()
        self.register.put(replace(
            record, dossiers_from=(*record.dossiers_from, message.delivered_by),
            vulnerability=merged_vulnerability(record.vulnerability, message.vulnerability),
            medical_notes=notes or record.medical_notes,
            family_name=record.family_name or person.family_name,
            given_names=record.given_names or person.given_names,
            languages=record.languages or person.languages,
        ))  # fmt: skip

    async def on_scenario_decision(self, message: m.ScenarioDecision, received: Received) -> None:
        await super().on_scenario_decision(message, received)
        self.register.put(replace(
            self.register[message.case_id], plan=message.plan,
            decision_message_id=received.message_id, answer=None,
        ))  # fmt: skip

    async def on_escalation_decision(
        self, message: m.EscalationDecision, received: Received
    ) -> None:
        await super().on_escalation_decision(message, received)
        record = self.register[message.case_id]
        self.register.put(replace(record, instructions=message.instructions))
