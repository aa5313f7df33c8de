"""`python -m bench.gateway`: the options, the cases one after the other, and where the
results go (bench/results/gateway-latest.{md,json})."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NoReturn

from bench._backoffice import READ_IDLE_S
from bench._facts import REPO, machine_facts
from bench._ownkafka import Broker, Place, given_broker, own_broker
from bench._soak_infra import SoakSetupError
from bench._stages import BenchFailure
from bench.gateway._case import Case, Timing, run_case, say
from bench.gateway._driver import (
    CONNECTIONS,
    FLAT_OUT_SENDERS,
    FLAT_OUT_WINDOW,
    MAX_WAITING,
    PAYLOAD_BYTES,
)
from bench.gateway._phase import DRAIN_TIMEOUT_S, Load
from bench.gateway._report import markdown
from bench.gateway._syscalls import TRACED, strace_command
from bench.soak import work_folder

PLACE = Place("bench-gateway", 19492, 19493, REPO / ".kafka" / "bench-gateway")
"""The benchmark's own broker: clear of the tests' and the other benchmarks' ports (`make
soak`'s own broker uses this port too: the two cannot run at once, and the second refuses)."""

RESULTS = REPO / "bench" / "results"
RATES, QUICK_RATES = (50.0, 100.0, 200.0, 400.0), (50.0, 200.0)
SECONDS, QUICK_SECONDS = 8.0, 3.0
WARMUP_S, QUICK_WARMUP_S = 2.0, 1.0
CASES = (Case("kafka", 1), Case("kafka", 3), Case("embedded", 1), Case("embedded", 3))
QUICK_CASES = (Case("kafka", 1), Case("embedded", 1))
POLL_IDLE_MS = READ_IDLE_S * 1000
"""The back office's pause after an empty inbox: the soak's and the fault suite's."""

Doc = dict[str, Any]


@dataclass(frozen=True, slots=True)
class Options:
    quick: bool
    cases: tuple[Case, ...]
    loads: tuple[Load, ...]
    timing: Timing
    bootstrap: str | None
    strace: bool
    results: Path
    keep: bool


def _floats(text: str) -> tuple[float, ...]:
    try:
        return tuple(float(part) for part in text.split(",") if part.strip())
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not a comma-separated list of numbers: {text}") from exc


def _cases(text: str) -> tuple[Case, ...]:
    """``kafka:1,embedded:3``"""
    try:
        cases = tuple(Case(t, int(r)) for t, _, r in (p.partition(":") for p in text.split(",")))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not TRANSPORT:RECIPIENTS,...: {text}") from exc
    if any(c.transport not in ("kafka", "embedded") or c.recipients not in (1, 3) for c in cases):
        raise argparse.ArgumentTypeError(
            f"transports are kafka or embedded, recipients 1 or 3: {text}"
        )
    return cases


def parse(argv: Sequence[str]) -> Options:
    p = argparse.ArgumentParser(prog="python -m bench.gateway", description=__doc__)
    p.add_argument("--quick", action="store_true", help="a short smoke run (about a minute)")
    p.add_argument("--rates", type=_floats,
                   help="offered msg/s, before flat out (default 50,100,200,400; quick 50,200)")  # fmt: skip
    p.add_argument("--cases", type=_cases, help="default kafka:1,kafka:3,embedded:1,embedded:3;"
                   " quick kafka:1,embedded:1")  # fmt: skip
    p.add_argument("--seconds", type=float, help=f"measured seconds per phase (default {SECONDS}; quick {QUICK_SECONDS})")  # fmt: skip
    p.add_argument("--warmup", type=float, help=f"seconds before each window (default {WARMUP_S}; quick {QUICK_WARMUP_S})")  # fmt: skip
    p.add_argument("--poll-ms", type=float, default=POLL_IDLE_MS,
                   help=f"the back office's pause after an empty inbox (default {POLL_IDLE_MS:g})")  # fmt: skip
    p.add_argument("--bootstrap", metavar="HOST:PORT", help="use this Kafka instead of starting one")  # fmt: skip
    p.add_argument("--no-strace", action="store_true", help="do not count fsyncs with strace")
    p.add_argument("--results", type=Path, default=RESULTS, help="where to write the results")
    p.add_argument("--keep", action="store_true", help="keep the networks, configs and logs")
    a = p.parse_args(argv)
    rates = a.rates or (QUICK_RATES if a.quick else RATES)
    loads = (*(Load(f"{r:g}/s", r) for r in rates), Load("flat out", None))
    timing = Timing(a.seconds or (QUICK_SECONDS if a.quick else SECONDS),
                    a.warmup if a.warmup is not None else (QUICK_WARMUP_S if a.quick else WARMUP_S),
                    a.poll_ms / 1000)  # fmt: skip
    cases = a.cases or (QUICK_CASES if a.quick else CASES)
    return Options(a.quick, cases, loads, timing, a.bootstrap, not a.no_strace, a.results, a.keep)


def _settings(o: Options) -> Doc:
    return {
        "quick": o.quick, "seconds": o.timing.seconds, "warmup_s": o.timing.warmup_s,
        "drain_timeout_s": DRAIN_TIMEOUT_S, "loads": [load.name for load in o.loads],
        "cases": [c.label for c in o.cases], "payload_bytes": PAYLOAD_BYTES,
        "message_type": "DossierDelivered", "connections": CONNECTIONS,
        "flat_out_senders": FLAT_OUT_SENDERS, "flat_out_window": FLAT_OUT_WINDOW,
        "max_waiting": MAX_WAITING,
        "poll_idle_ms": o.timing.poll_idle_s * 1000,
    }  # fmt: skip


@contextlib.contextmanager
def _broker(o: Options) -> Iterator[Broker | None]:
    if not any(c.transport == "kafka" for c in o.cases):
        yield None
    elif o.bootstrap:
        with given_broker(o.bootstrap, PLACE.name) as broker:
            yield broker
    else:
        with own_broker(False, PLACE) as broker:
            yield broker


def _fsyncs_by(strace: list[str] | None, asked: bool) -> str:
    if strace is not None:
        return (f"counted with strace ({' '.join(TRACED)}), which runs each gateway as its child"
                " with --seccomp-bpf: the process stops only at those calls")  # fmt: skip
    why = "--no-strace" if not asked else "strace is missing or cannot trace here"
    return f"not measured ({why})"


def run(o: Options) -> Doc:
    t0 = time.perf_counter()
    facts = machine_facts()
    strace = strace_command() if o.strace else None
    say(f"fsyncs {_fsyncs_by(strace, o.strace)}")
    cases = []
    with _broker(o) as broker, work_folder(o.keep, "lvvx-bench-gateway-", say) as folder:
        bootstrap = broker.bootstrap if broker else None
        for n, case in enumerate(o.cases, 1):
            say(
                f"case {n}/{len(o.cases)}: {case.label}; loads {', '.join(x.name for x in o.loads)}"
            )
            where = folder / f"{n}-{case.transport}-{case.recipients}"
            cases.append(run_case(case, where, bootstrap, o.loads, o.timing, strace))
    if broker is None:
        described = "not used"
    elif broker.started_here:
        described = (
            f"own single broker at {broker.bootstrap} (deploy/kafka/kafka.sh), removed afterwards"
        )
    else:
        described = f"given at {broker.bootstrap}"
    return {
        "duration_s": round(time.perf_counter() - t0, 1),
        "machine": facts,
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
        "max_phase_load": max((p["load_avg"] for c in cases for p in c["phases"]), default=None),
        "broker": described,
        "fsyncs_measured_by": _fsyncs_by(strace, o.strace),
        "settings": _settings(o),
        "cases": cases,
    }


def write(doc: Doc, text: str, folder: Path) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    data = json.dumps(doc, indent=2, ensure_ascii=False) + "\n"
    paths = [folder / "gateway-latest.json", folder / "gateway-latest.md"]
    for path, content in zip(paths, (data, text), strict=True):
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(content, encoding="utf-8")
        tmp.replace(path)
    return paths


def _terminate(signum: int, frame: object) -> NoReturn:
    raise SystemExit(128 + signum)  # unwinds like Ctrl-C: gateways stopped, broker removed


def main(argv: Sequence[str] | None = None) -> int:
    signal.signal(signal.SIGTERM, _terminate)
    options = parse(sys.argv[1:] if argv is None else argv)
    started = datetime.now(UTC)
    try:
        doc = run(options)
    except (BenchFailure, SoakSetupError) as exc:
        print(f"bench-gateway failed: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"bench-gateway: interrupted after {datetime.now(UTC) - started}", file=sys.stderr)
        return 130
    text = markdown(doc)
    print("\n" + text)
    for path in write(doc, text, options.results):
        say(f"wrote {path}")
    return 0
