"""The demo keeps the agreement's calendar (issue 17 §2): it runs on a simulated clock,
injected into every gateway and adapter; the dossiers, the rest period, the scenario, an
escalation's answer and the closing fall on the days the agreement gives them, all before
the real now; and the case monitor of a finished demo finds a broken rule in exactly the
cases planted to break one, which the summary lists."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest

from broker.audit import Report, broken_rules, case_views, read_audit, summary, verify_stream
from broker.caseflow import ESCALATION_ANSWER_PERIOD, REST_PERIOD, CaseState, Warning, advance
from broker.crypto import AnchorKey, KeyStore, load_directory
from broker.models import AuditAction
from broker.transport import open_transport
from demo.calendar import END_BEFORE_NOW, CalendarClock
from demo.casebook import PLANT_FROM, CasePath, CaseWriter
from demo.run import DemoResult, run_demo

N = "nl.lvv.v1."


@dataclass(frozen=True)
class Finished:
    result: DemoResult
    report: Report
    now: datetime


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory) -> Finished:
    import asyncio

    folder = tmp_path_factory.mktemp("calendar")

    async def run() -> Finished:
        transport = open_transport(None, folder)
        try:
            result = await run_demo(transport, folder, PLANT_FROM, seed=7, hostile=False)
            anchor = AnchorKey.from_record(KeyStore(folder / "keys").anchor_public())
            now = datetime.now(UTC)
            directory = load_directory((folder / "directory.bin").read_bytes(), anchor=anchor,
                                       now=now)  # fmt: skip
            records = await read_audit(transport, directory, "lvv.v1")
        finally:
            await transport.close()
        return Finished(result, verify_stream(records, directory, now=now), now)

    return asyncio.run(run())


def test_the_case_monitor_finds_exactly_the_planted_cases(finished: Finished) -> None:
    assert finished.result.ok, finished.result.summary()
    assert finished.report.clean, finished.report.as_json()
    views = case_views(finished.report)
    assert len(views) == PLANT_FROM
    planted = {uuid.UUID(case): [rule] for case, rule in finished.result.planted.items()}
    assert sorted(r for [r] in planted.values()) == [
        Warning.ESCALATION_ANSWERED_LATE, Warning.SCENARIO_IN_REST_PERIOD,
        Warning.SCENARIO_IN_REST_PERIOD,
    ]  # fmt: skip
    assert broken_rules(views, finished.now) == planted
    totals = summary(views, finished.now)
    assert totals["by_step"]["CLOSED"] == PLANT_FROM
    assert totals["broken_rules"] == {"ESCALATION_ANSWERED_LATE": 1, "SCENARIO_IN_REST_PERIOD": 2}
    assert finished.result.summary()["planted"] == finished.result.planted


def test_the_steps_fall_on_the_agreements_days_all_before_the_real_now(finished: Finished) -> None:
    sent: dict[uuid.UUID, list[tuple[datetime, str]]] = {}
    for chain in finished.report.chains.values():
        for event, _ in chain.events.values():
            assert event.occurred_at <= finished.now - END_BEFORE_NOW + timedelta(minutes=5)
            if event.action is AuditAction.SENT and event.case_id and event.message_type:
                sent.setdefault(event.case_id, []).append(
                    (event.occurred_at, event.message_type.rsplit(".", 1)[-1])
                )
    planted = {uuid.UUID(c): r for c, r in finished.result.planted.items()}
    first = min(at for steps in sent.values() for at, _ in steps)
    last = max(at for steps in sent.values() for at, _ in steps)
    assert last - first > timedelta(days=30)  # weeks of calendar, not seconds
    for case_id, steps in sent.items():
        at = {name: t for t, name in sorted(steps, reverse=True)}  # each type's first time
        after_dossier = at["ScenarioDecision"] - at["DossierDelivered"]
        if planted.get(case_id) == Warning.SCENARIO_IN_REST_PERIOD:
            assert after_dossier < REST_PERIOD
        else:
            assert after_dossier >= REST_PERIOD
        if "EscalationRequest" in at:
            answered = at["EscalationDecision"] - at["EscalationRequest"]
            late = planted.get(case_id) == Warning.ESCALATION_ANSWERED_LATE
            assert (answered > ESCALATION_ANSWER_PERIOD) is late
        assert at["CaseClosed"] - at["IntakeRegistered"] > timedelta(days=30)


def test_the_seed_draws_the_mix_of_paths_and_the_planted_cases() -> None:
    def book(seed: int) -> list[tuple[CasePath, Warning | None]]:
        return [(c.path, c.planted) for c in CaseWriter(seed, calendar=True).cases(12)]

    assert book(1) == book(1)
    assert book(1) != book(2)
    assert {p for p, _ in book(3)} == set(CasePath)  # every path, whatever the seed
    assert [w for _, w in book(4) if w] and not [w for _, w in
            [(c.path, c.planted) for c in CaseWriter(4).cases(PLANT_FROM - 1)] if w]  # fmt: skip


def test_an_escalation_answered_after_its_date_breaks_a_rule() -> None:
    t0 = datetime(2026, 6, 1, 8, tzinfo=UTC)
    state = CaseState()
    for name, days in (("IntakeRegistered", 0), ("DossierDelivered", 1),
                       ("ScenarioDecision", 16), ("EscalationRequest", 20)):  # fmt: skip
        state, warning = advance(state, N + name, t0 + timedelta(days=days))
        assert warning is None
    due = t0 + timedelta(days=20) + ESCALATION_ANSWER_PERIOD
    assert state.escalation_answer_due == due
    assert not state.escalation_overdue(due - timedelta(seconds=1))
    assert state.escalation_overdue(due)
    on_time, warning = advance(state, N + "EscalationDecision", due)
    assert warning is None and not on_time.escalation_overdue(due + timedelta(days=9))
    late, warning = advance(state, N + "EscalationDecision", due + timedelta(seconds=1))
    assert warning is Warning.ESCALATION_ANSWERED_LATE and late.warnings == (warning,)


def test_the_calendar_clock_only_moves_forward_and_never_past_the_real_now() -> None:
    clock = CalendarClock.for_span(timedelta(days=100))
    start = clock.start
    assert start.hour == 8 and clock() >= start
    assert datetime.now(UTC) - start >= timedelta(days=100) + END_BEFORE_NOW
    moved = clock.jump_to(start + timedelta(days=3))
    assert moved == start + timedelta(days=3) <= clock()
    assert clock.jump_to(start) > moved  # never back: just past where it is
    with pytest.raises(ValueError):
        clock.jump_to(datetime.now(UTC) + timedelta(hours=1))
    clock.live()
    assert not clock.simulated and abs(clock() - datetime.now(UTC)) < timedelta(seconds=1)
