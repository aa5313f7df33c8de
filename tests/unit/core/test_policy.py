"""The send policy: every message the case book's realistic cases send is allowed, and the
table refuses what the 2018 agreement does not provide for."""

from __future__ import annotations

import pytest

from broker.errors import PolicyDenied
from broker.models import MESSAGE_MODELS, PartyRole
from broker.policy import POLICY, allowed_recipients, check, may_answer
from demo.casebook import NETWORK, CaseWriter

ROLE = {party.party_id: party.role for party in NETWORK}
R = PartyRole


def test_every_step_of_sixty_case_book_cases_is_allowed() -> None:
    cases = CaseWriter().cases(60)
    steps = [step for case in cases for step in case.steps]
    assert len({type(step.message) for step in steps}) == 10  # every case-flow message occurs
    for step in steps:
        check(
            step.message.avro_name,
            ROLE[step.sender],
            tuple(ROLE[recipient] for recipient in step.recipients),
        )


def test_every_rule_names_a_message_of_the_contract() -> None:
    assert set(POLICY) <= set(MESSAGE_MODELS)


def test_an_ngo_may_not_deliver_a_dossier() -> None:
    with pytest.raises(PolicyDenied, match="NGO may not send"):
        check("nl.lvv.v1.DossierDelivered", R.NGO, (R.MUNICIPALITY,))


def test_a_municipality_may_not_deliver_a_dossier() -> None:
    with pytest.raises(PolicyDenied, match="MUNICIPALITY may not send"):
        check("nl.lvv.v1.DossierDelivered", R.MUNICIPALITY, (R.NGO,))


def test_an_intake_may_not_go_to_coa() -> None:
    with pytest.raises(PolicyDenied, match="may not be sent to a COA"):
        check("nl.lvv.v1.IntakeRegistered", R.MUNICIPALITY, (R.DTV, R.COA))


def test_one_forbidden_recipient_denies_the_whole_message() -> None:
    check("nl.lvv.v1.IntakeRegistered", R.MUNICIPALITY, (R.DTV, R.IND))
    with pytest.raises(PolicyDenied):
        check("nl.lvv.v1.IntakeRegistered", R.MUNICIPALITY, (R.DTV, R.IND, R.AVIM))


@pytest.mark.parametrize(
    "message_type",
    ["nl.lvv.v1.AuditEvent", "nl.lvv.v1.PartyDirectory", "nl.lvv.v1.SecureEnvelope"],
)
def test_network_records_may_not_travel_inside_an_envelope(message_type: str) -> None:
    with pytest.raises(PolicyDenied, match="may not be sent in an envelope"):
        check(message_type, R.MUNICIPALITY, (R.DTV,))


def test_an_unknown_role_may_send_nothing() -> None:
    with pytest.raises(PolicyDenied):
        check("nl.lvv.v1.DeliveryReceipt", R.UNKNOWN, (R.DTV,))


@pytest.mark.parametrize("sender", sorted(set(PartyRole) - {R.UNKNOWN}))
def test_a_receipt_goes_back_to_every_role_that_may_send_to_the_receipting_one(
    sender: PartyRole,
) -> None:
    for role in set(PartyRole) - {R.UNKNOWN}:
        if may_answer(sender, role):
            check("nl.lvv.v1.DeliveryReceipt", sender, (role,))
        else:
            with pytest.raises(PolicyDenied):
                check("nl.lvv.v1.DeliveryReceipt", sender, (role,))


def test_receipts_answer_the_case_flow() -> None:
    assert may_answer(R.DTV, R.MUNICIPALITY)  # DT&V receives intakes from municipalities
    assert may_answer(R.MUNICIPALITY, R.IND)  # municipalities receive IND's dossiers
    assert not may_answer(R.COA, R.IND)  # IND never sends COA anything
    assert not may_answer(R.AVIM, R.NGO)


def test_a_municipality_may_send_to_dtv_and_the_escalation_desk() -> None:
    recipients = allowed_recipients(R.MUNICIPALITY)
    assert {R.DTV, R.ESCALATION} <= recipients
    assert R.UNKNOWN not in recipients


def test_allowed_recipients_of_an_unknown_role_is_empty() -> None:
    assert allowed_recipients(R.UNKNOWN) == frozenset()
