"""A demo network on the embedded log with what the console must show planted in it, and the
console serving it on a port of its own.

`planted`: the demo drives a few cases to their end, then a case is left in its rest period
(intake and dossiers, no scenario) and IND's gateway is stopped before a municipality sends
it an intake: that message is LOST at IND. The console's clock runs `AHEAD` of the wall clock,
past the rest period's 14 days, so the left case is overdue and the loss is judged.

`served`: the console (`broker.console.run_console`, the live follower and the web app) on its
own thread and event loop, against that log, until the tests are done."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from broker.audit import audit_topics, read_audit, verify_stream
from broker.console import ConsoleState, run_console
from broker.crypto import Directory
from broker.transport.embedded import EmbeddedTransport

PREFIX = "lvv.v1"
CASES = 3
"""Cases the demo drives to their end (besides the two planted ones)."""

AHEAD = timedelta(days=15)
"""The console's clock, ahead of the wall clock: past the planted case's 14-day rest period."""

PORTS = range(18220, 18300)
"""This suite's ports (18200–18299 is the console's share of the machine)."""


@dataclass(frozen=True)
class Planted:
    folder: Path
    directory: Directory
    token: str
    overdue_case: uuid.UUID
    lost_message: uuid.UUID
    lost_case: uuid.UUID
    lost_at: str
    sender: str
    delivered_message: uuid.UUID
    """A message of a finished case that every recipient delivered: its proof downloads."""


def _clock() -> datetime:
    return datetime.now(UTC) + AHEAD


async def _plant(folder: Path) -> Planted:
    from broker.models import DossierDelivered, IntakeRegistered
    from demo.casebook import CaseWriter
    from demo.network import create_network
    from demo.run import Demo

    net = create_network(folder, now=datetime.now(UTC) - timedelta(minutes=1))
    log = EmbeddedTransport(folder / "log.db")
    demo = Demo(net, log, prefix=PREFIX)
    book = CaseWriter(seed=2018, start=datetime.now(UTC)).cases(CASES + 2)
    finished, waiting, lost = book[:CASES], book[CASES], book[CASES + 1]
    try:
        result = await demo.run(finished, hostile=False, keep_running=True)
        assert result.ok, result.summary()
        # a case left in its rest period: intake and dossiers, no scenario
        opening = []
        for step in waiting.steps:
            if not isinstance(step.message, IntakeRegistered | DossierDelivered):
                break
            opening.append(step)
        assert await demo.drive(replace(waiting, steps=opening))
        # an intake IND never handles: its gateway is stopped first
        dtv = next(p for p in net.parties if p.role.value == "DTV").party_id
        ind = next(p for p in net.parties if p.role.value == "IND").party_id
        intake = lost.steps[0]
        assert isinstance(intake.message, IntakeRegistered) and ind in intake.recipients
        demo.gateways[ind].stop()  # what its loop polls from here on it leaves untouched
        lost_id = await demo.senders[intake.sender].send(intake.message, intake.recipients)
        await asyncio.wait_for(demo.back_offices[dtv].wait_for(lost_id), 30)
        records = await read_audit(log, net.directory, PREFIX)
        sent = verify_stream(records, net.directory, now=datetime.now(UTC))
        delivered = next(
            e.message_id
            for chain in sent.chains.values()
            for e, _ in chain.events.values()
            if e.action.value == "DELIVERED" and e.case_id == finished[0].case_id
        )
    finally:
        await demo.stop()
        demo.close_stores()
        await log.close()
    assert delivered is not None
    return Planted(
        folder, net.directory, net.tokens[dtv], waiting.case_id, lost_id, lost.case_id, ind,
        intake.sender, delivered,
    )  # fmt: skip


@pytest.fixture(scope="session")
def planted(tmp_path_factory: pytest.TempPathFactory) -> Planted:
    return asyncio.run(_plant(tmp_path_factory.mktemp("console") / "net"))


def free_port() -> int:
    for port in PORTS:
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port in {PORTS}")


def _settled(state: ConsoleState, planted: Planted) -> bool:
    """The planted loss is judged and nothing else is in flight."""
    report = state.report
    return (
        report is not None
        and report.pending == 0
        and any(i.message_id == planted.lost_message for i in report.issues)
    )


@dataclass
class Served:
    url: str
    state: ConsoleState
    planted: Planted


@pytest.fixture(scope="session")
def served(planted: Planted) -> Iterator[Served]:
    port = free_port()
    state = ConsoleState(clock=_clock)
    loop = asyncio.new_event_loop()
    stop = asyncio.Event()
    failed: list[BaseException] = []

    async def main() -> None:
        log = EmbeddedTransport(planted.folder / "log.db")
        try:
            await run_console(log, audit_topics(planted.directory, PREFIX), planted.directory,
                              token=planted.token, stop=stop, port=port, clock=_clock, state=state)  # fmt: skip
        finally:
            await log.close()

    def run() -> None:
        try:
            loop.run_until_complete(main())
        except BaseException as exc:  # told to the test below
            failed.append(exc)
        finally:
            loop.close()

    thread = threading.Thread(target=run, name="console", daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not failed:
        try:
            # served, and the follower has read every chain to its end: on a busy machine a
            # first pass may verify part of the stream (its read budget spent), which the
            # pages would show as messages in flight
            if httpx.get(f"{url}/healthz", timeout=2).text == "ok" and _settled(state, planted):
                break
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    else:
        raise AssertionError(f"the console did not serve the whole stream: {failed}")
    try:
        yield Served(url, state, planted)
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(10)
        assert not thread.is_alive(), "the console did not stop"
        assert not failed, failed
