"""A benchmark's own Kafka broker and the CPU pinning.

Started the way tests/brokers.sh starts the tests' brokers — deploy/kafka/kafka.sh with its
own ports and data dir (a `Place`: `make bench`'s, or `make bench-gateway`'s) — fresh, and
removed (`kafka.sh clean`) when the run ends, also on failure or Ctrl-C. With ``pin`` (two
CPUs or more) the broker's JVM runs under `taskset -c 1` (kafka.sh launches it as a child,
which inherits the affinity) and `make bench` pins itself to CPU 0, so the two do not share
a core.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from bench._stages import BenchFailure

REPO = Path(__file__).resolve().parent.parent
KAFKA_SH = REPO / "deploy" / "kafka" / "kafka.sh"
BENCH_CPU, BROKER_CPU = 0, 1


@dataclass(frozen=True, slots=True)
class Place:
    """Where a benchmark's broker listens and keeps its data; ``name`` prefixes what it says."""

    name: str
    port: int
    controller_port: int
    data_dir: Path


BENCH = Place("bench", 19392, 19393, REPO / ".kafka" / "bench")


@dataclass(frozen=True, slots=True)
class Broker:
    bootstrap: str
    started_here: bool
    pid: int | None = None
    cpus: tuple[int, ...] | None = None


def can_pin() -> bool:
    return {BENCH_CPU, BROKER_CPU} <= os.sched_getaffinity(0)


def pin_self() -> None:
    """Pin this process (and the threads it starts later) to CPU 0."""
    os.sched_setaffinity(0, {BENCH_CPU})
    print(f"bench: this process pinned to CPU {BENCH_CPU} (os.sched_setaffinity)")


def _env(place: Place) -> dict[str, str]:
    return {
        **os.environ,
        "LVVX_KAFKA_PORT": str(place.port),
        "KAFKA_CONTROLLER_PORT": str(place.controller_port),
        "KAFKA_DATA_DIR": str(place.data_dir),
        "KAFKA_SECURITY": "plaintext",
    }


def _kafka_sh(place: Place, *args: str, pin: bool = False) -> None:
    command = [str(KAFKA_SH), *args]
    if pin:
        command = ["taskset", "-c", str(BROKER_CPU), *command]
    done = subprocess.run(command, env=_env(place), check=False)
    if done.returncode != 0:
        raise BenchFailure(f"{' '.join(command)} failed with exit code {done.returncode}")


def _listening(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


def _broker_pid(place: Place) -> int:
    try:
        return int((place.data_dir / "kafka.pid").read_text().strip())
    except (OSError, ValueError) as exc:
        raise BenchFailure(f"kafka.sh up left no pid file in {place.data_dir}") from exc


def _refuse_busy(place: Place) -> None:
    """Never take over (and then clean away) a broker somebody else is running there."""
    busy = [p for p in (place.port, place.controller_port) if _listening(p)]
    if busy or (place.data_dir / "kafka.pid").exists():
        raise BenchFailure(
            f"ports {busy or (place.port, place.controller_port)} or {place.data_dir} are in"
            f" use (another benchmark?). Stop it, or clean it with: LVVX_KAFKA_PORT={place.port}"
            f" KAFKA_CONTROLLER_PORT={place.controller_port} KAFKA_DATA_DIR={place.data_dir}"
            f" {KAFKA_SH} clean; or pass --bootstrap HOST:PORT"
        )


@contextlib.contextmanager
def own_broker(pin: bool, place: Place = BENCH) -> Iterator[Broker]:
    """A fresh broker at ``place`` (127.0.0.1:19392 by default), its JVM pinned to CPU 1 if
    ``pin``; removed at the end."""
    _kafka_sh(place, "fetch")
    _refuse_busy(place)
    _kafka_sh(place, "clean")  # a data dir left by a run that was killed: start from nothing
    try:
        try:
            _kafka_sh(place, "up", pin=pin)
        except BenchFailure:
            _kafka_sh(place, "logs")
            raise
        pid = _broker_pid(place)
        cpus = tuple(sorted(os.sched_getaffinity(pid)))
        where = f"pinned to CPUs {list(cpus)} (taskset)" if pin else "not pinned"
        print(f"{place.name}: Kafka broker pid {pid} on 127.0.0.1:{place.port}, {where}")
        yield Broker(f"127.0.0.1:{place.port}", True, pid, cpus if pin else None)
    finally:
        _kafka_sh(place, "clean")


@contextlib.contextmanager
def given_broker(bootstrap: str, name: str = BENCH.name) -> Iterator[Broker]:
    print(f"{name}: using the Kafka at {bootstrap} (not started, stopped or pinned here)")
    yield Broker(bootstrap, False)
