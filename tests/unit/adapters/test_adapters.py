"""The adapters: each back office's data maps to the right LVV message, every send reaches
the right parties and passes the policy (through `RecordingClient`), what arrives updates
the party's case register, and one case runs end to end across all seven party kinds."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter, deque
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any, TypeVar

import pytest

from adapters import (
    ADAPTERS,
    Adapter,
    AvimAdapter,
    CoaAdapter,
    DtvAdapter,
    EscalationAdapter,
    IndAdapter,
    MunicipalityAdapter,
    Network,
    NgoAdapter,
    RecordingClient,
    Sent,
    UnexpectedMessage,
    UnknownCase,
    UnknownPerson,
)
from adapters.avim import Antecedent, Onderzoek
from adapters.coa import Facility
from adapters.dtv import DepartureAttempt, DtvCaseExport
from adapters.escalation import UnknownEscalation
from adapters.ind import IndAppeal, IndCaseExport, IndDecision, IndProcedure, IndPublicOrderNote
from adapters.municipality import Document, IntakeForm, Trajectstap
from adapters.ngo import UnknownDecision
from broker import models as m
from broker.caseflow import REST_PERIOD, Step, Warning
from broker.contract import default_codec
from broker.errors import LocalError, PolicyDenied, TransportUnavailable, UnknownParty
from broker.policy import POLICY
from demo.casebook import LVV_LOCATIONS, NETWORK, CasePath, CaseWriter

ROLES = {party.party_id: party.role for party in NETWORK}
NET = Network(roles=ROLES)
R = m.PartyRole
MUN, NGO = "gemeente-utrecht", "ngo-perspectief"
IND, DTV, AVIM, COA, DESK = "ind", "dtv", "avim", "coa", "escalatietafel"
START = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
MessageT = TypeVar("MessageT", bound=m.AvroModel)


class Clock:
    def __init__(self, now: datetime = START) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> datetime:
        self.now += timedelta(**delta)
        return self.now


# --- realistic back-office data, from the case book's people ---------------------------------


def person(seed: int = 3) -> m.Person:
    return CaseWriter(seed=seed).person()


def intake_form(p: m.Person) -> IntakeForm:
    return IntakeForm(
        achternaam=p.family_name, voornamen=p.given_names, geboortedatum=p.birth_date,
        geboortedatum_geschat=p.birth_date_approximate, geboorteplaats=p.birth_place,
        geslacht="V" if p.gender is m.Gender.FEMALE else "M", nationaliteiten=p.nationalities,
        talen=p.languages, v_nummer=p.v_number,
        documenten=(
            Document(soort="paspoort", nummer="X1234567", land=p.nationalities[0],
                     geldig_tot=date(2029, 6, 30), in_bezit_van="dtv"),
        ),
        locatie=LVV_LOCATIONS[MUN], intakedatum=START.date(), opvangvorm="24-uursopvang",
        verwezen_door="Straatadvocaten", toestemming_gegevensdeling=True,
        bijzonderheden="Aangemeld via het inloopspreekuur; slaapt sinds twee weken buiten.",
    )  # fmt: skip


def ind_export(p: m.Person) -> IndCaseExport:
    assert p.v_number is not None
    asylum = IndProcedure(
        zaaknummer="IND-482913", kind="ASIEL_EERSTE", application_date=date(2019, 3, 15),
        decisions=(
            IndDecision(decision_date=date(2019, 11, 2), code="AFWIJZING",
                        departure_deadline=date(2019, 11, 30),
                        summary="Asielrelaas ongeloofwaardig geacht."),
        ),
        appeals=(
            IndAppeal(filed_date=date(2019, 11, 22), instance="RECHTBANK", outcome="ONGEGROND",
                      judgment_date=date(2020, 6, 19), suspensive=True),
            IndAppeal(filed_date=date(2020, 7, 10), instance="RVS",
                      outcome="NIET_ONTVANKELIJK", judgment_date=date(2020, 12, 1)),
        ),
    )  # fmt: skip
    medical = IndProcedure(
        zaaknummer="IND-733105", kind="ART64", application_date=date(2021, 2, 1),
        decisions=(IndDecision(decision_date=date(2021, 5, 3), code="AFWIJZING"),),
    )  # fmt: skip
    return IndCaseExport(
        v_number=p.v_number, family_name=p.family_name, given_names=p.given_names,
        birth_date=p.birth_date, gender="V" if p.gender is m.Gender.FEMALE else "M",
        nationalities=p.nationalities, languages=p.languages, identity="AANNEMELIJK",
        procedures=(asylum, medical), vulnerabilities=frozenset({"PSYCHISCH"}),
        bma_advice="BMA-advies: behandeling beschikbaar in land van herkomst.",
        public_order=(
            IndPublicOrderNote(code="INREISVERBOD", since=date(2020, 12, 1),
                               description="Inreisverbod voor twee jaar."),
        ),
    )  # fmt: skip


def dtv_export(p: m.Person) -> DtvCaseExport:
    assert p.v_number is not None
    return DtvCaseExport(
        v_number=p.v_number, family_name=p.family_name, given_names=p.given_names,
        birth_date=p.birth_date, nationalities=p.nationalities,
        departure_obligation_since=date(2020, 12, 29),
        attempts=(
            DepartureAttempt(date=date(2021, 4, 12), kind="ONDERSTEUND",
                             destination=p.nationalities[0], result="GEEN_REISDOCUMENT",
                             remark="Ambassade gaf geen laissez-passer af."),
        ),
        family_with_minors=True, case_manager_notes="Vertrekgesprekken gevoerd.",
    )  # fmt: skip


def book_message(model: type[MessageT], case_id: uuid.UUID, **update: Any) -> MessageT:
    """The case book's message of that type, moved to ``case_id``."""
    for path in CasePath:
        for step in CaseWriter().case(0, path).steps:
            if isinstance(step.message, model):
                return step.message.model_copy(update={"case_id": case_id, **update})
    raise AssertionError(model)


async def deliver(adapter: Adapter[Any], message: m.AvroModel, sender: str, at: datetime) -> None:
    await adapter.receive(message, sender=sender, message_id=uuid.uuid4(), received_at=at)


def client(party_id: str) -> RecordingClient:
    return RecordingClient(party_id, ROLES)


async def opened_case(
    clock: Clock, *, inform_ngo: bool = False
) -> tuple[MunicipalityAdapter, RecordingClient, uuid.UUID]:
    c = client(MUN)
    municipality = MunicipalityAdapter(MUN, c, clock=clock, network=NET)
    case_id = await municipality.register_intake(
        intake_form(person()), ngo=NGO, inform_ngo=inform_ngo
    )
    return municipality, c, case_id


# --- the base: policy, dispatch, the recording client ----------------------------------------


@pytest.mark.parametrize("adapter", ADAPTERS, ids=lambda a: a.__name__)
def test_sends_and_receives_are_within_the_policy(adapter: type[Adapter[Any]]) -> None:
    assert adapter.SENDS and adapter.RECEIVES
    for name in adapter.SENDS:
        assert adapter.ROLE in POLICY[name].senders, name
    for name in adapter.RECEIVES:
        assert adapter.ROLE in POLICY[name].recipients, name


def test_every_party_kind_has_one_adapter() -> None:
    assert sorted(a.ROLE for a in ADAPTERS) == sorted(set(R) - {R.UNKNOWN})


def test_an_adapter_beyond_the_policy_fails_when_defined() -> None:
    with pytest.raises(PolicyDenied):

        class _Rogue(NgoAdapter):
            ROLE = R.NGO
            SENDS = frozenset({m.DossierDelivered.avro_name})


def _one_of_each() -> dict[str, m.AvroModel]:
    found: dict[str, m.AvroModel] = {}
    for path in CasePath:
        for step in CaseWriter().case(0, path).steps:
            found.setdefault(step.message.avro_name, step.message)
    return found


@pytest.mark.parametrize("adapter", ADAPTERS, ids=lambda a: a.__name__)
async def test_a_type_not_received_is_unexpected(adapter: type[Adapter[Any]]) -> None:
    party = next(p.party_id for p in NETWORK if p.role is adapter.ROLE)
    instance = adapter(party, client(party), network=NET)
    others = [msg for name, msg in _one_of_each().items() if name not in adapter.RECEIVES]
    assert others
    for message in others:
        with pytest.raises(UnexpectedMessage) as caught:
            await deliver(instance, message, MUN, START)
        assert caught.value.reason == "UNEXPECTED_MESSAGE"
    assert len(instance.register) == 0  # nothing unexpected reaches the register


async def test_recording_client_refuses_like_the_gateway() -> None:
    c = client(NGO)
    closed = book_message(m.CaseClosed, uuid.uuid4())
    with pytest.raises(PolicyDenied):
        await c.send(closed, [DTV])  # only the municipality closes
    with pytest.raises(UnknownParty):
        await c.send(book_message(m.ScenarioResponse, uuid.uuid4()), ["gemeente-nergens"])
    with pytest.raises(PolicyDenied, match="must be the sender"):  # in another city's name
        await client(MUN).send(book_message(m.CaseClosed, uuid.uuid4()), [DTV])
    with pytest.raises(LocalError, match="1 to"):
        await c.send(book_message(m.ScenarioResponse, uuid.uuid4()), [])
    assert c.sent == []


async def test_unknown_case_is_an_error_not_a_blank_record() -> None:
    municipality = MunicipalityAdapter(MUN, client(MUN), network=NET)
    with pytest.raises(UnknownCase):
        await municipality.close_case(uuid.uuid4(), m.CaseOutcome.LEGAL_STAY)


class DownClient(RecordingClient):
    """A gateway whose log is unreachable."""

    async def send(self, message: m.AvroModel, recipients: Sequence[str], **ids: Any) -> uuid.UUID:
        raise TransportUnavailable("no broker answers")


async def test_a_failed_handler_leaves_the_register_for_the_retry() -> None:
    clock, p = Clock(), person()
    ind = IndAdapter(
        IND, DownClient(IND, ROLES), exports=[ind_export(p)], auto_deliver=True, network=NET
    )
    case_id = uuid.uuid4()
    intake = book_message(m.IntakeRegistered, case_id, person=p, municipality=MUN)
    with pytest.raises(TransportUnavailable):
        await deliver(ind, intake, MUN, clock())
    assert case_id not in ind.register
    ind.client = client(IND)  # the broker is back; the gateway delivers the intake again
    await deliver(ind, intake, MUN, clock())
    assert ind.register[case_id].step is Step.REST_PERIOD
    assert ind.register[case_id].warnings == ()  # not a REPEATED_INTAKE


async def test_coa_books_nothing_when_its_answer_cannot_go_out() -> None:
    coa = CoaAdapter(COA, DownClient(COA, ROLES), facilities=FACILITIES, network=NET)
    with pytest.raises(TransportUnavailable):
        await deliver(coa, book_message(m.TransferRequest, uuid.uuid4()), MUN, START)
    assert coa.free_places(m.FacilityKind.FREEDOM_RESTRICTING_LOCATION) == 4


def test_network_names_the_national_parties() -> None:
    network = NET
    assert [network.only(role) for role in (R.IND, R.DTV, R.AVIM, R.COA, R.ESCALATION)] == [
        IND, DTV, AVIM, COA, DESK,
    ]  # fmt: skip
    with pytest.raises(LocalError):
        network.only(R.MUNICIPALITY)  # five pilot cities


# --- municipality ----------------------------------------------------------------------------


async def test_intake_form_maps_to_intake_registered_for_dtv_and_ind() -> None:
    clock = Clock()
    municipality, c, case_id = await opened_case(clock)
    sent = c.last()
    assert sent.recipients == (DTV, IND)
    intake = sent.message
    assert isinstance(intake, m.IntakeRegistered)
    p = person()
    assert (intake.case_id, intake.municipality, intake.guiding_ngo) == (case_id, MUN, NGO)
    assert case_id.version == 4
    assert (intake.person.family_name, intake.person.v_number) == (p.family_name, p.v_number)
    assert intake.person.gender is p.gender
    assert intake.person.identity_status is m.IdentityStatus.UNKNOWN  # not the city's call
    [doc] = intake.person.documents
    assert (doc.kind, doc.held_by) == (m.DocumentKind.PASSPORT, m.DocumentHolder.DTV)
    assert intake.shelter is m.ShelterKind.DAY_AND_NIGHT
    assert intake.registered_at == START and intake.consent_to_share
    record = municipality.register[case_id]
    assert (record.step, record.family_name, record.ngo) == (Step.INTAKE, p.family_name, NGO)


async def test_intake_goes_to_the_ngo_when_asked() -> None:
    _, c, _ = await opened_case(Clock(), inform_ngo=True)
    assert c.last().recipients == (DTV, IND, NGO)


async def test_dossiers_start_the_rest_period_and_merge() -> None:
    clock = Clock()
    municipality, _, case_id = await opened_case(clock)
    from_ind = book_message(
        m.DossierDelivered, case_id, delivered_by=R.IND, delivered_at=clock.advance(hours=20),
        vulnerability=m.VulnerabilityFlags(psychological=True), departure_obligation_since=None,
    )  # fmt: skip
    await deliver(municipality, from_ind, IND, clock())
    first_ends = from_ind.delivered_at + REST_PERIOD
    from_dtv = book_message(
        m.DossierDelivered, case_id, delivered_by=R.DTV, delivered_at=clock.advance(hours=20),
        vulnerability=m.VulnerabilityFlags(minor_children=True),
        departure_obligation_since=date(2020, 12, 29),
    )  # fmt: skip
    await deliver(municipality, from_dtv, DTV, clock())
    record = municipality.register[case_id]
    assert record.step is Step.REST_PERIOD
    assert record.rest_period_ends == first_ends  # the first delivery starts it
    assert record.dossiers_from == (R.IND, R.DTV)
    assert record.departure_obligation_since == date(2020, 12, 29)
    assert record.vulnerability == m.VulnerabilityFlags(psychological=True, minor_children=True)
    assert record.warnings == ()


async def test_scenario_goes_to_the_partners_and_supersedes() -> None:
    clock = Clock()
    municipality, c, case_id = await opened_case(clock)
    plan = [
        Trajectstap(omschrijving="Vertrekgesprek", uitvoerder=DTV, uiterlijk=date(2026, 12, 1)),
        Trajectstap(omschrijving="Casusoverleg", uitvoerder=MUN, uiterlijk=date(2026, 12, 15),
                    status="lopend"),
    ]  # fmt: skip
    first = await municipality.set_scenario(
        case_id, m.Scenario.RETURN, plan, "Beide dossiers gewogen.", date(2027, 2, 1)
    )
    assert c.last().recipients == (NGO, IND, DTV)
    assert [(s.step_no, s.owner, s.owner_role, s.status) for s in first.plan] == [
        (1, DTV, R.DTV, m.PlanStepStatus.OPEN),
        (2, MUN, R.MUNICIPALITY, m.PlanStepStatus.IN_PROGRESS),
    ]
    assert first.supersedes is None
    second = await municipality.set_scenario(
        case_id, m.Scenario.ONWARD_MIGRATION, plan[1:], "Nieuw perspectief.", date(2027, 3, 1),
        also=[AVIM],
    )  # fmt: skip
    assert second.supersedes == first.decision_id
    assert c.last().recipients == (NGO, IND, DTV, AVIM)
    record = municipality.register[case_id]
    assert (record.scenario, record.decision_id) == (
        m.Scenario.ONWARD_MIGRATION,
        second.decision_id,
    )
    # the first was set without any dossier: the case flow's warning is kept, the decision
    # still went out
    assert record.warnings == (Warning.SCENARIO_BEFORE_DOSSIER,)


async def test_answers_escalation_transfer_and_close_update_the_municipal_register() -> None:
    clock = Clock()
    municipality, c, case_id = await opened_case(clock)
    await deliver(municipality, book_message(m.DossierDelivered, case_id), IND, clock())
    clock.advance(days=15)
    decision = await municipality.set_scenario(
        case_id, m.Scenario.RETURN, [], "Terugkeer is haalbaar.", date(2027, 2, 1)
    )
    stale = book_message(m.ScenarioResponse, case_id, answer=m.ScenarioAnswer.DECLINES)
    await deliver(municipality, stale, NGO, clock())  # names the case book's decision
    assert municipality.register[case_id].answer is None
    answer = book_message(
        m.ScenarioResponse, case_id, decision_id=decision.decision_id,
        answer=m.ScenarioAnswer.UNDECIDED,
    )  # fmt: skip
    await deliver(municipality, answer, NGO, clock())
    request = await municipality.escalate(
        case_id, m.EscalationReason.NO_AGREEMENT_ON_SCENARIO, "Is terugkeer haalbaar?",
        {DTV: "Ja.", NGO: "Medische situatie staat in de weg."},
    )  # fmt: skip
    assert c.last().recipients == (DESK,)
    assert request.current_scenario is m.Scenario.RETURN
    assert [p.party for p in request.positions] == [DTV, NGO]
    assert municipality.register[case_id].step is Step.ESCALATED
    decided = book_message(m.EscalationDecision, case_id, escalation_id=request.escalation_id)
    await deliver(municipality, decided, DESK, clock.advance(days=7))
    report = book_message(m.IdentityReport, case_id, supervised_departure_possible=True)
    await deliver(municipality, report, AVIM, clock())
    transfer = await municipality.request_transfer(
        case_id, m.FacilityKind.FREEDOM_RESTRICTING_LOCATION, "Werkt mee aan vertrek.",
        date(2027, 1, 10),
    )  # fmt: skip
    assert c.last().recipients == (COA,)
    confirmed = book_message(m.TransferConfirmed, case_id, transfer_id=transfer.transfer_id)
    await deliver(municipality, confirmed, COA, clock())
    closed = await municipality.close_case(
        case_id, m.CaseOutcome.SUPERVISED_DEPARTURE, destination_country="ERI",
        departure_date=date(2027, 2, 3),
    )  # fmt: skip
    # AVIM and COA worked on the case, so they hear of the close too
    assert c.last().recipients == (NGO, IND, DTV, AVIM, COA)
    record = municipality.register[case_id]
    assert record.answer is m.ScenarioAnswer.UNDECIDED
    assert record.escalation_outcome is m.EscalationOutcome.SCENARIO_SET
    assert record.identity_status is m.IdentityStatus.ESTABLISHED
    assert record.supervised_departure_possible is True
    assert record.transfer == confirmed
    assert (record.step, record.outcome, closed.closed_by) == (
        Step.CLOSED, m.CaseOutcome.SUPERVISED_DEPARTURE, MUN,
    )  # fmt: skip
    assert record.warnings == ()


async def test_a_refused_send_leaves_the_register_as_it_was() -> None:
    clock = Clock()
    wrong = {**{p: r for p, r in ROLES.items() if p != DTV}, COA: R.DTV}  # COA taken for DT&V
    network = Network(roles=wrong)
    municipality = MunicipalityAdapter(MUN, client(MUN), network=network, clock=clock)
    with pytest.raises(PolicyDenied):
        await municipality.register_intake(intake_form(person()), ngo=NGO)
    assert len(municipality.register) == 0


# --- NGO ---------------------------------------------------------------------------------------


async def test_ngo_records_the_answer_for_the_municipality_and_dtv() -> None:
    clock, c = Clock(), client(NGO)
    ngo = NgoAdapter(NGO, c, clock=clock, network=NET)
    case_id = uuid.uuid4()
    await deliver(ngo, book_message(m.IntakeRegistered, case_id, municipality=MUN), MUN, clock())
    dossier = book_message(
        m.DossierDelivered, case_id, vulnerability=m.VulnerabilityFlags(medical=True),
        medical_notes="BMA-advies: behandeling beschikbaar.",
    )  # fmt: skip
    await deliver(ngo, dossier, IND, clock())
    decision = book_message(m.ScenarioDecision, case_id, decided_by=MUN)
    decision_message = uuid.uuid4()
    await ngo.receive(
        decision, sender=MUN, message_id=decision_message, received_at=clock.advance(days=15)
    )
    with pytest.raises(UnknownDecision):
        await ngo.record_answer(case_id, uuid.uuid4(), m.ScenarioAnswer.PARTICIPATES)
    response = await ngo.record_answer(
        case_id, decision.decision_id, m.ScenarioAnswer.PARTICIPATES,
        conditions="Als de medische overdracht geregeld is.", notes="Besproken met tolk.",
    )  # fmt: skip
    sent = c.last()
    assert sent.recipients == (MUN, DTV)
    assert sent.causation_id == decision_message
    assert (response.recorded_by, response.answer) == (NGO, m.ScenarioAnswer.PARTICIPATES)
    record = ngo.register[case_id]
    assert record.vulnerability is not None and record.vulnerability.medical
    assert record.medical_notes == ("BMA-advies: behandeling beschikbaar.",)
    assert (record.scenario, record.plan) == (decision.scenario, decision.plan)
    assert record.answer is m.ScenarioAnswer.PARTICIPATES


async def test_a_decision_proves_an_escalation_the_ngo_never_saw() -> None:
    clock = Clock()
    ngo = NgoAdapter(NGO, client(NGO), clock=clock, network=NET)
    case_id = uuid.uuid4()
    await deliver(ngo, book_message(m.IntakeRegistered, case_id), MUN, clock())
    await deliver(ngo, book_message(m.DossierDelivered, case_id), IND, clock())
    await deliver(ngo, book_message(m.ScenarioDecision, case_id), MUN, clock.advance(days=15))
    decided = book_message(m.EscalationDecision, case_id, instructions="Terugkeer met DT&V.")
    await deliver(ngo, decided, DESK, clock.advance(days=30))
    record = ngo.register[case_id]
    assert (record.step, record.instructions) == (Step.SCENARIO_SET, "Terugkeer met DT&V.")
    assert Warning.DECISION_WITHOUT_ESCALATION not in record.warnings
    assert record.warnings == ()


# --- IND -------------------------------------------------------------------------------------


def test_ind_export_maps_to_its_part_of_the_dossier() -> None:
    from adapters.ind import dossier_of

    p, case_id = person(), uuid.uuid4()
    dossier = dossier_of(ind_export(p), case_id, START)
    assert (dossier.case_id, dossier.delivered_by, dossier.delivered_at) == (case_id, R.IND, START)
    assert dossier.person.v_number == p.v_number
    assert dossier.person.identity_status is m.IdentityStatus.PLAUSIBLE
    asylum, medical = dossier.procedures
    assert (asylum.kind, asylum.reference) == (m.ProcedureKind.ASYLUM_FIRST, "IND-482913")
    assert (medical.kind, medical.reference) == (m.ProcedureKind.MEDICAL_POSTPONEMENT, "IND-733105")
    [rejected] = asylum.decisions
    assert (rejected.outcome, rejected.departure_deadline) == (
        m.DecisionOutcome.REJECTED, date(2019, 11, 30),
    )  # fmt: skip
    assert [(a.instance, a.outcome, a.suspensive) for a in asylum.appeals] == [
        (m.AppealInstance.DISTRICT_COURT, m.AppealOutcome.DISMISSED, True),
        (m.AppealInstance.COUNCIL_OF_STATE, m.AppealOutcome.INADMISSIBLE, False),
    ]
    assert dossier.vulnerability == m.VulnerabilityFlags(psychological=True)
    assert dossier.medical_notes is not None and dossier.medical_notes.startswith("BMA")
    assert [n.kind for n in dossier.public_order] == [m.PublicOrderKind.ENTRY_BAN]
    assert dossier.departure_obligation_since is None and dossier.return_history == ()
    default_codec().encode(dossier.avro_name, dossier.to_avro())  # fits the contract


async def test_ind_delivers_on_intake_for_a_known_v_number() -> None:
    clock, c = Clock(), client(IND)
    p = person()
    ind = IndAdapter(IND, c, exports=[ind_export(p)], auto_deliver=True, clock=clock, network=NET)
    known, unknown = uuid.uuid4(), uuid.uuid4()
    intake = book_message(m.IntakeRegistered, known, person=p, municipality=MUN, guiding_ngo=NGO)
    intake_message = uuid.uuid4()
    await ind.receive(intake, sender=MUN, message_id=intake_message, received_at=clock())
    [sent] = c.sent
    assert sent.recipients == (MUN, NGO) and sent.causation_id == intake_message
    assert isinstance(sent.message, m.DossierDelivered)
    assert sent.message.delivered_by is R.IND
    assert ind.register[known].dossier_id == sent.message.dossier_id
    assert ind.register[known].step is Step.REST_PERIOD
    stranger = p.model_copy(update={"v_number": "9999999999"})
    await deliver(ind, book_message(m.IntakeRegistered, unknown, person=stranger), MUN, clock())
    assert len(c.sent) == 1  # nothing known: nothing to deliver yet
    with pytest.raises(UnknownPerson):
        await ind.deliver_dossier(unknown)
    await deliver(ind, book_message(m.IdentityReport, known), AVIM, clock())
    assert ind.register[known].identity_status is m.IdentityStatus.ESTABLISHED


async def test_ind_without_auto_delivery_waits_to_be_asked() -> None:
    clock, c = Clock(), client(IND)
    p = person()
    ind = IndAdapter(IND, c, exports=[ind_export(p)], clock=clock, network=NET)
    case_id = uuid.uuid4()
    intake = book_message(m.IntakeRegistered, case_id, person=p, municipality=MUN, guiding_ngo=None)
    await deliver(ind, intake, MUN, clock())
    assert c.sent == []
    await ind.deliver_dossier(case_id)
    assert c.last().recipients == (MUN,)  # no NGO guides this person


# --- DT&V ------------------------------------------------------------------------------------


async def test_dtv_export_maps_to_its_part_of_the_dossier() -> None:
    clock, c = Clock(), client(DTV)
    p = person()
    dtv = DtvAdapter(DTV, c, exports=[dtv_export(p)], clock=clock, network=NET)
    case_id = uuid.uuid4()
    intake = book_message(m.IntakeRegistered, case_id, person=p, municipality=MUN, guiding_ngo=NGO)
    await deliver(dtv, intake, MUN, clock())
    dossier = await dtv.deliver_dossier(case_id)
    assert c.last().recipients == (MUN, NGO)
    assert dossier.delivered_by is R.DTV
    assert dossier.departure_obligation_since == date(2020, 12, 29)
    [attempt] = dossier.return_history
    assert (attempt.kind, attempt.outcome, attempt.destination_country) == (
        m.ReturnKind.ASSISTED, m.ReturnOutcome.NO_TRAVEL_DOCUMENT, p.nationalities[0],
    )  # fmt: skip
    assert dossier.vulnerability == m.VulnerabilityFlags(minor_children=True)
    assert dossier.procedures == ()  # IND's part


async def test_dtv_supervision_counts_per_municipality_and_outcome() -> None:
    clock = Clock()
    dtv = DtvAdapter(DTV, client(DTV), clock=clock, network=NET)
    outcomes: dict[str, list[m.CaseOutcome | None]] = {
        "gemeente-amsterdam": [m.CaseOutcome.INDEPENDENT_DEPARTURE, m.CaseOutcome.LEGAL_STAY],
        "gemeente-rotterdam": [m.CaseOutcome.ONWARD_MIGRATION, None],
        MUN: [m.CaseOutcome.INDEPENDENT_DEPARTURE],
    }
    for city, ends in outcomes.items():
        for outcome in ends:
            case_id = uuid.uuid4()
            intake = book_message(m.IntakeRegistered, case_id, municipality=city)
            await deliver(dtv, intake, city, clock.advance(hours=1))
            if outcome is not None:
                closed = book_message(m.CaseClosed, case_id, closed_by=city, outcome=outcome)
                await deliver(dtv, closed, city, clock.advance(days=60))
    report = dtv.supervision_report()
    assert report.made_known == 5
    assert report.per_municipality == {"gemeente-amsterdam": 2, "gemeente-rotterdam": 2, MUN: 1}
    assert report.outcomes == {
        m.CaseOutcome.INDEPENDENT_DEPARTURE: 2,
        m.CaseOutcome.LEGAL_STAY: 1,
        m.CaseOutcome.ONWARD_MIGRATION: 1,
    }
    assert (report.departures, report.open_cases) == (3, 1)


async def test_dtv_may_ask_coa_and_the_desk() -> None:
    clock, c = Clock(), client(DTV)
    dtv = DtvAdapter(DTV, c, clock=clock, network=NET)
    case_id = uuid.uuid4()
    await deliver(dtv, book_message(m.IntakeRegistered, case_id), MUN, clock())
    await dtv.request_transfer(
        case_id, m.FacilityKind.DEPARTURE_CENTRE, "Vertrek binnen vier weken.", date(2027, 1, 4)
    )
    await dtv.escalate(case_id, m.EscalationReason.NO_COOPERATION, "Geen medewerking.")
    assert [s.recipients for s in c.sent] == [(COA,), (DESK,)]
    assert dtv.register[case_id].step is Step.ESCALATED


# --- AVIM ------------------------------------------------------------------------------------


async def test_avim_reports_checks_and_records_to_the_case_partners() -> None:
    clock, c = Clock(), client(AVIM)
    avim = AvimAdapter(AVIM, c, clock=clock, network=NET)
    case_id = uuid.uuid4()
    await deliver(avim, book_message(m.ScenarioDecision, case_id, decided_by=MUN), MUN, clock())
    report = await avim.report_identity(
        case_id,
        [
            Onderzoek(soort="vingerafdrukken", datum=date(2026, 12, 1), uitkomst="bevestigd"),
            Onderzoek(soort="ambassadepresentatie", datum=date(2026, 12, 8),
                      uitkomst="bevestigd", toelichting="Nationaliteit bevestigd."),
        ],
        "vastgesteld",
        [Antecedent(soort="veroordeling", sinds=date(2023, 5, 1), omschrijving="Winkeldiefstal")],
    )  # fmt: skip
    assert c.last().recipients == (MUN, DTV, IND)
    assert report.identity_status is m.IdentityStatus.ESTABLISHED
    assert [(k.kind, k.result) for k in report.checks] == [
        (m.IdentityCheckKind.FINGERPRINTS, m.CheckResult.CONFIRMED),
        (m.IdentityCheckKind.EMBASSY_PRESENTATION, m.CheckResult.CONFIRMED),
    ]
    assert [n.kind for n in report.contraindications] == [m.PublicOrderKind.CRIMINAL_CONVICTION]
    assert report.supervised_departure_possible  # identity established
    record = avim.register[case_id]
    assert record.report_ids == (report.report_id,) and record.warnings == ()
    unsure = await avim.report_identity(uuid.uuid4(), [], "in onderzoek", to=[DTV])
    assert not unsure.supervised_departure_possible
    assert c.last().recipients == (DTV,)


# --- COA -------------------------------------------------------------------------------------


FACILITIES = [
    Facility(name="VBL Ter Apel", municipality="Westerwolde",
             kind=m.FacilityKind.FREEDOM_RESTRICTING_LOCATION, places=3),
    Facility(name="VBL Amsterdam", municipality="Amsterdam",
             kind=m.FacilityKind.FREEDOM_RESTRICTING_LOCATION, places=1),
]  # fmt: skip


async def test_coa_accepts_while_places_remain_then_refuses() -> None:
    clock, c = Clock(), client(COA)
    coa = CoaAdapter(COA, c, facilities=FACILITIES, clock=clock, network=NET)
    kind = m.FacilityKind.FREEDOM_RESTRICTING_LOCATION
    assert coa.free_places(kind) == 4
    answers = []
    for size in (2, 1, 1, 1):
        request = book_message(
            m.TransferRequest, uuid.uuid4(), household_size=size, facility_kind=kind,
            requested_by=MUN, desired_date=date(2026, 11, 20),
        )  # fmt: skip
        message_id = uuid.uuid4()
        await coa.receive(request, sender=MUN, message_id=message_id, received_at=clock())
        sent = c.last()
        assert sent.recipients == (MUN, DTV) and sent.causation_id == message_id
        assert isinstance(sent.message, m.TransferConfirmed)
        answers.append(sent.message)
    assert [a.accepted for a in answers] == [True, True, True, False]
    assert [a.facility_name for a in answers[:3]] == ["VBL Ter Apel", "VBL Ter Apel", "VBL Amsterdam"]  # fmt: skip
    assert answers[0].facility_municipality == "Westerwolde"
    assert answers[0].transfer_date == date(2026, 11, 20)
    assert (
        answers[3].refusal_reason is not None and "FREEDOM_RESTRICTING" in answers[3].refusal_reason
    )
    assert coa.free_places(kind) == 0
    refused = coa.register[answers[3].case_id]
    assert [t.accepted for t in refused.transfers] == [False]


async def test_coa_answers_a_repeated_request_without_booking_twice() -> None:
    clock, c = Clock(), client(COA)
    coa = CoaAdapter(COA, c, facilities=FACILITIES[1:], clock=clock, network=NET)
    request = book_message(m.TransferRequest, uuid.uuid4(), requested_by=DTV)
    await deliver(coa, request, DTV, clock())
    await deliver(coa, request, DTV, clock())
    first, again = c.of_type(m.TransferConfirmed)
    assert first.accepted and again.accepted and first.facility_name == again.facility_name
    assert c.last().recipients == (DTV,)  # DT&V asked: it is told once
    assert coa.occupied == {"VBL Amsterdam": 1}


class SlowClient(RecordingClient):
    async def send(self, message: m.AvroModel, recipients: Sequence[str], **ids: Any) -> uuid.UUID:
        await asyncio.sleep(0.01)  # a deliberately slow fake: the gateway takes a moment to send
        return await super().send(message, recipients, **ids)


async def test_coa_does_not_give_one_place_to_two_requests_in_flight() -> None:
    slow = SlowClient(COA, ROLES)
    coa = CoaAdapter(COA, slow, facilities=FACILITIES[1:], network=NET)
    requests = [book_message(m.TransferRequest, uuid.uuid4()) for _ in range(2)]
    await asyncio.gather(*(deliver(coa, r, MUN, START) for r in requests))
    assert sorted(a.accepted for a in slow.of_type(m.TransferConfirmed)) == [False, True]


# --- escalation desk -------------------------------------------------------------------------


async def test_desk_queues_requests_and_tells_the_parties_of_the_case() -> None:
    clock, c = Clock(), client(DESK)
    desk = EscalationAdapter(DESK, c, clock=clock, network=NET)
    later, sooner = uuid.uuid4(), uuid.uuid4()
    for case_id, wanted in ((later, date(2027, 1, 20)), (sooner, date(2027, 1, 5))):
        request = book_message(
            m.EscalationRequest, case_id, escalation_id=uuid.uuid4(),
            decision_wanted_by=wanted, requested_by=NGO,
            positions=(
                m.PartyPosition(party=MUN, position="Terugkeer."),
                m.PartyPosition(party=AVIM, position="Geen bezwaar."),
            ),
        )  # fmt: skip
        await deliver(desk, request, NGO, clock.advance(hours=1))
    assert [e.request.case_id for e in desk.queue()] == [sooner, later]
    first = desk.queue()[0]
    with pytest.raises(LocalError, match="names the scenario"):
        await desk.decide(first.request.escalation_id, m.EscalationOutcome.SCENARIO_SET, None, "")
    decision = await desk.decide(
        first.request.escalation_id, m.EscalationOutcome.SCENARIO_SET, m.Scenario.RETURN,
        "Terugkeer onder begeleiding van DT&V.",
    )  # fmt: skip
    # AVIM's position is heard, but a decision may not go to AVIM (broker.policy)
    assert c.last().recipients == (NGO, MUN, IND, DTV)
    assert c.last().causation_id == first.message_id
    assert decision.binding_on == (NGO, MUN, IND, DTV)
    assert [e.request.case_id for e in desk.queue()] == [later]
    with pytest.raises(UnknownEscalation):
        await desk.decide(decision.escalation_id, m.EscalationOutcome.EXIT_FROM_LVV, None, "")
    record = desk.register[sooner]
    assert record.outcomes == (m.EscalationOutcome.SCENARIO_SET,) and record.warnings == ()


# --- one case end to end across all seven party kinds ----------------------------------------


class LoopbackNetwork:
    """An in-memory network: what a party sends waits in one queue until `settle` hands it,
    decoded from its Avro bytes, to each recipient's adapter (as a gateway would)."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.adapters: dict[str, Adapter[Any]] = {}
        self.pending: deque[Sent] = deque()
        self.delivered: list[tuple[str, str]] = []  # (recipient, message type)

    async def settle(self) -> None:
        codec = default_codec()
        while self.pending:
            sent = self.pending.popleft()
            name = sent.message.avro_name
            message = m.model_for(name).from_avro(codec.decode(name, sent.payload))
            assert message == sent.message  # the trip over the wire changes nothing
            for recipient in sent.recipients:
                await self.adapters[recipient].receive(
                    message, sender=sent.sender, message_id=sent.message_id,
                    received_at=self.clock(),
                )  # fmt: skip
                self.delivered.append((recipient, name.rsplit(".", 1)[-1]))


class Router(RecordingClient):
    """A `RecordingClient` that also puts each message on the in-memory network."""

    def __init__(self, party_id: str, network: LoopbackNetwork) -> None:
        super().__init__(party_id, ROLES)
        self.network = network

    async def send(
        self,
        message: m.AvroModel,
        recipients: Sequence[str],
        *,
        correlation_id: uuid.UUID | None = None,
        causation_id: uuid.UUID | None = None,
    ) -> uuid.UUID:
        message_id = await super().send(
            message, recipients, correlation_id=correlation_id, causation_id=causation_id
        )
        self.network.pending.append(self.sent[-1])
        return message_id


async def test_one_case_end_to_end() -> None:
    clock = Clock()
    net = LoopbackNetwork(clock)
    p = person()
    municipality = MunicipalityAdapter(MUN, Router(MUN, net), clock=clock, network=NET)
    ngo = NgoAdapter(NGO, Router(NGO, net), clock=clock, network=NET)
    ind = IndAdapter(
        IND, Router(IND, net), exports=[ind_export(p)], auto_deliver=True, clock=clock, network=NET
    )
    dtv = DtvAdapter(DTV, Router(DTV, net), exports=[dtv_export(p)], clock=clock, network=NET)
    avim = AvimAdapter(AVIM, Router(AVIM, net), clock=clock, network=NET)
    coa = CoaAdapter(COA, Router(COA, net), facilities=FACILITIES, clock=clock, network=NET)
    desk = EscalationAdapter(DESK, Router(DESK, net), clock=clock, network=NET)
    parties: list[Adapter[Any]] = [municipality, ngo, ind, dtv, avim, coa, desk]
    net.adapters = {a.party_id: a for a in parties}

    # 1-2. intake; IND answers with its dossier at once, DT&V a little later
    case_id = await municipality.register_intake(intake_form(p), ngo=NGO, inform_ngo=True)
    await net.settle()
    clock.advance(hours=3)
    await dtv.deliver_dossier(case_id)
    await net.settle()
    assert municipality.register[case_id].dossiers_from == (R.IND, R.DTV)

    # 3. after the rest period: scenario (AVIM told: a supervised departure is in view)
    clock.advance(days=15)
    plan = [Trajectstap(omschrijving="Vertrekgesprek", uitvoerder=DTV, uiterlijk=date(2026, 12, 8))]
    decision = await municipality.set_scenario(
        case_id, m.Scenario.RETURN, plan, "Terugkeer is het meest kansrijk.", date(2027, 3, 1),
        also=[AVIM],
    )  # fmt: skip
    await net.settle()
    clock.advance(days=2)
    await ngo.record_answer(case_id, decision.decision_id, m.ScenarioAnswer.UNDECIDED)
    await net.settle()

    # 4. stuck: the desk decides
    clock.advance(days=30)
    request = await municipality.escalate(
        case_id, m.EscalationReason.NO_AGREEMENT_ON_SCENARIO, "Is terugkeer haalbaar?",
        {DTV: "Terugkeer is haalbaar.", NGO: "Medische situatie staat in de weg."},
    )  # fmt: skip
    await net.settle()
    assert [e.request.escalation_id for e in desk.queue()] == [request.escalation_id]
    clock.advance(days=7)
    await desk.decide(
        request.escalation_id, m.EscalationOutcome.SCENARIO_SET, m.Scenario.RETURN,
        "Terugkeer onder begeleiding van DT&V; medische overdracht regelen.",
    )  # fmt: skip
    await net.settle()

    # 5. identity established; transfer to a freedom-restricting location
    clock.advance(days=10)
    checks = [Onderzoek(soort="ambassadepresentatie", datum=clock().date(), uitkomst="bevestigd")]
    await avim.report_identity(case_id, checks, "vastgesteld")
    await net.settle()
    clock.advance(days=5)
    await municipality.request_transfer(
        case_id, m.FacilityKind.FREEDOM_RESTRICTING_LOCATION, "Vertrek vanuit de VBL.",
        clock().date() + timedelta(days=7),
    )  # fmt: skip
    await net.settle()

    # 6. departed under supervision
    clock.advance(days=30)
    await municipality.close_case(
        case_id, m.CaseOutcome.SUPERVISED_DEPARTURE, destination_country=p.nationalities[0],
        departure_date=clock().date(),
    )  # fmt: skip
    await net.settle()

    mine = municipality.register[case_id]
    assert (mine.step, mine.outcome, mine.warnings) == (
        Step.CLOSED, m.CaseOutcome.SUPERVISED_DEPARTURE, (),
    )  # fmt: skip
    assert mine.answer is m.ScenarioAnswer.UNDECIDED
    assert mine.escalation_outcome is m.EscalationOutcome.SCENARIO_SET
    assert mine.identity_status is m.IdentityStatus.ESTABLISHED
    assert mine.transfer is not None and mine.transfer.facility_name == "VBL Ter Apel"
    assert mine.rest_period_ends == START + REST_PERIOD
    for party in (ngo, ind, dtv, avim, coa):  # everyone the close went to
        record = party.register[case_id]
        assert (record.step, record.outcome, record.warnings) == (
            Step.CLOSED, m.CaseOutcome.SUPERVISED_DEPARTURE, (),
        ), party.party_id  # fmt: skip
    desk_view = desk.register[case_id]  # the desk is not told of closes (broker.policy)
    assert (desk_view.step, desk_view.warnings, desk.queue()) == (Step.SCENARIO_SET, (), [])
    assert dtv.register[case_id].transfer == mine.transfer
    assert ngo.register[case_id].instructions is not None
    assert ind.register[case_id].identity_status is m.IdentityStatus.ESTABLISHED
    assert [t.accepted for t in coa.register[case_id].transfers] == [True]
    report = dtv.supervision_report()
    assert (report.made_known, report.per_municipality, report.departures) == (1, {MUN: 1}, 1)
    assert report.outcomes == {m.CaseOutcome.SUPERVISED_DEPARTURE: 1}
    assert Counter(kind for _, kind in net.delivered) == {
        "IntakeRegistered": 3, "DossierDelivered": 4, "ScenarioDecision": 4,
        "ScenarioResponse": 2, "EscalationRequest": 1, "EscalationDecision": 4,
        "IdentityReport": 3, "TransferRequest": 1, "TransferConfirmed": 2, "CaseClosed": 5,
    }  # fmt: skip


def test_an_adapter_requires_its_network_and_has_no_default_to_the_demo_parties() -> None:
    with pytest.raises(TypeError, match="network"):
        MunicipalityAdapter(MUN, client(MUN))  # type: ignore[call-arg]  # the point of the test


def test_the_network_of_a_directory_has_its_parties_and_roles() -> None:
    from tests.crypto_net import Net

    directory = Net().directory
    assert Network.of(directory).roles == {p: e.role for p, e in directory.parties.items()}
