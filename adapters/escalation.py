"""The national escalation desk's adapter. Requests wait in a queue (most urgent first)
until the desk decides; the decision goes to the requester and to every party of the case
the request names, with IND and DT&V, as far as the policy lets them receive it."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime

from adapters._base import Adapter, Clock, GatewayClient, Network, Received, type_names, utc_now
from adapters._register import CaseRecord
from broker import models as m
from broker import policy
from broker.caseflow import CaseState, Step
from broker.errors import LocalError

_TOLD = policy.POLICY[m.EscalationDecision.avro_name].recipients
"""Roles a decision may go to (municipality, NGO, IND, DT&V)."""


class UnknownEscalation(LocalError):
    """No open escalation has that id (never received, or already decided)."""

    reason = "UNKNOWN_ESCALATION"


@dataclass(frozen=True, slots=True)
class OpenEscalation:
    request: m.EscalationRequest
    requester: str
    """The party that sent the request (its envelope's sender)."""
    message_id: uuid.UUID
    received_at: datetime


@dataclass(frozen=True)
class DeskCase(CaseRecord):
    escalations: tuple[uuid.UUID, ...] = ()
    outcomes: tuple[m.EscalationOutcome, ...] = ()


class EscalationAdapter(Adapter[DeskCase]):
    ROLE = m.PartyRole.ESCALATION
    SENDS = type_names(m.EscalationDecision)
    RECEIVES = type_names(m.EscalationRequest)
    NEW_CASE_STATE = CaseState(step=Step.REST_PERIOD)

    def __init__(
        self,
        party_id: str,
        client: GatewayClient,
        *,
        network: Network,
        clock: Clock = utc_now,
    ) -> None:
        super().__init__(party_id, client, network=network, clock=clock)
        self.open_escalations: dict[uuid.UUID, OpenEscalation] = {}

    def new_record(self, case_id: uuid.UUID) -> DeskCase:
        return DeskCase(case_id)

    def queue(self) -> list[OpenEscalation]:
        """Open escalations, the one whose answer is wanted soonest first."""
        waiting = self.open_escalations.values()
        return sorted(waiting, key=lambda e: (e.request.decision_wanted_by, e.received_at))

    async def on_escalation_request(self, message: m.EscalationRequest, received: Received) -> None:
        self.open_escalations[message.escalation_id] = OpenEscalation(
            message, received.sender, received.message_id, received.at
        )
        record = self.register[message.case_id]
        ids = (*record.escalations, message.escalation_id)
        self.register.put(replace(record, escalations=ids, scenario=message.current_scenario))

    def parties_of(self, escalation: OpenEscalation) -> tuple[str, ...]:
        """Who hears the decision: requester, the parties whose positions the request
        gives, IND and DT&V — those of them a decision may go to."""
        request = escalation.request
        named = [escalation.requester, request.requested_by, *(p.party for p in request.positions)]
        national = [self.network.only(m.PartyRole.IND), self.network.only(m.PartyRole.DTV)]
        return self.network.of_roles([*named, *national], _TOLD)

    async def decide(
        self,
        escalation_id: uuid.UUID,
        outcome: m.EscalationOutcome,
        scenario: m.Scenario | None,
        instructions: str,
        *,
        binding_on: Sequence[str] | None = None,
    ) -> m.EscalationDecision:
        """Decide an open escalation and send the decision; ``binding_on`` defaults to
        everyone told."""
        escalation = self.queue_entry(escalation_id)
        if outcome is m.EscalationOutcome.SCENARIO_SET and scenario is None:
            raise LocalError("a SCENARIO_SET decision names the scenario", reason="NO_SCENARIO")
        to = self.parties_of(escalation)
        now = self.clock()
        decision = m.EscalationDecision(
            case_id=escalation.request.case_id, escalation_id=escalation_id, decided_at=now,
            outcome=outcome, scenario=scenario, instructions=instructions,
            binding_on=tuple(binding_on if binding_on is not None else to),
        )  # fmt: skip
        await self._send(decision, to, at=now, causation_id=escalation.message_id)
        del self.open_escalations[escalation_id]
        record = self.register[decision.case_id]
        self.register.put(replace(
            record, outcomes=(*record.outcomes, outcome), scenario=scenario or record.scenario,
        ))  # fmt: skip
        return decision

    def queue_entry(self, escalation_id: uuid.UUID) -> OpenEscalation:
        try:
            return self.open_escalations[escalation_id]
        except KeyError:
            raise UnknownEscalation(f"no open escalation {escalation_id}") from None
