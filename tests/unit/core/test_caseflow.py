"""The case flow's transition table (broker/caseflow.py): the happy paths of the case book,
the 14-day rest period, and what out-of-order or repeated messages do (accepted, with a
warning naming the rule)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from broker.caseflow import REST_PERIOD, CaseState, Step, Warning, advance, event_time
from demo.casebook import CasePath, CaseWriter
from demo.casebook import Step as CaseStep

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
N = "nl.lvv.v1."


def run(*steps: tuple[str, timedelta]) -> tuple[CaseState, list[Warning | None]]:
    state, warnings = CaseState(), []
    for name, offset in steps:
        state, warning = advance(state, N + name, T0 + offset)
        warnings.append(warning)
    return state, warnings


def when(step: CaseStep) -> datetime:
    """When the step happened, by its message (every message of the case book says)."""
    at = event_time(step.message)
    assert at is not None, step.message.avro_name
    return at


@pytest.mark.parametrize("path", list(CasePath))
def test_every_path_of_the_case_book_closes_without_warnings(path: CasePath) -> None:
    case = CaseWriter().case(0, path)
    state = CaseState()
    for step in sorted(case.steps, key=when):
        state, warning = advance(state, step.message.avro_name, when(step))
        assert warning is None, (step.message.avro_name, state.step)
    assert state.step is Step.CLOSED
    assert state.warnings == ()


def test_the_first_dossier_starts_the_rest_period() -> None:
    state, _ = run(("IntakeRegistered", timedelta()), ("DossierDelivered", timedelta(days=1)))
    assert state.step is Step.REST_PERIOD
    assert state.rest_period_ends == T0 + timedelta(days=1) + REST_PERIOD
    second, _ = advance(state, N + "DossierDelivered", T0 + timedelta(days=3))
    assert second.rest_period_ends == state.rest_period_ends  # the second does not restart it


def test_rest_period_overdue_only_while_no_scenario_is_set() -> None:
    state, _ = run(("IntakeRegistered", timedelta()), ("DossierDelivered", timedelta()))
    assert not state.rest_period_overdue(T0 + REST_PERIOD - timedelta(seconds=1))
    assert state.rest_period_overdue(T0 + REST_PERIOD)
    decided, _ = advance(state, N + "ScenarioDecision", T0 + REST_PERIOD)
    assert not decided.rest_period_overdue(T0 + REST_PERIOD * 2)


def test_a_scenario_inside_the_rest_period_is_accepted_with_a_warning() -> None:
    state, warnings = run(
        ("IntakeRegistered", timedelta()), ("DossierDelivered", timedelta()),
        ("ScenarioDecision", timedelta(days=3)),
    )  # fmt: skip
    assert warnings[-1] is Warning.SCENARIO_IN_REST_PERIOD
    assert state.step is Step.SCENARIO_SET


def test_a_scenario_before_any_dossier_is_accepted_with_a_warning() -> None:
    state, warnings = run(
        ("IntakeRegistered", timedelta()), ("ScenarioDecision", timedelta(days=20))
    )
    assert warnings[-1] is Warning.SCENARIO_BEFORE_DOSSIER
    assert state.step is Step.SCENARIO_SET


def test_messages_before_the_intake_and_a_repeated_intake_are_flagged() -> None:
    _, warnings = run(("DossierDelivered", timedelta()), ("IntakeRegistered", timedelta(hours=1)))
    assert warnings == [Warning.BEFORE_INTAKE, Warning.REPEATED_INTAKE]


def test_escalation_opens_and_its_decision_closes_it() -> None:
    state, _ = run(
        ("IntakeRegistered", timedelta()), ("DossierDelivered", timedelta()),
        ("ScenarioDecision", timedelta(days=15)), ("EscalationRequest", timedelta(days=40)),
    )  # fmt: skip
    assert state.step is Step.ESCALATED and state.open_escalation
    state, warning = advance(state, N + "EscalationDecision", T0 + timedelta(days=45))
    assert warning is None and state.step is Step.SCENARIO_SET and not state.open_escalation


def test_nothing_moves_a_closed_case() -> None:
    state, warnings = run(
        ("IntakeRegistered", timedelta()), ("CaseClosed", timedelta(days=1)),
        ("ScenarioDecision", timedelta(days=2)),
    )  # fmt: skip
    assert warnings[-1] is Warning.AFTER_CLOSE
    assert state.step is Step.CLOSED


def test_receipts_and_network_records_do_not_move_a_case() -> None:
    state, _ = run(("IntakeRegistered", timedelta()))
    assert advance(state, N + "DeliveryReceipt", T0) == (state, None)
