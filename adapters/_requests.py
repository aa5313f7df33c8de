"""Requests several party kinds make: escalation to the national desk (municipality, NGO,
IND, DT&V) and transfer to state reception (municipality, DT&V)."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import date, timedelta

from adapters._base import Adapter
from adapters._register import RecordT
from broker import models as m
from broker.caseflow import ESCALATION_ANSWER_PERIOD

DECISION_WANTED_WITHIN: timedelta = ESCALATION_ANSWER_PERIOD
"""Default answer time asked of the desk: one more rest period's length, so a stuck case
does not wait longer for the desk than it waited for the dossiers — the period the case
monitor judges an escalation by."""


class Escalating(Adapter[RecordT]):
    """An adapter whose party may take a stuck case to the national escalation desk."""

    async def escalate(
        self,
        case_id: uuid.UUID,
        reason: m.EscalationReason,
        question: str,
        positions: Mapping[str, str] | None = None,
        *,
        decision_wanted_by: date | None = None,
    ) -> m.EscalationRequest:
        """Send an EscalationRequest; ``positions`` maps party ids to their position.
        Returns the request (its escalation id is what the decision will name)."""
        record = self.register[case_id]
        now = self.clock()
        request = m.EscalationRequest(
            case_id=case_id,
            escalation_id=uuid.uuid4(),
            requested_at=now,
            requested_by=self.party_id,
            reason=reason,
            question=question,
            positions=tuple(
                m.PartyPosition(party=party, position=text)
                for party, text in (positions or {}).items()
            ),
            current_scenario=record.scenario,
            decision_wanted_by=decision_wanted_by or now.date() + DECISION_WANTED_WITHIN,
        )
        await self._send(request, [self.network.only(m.PartyRole.ESCALATION)], at=now)
        return request


class RequestingTransfer(Adapter[RecordT]):
    """An adapter whose party may ask COA to take the person into state reception."""

    async def request_transfer(
        self,
        case_id: uuid.UUID,
        facility_kind: m.FacilityKind,
        grounds: str,
        desired_date: date,
        *,
        household_size: int = 1,
        special_needs: str | None = None,
    ) -> m.TransferRequest:
        """Send a TransferRequest to COA; its answer comes as TransferConfirmed."""
        self.register[case_id]  # raises UnknownCase: COA is asked only about known cases
        now = self.clock()
        request = m.TransferRequest(
            case_id=case_id,
            transfer_id=uuid.uuid4(),
            requested_at=now,
            requested_by=self.party_id,
            facility_kind=facility_kind,
            grounds=grounds,
            desired_date=desired_date,
            household_size=household_size,
            special_needs=special_needs,
        )
        await self._send(request, [self.network.only(m.PartyRole.COA)], at=now)
        return request
