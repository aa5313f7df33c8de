"""`python -m bench`: the options, the run, and where its results go."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NoReturn

from bench._facts import REPO, machine_facts
from bench._links import MAX_PENDING_SENDS, PARTITIONS
from bench._load import SATURATION_WINDOW, SEAL_BATCH_MAX
from bench._ownkafka import BENCH_CPU, Broker, can_pin, given_broker, own_broker, pin_self
from bench._parties import KEMS, make_parties
from bench._plan import KIB, make_plan
from bench._run import PACED_RATE, measure
from bench._stages import BenchFailure
from bench._tables import markdown
from broker.transport.kafka import KafkaOptions

SECONDS, QUICK_SECONDS = 3.0, 0.5
"""Length of each phase: a full run takes about 8 minutes on 2 cores; a quick one about 1."""
SIZES_KIB, QUICK_SIZES_KIB = (1, 4, 64), (4,)
RESULTS = REPO / "bench" / "results"

Doc = dict[str, Any]


@dataclass(frozen=True, slots=True)
class Options:
    quick: bool
    sizes: tuple[int, ...]  # bytes
    formats: tuple[int | None, ...]  # None: the Sealer's default
    seconds: float
    bootstrap: str | None
    results: Path


def _ints(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not a comma-separated list of integers: {text}") from exc


def parse(argv: Sequence[str]) -> Options:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    p.add_argument("--quick", action="store_true", help="a short smoke run (about a minute)")
    p.add_argument("--sizes", type=_ints, help="payload sizes in KiB (default 1,4,64; quick: 4)")
    p.add_argument("--formats", type=_ints, help="envelope format versions (default: the Sealer's)")
    p.add_argument(
        "--seconds",
        type=float,
        help=f"seconds per phase (default {SECONDS}; quick {QUICK_SECONDS})",
    )
    p.add_argument(
        "--bootstrap", metavar="HOST:PORT", help="use this Kafka instead of starting one"
    )
    p.add_argument("--results", type=Path, default=RESULTS, help="where to write the results")
    a = p.parse_args(argv)
    sizes = a.sizes or (QUICK_SIZES_KIB if a.quick else SIZES_KIB)
    seconds = a.seconds or (QUICK_SECONDS if a.quick else SECONDS)
    formats: tuple[int | None, ...] = a.formats or (None,)
    return Options(a.quick, tuple(s * KIB for s in sizes), formats, seconds, a.bootstrap, a.results)


def _settings(o: Options) -> Doc:
    k = KafkaOptions()
    return {
        "quick": o.quick, "seconds": o.seconds, "paced_rate": PACED_RATE,
        "sizes": list(o.sizes), "formats": list(o.formats), "partitions": PARTITIONS,
        "seal_batch_max": SEAL_BATCH_MAX, "saturation_window": SATURATION_WINDOW,
        "max_pending_sends": MAX_PENDING_SENDS,
        "producer": {"acks": "all", "enable_idempotence": True, "linger_ms": k.linger_ms,
                     "max_batch_size": k.max_batch_size},
        "produce_path": "aiokafka AIOKafkaProducer directly (raw and sealed alike)",
    }  # fmt: skip


def write(doc: Doc, text: str, folder: Path, run_id: str) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    data = json.dumps(doc, indent=2, ensure_ascii=False) + "\n"
    paths = [folder / f"{run_id}.json", folder / "latest.json", folder / "latest.md"]
    for path, content in zip(paths, (data, data, text), strict=True):
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(content, encoding="utf-8")
        tmp.replace(path)
    return paths


@contextlib.contextmanager
def _broker(o: Options, pin: bool) -> Iterator[Broker]:
    with given_broker(o.bootstrap) if o.bootstrap else own_broker(pin) as broker:
        yield broker


def _describe(broker: Broker) -> str:
    if not broker.started_here:
        return f"given at {broker.bootstrap}, not pinned here"
    where = f"JVM pinned to CPUs {list(broker.cpus)}" if broker.cpus else "JVM not pinned"
    return f"own single broker at {broker.bootstrap}, {where}"


def run(o: Options) -> Doc:
    started, t0 = datetime.now(UTC), time.perf_counter()
    run_id = started.strftime("%Y%m%dT%H%M%SZ")
    facts = machine_facts()
    pin = can_pin()
    if pin:
        pin_self()
    else:
        print("bench: fewer than 2 CPUs available: nothing pinned")
    parties = [make_parties(kem) for kem in KEMS]
    plan = make_plan(o.sizes, o.formats, parties)
    print(f"bench: {len(plan.cases)} cases, 4 phases of {o.seconds} s each")
    with _broker(o, pin) as broker:
        cases = asyncio.run(measure(plan, broker.bootstrap, o.seconds, run_id))
    return {
        "run_id": run_id,
        "duration_s": round(time.perf_counter() - t0, 1),
        "machine": facts,
        "pinning": f"benchmark on CPU {BENCH_CPU}" if pin else "not pinned (fewer than 2 CPUs)",
        "broker": _describe(broker),
        "settings": _settings(o),
        "skipped": plan.skipped,
        "cases": cases,
    }


def _terminate(signum: int, frame: object) -> NoReturn:
    raise SystemExit(128 + signum)  # unwinds like Ctrl-C, so the broker is removed


def main(argv: Sequence[str] | None = None) -> int:
    signal.signal(signal.SIGTERM, _terminate)
    options = parse(sys.argv[1:] if argv is None else argv)
    try:
        doc = run(options)
    except BenchFailure as exc:
        print(f"bench failed: {exc}", file=sys.stderr)
        return 1
    text = markdown(doc)
    print("\n" + text)
    for path in write(doc, text, options.results, doc["run_id"]):
        print(f"bench: wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
