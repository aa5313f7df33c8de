"""One phase of a case: a load for a warm-up and then a measured window, the processes'
counters read at the window's two ends, then a drain until every message is in every
inbox and acknowledged (or `DRAIN_TIMEOUT_S` passed).

What the window's figures mean is worked out afterwards (`bench.gateway._figures`), once
the strace logs are complete; here only the raw readings are kept.
"""

from __future__ import annotations

import asyncio
import os
import time
from dataclasses import dataclass

from bench._soak_probe import read_cpu_seconds
from bench.gateway._driver import Driver
from bench.gateway._ledger import Ledger
from bench.gateway._syscalls import Io, read_io

DRAIN_TIMEOUT_S = 20.0
DRAIN_POLL_S = 0.05


@dataclass(frozen=True, slots=True)
class Load:
    name: str
    rate: float | None
    """Offered messages a second (open loop); None: flat out (closed loop)."""


@dataclass(frozen=True, slots=True)
class Reading:
    """A process's counters at one moment."""

    cpu_s: float | None
    io: Io | None


@dataclass(frozen=True, slots=True)
class Snapshot:
    perf: float
    wall: float
    """`time.time` at the same moment: strace's clock."""
    driver_cpu_s: float
    gateways: dict[str, Reading]


@dataclass(frozen=True, slots=True)
class PhaseRun:
    index: int
    load: Load
    seconds: float
    start: Snapshot
    end: Snapshot
    not_offered: int
    drain_s: float
    drained: bool
    load_avg: float
    """The machine's one-minute load average at the window's end."""


def snapshot(pids: dict[str, int]) -> Snapshot:
    readings = {party: Reading(read_cpu_seconds(pid), read_io(pid)) for party, pid in pids.items()}
    return Snapshot(time.perf_counter(), time.time(), time.process_time(), readings)


async def _at(moment: float, pids: dict[str, int]) -> Snapshot:
    await asyncio.sleep(max(moment - time.perf_counter(), 0.0))
    return snapshot(pids)


async def run_phase(
    index: int, load: Load, driver: Driver, ledger: Ledger, pids: dict[str, int], *,
    seconds: float, warmup_s: float,
) -> PhaseRun:  # fmt: skip
    ledger.phase = index
    t0 = time.perf_counter()
    start = asyncio.create_task(_at(t0 + warmup_s, pids))
    end = asyncio.create_task(_at(t0 + warmup_s + seconds, pids))
    try:
        if load.rate is None:
            not_offered = await driver.flat_out(warmup_s + seconds)
        else:
            not_offered = await driver.paced(load.rate, warmup_s + seconds)
        readings = await asyncio.gather(start, end)
    finally:
        for task in (start, end):
            task.cancel()
    load_avg = os.getloadavg()[0]
    drain_started = time.perf_counter()
    while not ledger.drained() and time.perf_counter() - drain_started < DRAIN_TIMEOUT_S:
        await asyncio.sleep(DRAIN_POLL_S)
    return PhaseRun(
        index, load, seconds, *readings, not_offered=not_offered,
        drain_s=time.perf_counter() - drain_started, drained=ledger.drained(), load_avg=load_avg,
    )  # fmt: skip
