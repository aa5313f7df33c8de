"""The benchmark's own Kafka broker and the CPU pinning.

Started the way tests/brokers.sh starts the tests' brokers — deploy/kafka/kafka.sh with its
own ports and data dir — fresh, and removed (`kafka.sh clean`) when the run ends, also on
failure or Ctrl-C. On a machine with two CPUs or more the broker's JVM runs under
`taskset -c 1` (kafka.sh launches it as a child, which inherits the affinity) and this
process is pinned to CPU 0, so the two do not share a core.
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
DATA_DIR = REPO / ".kafka" / "bench"
PORT, CONTROLLER_PORT = 19392, 19393
BENCH_CPU, BROKER_CPU = 0, 1


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


def _env() -> dict[str, str]:
    return {
        **os.environ,
        "LVVX_KAFKA_PORT": str(PORT),
        "KAFKA_CONTROLLER_PORT": str(CONTROLLER_PORT),
        "KAFKA_DATA_DIR": str(DATA_DIR),
    }


def _kafka_sh(*args: str, pin: bool = False) -> None:
    command = [str(KAFKA_SH), *args]
    if pin:
        command = ["taskset", "-c", str(BROKER_CPU), *command]
    done = subprocess.run(command, env=_env(), check=False)
    if done.returncode != 0:
        raise BenchFailure(f"{' '.join(command)} failed with exit code {done.returncode}")


def _listening(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


def _broker_pid() -> int:
    try:
        return int((DATA_DIR / "kafka.pid").read_text().strip())
    except (OSError, ValueError) as exc:
        raise BenchFailure(f"kafka.sh up left no pid file in {DATA_DIR}") from exc


def _refuse_busy() -> None:
    """Never take over (and then clean away) a broker somebody else is running there."""
    busy = [p for p in (PORT, CONTROLLER_PORT) if _listening(p)]
    if busy or (DATA_DIR / "kafka.pid").exists():
        raise BenchFailure(
            f"ports {busy or (PORT, CONTROLLER_PORT)} or {DATA_DIR} are in use (another"
            " benchmark?). Stop it, or clean it with: LVVX_KAFKA_PORT=19392"
            f" KAFKA_CONTROLLER_PORT=19393 KAFKA_DATA_DIR={DATA_DIR} {KAFKA_SH} clean;"
            " or pass --bootstrap HOST:PORT"
        )


@contextlib.contextmanager
def own_broker(pin: bool) -> Iterator[Broker]:
    """A fresh broker on 127.0.0.1:19392, its JVM pinned to CPU 1 if ``pin``; removed at the end."""
    _kafka_sh("fetch")
    _refuse_busy()
    _kafka_sh("clean")  # a data dir left by a run that was killed: start from nothing
    try:
        try:
            _kafka_sh("up", pin=pin)
        except BenchFailure:
            _kafka_sh("logs")
            raise
        pid = _broker_pid()
        cpus = tuple(sorted(os.sched_getaffinity(pid)))
        where = (
            f"pinned to CPUs {list(cpus)} (taskset)" if pin else "not pinned (fewer than 2 CPUs)"
        )
        print(f"bench: Kafka broker pid {pid} on 127.0.0.1:{PORT}, {where}")
        yield Broker(f"127.0.0.1:{PORT}", True, pid, cpus if pin else None)
    finally:
        _kafka_sh("clean")


@contextlib.contextmanager
def given_broker(bootstrap: str) -> Iterator[Broker]:
    print(f"bench: using the Kafka at {bootstrap} (not started, stopped or pinned here)")
    yield Broker(bootstrap, False)
