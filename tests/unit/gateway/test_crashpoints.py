"""Crash points (`broker.gateway.crashpoints`): the plan `LVVX_CRASH_AT` describes, inert
without it, the process really dying with the SIGKILL exit code, and a gateway passing the
points in the order its receive path promises."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from broker.gateway import Gateway, GatewayStore
from broker.gateway import crashpoints as crash
from broker.models import PartyRole
from broker.transport.embedded import EmbeddedTransport
from demo.examples import example
from tests.conftest import REPO
from tests.crypto_net import CONTENT_KEY, NOW, A, Net

NET = Net()
IND, MUNI = A[PartyRole.IND], A[PartyRole.MUNICIPALITY]


@pytest.fixture
def dying(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[tuple[str, int]]]:
    """Where the process would have died, instead of dying; disarmed afterwards."""
    deaths: list[tuple[str, int]] = []
    monkeypatch.setattr(crash, "_exit", lambda point, nth: deaths.append((point, nth)))
    yield deaths
    crash.arm(None)


@pytest.mark.parametrize(
    ("value", "point", "nth"),
    [("after_open", "after_open", 1), ("after_commit:3", "after_commit", 3),
     (" after_audit:1 ", "after_audit", 1)],
)  # fmt: skip
def test_a_plan_names_a_point_and_the_how_many_th_time(value: str, point: str, nth: int) -> None:
    plan = crash.CrashPlan.parse(value)
    assert (plan.point, plan.nth) == (point, nth)


@pytest.mark.parametrize("value", ["after_nothing", "after_open:x", "after_open:0", "AFTER_OPEN"])
def test_a_malformed_plan_is_refused(value: str) -> None:
    with pytest.raises(ValueError, match="LVVX_CRASH_AT"):
        crash.CrashPlan.parse(value)


def test_unarmed_every_point_is_inert(dying: list[tuple[str, int]]) -> None:
    crash.arm(None)
    for point in crash.POINTS * 3:
        crash.reached(point)
    assert dying == []


def test_armed_it_dies_once_at_the_nth_time_of_its_point_only(
    dying: list[tuple[str, int]],
) -> None:
    crash.arm("after_deliver:2")
    for point in crash.POINTS * 4:
        crash.reached(point)
    assert dying == [("after_deliver", 2)]


def _python(code: str, crash_at: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, crash.ENV_VAR: crash_at}
    return subprocess.run([sys.executable, "-c", code], env=env, cwd=REPO, capture_output=True,
                          text=True, timeout=60, check=False)  # fmt: skip


def test_the_process_dies_at_once_with_the_sigkill_exit_code() -> None:
    code = (
        "import atexit, sys; from broker.gateway import crashpoints as c\n"
        "atexit.register(lambda: print('cleaned up'))\n"
        "c.reached('after_open'); print('alive'); c.reached('after_open'); print('survived')"
    )
    done = _python(code, "after_open:2")
    assert done.returncode == crash.EXIT_CODE
    assert done.stdout.split() == ["alive"]  # no atexit handlers: as abrupt as SIGKILL
    assert "crash point after_open #2 reached" in done.stderr


def test_a_malformed_variable_stops_the_gateway_from_starting() -> None:
    done = _python("import broker.gateway", "after_opne")
    assert done.returncode == 1
    assert "unknown crash point 'after_opne'" in done.stderr


async def test_a_gateway_passes_the_points_in_the_documented_order(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = EmbeddedTransport(tmp_path / "log.db")
    stores = [GatewayStore(tmp_path / f"{p}.db", content_key=CONTENT_KEY) for p in (IND, MUNI)]
    sender, recipient = (
        Gateway(
            keys=NET.keys(p), directory=NET.directory, transport=log, store=s, clock=lambda: NOW
        )
        for p, s in zip((IND, MUNI), stores, strict=True)
    )
    await sender.start()
    await recipient.start()
    await sender.send(example("DossierDelivered"), [MUNI])
    passed: list[str] = []
    committed = asyncio.Event()  # the last point of a record's way: reached once it is handled

    def note(point: str) -> None:
        passed.append(point)
        if point == "after_commit":
            committed.set()

    monkeypatch.setattr(crash, "reached", note)
    loop = asyncio.create_task(recipient.run())
    try:
        await asyncio.wait_for(committed.wait(), 10)
    finally:
        recipient.stop()
        await loop
        for gw in (sender, recipient):
            await gw.close()
        await log.close()
        for store in stores:
            store.close()
    receiving = list(crash.RECEIVE_POINTS)
    assert passed[: len(receiving)] == receiving
