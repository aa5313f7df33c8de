"""The long fuzz run of opening envelopes (`make fuzz`): a million mutated envelopes by
default, none of which may get anything but an open of an authentic envelope or a
rejection with its reason out of `open_envelope` (bench/_fuzz.py says how inputs are made).

    .venv/bin/python -m bench.fuzz_open [--inputs 1000000] [--seed 1] [--minutes M]

Reports inputs tried, outcomes by reason code (overall and per mutation), crashes (an
exception other than `EnvelopeRejected` escaped: must be 0), violations (a changed envelope
opened, or a forged one read other than sealed: must be 0), inputs per second, and memory:
peak RSS (``ru_maxrss``) and resident RSS after 10 % of the inputs and at the end, which
must stay within `RSS_GROWTH_LIMIT_MIB` of each other (caches and replay guards bounded).
Writes bench/results/fuzz-open-latest.{json,md}. ``--minutes`` stops early, after at most
that long, and says so (the figures are then for the inputs tried).

Exit status 1 on a crash, a violation or unbounded memory growth.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench._fuzz import OpenFuzzer, corpus

RESULTS_DIR = Path(__file__).resolve().parent / "results"

RSS_GROWTH_LIMIT_MIB = 32.0
"""Resident memory may grow this much from 10 % of the run to its end: the openers' caches
and replay guards are bounded, so more means something keeps what it should not."""

CHUNK = 5_000
"""Inputs between progress lines and time checks."""


def rss_mib() -> float:
    """Resident set size now (Linux: /proc/self/statm), in MiB."""
    with open("/proc/self/statm") as f:
        pages = int(f.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def peak_rss_mib() -> float:
    """Peak resident set size so far (``ru_maxrss`` is KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run(inputs: int, seed: int, minutes: float | None) -> dict[str, Any]:
    started_at = datetime.now(UTC)
    corpus()  # sealed before the clock starts
    fuzzer = OpenFuzzer(seed)
    deadline = time.monotonic() + minutes * 60 if minutes else None
    tenth = max(1, inputs // 10)
    at_tenth: dict[str, float] = {}
    started, cpu_started = time.perf_counter(), time.process_time()
    stopped_early = False
    while fuzzer.report.inputs < inputs:
        step = min(CHUNK, inputs - fuzzer.report.inputs)
        if fuzzer.report.inputs < tenth <= fuzzer.report.inputs + step:
            step = tenth - fuzzer.report.inputs
        fuzzer.run(step)
        done = fuzzer.report.inputs
        if done == tenth:
            at_tenth = {"inputs": done, "rss_mib": rss_mib(), "peak_rss_mib": peak_rss_mib()}
        elapsed = time.perf_counter() - started
        if done % (CHUNK * 20) < step or done == inputs:
            print(f"{done:>9} inputs  {done / elapsed:>7.0f}/s  crashes {fuzzer.report.crashes}  "
                  f"violations {fuzzer.report.violations}  rss {rss_mib():.0f} MiB", flush=True)  # fmt: skip
        if deadline is not None and time.monotonic() > deadline and done < inputs:
            stopped_early = True
            break
    elapsed = time.perf_counter() - started
    cpu = time.process_time() - cpu_started
    report = fuzzer.report
    end = {"inputs": report.inputs, "rss_mib": rss_mib(), "peak_rss_mib": peak_rss_mib()}
    if not at_tenth:
        at_tenth = end
    growth = end["rss_mib"] - at_tenth["rss_mib"]
    return {
        "started_at": started_at.isoformat(),
        "seed": seed,
        "inputs_asked": inputs,
        "stopped_early": stopped_early,
        "elapsed_s": round(elapsed, 1),
        "inputs_per_s": round(report.inputs / elapsed, 1) if elapsed else None,
        "cpu_s": round(cpu, 1),
        "inputs_per_cpu_s": round(report.inputs / cpu, 1) if cpu else None,
        **report.as_dict(),
        "memory": {
            "at_10_percent": at_tenth,
            "at_end": end,
            "rss_growth_mib": round(growth, 1),
            "rss_growth_limit_mib": RSS_GROWTH_LIMIT_MIB,
            "bounded": growth <= RSS_GROWTH_LIMIT_MIB,
        },
        "corpus": [
            {"name": b.name, "bytes": len(b.data), "varints": len(b.varints)}
            for b in corpus().bases
        ],
        "machine": {
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "load_avg_1m_at_end": os.getloadavg()[0],
        },
    }


def markdown(result: dict[str, Any]) -> str:
    m = result["memory"]
    lines = [
        "# Fuzzing `open_envelope`",
        "",
        f"- started {result['started_at']}, seed {result['seed']}",
        f"- inputs tried: {result['inputs']:,} of {result['inputs_asked']:,}"
        + (" (stopped early: time limit)" if result["stopped_early"] else ""),
        f"- crashes (escaped exceptions): **{result['crashes']}**; violations: **{result['violations']}**",
        f"- rate: {result['inputs_per_s']:,} inputs/s over {result['elapsed_s']} s; "
        f"{result['inputs_per_cpu_s']:,} inputs per CPU second ({result['cpu_s']} s of CPU; "
        f"load average {result['machine']['load_avg_1m_at_end']:.1f} on {result['machine']['cpus']} CPUs)",
        f"- memory: peak RSS {m['at_end']['peak_rss_mib']:.0f} MiB; RSS {m['at_10_percent']['rss_mib']:.0f} MiB "
        f"after 10 %, {m['at_end']['rss_mib']:.0f} MiB at the end ({m['rss_growth_mib']:+.1f} MiB, "
        f"limit {m['rss_growth_limit_mib']:.0f}): {'bounded' if m['bounded'] else 'NOT BOUNDED'}",
        "",
        "| outcome | inputs | share |",
        "| --- | ---: | ---: |",
    ]
    total = max(1, result["inputs"])
    for outcome, n in result["outcomes"].items():
        lines.append(f"| {outcome} | {n:,} | {100 * n / total:.2f} % |")
    lines += ["", "| mutation | inputs | outcomes |", "| --- | ---: | --- |"]
    for op, outcomes in result["by_mutation"].items():
        spread = ", ".join(f"{k} {v:,}" for k, v in outcomes.items())
        lines.append(f"| {op} | {sum(outcomes.values()):,} | {spread} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.fuzz_open", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--inputs", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--minutes", type=float, default=None, help="stop after this long")
    parser.add_argument("--out-dir", type=Path, default=RESULTS_DIR)
    args = parser.parse_args(argv)
    result = run(args.inputs, args.seed, args.minutes)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    (args.out_dir / "fuzz-open-latest.json").write_text(json.dumps(result, indent=1) + "\n")
    (args.out_dir / "fuzz-open-latest.md").write_text(markdown(result))
    print(markdown(result))
    failed = result["crashes"] or result["violations"] or not result["memory"]["bounded"]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
