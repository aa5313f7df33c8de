"""The console's state over the follower's reports: a finding is open while the reports hold
it and moves to the resolved ones, with its time, when a later report no longer does — and
the network page shows both (no browser, no port: the app in process)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import httpx

from broker.audit import Finding, Issue, Report
from broker.console import ConsoleState, create_console_app

T0 = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)
LOST = Issue(Finding.LOST, "gemeente-utrecht", "never delivered or refused at ind", 3,
             uuid.UUID(int=7), "ind")  # fmt: skip


def test_a_finding_is_open_while_reported_then_resolved_with_its_time() -> None:
    state = ConsoleState(clock=lambda: T0)
    state.on_issue(LOST)
    state.on_report(Report({}, [LOST], sent=1), T0)
    assert [s.issue for s in state.findings()] == [LOST] and state.totals()["findings"] == 1
    later = T0 + timedelta(seconds=4)
    state.on_report(Report({}, [], sent=1, accounted=1), later)  # delivered late after all
    assert state.findings() == [] and state.totals()["findings"] == 0
    [resolved] = state.resolved
    assert resolved.issue == LOST and (resolved.since, resolved.resolved_at) == (T0, later)


async def test_the_network_page_shows_open_and_resolved_findings() -> None:
    state = ConsoleState(clock=lambda: T0)
    app = create_console_app(state, token="t0ken")
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://console",
                                 headers={"Authorization": "Bearer t0ken"}) as client:  # fmt: skip
        waiting = await client.get("/")
        assert "Waiting for the first verified report" in waiting.text
        assert (await client.get("/healthz")).text == "waiting for the first report"
        state.on_report(Report({}, [LOST], sent=1), T0)
        page = (await client.get("/")).text
        assert "LOST" in page and str(LOST.message_id) in page and 'id="resolved"' not in page
        state.on_report(Report({}, [], sent=1, accounted=1), T0 + timedelta(seconds=4))
        page = (await client.get("/")).text
        assert 'id="no-findings"' in page and 'id="resolved"' in page
        assert str(LOST.message_id) in page  # among the resolved
