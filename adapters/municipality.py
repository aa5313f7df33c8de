"""The municipality's adapter. The municipality runs the local LVV: it opens the case, sets
the scenario, escalates, asks COA for a transfer and closes. Its intake system is Dutch;
`IntakeForm` and `Trajectstap` are what that system exports."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime
from typing import ClassVar, Literal

from pydantic import BaseModel, ConfigDict

from adapters._base import Received, merged_vulnerability, type_names
from adapters._register import CaseRecord
from adapters._requests import Escalating, RequestingTransfer
from broker import models as m
from broker.caseflow import REST_PERIOD
from broker.models import CountryCode, LanguageCode, VNumber

R = m.PartyRole
_FROZEN = ConfigDict(frozen=True, extra="forbid")

_GENDER = {"M": m.Gender.MALE, "V": m.Gender.FEMALE, "X": m.Gender.OTHER, "onbekend": m.Gender.UNKNOWN}  # fmt: skip
_DOCUMENT_KIND = {
    "paspoort": m.DocumentKind.PASSPORT, "identiteitskaart": m.DocumentKind.NATIONAL_ID_CARD,
    "geboorteakte": m.DocumentKind.BIRTH_CERTIFICATE, "laissez-passer": m.DocumentKind.LAISSEZ_PASSER,
    "verblijfsdocument": m.DocumentKind.RESIDENCE_DOCUMENT, "rijbewijs": m.DocumentKind.DRIVING_LICENCE,
    "overig": m.DocumentKind.OTHER,
}  # fmt: skip
_HOLDER = {
    "betrokkene": m.DocumentHolder.PERSON, "ind": m.DocumentHolder.IND, "dtv": m.DocumentHolder.DTV,
    "avim": m.DocumentHolder.AVIM, "ambassade": m.DocumentHolder.EMBASSY, "kwijt": m.DocumentHolder.LOST,
}  # fmt: skip
_SHELTER = {
    "24-uursopvang": m.ShelterKind.DAY_AND_NIGHT, "nachtopvang": m.ShelterKind.NIGHT_ONLY,
    "alleen begeleiding": m.ShelterKind.GUIDANCE_ONLY,
}  # fmt: skip
_STEP_STATUS = {
    "open": m.PlanStepStatus.OPEN, "lopend": m.PlanStepStatus.IN_PROGRESS,
    "afgerond": m.PlanStepStatus.DONE, "vervallen": m.PlanStepStatus.CANCELLED,
}  # fmt: skip


class Document(BaseModel):
    """A document seen at intake (documentregistratie)."""

    model_config = _FROZEN

    soort: Literal["paspoort", "identiteitskaart", "geboorteakte", "laissez-passer", "verblijfsdocument", "rijbewijs", "overig"]  # fmt: skip
    nummer: str | None = None
    land: CountryCode
    geldig_tot: date | None = None
    in_bezit_van: Literal["betrokkene", "ind", "dtv", "avim", "ambassade", "kwijt"] = "betrokkene"
    echtheid_gecontroleerd: bool = False


class IntakeForm(BaseModel):
    """The municipal intake form (intakeformulier LVV) as the case system exports it."""

    model_config = _FROZEN

    achternaam: str
    voornamen: str
    aliassen: tuple[str, ...] = ()
    geboortedatum: date | None = None
    geboortedatum_geschat: bool = False
    geboorteplaats: str | None = None
    geslacht: Literal["M", "V", "X", "onbekend"] = "onbekend"
    nationaliteiten: tuple[CountryCode, ...] = ()
    talen: tuple[LanguageCode, ...] = ()
    v_nummer: VNumber | None = None
    documenten: tuple[Document, ...] = ()
    locatie: str
    intakedatum: date
    opvangvorm: Literal["24-uursopvang", "nachtopvang", "alleen begeleiding"]
    verwezen_door: str | None = None
    toestemming_gegevensdeling: bool
    gezinsleden: tuple[uuid.UUID, ...] = ()
    """Case ids of household members with their own LVV case."""
    bijzonderheden: str | None = None


class Trajectstap(BaseModel):
    """One step of the guidance plan (trajectplan) as the case system keeps it."""

    model_config = _FROZEN

    omschrijving: str
    uitvoerder: m.PartyId
    uiterlijk: date
    status: Literal["open", "lopend", "afgerond", "vervallen"] = "open"


def person_of(form: IntakeForm) -> m.Person:
    """The person as the municipality knows them; establishing identity is for IND and
    AVIM, so the status stays UNKNOWN."""
    documents = tuple(
        m.IdentityDocument(
            kind=_DOCUMENT_KIND[d.soort], number=d.nummer, issuing_country=d.land,
            valid_until=d.geldig_tot, held_by=_HOLDER[d.in_bezit_van],
            verified=d.echtheid_gecontroleerd,
        )
        for d in form.documenten
    )  # fmt: skip
    return m.Person(
        v_number=form.v_nummer, family_name=form.achternaam, given_names=form.voornamen,
        aliases=form.aliassen, birth_date=form.geboortedatum,
        birth_date_approximate=form.geboortedatum_geschat, birth_place=form.geboorteplaats,
        gender=_GENDER[form.geslacht], nationalities=form.nationaliteiten, languages=form.talen,
        documents=documents, identity_status=m.IdentityStatus.UNKNOWN,
    )  # fmt: skip


@dataclass(frozen=True)
class MunicipalityCase(CaseRecord):
    family_name: str = ""
    given_names: str = ""
    v_number: str | None = None
    location: str = ""
    plan: tuple[m.PlanStep, ...] = ()
    review_date: date | None = None
    answer: m.ScenarioAnswer | None = None
    dossiers_from: tuple[m.PartyRole, ...] = ()
    rest_period_ends: datetime | None = None
    departure_obligation_since: date | None = None
    vulnerability: m.VulnerabilityFlags | None = None
    identity_status: m.IdentityStatus = m.IdentityStatus.UNKNOWN
    supervised_departure_possible: bool | None = None
    escalation_outcome: m.EscalationOutcome | None = None
    instructions: str | None = None
    transfer: m.TransferConfirmed | None = None


class MunicipalityAdapter(Escalating[MunicipalityCase], RequestingTransfer[MunicipalityCase]):
    ROLE = R.MUNICIPALITY
    SENDS = type_names(
        m.IntakeRegistered, m.ScenarioDecision, m.EscalationRequest, m.TransferRequest,
        m.CaseClosed,
    )  # fmt: skip
    RECEIVES = type_names(
        m.DossierDelivered, m.ScenarioResponse, m.EscalationDecision, m.IdentityReport,
        m.TransferConfirmed,
    )  # fmt: skip
    _ALSO_TOLD: ClassVar[frozenset[m.PartyRole]] = frozenset({R.AVIM, R.COA})
    """AVIM and COA hear of the scenario and the close once they work on the case."""

    def new_record(self, case_id: uuid.UUID) -> MunicipalityCase:
        return MunicipalityCase(case_id, municipality=self.party_id)

    async def register_intake(
        self, form: IntakeForm, *, ngo: str | None, inform_ngo: bool = False
    ) -> uuid.UUID:
        """Open a case for a person admitted to the LVV and tell DT&V and IND (and the
        guiding NGO, if ``inform_ngo``). Returns the new, random case id."""
        case_id, now = uuid.uuid4(), self.clock()
        intake = m.IntakeRegistered(
            case_id=case_id, municipality=self.party_id, lvv_location=form.locatie,
            intake_date=form.intakedatum, registered_at=now, person=person_of(form),
            shelter=_SHELTER[form.opvangvorm], referred_by=form.verwezen_door,
            guiding_ngo=ngo, consent_to_share=form.toestemming_gegevensdeling,
            household_case_ids=form.gezinsleden, notes=form.bijzonderheden,
        )  # fmt: skip
        to = [self.network.only(R.DTV), self.network.only(R.IND)]
        await self._send(intake, [*to, ngo] if ngo and inform_ngo else to, at=now)
        self.register.put(replace(
            self.register[case_id], ngo=ngo, family_name=form.achternaam,
            given_names=form.voornamen, v_number=form.v_nummer, location=form.locatie,
        ))  # fmt: skip
        return case_id

    def _partners(self, case_id: uuid.UUID) -> list[str]:
        record = self.register[case_id]
        also = self.network.of_roles(record.parties, self._ALSO_TOLD)
        ngo = [record.ngo] if record.ngo else []
        return [*ngo, self.network.only(R.IND), self.network.only(R.DTV), *also]

    async def set_scenario(
        self,
        case_id: uuid.UUID,
        scenario: m.Scenario,
        plan: Sequence[Trajectstap],
        rationale: str,
        review_date: date,
        *,
        also: Sequence[str] = (),
    ) -> m.ScenarioDecision:
        """Send the scenario of the local case consultation to the NGO, IND, DT&V and
        ``also`` (AVIM when a supervised departure is in view, COA when a transfer is); a new
        decision supersedes the case's previous one."""
        record, now = self.register[case_id], self.clock()
        to = [*self._partners(case_id), *also]
        decision = m.ScenarioDecision(
            case_id=case_id, decision_id=uuid.uuid4(), decided_at=now, decided_by=self.party_id,
            consulted_parties=tuple(dict.fromkeys(to)), scenario=scenario, plan=self._plan(plan),
            rationale=rationale, supersedes=record.decision_id, review_date=review_date,
        )  # fmt: skip
        await self._send(decision, to, at=now)
        self.register.put(replace(
            self.register[case_id], scenario=scenario, decision_id=decision.decision_id,
            plan=decision.plan, review_date=review_date, answer=None,
        ))  # fmt: skip
        return decision

    def _plan(self, steps: Sequence[Trajectstap]) -> tuple[m.PlanStep, ...]:
        return tuple(
            m.PlanStep(
                step_no=n, description=s.omschrijving, owner=s.uitvoerder,
                owner_role=self.network.roles.get(s.uitvoerder, R.UNKNOWN),
                due_date=s.uiterlijk, status=_STEP_STATUS[s.status],
            )
            for n, s in enumerate(steps, start=1)
        )  # fmt: skip

    async def close_case(
        self,
        case_id: uuid.UUID,
        outcome: m.CaseOutcome,
        *,
        destination_country: str | None = None,
        departure_date: date | None = None,
        residence_permit_reference: str | None = None,
        notes: str | None = None,
    ) -> m.CaseClosed:
        """Close the case and tell DT&V, IND, the NGO and whoever else worked on it."""
        now = self.clock()
        closed = m.CaseClosed(
            case_id=case_id, closed_at=now, closed_by=self.party_id, outcome=outcome,
            destination_country=destination_country, departure_date=departure_date,
            residence_permit_reference=residence_permit_reference, notes=notes,
        )  # fmt: skip
        await self._send(closed, self._partners(case_id), at=now)
        self.register.put(replace(self.register[case_id], outcome=outcome))
        return closed

    # --- what arrives --------------------------------------------------------------------

    async def on_dossier_delivered(self, message: m.DossierDelivered, received: Received) -> None:
        record = self.register[message.case_id]
        first = record.rest_period_ends is None
        # the rest period runs from the first delivery (the agreement; broker.caseflow)
        ends = message.delivered_at + REST_PERIOD if first else record.rest_period_ends
        since = message.departure_obligation_since or record.departure_obligation_since
        self.register.put(replace(
            record, dossiers_from=(*record.dossiers_from, message.delivered_by),
            rest_period_ends=ends, departure_obligation_since=since,
            vulnerability=merged_vulnerability(record.vulnerability, message.vulnerability),
            v_number=record.v_number or message.person.v_number,
        ))  # fmt: skip

    async def on_scenario_response(self, message: m.ScenarioResponse, received: Received) -> None:
        record = self.register[message.case_id]
        if message.decision_id == record.decision_id:  # else: an answer to a superseded plan
            self.register.put(replace(record, answer=message.answer))

    async def on_escalation_decision(
        self, message: m.EscalationDecision, received: Received
    ) -> None:
        await super().on_escalation_decision(message, received)
        self.register.put(replace(
            self.register[message.case_id], escalation_outcome=message.outcome,
            instructions=message.instructions,
        ))  # fmt: skip

    async def on_identity_report(self, message: m.IdentityReport, received: Received) -> None:
        self.register.put(replace(
            self.register[message.case_id], identity_status=message.identity_status,
            supervised_departure_possible=message.supervised_departure_possible,
        ))  # fmt: skip

    async def on_transfer_confirmed(self, message: m.TransferConfirmed, received: Received) -> None:
        self.register.put(replace(self.register[message.case_id], transfer=message))
