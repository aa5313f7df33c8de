"""DT&V's adapter. DT&V delivers its part of the dossier (departure obligation, earlier
departures) and supervises the LVVs: every person guided is made known to it (by the
intake), and it reports on how cases end. `DtvCaseExport` is its case system's export."""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import date, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict

from adapters._base import Clock, GatewayClient, Network, Received, type_names, utc_now
from adapters._dossier import DossierCase, DossierService
from adapters._requests import Escalating, RequestingTransfer
from broker import models as m
from broker.models import CountryCode, VNumber

_FROZEN = ConfigDict(frozen=True, extra="forbid")
RK, RO = m.ReturnKind, m.ReturnOutcome

_KIND = {"ZELFSTANDIG": RK.INDEPENDENT, "ONDERSTEUND": RK.ASSISTED, "GEDWONGEN": RK.SUPERVISED, "DUBLIN": RK.DUBLIN_TRANSFER}  # fmt: skip
_RESULT = {
    "VERTROKKEN": RO.DEPARTED, "RETOUR_NL": RO.RETURNED_TO_NL, "GEANNULEERD": RO.CANCELLED,
    "GEEN_REISDOCUMENT": RO.NO_TRAVEL_DOCUMENT, "GEWEIGERD_DOOR_LAND": RO.REFUSED_BY_DESTINATION,
    "ONTTROKKEN": RO.ABSCONDED,
}  # fmt: skip

DEPARTURES = frozenset({
    m.CaseOutcome.INDEPENDENT_DEPARTURE, m.CaseOutcome.SUPERVISED_DEPARTURE,
    m.CaseOutcome.ONWARD_MIGRATION,
})  # fmt: skip
"""Outcomes DT&V counts as departure from the Netherlands: return or onward migration."""


class DepartureAttempt(BaseModel):
    """An earlier departure attempt (vertrekpoging) in DT&V's case system."""

    model_config = _FROZEN
    date: date
    kind: Literal["ZELFSTANDIG", "ONDERSTEUND", "GEDWONGEN", "DUBLIN"]
    destination: CountryCode
    result: Literal["VERTROKKEN", "RETOUR_NL", "GEANNULEERD", "GEEN_REISDOCUMENT", "GEWEIGERD_DOOR_LAND", "ONTTROKKEN"]  # fmt: skip
    remark: str | None = None


class DtvCaseExport(BaseModel):
    """One person's return file as DT&V's case system exports it."""

    model_config = _FROZEN
    v_number: VNumber
    family_name: str
    given_names: str
    birth_date: date | None = None
    nationalities: tuple[CountryCode, ...] = ()
    documents_held: tuple[m.IdentityDocument, ...] = ()
    """Documents DT&V keeps for the departure (e.g. a passport handed in)."""
    departure_obligation_since: date | None = None
    attempts: tuple[DepartureAttempt, ...] = ()
    medical_barrier: bool = False
    family_with_minors: bool = False
    case_manager_notes: str | None = None


def dossier_of(export: DtvCaseExport, case_id: uuid.UUID, at: datetime) -> m.DossierDelivered:
    """DT&V's part of the dossier: the return history and the departure obligation."""
    person = m.Person(
        v_number=export.v_number, family_name=export.family_name,
        given_names=export.given_names, birth_date=export.birth_date,
        nationalities=export.nationalities, documents=export.documents_held,
    )  # fmt: skip
    history = tuple(
        m.ReturnAttempt(
            date=a.date, kind=_KIND[a.kind], destination_country=a.destination,
            outcome=_RESULT[a.result], notes=a.remark,
        )
        for a in export.attempts
    )  # fmt: skip
    return m.DossierDelivered(
        case_id=case_id, dossier_id=uuid.uuid4(), delivered_by=m.PartyRole.DTV,
        delivered_at=at, person=person,
        departure_obligation_since=export.departure_obligation_since, return_history=history,
        vulnerability=m.VulnerabilityFlags(
            medical=export.medical_barrier, minor_children=export.family_with_minors
        ),
        notes=export.case_manager_notes,
    )  # fmt: skip


@dataclass(frozen=True, slots=True)
class MadeKnown:
    """A person an LVV made known to DT&V (by the intake), for supervision."""

    case_id: uuid.UUID
    municipality: str
    v_number: str | None
    intake_date: date


class SupervisionReport(BaseModel):
    """DT&V's supervision figures over the LVVs: who was made known, how cases ended."""

    model_config = _FROZEN
    made_known: int
    per_municipality: dict[str, int]
    outcomes: dict[m.CaseOutcome, int]
    departures: int
    open_cases: int


@dataclass(frozen=True)
class DtvCase(DossierCase):
    answer: m.ScenarioAnswer | None = None
    supervised_departure_possible: bool | None = None
    instructions: str | None = None
    transfer: m.TransferConfirmed | None = None


class DtvAdapter(
    DossierService[DtvCase, DtvCaseExport], Escalating[DtvCase], RequestingTransfer[DtvCase]
):
    ROLE = m.PartyRole.DTV
    SENDS = type_names(m.DossierDelivered, m.TransferRequest, m.EscalationRequest)
    RECEIVES = type_names(
        m.IntakeRegistered, m.ScenarioDecision, m.ScenarioResponse, m.EscalationDecision,
        m.IdentityReport, m.TransferConfirmed, m.CaseClosed,
    )  # fmt: skip

    def __init__(
        self,
        party_id: str,
        client: GatewayClient,
        *,
        exports: Iterable[DtvCaseExport] = (),
        auto_deliver: bool = False,
        network: Network,
        clock: Clock = utc_now,
    ) -> None:
        super().__init__(
            party_id, client, exports=exports, auto_deliver=auto_deliver, network=network,
            clock=clock,
        )  # fmt: skip
        self.made_known: list[MadeKnown] = []

    def new_record(self, case_id: uuid.UUID) -> DtvCase:
        return DtvCase(case_id)

    def v_number_of(self, export: DtvCaseExport) -> str:
        return export.v_number

    def dossier_of(
        self, export: DtvCaseExport, case_id: uuid.UUID, at: datetime
    ) -> m.DossierDelivered:
        return dossier_of(export, case_id, at)

    def supervision_report(self) -> SupervisionReport:
        cases = {known.case_id: known for known in self.made_known}  # a repeated intake once
        outcomes = Counter(r.outcome for r in self.register if r.outcome is not None)
        return SupervisionReport(
            made_known=len(cases),
            per_municipality=dict(Counter(k.municipality for k in cases.values())),
            outcomes=dict(outcomes),
            departures=sum(n for outcome, n in outcomes.items() if outcome in DEPARTURES),
            open_cases=sum(1 for r in self.register if r.outcome is None),
        )

    async def on_intake_registered(self, message: m.IntakeRegistered, received: Received) -> None:
        person, municipality = message.person, message.municipality
        known = MadeKnown(message.case_id, municipality, person.v_number, message.intake_date)
        self.made_known.append(known)
        await super().on_intake_registered(message, received)

    async def on_scenario_response(self, message: m.ScenarioResponse, received: Received) -> None:
        record = self.register[message.case_id]
        if message.decision_id == record.decision_id:  # else: an answer to a superseded plan
            self.register.put(replace(record, answer=message.answer))

    async def on_escalation_decision(
        self, message: m.EscalationDecision, received: Received
    ) -> None:
        await super().on_escalation_decision(message, received)
        record = self.register[message.case_id]
        self.register.put(replace(record, instructions=message.instructions))

    async def on_identity_report(self, message: m.IdentityReport, received: Received) -> None:
        await super().on_identity_report(message, received)
        record = self.register[message.case_id]
        possible = message.supervised_departure_possible
        self.register.put(replace(record, supervised_departure_possible=possible))

    async def on_transfer_confirmed(self, message: m.TransferConfirmed, received: Received) -> None:
        self.register.put(replace(self.register[message.case_id], transfer=message))
