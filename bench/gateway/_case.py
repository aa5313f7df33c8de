"""One case: its gateways started, a back office on each recipient's inbox, the phases one
after the other, the gateways stopped, and then the figures (the strace logs are complete
only once the gateways have exited)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench._backoffice import read_inbox
from bench._soak_traffic import api_client
from bench._stages import BenchFailure
from bench.gateway._driver import CONNECTIONS, Bodies, Driver
from bench.gateway._figures import phase_figures, saturation
from bench.gateway._ledger import Ledger
from bench.gateway._pair import Pair, running_pair
from bench.gateway._phase import Load, PhaseRun, run_phase
from bench.gateway._syscalls import call_times
from bench.soak import count_log_levels
from broker.client import RetryPolicy

Doc = dict[str, Any]

WARM_UP = Load("warm-up", 20.0)
WARM_UP_S = 3.0
"""Before the phases, not measured: the first sends fetch the recipients' topic metadata,
open connections and start the first transactions, which no phase should pay for."""

STOP_READING_S = 5.0
"""After the last phase: how long the back offices may take to find their inboxes empty."""


@dataclass(frozen=True, slots=True)
class Case:
    transport: str  # kafka | embedded
    recipients: int

    @property
    def label(self) -> str:
        return f"{self.transport}, {self.recipients} recipient{'s' if self.recipients > 1 else ''}"


@dataclass(frozen=True, slots=True)
class Timing:
    seconds: float
    warmup_s: float
    poll_idle_s: float
    """The back office's pause after reading an empty inbox."""


def say(text: str) -> None:
    print(f"bench-gateway: {text}", flush=True)


def _progress(case: Case, figures: Doc) -> None:
    e2e, api = figures["e2e_latency_ms"], figures["api_latency_ms"]
    cpu = ", ".join(
        f"{party.split('-')[0]} {g['cpu_us_per_msg']}" for party, g in figures["gateways"].items()
    )
    say(f"  {case.label}, {figures['load']}: acked {figures['acked_per_s']:,.0f}/s, API p99"
        f" {api.get('p99')} ms, end-to-end p50/p99 {e2e.get('p50')}/{e2e.get('p99')} ms,"
        f" CPU µs/msg {cpu}, load {figures['load_avg']}")  # fmt: skip


def _check_alive(pair: Pair) -> None:
    for gw in pair.gateways:
        if not gw.alive:
            raise BenchFailure(f"gateway {gw.party} exited:\n{gw.log_tail()}")


async def _measure(
    case: Case, pair: Pair, loads: Sequence[Load], timing: Timing
) -> tuple[Ledger, list[PhaseRun]]:
    ledger = Ledger(tuple(gw.party for gw in pair.receivers))
    sending = api_client(pair.sender.base_url, pair.sender.token, CONNECTIONS,
                         retry=RetryPolicy.never())  # fmt: skip
    readers = {gw.party: api_client(gw.base_url, gw.token, CONNECTIONS) for gw in pair.receivers}
    stop = asyncio.Event()
    reading = [asyncio.create_task(read_inbox(party, client, ledger, stop, timing.poll_idle_s))
               for party, client in readers.items()]  # fmt: skip
    driver = Driver(sending, Bodies(ledger.recipients), ledger)
    runs: list[PhaseRun] = []
    try:
        await run_phase(-1, WARM_UP, driver, ledger, pair.pids, seconds=WARM_UP_S, warmup_s=0.0)
        for index, load in enumerate(loads):
            run = await run_phase(index, load, driver, ledger, pair.pids,
                                  seconds=timing.seconds, warmup_s=timing.warmup_s)  # fmt: skip
            runs.append(run)
            _check_alive(pair)
            _progress(case, phase_figures(run, ledger, pair.sender.party, None))
        stop.set()
        await asyncio.wait(reading, timeout=STOP_READING_S)
    finally:
        for task in reading:
            task.cancel()
        await asyncio.gather(*reading, return_exceptions=True)
        for client in (sending, *readers.values()):
            await client.aclose()
    return ledger, runs


def run_case(case: Case, folder: Path, bootstrap: str | None, loads: Sequence[Load],
             timing: Timing, strace: list[str] | None) -> Doc:  # fmt: skip
    transport = bootstrap if case.transport == "kafka" else None
    with running_pair(
        folder, bootstrap=transport, recipients=case.recipients, strace=strace
    ) as pair:
        marks = {gw.party: gw.log_file.stat().st_size for gw in pair.gateways}
        say(
            f"{case.label}: gateways {', '.join(f'{gw.party} (pid {gw.pid})' for gw in pair.gateways)}"
        )
        ledger, runs = asyncio.run(_measure(case, pair, loads, timing))
    # stopped: the strace logs are whole now
    traces = pair.traces
    fsyncs = {party: call_times(log) for party, log in traces.items()} if traces else None
    phases = [phase_figures(run, ledger, pair.sender.party, fsyncs) for run in runs]
    logs = {gw.party: count_log_levels(gw.log_file, marks[gw.party]) for gw in pair.gateways}
    return {
        "case": {"transport": case.transport, "recipients": case.recipients,
                 "sender": pair.sender.party, "receivers": list(ledger.recipients)},
        "phases": phases,
        "saturation": saturation(phases),
        "duplicates": ledger.duplicates,
        "log_warnings_errors": {party: list(n) for party, n in logs.items()},
        "exit_codes": {gw.party: gw.process.returncode for gw in pair.gateways},
    }  # fmt: skip
