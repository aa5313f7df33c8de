"""Realistic, reproducible LVV cases: the party roster of the pilot network and, per case,
the messages its path through the case flow produces, with who sends them to whom.

Everything is fictitious but shaped like real case work, and drawn from a seeded random
generator, so `lvvx schemas example` and `lvvx demo` print the same thing on every run.

**The calendar.** Each step of a case has its day, as the agreement's flow has it: the
intake, the dossiers within a day or two, the scenario after the 14-day rest period, the
person's answer two days later, an escalation answered within `ESCALATION_ANSWER_PERIOD`,
the closing a month on. Each message's own time (``registered_at``, ``decided_at``, …) is
that moment. With ``calendar=True`` (`lvvx demo`) every case starts on its own day within
`INTAKE_WINDOW` of ``start`` and keeps its own timeline, so a book of cases spans at most
`CALENDAR_SPAN`; without, one case follows the other from ``start`` (the examples).

**Planted cases.** A book of `PLANT_FROM` cases or more (`CaseWriter.cases`) breaks a rule
on purpose in a few cases chosen from the seed — `PLANTED_IN_REST_PERIOD` cases whose
scenario is set during the rest period, `PLANTED_LATE_ESCALATIONS` escalations answered
after their date — so that the case monitor has true things to show (`Case.planted`).
"""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from enum import StrEnum

from broker import models as m
from broker.caseflow import ESCALATION_ANSWER_PERIOD
from broker.caseflow import Warning as FlowWarning
from broker.models import PartyRole

# --- the network -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Party:
    party_id: str
    role: PartyRole
    display_name: str


MUNICIPALITIES = (
    Party("gemeente-amsterdam", PartyRole.MUNICIPALITY, "Gemeente Amsterdam"),
    Party("gemeente-rotterdam", PartyRole.MUNICIPALITY, "Gemeente Rotterdam"),
    Party("gemeente-utrecht", PartyRole.MUNICIPALITY, "Gemeente Utrecht"),
    Party("gemeente-eindhoven", PartyRole.MUNICIPALITY, "Gemeente Eindhoven"),
    Party("gemeente-groningen", PartyRole.MUNICIPALITY, "Gemeente Groningen"),
)
NGOS = (
    Party("ngo-stichting-noodopvang", PartyRole.NGO, "Stichting Noodopvang (fictief)"),
    Party("ngo-perspectief", PartyRole.NGO, "Stichting Perspectief (fictief)"),
)
IND = Party("ind", PartyRole.IND, "Immigratie- en Naturalisatiedienst")
DTV = Party("dtv", PartyRole.DTV, "Dienst Terugkeer en Vertrek")
AVIM = Party("avim", PartyRole.AVIM, "Afdeling Vreemdelingenpolitie, Identificatie en Mensenhandel")
COA = Party("coa", PartyRole.COA, "Centraal Orgaan opvang asielzoekers")
ESCALATION = Party("escalatietafel", PartyRole.ESCALATION, "Landelijke escalatietafel LVV")

NETWORK: tuple[Party, ...] = (*MUNICIPALITIES, *NGOS, IND, DTV, AVIM, COA, ESCALATION)
"""The pilot network: five municipalities, two NGOs and the national parties."""

LVV_LOCATIONS = {
    "gemeente-amsterdam": "LVV Amsterdam - Willem Nakkenstraat",
    "gemeente-rotterdam": "LVV Rotterdam - Centrum",
    "gemeente-utrecht": "LVV Utrecht - Joseph",
    "gemeente-eindhoven": "LVV Eindhoven - Vincent",
    "gemeente-groningen": "LVV Groningen - Wende",
}

REST_PERIOD = timedelta(days=14)
"""The agreement's rest period (rusttermijn): 14 days from dossier delivery."""

SCENARIO_AFTER = timedelta(days=15)
"""When the local partners set the scenario: the day after the rest period ended."""

ESCALATION_ANSWERED_AFTER = timedelta(days=7)
"""When the national desk answers an escalation: well within its answer period."""

INTAKE_WINDOW = timedelta(days=28)
"""On ``calendar``, the cases' intakes spread over four weeks, as a pilot city's would."""

CALENDAR_SPAN = timedelta(days=150)
"""On ``calendar``, every step of a book falls within this of ``start``: the intake
window and the longest path (escalation answered late: about 120 days), with room."""

PLANT_FROM = 8
"""A book this large or larger gets its planted cases; a smaller one (a quick check,
`--cases 1`) is all clean."""

PLANTED_IN_REST_PERIOD = 2
PLANTED_LATE_ESCALATIONS = 1
PLANTED_SCENARIO_AFTER = timedelta(days=7)
"""A planted case's scenario: halfway through the rest period."""
PLANTED_ANSWER_AFTER = ESCALATION_ANSWER_PERIOD + timedelta(days=7)
"""A planted escalation's answer: a week past its date."""


# --- one case --------------------------------------------------------------------------------


class CasePath(StrEnum):
    """The route a case takes through the flow, and the outcome it ends with."""

    RETURN = "RETURN"
    ONWARD_MIGRATION = "ONWARD_MIGRATION"
    LEGALISATION = "LEGALISATION"
    ESCALATION = "ESCALATION"
    TRANSFER = "TRANSFER"
    EXIT = "EXIT"


EXPECTED_OUTCOME = {
    CasePath.RETURN: m.CaseOutcome.INDEPENDENT_DEPARTURE,
    CasePath.ONWARD_MIGRATION: m.CaseOutcome.ONWARD_MIGRATION,
    CasePath.LEGALISATION: m.CaseOutcome.LEGAL_STAY,
    CasePath.ESCALATION: m.CaseOutcome.SUPERVISED_DEPARTURE,
    CasePath.TRANSFER: m.CaseOutcome.TRANSFER_TO_STATE_RECEPTION,
    CasePath.EXIT: m.CaseOutcome.EXIT_NO_DURABLE_SOLUTION,
}


@dataclass(frozen=True, slots=True)
class Step:
    """One message of a case: who sends it, to whom, and the message itself."""

    sender: str
    recipients: tuple[str, ...]
    message: m.AvroModel


@dataclass(slots=True)
class Case:
    case_id: uuid.UUID
    path: CasePath
    municipality: Party
    ngo: Party
    steps: list[Step] = field(default_factory=list)
    planted: FlowWarning | None = None
    """The rule this case breaks on purpose (see the module docstring), if any."""

    @property
    def outcome(self) -> m.CaseOutcome:
        return EXPECTED_OUTCOME[self.path]


# (family name, given names, nationality, language, birth place)
_PEOPLE = (
    ("Gebremariam", "Tesfaye Haile", "ERI", "ti", "Asmara"),
    ("Diallo", "Oumar", "GIN", "fr", "Conakry"),
    ("Benali", "Samira", "MAR", "ar", "Tanger"),
    ("Dudaev", "Aslan", "RUS", "ru", "Grozny"),
    ("Abdelrahman", "Mohamed Osman", "SDN", "ar", "Omdurman"),
    ("Okafor", "Chinedu", "NGA", "en", "Enugu"),
    ("Hashimi", "Farid", "AFG", "fa", "Herat"),
    ("Tadesse", "Meron", "ETH", "am", "Addis Abeba"),
    ("Kuqi", "Arben", "ALB", "sq", "Shkodër"),
    ("Mansouri", "Yasmina", "DZA", "ar", "Oran"),
    ("Bangura", "Fatmata", "SLE", "en", "Freetown"),
    ("Rahimi", "Zahra", "IRN", "fa", "Shiraz"),
)

_ONWARD_DESTINATIONS = ("DEU", "BEL", "FRA", "ESP", "ITA", "SWE")


class CaseWriter:
    """Writes the messages of cases, from a seed and a start time; with ``calendar`` each
    case on a timeline of its own from a day within `INTAKE_WINDOW` of ``start``."""

    def __init__(
        self, seed: int = 2018, start: datetime | None = None, *, calendar: bool = False
    ) -> None:
        self._rng = random.Random(seed)
        # the mix of paths, the intake days and the planted cases: a stream of their own,
        # so the people and messages a seed writes stay those it wrote before
        self._plan = random.Random(f"{seed}/plan")
        self._start = start or datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
        self._now = self._start
        self._calendar = calendar

    def _uuid(self) -> uuid.UUID:
        return uuid.UUID(int=self._rng.getrandbits(128), version=4)

    def _tick(self, hours: float) -> datetime:
        self._now += timedelta(hours=hours)
        return self._now

    def person(self) -> m.Person:
        family, given, country, language, place = self._rng.choice(_PEOPLE)
        born = date(self._rng.randint(1965, 2002), self._rng.randint(1, 12), 1)
        approximate = self._rng.random() < 0.3
        if not approximate:
            born = born.replace(day=self._rng.randint(1, 28))
        documents: tuple[m.IdentityDocument, ...] = ()
        if self._rng.random() < 0.6:
            documents = (
                m.IdentityDocument(
                    kind=m.DocumentKind.PASSPORT,
                    number=f"{country[:2]}{self._rng.randint(1000000, 9999999)}",
                    issuing_country=country,
                    valid_until=date(self._rng.randint(2019, 2031), 6, 30),
                    held_by=self._rng.choice([m.DocumentHolder.PERSON, m.DocumentHolder.DTV]),
                    verified=self._rng.random() < 0.5,
                ),
            )
        return m.Person(
            v_number=f"{self._rng.randint(10**9, 10**10 - 1)}",
            family_name=family,
            given_names=given,
            birth_date=born,
            birth_date_approximate=approximate,
            birth_place=place,
            gender=self._rng.choice([m.Gender.FEMALE, m.Gender.MALE]),
            nationalities=(country,),
            languages=(language, "en") if language != "en" else ("en",),
            documents=documents,
            identity_status=(
                m.IdentityStatus.ESTABLISHED if documents else m.IdentityStatus.NOT_ESTABLISHED
            ),
        )

    def case(
        self,
        index: int,
        path: CasePath | None = None,
        *,
        planted: FlowWarning | None = None,
        intake_at: datetime | None = None,
    ) -> Case:
        """The messages of one case; ``path`` defaults to one chosen by the index.
        ``planted``: the rule it breaks on purpose. ``intake_at``: when it starts (else, on
        ``calendar``, a day within `INTAKE_WINDOW` of the start, at office hours)."""
        paths = list(CasePath)
        case = Case(
            case_id=self._uuid(),
            path=path or paths[index % len(paths)],
            municipality=MUNICIPALITIES[index % len(MUNICIPALITIES)],
            ngo=NGOS[index % len(NGOS)],
            planted=planted,
        )
        if intake_at is not None:
            self._now = intake_at - timedelta(hours=1)
        elif self._calendar:
            day = self._plan.randrange(INTAKE_WINDOW.days)
            hour = self._plan.randrange(8)  # 08:00-16:00 after the start's hour
            self._now = self._start + timedelta(days=day, hours=hour - 1)
        person = self.person()
        self._intake(case, person)
        self._dossiers(case, person)
        scenario = {
            CasePath.ONWARD_MIGRATION: m.Scenario.ONWARD_MIGRATION,
            CasePath.LEGALISATION: m.Scenario.LEGALISATION,
        }.get(case.path, m.Scenario.RETURN)
        decision_id = self._scenario(case, scenario)
        self._response(case, decision_id)
        if case.path is CasePath.ESCALATION:
            self._escalate(case)
        if case.path in (CasePath.RETURN, CasePath.ESCALATION):
            self._identity(case)
        if case.path is CasePath.TRANSFER:
            self._transfer(case)
        self._close(case)
        return case

    def cases(self, count: int) -> list[Case]:
        """``count`` cases: every path once (in an order the seed draws), then paths the
        seed draws; with `PLANT_FROM` or more, the planted cases among them."""
        paths = list(CasePath)
        self._plan.shuffle(paths)
        mix = (paths + [self._plan.choice(list(CasePath)) for _ in range(count)])[:count]
        planted: dict[int, FlowWarning] = {}
        if count >= PLANT_FROM:
            escalations = [i for i, p in enumerate(mix) if p is CasePath.ESCALATION]
            others = [i for i, p in enumerate(mix) if p is not CasePath.ESCALATION]
            for i in self._plan.sample(escalations, PLANTED_LATE_ESCALATIONS):
                planted[i] = FlowWarning.ESCALATION_ANSWERED_LATE
            for i in self._plan.sample(others, PLANTED_IN_REST_PERIOD):
                planted[i] = FlowWarning.SCENARIO_IN_REST_PERIOD
        return [self.case(i, mix[i], planted=planted.get(i)) for i in range(count)]

    # --- the steps ---------------------------------------------------------------------------

    def _send(
        self, case: Case, sender: Party, recipients: tuple[Party, ...], msg: m.AvroModel
    ) -> None:
        case.steps.append(Step(sender.party_id, tuple(p.party_id for p in recipients), msg))

    def _intake(self, case: Case, person: m.Person) -> None:
        at = self._tick(1)
        msg = m.IntakeRegistered(
            case_id=case.case_id,
            municipality=case.municipality.party_id,
            lvv_location=LVV_LOCATIONS[case.municipality.party_id],
            intake_date=at.date(),
            registered_at=at,
            person=person,
            shelter=self._rng.choice([m.ShelterKind.DAY_AND_NIGHT, m.ShelterKind.NIGHT_ONLY]),
            referred_by=self._rng.choice([None, "GGD", "Straatadvocaten", "Leger des Heils"]),
            guiding_ngo=case.ngo.party_id,
            consent_to_share=True,
            notes="Aangemeld via het inloopspreekuur; slaapt sinds twee weken buiten.",
        )
        self._send(case, case.municipality, (DTV, IND), msg)

    def _dossiers(self, case: Case, person: m.Person) -> None:
        applied = date(self._rng.randint(2014, 2022), self._rng.randint(1, 12), 15)
        rejected = applied + timedelta(days=self._rng.randint(90, 400))
        procedure = m.Procedure(
            kind=m.ProcedureKind.ASYLUM_FIRST,
            reference=f"IND-{self._rng.randint(100000, 999999)}",
            application_date=applied,
            decisions=(
                m.ProcedureDecision(
                    decision_date=rejected,
                    outcome=m.DecisionOutcome.REJECTED,
                    departure_deadline=rejected + timedelta(days=28),
                    summary="Asielrelaas ongeloofwaardig geacht; geen reëel risico bij terugkeer.",
                ),
            ),
            appeals=(
                m.Appeal(
                    filed_date=rejected + timedelta(days=20),
                    instance=m.AppealInstance.DISTRICT_COURT,
                    outcome=m.AppealOutcome.DISMISSED,
                    decision_date=rejected + timedelta(days=230),
                    suspensive=True,
                ),
            ),
        )
        vulnerable = self._rng.random() < 0.35
        for service in (IND, DTV):
            returns: tuple[m.ReturnAttempt, ...] = ()
            if service is DTV and self._rng.random() < 0.5:
                returns = (
                    m.ReturnAttempt(
                        date=rejected + timedelta(days=120),
                        kind=m.ReturnKind.ASSISTED,
                        destination_country=person.nationalities[0],
                        outcome=m.ReturnOutcome.NO_TRAVEL_DOCUMENT,
                        notes="Ambassade gaf geen laissez-passer af.",
                    ),
                )
            msg = m.DossierDelivered(
                case_id=case.case_id,
                dossier_id=self._uuid(),
                delivered_by=service.role,
                delivered_at=self._tick(20),
                person=person,
                procedures=(procedure,),
                departure_obligation_since=rejected + timedelta(days=258),
                return_history=returns,
                vulnerability=m.VulnerabilityFlags(
                    psychological=vulnerable, medical=vulnerable and self._rng.random() < 0.5
                ),
                medical_notes="BMA-advies: behandeling beschikbaar in land van herkomst."
                if vulnerable
                else None,
                public_order=(),
                notes=f"Dossier {service.display_name}: volledig beeld per {self._now.date()}.",
            )
            self._send(case, service, (case.municipality, case.ngo), msg)

    def _scenario(self, case: Case, scenario: m.Scenario) -> uuid.UUID:
        early = case.planted is FlowWarning.SCENARIO_IN_REST_PERIOD
        at = self._tick((PLANTED_SCENARIO_AFTER if early else SCENARIO_AFTER) / timedelta(hours=1))
        owners = {
            m.Scenario.RETURN: (DTV, "Vertrekgesprek en aanvraag laissez-passer"),
            m.Scenario.ONWARD_MIGRATION: (case.ngo, "Contact leggen met opvang in bestemmingsland"),
            m.Scenario.LEGALISATION: (IND, "Beoordeling aanvraag verblijfsvergunning"),
        }
        owner, first_step = owners[scenario]
        decision_id = self._uuid()
        msg = m.ScenarioDecision(
            case_id=case.case_id,
            decision_id=decision_id,
            decided_at=at,
            decided_by=case.municipality.party_id,
            consulted_parties=(case.ngo.party_id, IND.party_id, DTV.party_id),
            scenario=scenario,
            plan=(
                m.PlanStep(
                    step_no=1,
                    description=first_step,
                    owner=owner.party_id,
                    owner_role=owner.role,
                    due_date=at.date() + timedelta(days=21),
                    status=m.PlanStepStatus.OPEN,
                ),
                m.PlanStep(
                    step_no=2,
                    description="Voortgang bespreken in lokaal casusoverleg",
                    owner=case.municipality.party_id,
                    owner_role=PartyRole.MUNICIPALITY,
                    due_date=at.date() + timedelta(days=42),
                    status=m.PlanStepStatus.OPEN,
                ),
            ),
            rationale="Op basis van beide dossiers en het gesprek met betrokkene is dit het "
            "meest kansrijke scenario voor een bestendige oplossing.",
            review_date=at.date() + timedelta(days=90),
        )
        self._send(case, case.municipality, (case.ngo, DTV, IND), msg)
        return decision_id

    def _response(self, case: Case, decision_id: uuid.UUID) -> None:
        answer = (
            m.ScenarioAnswer.UNDECIDED
            if case.path in (CasePath.ESCALATION, CasePath.EXIT)
            else m.ScenarioAnswer.PARTICIPATES
        )
        msg = m.ScenarioResponse(
            case_id=case.case_id,
            decision_id=decision_id,
            responded_at=self._tick(48),
            recorded_by=case.ngo.party_id,
            answer=answer,
            notes="Besproken met tolk.",
        )
        self._send(case, case.ngo, (case.municipality, DTV), msg)

    def _escalate(self, case: Case) -> None:
        escalation_id = self._uuid()
        at = self._tick(24 * 30)
        request = m.EscalationRequest(
            case_id=case.case_id,
            escalation_id=escalation_id,
            requested_at=at,
            requested_by=case.municipality.party_id,
            reason=m.EscalationReason.NO_AGREEMENT_ON_SCENARIO,
            question="Partners verschillen van mening over haalbaarheid van terugkeer.",
            positions=(
                m.PartyPosition(party=DTV.party_id, position="Terugkeer is haalbaar."),
                m.PartyPosition(
                    party=case.ngo.party_id, position="Medische situatie staat in de weg."
                ),
            ),
            current_scenario=m.Scenario.RETURN,
            decision_wanted_by=at.date() + ESCALATION_ANSWER_PERIOD,
        )
        self._send(case, case.municipality, (ESCALATION,), request)
        late = case.planted is FlowWarning.ESCALATION_ANSWERED_LATE
        answer = PLANTED_ANSWER_AFTER if late else ESCALATION_ANSWERED_AFTER
        decision = m.EscalationDecision(
            case_id=case.case_id,
            escalation_id=escalation_id,
            decided_at=self._tick(answer / timedelta(hours=1)),
            outcome=m.EscalationOutcome.SCENARIO_SET,
            scenario=m.Scenario.RETURN,
            instructions="Terugkeer onder begeleiding van DT&V; medische overdracht regelen.",
            binding_on=(case.municipality.party_id, case.ngo.party_id, DTV.party_id),
        )
        self._send(case, ESCALATION, (case.municipality, case.ngo, DTV, IND), decision)

    def _identity(self, case: Case) -> None:
        msg = m.IdentityReport(
            case_id=case.case_id,
            report_id=self._uuid(),
            reported_at=self._tick(24 * 10),
            identity_status=m.IdentityStatus.ESTABLISHED,
            checks=(
                m.IdentityCheck(
                    kind=m.IdentityCheckKind.FINGERPRINTS,
                    date=self._now.date(),
                    result=m.CheckResult.CONFIRMED,
                ),
                m.IdentityCheck(
                    kind=m.IdentityCheckKind.EMBASSY_PRESENTATION,
                    date=self._now.date(),
                    result=m.CheckResult.CONFIRMED,
                    notes="Nationaliteit bevestigd door de ambassade.",
                ),
            ),
            supervised_departure_possible=case.path is CasePath.ESCALATION,
        )
        self._send(case, AVIM, (case.municipality, DTV), msg)

    def _transfer(self, case: Case) -> None:
        transfer_id = self._uuid()
        request = m.TransferRequest(
            case_id=case.case_id,
            transfer_id=transfer_id,
            requested_at=self._tick(24 * 20),
            requested_by=case.municipality.party_id,
            facility_kind=m.FacilityKind.FREEDOM_RESTRICTING_LOCATION,
            grounds="Betrokkene werkt mee aan vertrek vanuit de VBL.",
            desired_date=self._now.date() + timedelta(days=7),
        )
        self._send(case, case.municipality, (COA,), request)
        confirmed = m.TransferConfirmed(
            case_id=case.case_id,
            transfer_id=transfer_id,
            confirmed_at=self._tick(30),
            accepted=True,
            facility_name="VBL Ter Apel",
            facility_municipality="Westerwolde",
            transfer_date=self._now.date() + timedelta(days=6),
        )
        self._send(case, COA, (case.municipality, DTV), confirmed)

    def _close(self, case: Case) -> None:
        outcome = case.outcome
        departed = outcome in (
            m.CaseOutcome.INDEPENDENT_DEPARTURE,
            m.CaseOutcome.SUPERVISED_DEPARTURE,
            m.CaseOutcome.ONWARD_MIGRATION,
        )
        destination = None
        if departed:
            person = next(
                s.message for s in case.steps if isinstance(s.message, m.IntakeRegistered)
            )
            destination = (
                self._rng.choice(_ONWARD_DESTINATIONS)
                if outcome is m.CaseOutcome.ONWARD_MIGRATION
                else person.person.nationalities[0]
            )
        msg = m.CaseClosed(
            case_id=case.case_id,
            closed_at=self._tick(24 * 30),
            closed_by=case.municipality.party_id,
            outcome=outcome,
            destination_country=destination,
            departure_date=self._now.date() if departed else None,
            residence_permit_reference=(
                f"IND-VVR-{self._rng.randint(100000, 999999)}"
                if outcome is m.CaseOutcome.LEGAL_STAY
                else None
            ),
            notes="Casus afgesloten in lokaal casusoverleg.",
        )
        self._send(case, case.municipality, (DTV, IND, case.ngo), msg)
