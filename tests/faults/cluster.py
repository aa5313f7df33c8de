"""The fault suite's own three-broker secured cluster (deploy/kafka/cluster.sh), on ports and
in folders of its own so it never meets the brokers of `make test`, the bench or the soak;
and what the scenarios ask of it: who leads a partition, whether every replica is back in
sync, and the faults themselves (kill, stop, start, pause, resume a node)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from pathlib import Path
from typing import TypeVar

from broker.errors import TransportError
from broker.transport.kafka import KafkaOptions, KafkaTransport

REPO = Path(__file__).resolve().parents[2]
CLUSTER_SH = REPO / "deploy" / "kafka" / "cluster.sh"
BASE = Path(os.environ.get("FAULTS_DIR", REPO / ".kafka" / "faults"))
CLUSTER_DIR = BASE / "cluster"
PKI_DIR = BASE / "pki"
CLIENT_PORTS = os.environ.get("FAULTS_KAFKA_PORTS", "39092 39093 39094")
CONTROLLER_PORTS = os.environ.get("FAULTS_KAFKA_CONTROLLER_PORTS", "39192 39193 39194")
"""Clear of the development cluster (29092-29094), `make test`'s and the bench's brokers."""

NODES = (1, 2, 3)
BOOTSTRAP = ",".join(f"127.0.0.1:{p}" for p in CLIENT_PORTS.split())

CLUSTER_SH_TIMEOUT_S = 600.0
"""One cluster.sh command: `up` of three JVMs on a busy 2-core machine can take minutes."""

IN_SYNC_TIMEOUT_S = 180.0
"""How long a restarted node may take to be back in every partition's ISR."""

ADMIN_TIMEOUT_MS = 8_000
"""Per admin request: a dead node must not hold a lookup up for long; lookups retry."""


class ClusterError(RuntimeError):
    """The cluster could not be brought to the state a scenario needs."""


def _env() -> dict[str, str]:
    return os.environ | {
        "KAFKA_SECURITY": "tls",
        "KAFKA_CLUSTER_PORTS": CLIENT_PORTS,
        "KAFKA_CLUSTER_CONTROLLER_PORTS": CONTROLLER_PORTS,
        "KAFKA_CLUSTER_DIR": str(CLUSTER_DIR),
        "KAFKA_PKI_DIR": str(PKI_DIR),
        # a node restarting next to two others and the gateways on a busy 2-core machine took
        # up to 180 s, cluster.sh's default limit, in development runs
        "KAFKA_START_TIMEOUT": os.environ.get("KAFKA_START_TIMEOUT", "420"),
    }


def cluster_sh(*args: str, check: bool = True) -> str:
    """Run ``cluster.sh ARGS`` on this suite's cluster; its output."""
    done = subprocess.run([str(CLUSTER_SH), *args], env=_env(), capture_output=True, text=True,
                          timeout=CLUSTER_SH_TIMEOUT_S, check=False)  # fmt: skip
    if check and done.returncode != 0:
        raise ClusterError(f"cluster.sh {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")
    return done.stdout


async def node(command: str, n: int) -> float:
    """``cluster.sh COMMAND N`` off the event loop (traffic goes on meanwhile); seconds taken."""
    started = time.monotonic()
    await asyncio.to_thread(cluster_sh, command, str(n))
    return time.monotonic() - started


def ensure_pki() -> None:
    """A development PKI for this suite (CA, broker, admin and party certificates), once."""
    if not (PKI_DIR / "ca.pem").exists():
        lvvx = REPO / ".venv" / "bin" / "lvvx"
        subprocess.run([str(lvvx), "pki", "init", "--out", str(PKI_DIR)], check=True,
                       capture_output=True, timeout=120)  # fmt: skip


@contextlib.contextmanager
def running_cluster(*, keep: bool = False) -> Iterator[str]:
    """A fresh cluster for the run, removed on the way out (unless ``keep``); yields its
    bootstrap servers."""
    BASE.mkdir(parents=True, exist_ok=True)
    ensure_pki()
    cluster_sh("clean", check=False)  # what a crashed run left behind is ours
    try:
        cluster_sh("up")
        yield BOOTSTRAP
    finally:
        if not keep:
            cluster_sh("clean", check=False)


def options(identity: str, **more: object) -> KafkaOptions:
    """Client options to connect to the cluster as ``identity`` (a party id or ``admin``)."""
    settings = {"request_timeout_ms": ADMIN_TIMEOUT_MS, **more}
    return KafkaOptions.for_identity(BOOTSTRAP, PKI_DIR, identity, **settings)


async def describe(topics: Sequence[str]) -> dict[tuple[str, int], tuple[int, list[int]]]:
    """(topic, partition) → (leader, ISR), asked afresh: a long-lived admin client keeps
    talking to a node that is gone."""
    admin = KafkaTransport(options("admin"))
    try:
        client = await admin._admin_client()
        described = await asyncio.wait_for(client.describe_topics(list(topics)), 15)
    finally:
        await admin.close()
    return {
        (t["topic"], p["partition"]): (int(p["leader"]), [int(r) for r in p["isr"]])
        for t in described
        for p in t["partitions"]
    }


T = TypeVar("T")


async def _until(what: str, timeout_s: float, probe: Callable[[], Awaitable[T | None]]) -> T:
    """The first answer of ``probe`` that is not None, asked every second."""
    deadline = time.monotonic() + timeout_s
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            result = await probe()
            if result is not None:
                return result
        except (TransportError, TimeoutError, OSError, KeyError) as exc:
            last = exc
        await asyncio.sleep(1.0)
    raise ClusterError(f"{what} not within {timeout_s:.0f} s (last error: {last})")


async def leader_of(topic: str, partition: int, timeout_s: float = 60.0) -> int:
    """The node leading ``topic``/``partition`` (waits while it has none)."""

    async def probe() -> int | None:
        leader, _ = (await describe([topic]))[(topic, partition)]
        return leader if leader in NODES else None

    return await _until(f"a leader for {topic}/{partition}", timeout_s, probe)


async def wait_in_sync(topics: Sequence[str], timeout_s: float = IN_SYNC_TIMEOUT_S) -> None:
    """Until every partition of ``topics`` has all three nodes in its ISR: a fault injected
    before that would really be two faults at once."""

    async def probe() -> bool | None:
        state = await describe(topics)
        return True if all(sorted(isr) == list(NODES) for _, isr in state.values()) else None

    await _until("every replica back in sync", timeout_s, probe)
