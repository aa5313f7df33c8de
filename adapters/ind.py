"""IND's adapter. IND delivers its part of the dossier (procedures, decisions, appeals,
medical advice) after an intake, and hears of scenarios, escalations, identity findings
and closes, since it decides on legal stay. `IndCaseExport` is IND's case export: English
field names, IND's own Dutch codes."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, replace
from datetime import date, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict

from adapters._base import Received, type_names
from adapters._dossier import DossierCase, DossierService
from adapters._requests import Escalating
from broker import models as m
from broker.models import CountryCode, LanguageCode, VNumber

_FROZEN = ConfigDict(frozen=True, extra="forbid")
P, D, A, PO = m.ProcedureKind, m.DecisionOutcome, m.AppealOutcome, m.PublicOrderKind

_PROCEDURE = {
    "ASIEL_EERSTE": P.ASYLUM_FIRST, "ASIEL_OPVOLGEND": P.ASYLUM_SUBSEQUENT,
    "REGULIER": P.REGULAR_RESIDENCE, "ART64": P.MEDICAL_POSTPONEMENT,
    "BUITEN_SCHULD": P.NO_FAULT_PERMIT, "GEZINSHERENIGING": P.FAMILY_REUNIFICATION,
    "STAATLOOSHEID": P.STATELESSNESS, "OVERIG": P.OTHER,
}  # fmt: skip
_DECISION = {
    "INWILLIGING": D.GRANTED, "AFWIJZING": D.REJECTED,
    "AFWIJZING_KENNELIJK_ONGEGROND": D.REJECTED_MANIFESTLY_UNFOUNDED,
    "NIET_IN_BEHANDELING": D.NOT_CONSIDERED, "INGETROKKEN": D.WITHDRAWN, "LOPEND": D.PENDING,
}  # fmt: skip
_INSTANCE = {
    "RECHTBANK": m.AppealInstance.DISTRICT_COURT, "RVS": m.AppealInstance.COUNCIL_OF_STATE,
    "EHRM": m.AppealInstance.EUROPEAN_COURT,
}  # fmt: skip
_APPEAL = {
    "LOPEND": A.PENDING, "GEGROND": A.UPHELD, "ONGEGROND": A.DISMISSED,
    "INGETROKKEN": A.WITHDRAWN, "NIET_ONTVANKELIJK": A.INADMISSIBLE,
}  # fmt: skip
_PUBLIC_ORDER = {
    "INREISVERBOD": PO.ENTRY_BAN, "ONGEWENSTVERKLARING": PO.DECLARED_UNDESIRABLE,
    "VEROORDELING": PO.CRIMINAL_CONVICTION, "NATIONALE_VEILIGHEID": PO.NATIONAL_SECURITY,
    "ART_1F": PO.OTHER,
}  # fmt: skip
_IDENTITY = {
    "VASTGESTELD": m.IdentityStatus.ESTABLISHED, "AANNEMELIJK": m.IdentityStatus.PLAUSIBLE,
    "IN_ONDERZOEK": m.IdentityStatus.UNDER_INVESTIGATION,
    "NIET_VASTGESTELD": m.IdentityStatus.NOT_ESTABLISHED, "ONBEKEND": m.IdentityStatus.UNKNOWN,
}  # fmt: skip
_GENDER = {"M": m.Gender.MALE, "V": m.Gender.FEMALE, "X": m.Gender.OTHER, "O": m.Gender.UNKNOWN}
VulnerabilityCode = Literal["MEDISCH", "PSYCHISCH", "MENSENHANDEL", "MINDERJARIGE_KINDEREN", "ZWANGERSCHAP", "BEPERKING"]  # fmt: skip
VULNERABILITY_CODES: dict[VulnerabilityCode, str] = {
    "MEDISCH": "medical", "PSYCHISCH": "psychological", "MENSENHANDEL": "trafficking_victim",
    "MINDERJARIGE_KINDEREN": "minor_children", "ZWANGERSCHAP": "pregnancy",
    "BEPERKING": "disability",
}  # fmt: skip
"""IND's vulnerability codes → the flag of `m.VulnerabilityFlags` they set."""


class IndDecision(BaseModel):
    model_config = _FROZEN
    decision_date: date
    code: Literal["INWILLIGING", "AFWIJZING", "AFWIJZING_KENNELIJK_ONGEGROND", "NIET_IN_BEHANDELING", "INGETROKKEN", "LOPEND"]  # fmt: skip
    departure_deadline: date | None = None
    summary: str | None = None


class IndAppeal(BaseModel):
    model_config = _FROZEN
    filed_date: date
    instance: Literal["RECHTBANK", "RVS", "EHRM"]
    outcome: Literal["LOPEND", "GEGROND", "ONGEGROND", "INGETROKKEN", "NIET_ONTVANKELIJK"]
    judgment_date: date | None = None
    suspensive: bool = False
    """Schorsende werking: the person may await the judgment in the Netherlands."""


class IndProcedure(BaseModel):
    model_config = _FROZEN
    zaaknummer: str
    kind: Literal["ASIEL_EERSTE", "ASIEL_OPVOLGEND", "REGULIER", "ART64", "BUITEN_SCHULD", "GEZINSHERENIGING", "STAATLOOSHEID", "OVERIG"]  # fmt: skip
    application_date: date
    decisions: tuple[IndDecision, ...] = ()
    appeals: tuple[IndAppeal, ...] = ()


class IndPublicOrderNote(BaseModel):
    model_config = _FROZEN
    code: Literal["INREISVERBOD", "ONGEWENSTVERKLARING", "VEROORDELING", "NATIONALE_VEILIGHEID", "ART_1F"]  # fmt: skip
    since: date | None = None
    until: date | None = None
    description: str


class IndCaseExport(BaseModel):
    """One person's file as IND's case system exports it."""

    model_config = _FROZEN
    v_number: VNumber
    family_name: str
    given_names: str
    aliases: tuple[str, ...] = ()
    birth_date: date | None = None
    birth_date_uncertain: bool = False
    birth_place: str | None = None
    gender: Literal["M", "V", "X", "O"] = "O"
    nationalities: tuple[CountryCode, ...] = ()
    languages: tuple[LanguageCode, ...] = ()
    identity: Literal["VASTGESTELD", "AANNEMELIJK", "IN_ONDERZOEK", "NIET_VASTGESTELD", "ONBEKEND"] = "ONBEKEND"  # fmt: skip
    documents: tuple[m.IdentityDocument, ...] = ()
    procedures: tuple[IndProcedure, ...] = ()
    vulnerabilities: frozenset[VulnerabilityCode] = frozenset()
    bma_advice: str | None = None
    """Advice of IND's medical advisers (Bureau Medische Advisering)."""
    public_order: tuple[IndPublicOrderNote, ...] = ()
    remarks: str | None = None


def vulnerability_of(codes: frozenset[VulnerabilityCode]) -> m.VulnerabilityFlags:
    return m.VulnerabilityFlags(**{VULNERABILITY_CODES[c]: True for c in codes})


def _procedure(p: IndProcedure) -> m.Procedure:
    decisions = tuple(
        m.ProcedureDecision(
            decision_date=d.decision_date, outcome=_DECISION[d.code],
            departure_deadline=d.departure_deadline, summary=d.summary,
        )
        for d in p.decisions
    )  # fmt: skip
    appeals = tuple(
        m.Appeal(
            filed_date=a.filed_date, instance=_INSTANCE[a.instance], outcome=_APPEAL[a.outcome],
            decision_date=a.judgment_date, suspensive=a.suspensive,
        )
        for a in p.appeals
    )  # fmt: skip
    return m.Procedure(
        kind=_PROCEDURE[p.kind], reference=p.zaaknummer, application_date=p.application_date,
        decisions=decisions, appeals=appeals,
    )  # fmt: skip


def dossier_of(export: IndCaseExport, case_id: uuid.UUID, at: datetime) -> m.DossierDelivered:
    """IND's part of the dossier. The departure obligation and return history are DT&V's
    part, so they stay empty here."""
    person = m.Person(
        v_number=export.v_number, family_name=export.family_name,
        given_names=export.given_names, aliases=export.aliases, birth_date=export.birth_date,
        birth_date_approximate=export.birth_date_uncertain, birth_place=export.birth_place,
        gender=_GENDER[export.gender], nationalities=export.nationalities,
        languages=export.languages, documents=export.documents,
        identity_status=_IDENTITY[export.identity],
    )  # fmt: skip
    public_order = tuple(
        m.PublicOrderNote(
            kind=_PUBLIC_ORDER[n.code], since=n.since, until=n.until, description=n.description
        )
        for n in export.public_order
    )
    return m.DossierDelivered(
        case_id=case_id, dossier_id=uuid.uuid4(), delivered_by=m.PartyRole.IND,
        delivered_at=at, person=person,
        procedures=tuple(_procedure(p) for p in export.procedures),
        vulnerability=vulnerability_of(export.vulnerabilities), medical_notes=export.bma_advice,
        public_order=public_order, notes=export.remarks,
    )  # fmt: skip


@dataclass(frozen=True)
class IndCase(DossierCase):
    residence_permit_reference: str | None = None
    instructions: str | None = None


class IndAdapter(DossierService[IndCase, IndCaseExport], Escalating[IndCase]):
    """IND. Its in-memory "system" is `exports` by V-number (`DossierService`); with
    ``auto_deliver`` an intake for a known V-number is answered with the dossier at once."""

    ROLE = m.PartyRole.IND
    SENDS = type_names(m.DossierDelivered, m.EscalationRequest)
    RECEIVES = type_names(
        m.IntakeRegistered, m.ScenarioDecision, m.EscalationDecision, m.IdentityReport,
        m.CaseClosed,
    )  # fmt: skip

    def new_record(self, case_id: uuid.UUID) -> IndCase:
        return IndCase(case_id)

    def v_number_of(self, export: IndCaseExport) -> str:
        return export.v_number

    def dossier_of(
        self, export: IndCaseExport, case_id: uuid.UUID, at: datetime
    ) -> m.DossierDelivered:
        return dossier_of(export, case_id, at)

    async def on_escalation_decision(
        self, message: m.EscalationDecision, received: Received
    ) -> None:
        await super().on_escalation_decision(message, received)
        record = self.register[message.case_id]
        self.register.put(replace(record, instructions=message.instructions))

    async def on_case_closed(self, message: m.CaseClosed, received: Received) -> None:
        await super().on_case_closed(message, received)
        record = self.register[message.case_id]
        permit = message.residence_permit_reference
        self.register.put(replace(record, residence_permit_reference=permit))
