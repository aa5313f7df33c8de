"""Running a plan: each case on a fresh topic of its transport, one after the other, and
its figures as plain dicts (with sealed/raw ratios) for the results document."""

from __future__ import annotations

import contextlib
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import asdict
from pathlib import Path
from typing import Any

from bench._case import Phase, run_case
from bench._links import Link, embedded_link, kafka_link
from bench._plan import Case, Plan
from bench._stages import SealedStage, Stage

PACED_RATE = 1000.0
"""Offered load of the paced phase, messages per second."""

Doc = dict[str, Any]


@contextlib.asynccontextmanager
async def _link(case: Case, bootstrap: str, logs: Path, topic: str) -> AsyncIterator[Link]:
    if case.transport == "kafka":
        async with kafka_link(bootstrap, topic) as link:
            yield link
    else:
        async with embedded_link(logs, topic) as link:
            yield link


def _cpu(stage: Stage, avro_us: tuple[float, float]) -> Doc | None:
    if not isinstance(stage, SealedStage):
        return None
    return {
        "encode_us": round(avro_us[0], 1),
        "seal_us": round(stage.seal.us_per_message or 0, 1),
        "open_us": round(stage.open.us_per_message or 0, 1),
        "decode_us": round(avro_us[1], 1),
        "seal_batch": round(stage.seal.mean_batch or 0, 2),
        "open_batch": round(stage.open.mean_batch or 0, 2),
    }


def _progress(n: int, total: int, started: float, case: Case, phases: dict[str, Phase]) -> None:
    p, c, s, r = (phases[k] for k in ("produce", "consume", "saturation", "paced"))
    print(
        f"[{n:>2}/{total} {time.perf_counter() - started:4.0f} s] {case.label}:"
        f" produce {p.msg_per_s:,.0f}/s, consume {c.msg_per_s:,.0f}/s,"
        f" saturated {s.msg_per_s:,.0f}/s p99 {(s.latency_ms or {}).get('p99')} ms,"
        f" paced {r.msg_per_s:,.0f}/s p99 {(r.latency_ms or {}).get('p99')} ms",
        flush=True,
    )


async def measure(plan: Plan, bootstrap: str, seconds: float, run_id: str) -> list[Doc]:
    out, started = [], time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="lvvx-bench-log-") as logs:
        for n, planned in enumerate(plan.cases, 1):
            case, stage = planned.case, planned.make_stage()
            topic = f"bench.{run_id}.{n:03d}.{case.label}"
            async with _link(case, bootstrap, Path(logs), topic) as link:
                phases = await run_case(link, stage, seconds, PACED_RATE)
            _progress(n, len(plan.cases), started, case, phases)
            out.append({
                "case": asdict(case),
                "phases": {name: phase.summary() for name, phase in phases.items()},
                "cpu": _cpu(stage, plan.avro_cpu_us[case.payload_bytes]),
            })  # fmt: skip
    return _with_ratios(out)


def _with_ratios(cases: list[Doc]) -> list[Doc]:
    """sealed/raw msg/s per direction, for each sealed Kafka case and its same-size raw one."""

    def key(c: Doc) -> tuple[object, ...]:
        k = c["case"]
        return (
            k["kem"],
            k["recipients"],
            k["payload_bytes"],
            k["envelope_bytes"],
            k["format_version"],
        )

    raw = {key(c): c for c in cases if c["case"]["kind"] == "raw"}
    for c in cases:
        base = raw.get(key(c))
        if c["case"]["kind"] == "sealed" and c["case"]["transport"] == "kafka" and base:
            c["ratio"] = {
                d: round(c["phases"][d]["msg_per_s"] / base["phases"][d]["msg_per_s"], 3)
                for d in ("produce", "consume")
            }
    return cases
