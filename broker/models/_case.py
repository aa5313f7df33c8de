"""The case-flow messages of DESIGN §1, with the records only they use."""

from __future__ import annotations

from datetime import date
from uuid import UUID

from broker.models._base import (
    AvroModel,
    CountryCode,
    Int32,
    PartyId,
    Timestamp,
)
from broker.models._common import (
    AttachmentRef,
    Person,
    PlanStep,
    PublicOrderNote,
)
from broker.models._enums import (
    AppealInstance,
    AppealOutcome,
    CaseOutcome,
    CheckResult,
    DecisionOutcome,
    EscalationOutcome,
    EscalationReason,
    FacilityKind,
    IdentityCheckKind,
    IdentityStatus,
    PartyRole,
    ProcedureKind,
    ReturnKind,
    ReturnOutcome,
    Scenario,
    ScenarioAnswer,
    ShelterKind,
)

__all__ = [
    "Appeal",
    "CaseClosed",
    "DossierDelivered",
    "EscalationDecision",
    "EscalationRequest",
    "IdentityCheck",
    "IdentityReport",
    "IntakeRegistered",
    "PartyPosition",
    "Procedure",
    "ProcedureDecision",
    "ReturnAttempt",
    "ScenarioDecision",
    "ScenarioResponse",
    "TransferConfirmed",
    "TransferRequest",
    "VulnerabilityFlags",
]


class IntakeRegistered(AvroModel):
    """Step 1: a person was admitted to a local LVV."""

    avro_name = "nl.lvv.v1.IntakeRegistered"

    case_id: UUID
    municipality: PartyId
    lvv_location: str
    intake_date: date
    registered_at: Timestamp
    person: Person
    shelter: ShelterKind
    referred_by: str | None = None
    guiding_ngo: PartyId | None = None
    consent_to_share: bool
    household_case_ids: tuple[UUID, ...] = ()
    notes: str | None = None


class ProcedureDecision(AvroModel):
    """A decision in a procedure."""

    avro_name = "nl.lvv.v1.ProcedureDecision"

    decision_date: date
    outcome: DecisionOutcome
    departure_deadline: date | None = None
    summary: str | None = None


class Appeal(AvroModel):
    """An appeal against a decision."""

    avro_name = "nl.lvv.v1.Appeal"

    filed_date: date
    instance: AppealInstance
    outcome: AppealOutcome
    decision_date: date | None = None
    suspensive: bool = False


class Procedure(AvroModel):
    """A residence or asylum procedure of the person."""

    avro_name = "nl.lvv.v1.Procedure"

    kind: ProcedureKind
    reference: str
    application_date: date
    decisions: tuple[ProcedureDecision, ...] = ()
    appeals: tuple[Appeal, ...] = ()


class ReturnAttempt(AvroModel):
    """An earlier attempt at departure."""

    avro_name = "nl.lvv.v1.ReturnAttempt"

    date: date
    kind: ReturnKind
    destination_country: CountryCode
    outcome: ReturnOutcome
    notes: str | None = None


class VulnerabilityFlags(AvroModel):
    """Vulnerabilities that guidance must take into account."""

    avro_name = "nl.lvv.v1.VulnerabilityFlags"

    medical: bool = False
    psychological: bool = False
    trafficking_victim: bool = False
    minor_children: bool = False
    pregnancy: bool = False
    disability: bool = False


class DossierDelivered(AvroModel):
    """Step 2: IND or DT&V delivers its complete picture of the person."""

    avro_name = "nl.lvv.v1.DossierDelivered"

    case_id: UUID
    dossier_id: UUID
    delivered_by: PartyRole
    delivered_at: Timestamp
    person: Person
    procedures: tuple[Procedure, ...] = ()
    departure_obligation_since: date | None = None
    return_history: tuple[ReturnAttempt, ...] = ()
    vulnerability: VulnerabilityFlags
    medical_notes: str | None = None
    public_order: tuple[PublicOrderNote, ...] = ()
    notes: str | None = None
    attachments: tuple[AttachmentRef, ...] = ()


class ScenarioDecision(AvroModel):
    """Step 3: the local partners set a guidance scenario and plan (casusoverleg)."""

    avro_name = "nl.lvv.v1.ScenarioDecision"

    case_id: UUID
    decision_id: UUID
    decided_at: Timestamp
    decided_by: PartyId
    consulted_parties: tuple[PartyId, ...] = ()
    scenario: Scenario
    plan: tuple[PlanStep, ...]
    rationale: str
    supersedes: UUID | None = None
    review_date: date
    attachments: tuple[AttachmentRef, ...] = ()


class ScenarioResponse(AvroModel):
    """Step 3: the person's answer to the scenario, recorded by the NGO or municipality."""

    avro_name = "nl.lvv.v1.ScenarioResponse"

    case_id: UUID
    decision_id: UUID
    responded_at: Timestamp
    recorded_by: PartyId
    answer: ScenarioAnswer
    conditions: str | None = None
    notes: str | None = None


class PartyPosition(AvroModel):
    """One party's position on the case."""

    avro_name = "nl.lvv.v1.PartyPosition"

    party: PartyId
    position: str


class EscalationRequest(AvroModel):
    """Step 4: local decision-making is stuck; the case goes to the national escalation desk."""

    avro_name = "nl.lvv.v1.EscalationRequest"

    case_id: UUID
    escalation_id: UUID
    requested_at: Timestamp
    requested_by: PartyId
    reason: EscalationReason
    question: str
    positions: tuple[PartyPosition, ...] = ()
    current_scenario: Scenario | None = None
    decision_wanted_by: date
    attachments: tuple[AttachmentRef, ...] = ()


class EscalationDecision(AvroModel):
    """Step 4: the national escalation desk decides a stuck case."""

    avro_name = "nl.lvv.v1.EscalationDecision"

    case_id: UUID
    escalation_id: UUID
    decided_at: Timestamp
    outcome: EscalationOutcome
    scenario: Scenario | None = None
    instructions: str
    binding_on: tuple[PartyId, ...] = ()


class IdentityCheck(AvroModel):
    """One identification check."""

    avro_name = "nl.lvv.v1.IdentityCheck"

    kind: IdentityCheckKind
    date: date
    result: CheckResult
    notes: str | None = None


class IdentityReport(AvroModel):
    """Step 5: AVIM reports on identification and public-order checks."""

    avro_name = "nl.lvv.v1.IdentityReport"

    case_id: UUID
    report_id: UUID
    reported_at: Timestamp
    identity_status: IdentityStatus
    established_identity: Person | None = None
    checks: tuple[IdentityCheck, ...] = ()
    contraindications: tuple[PublicOrderNote, ...] = ()
    supervised_departure_possible: bool
    notes: str | None = None
    attachments: tuple[AttachmentRef, ...] = ()


class TransferRequest(AvroModel):
    """Step 5: a party asks COA to take the person into state reception."""

    avro_name = "nl.lvv.v1.TransferRequest"

    case_id: UUID
    transfer_id: UUID
    requested_at: Timestamp
    requested_by: PartyId
    facility_kind: FacilityKind
    grounds: str
    desired_date: date
    household_size: Int32 = 1
    special_needs: str | None = None


class TransferConfirmed(AvroModel):
    """Step 5: COA answers a transfer request."""

    avro_name = "nl.lvv.v1.TransferConfirmed"

    case_id: UUID
    transfer_id: UUID
    confirmed_at: Timestamp
    accepted: bool
    facility_name: str | None = None
    facility_municipality: str | None = None
    transfer_date: date | None = None
    refusal_reason: str | None = None


class CaseClosed(AvroModel):
    """Step 6: the case ends, with its outcome."""

    avro_name = "nl.lvv.v1.CaseClosed"

    case_id: UUID
    closed_at: Timestamp
    closed_by: PartyId
    outcome: CaseOutcome
    destination_country: CountryCode | None = None
    departure_date: date | None = None
    residence_permit_reference: str | None = None
    notes: str | None = None
