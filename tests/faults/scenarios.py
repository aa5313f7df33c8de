"""The faults, one scenario each, injected while traffic flows. Each scenario leaves the
cluster whole again (every node up, every replica in sync) so the next starts clean.

- ``leader-sigkill`` / ``leader-sigterm``: the node leading the busiest inbox partition is
  killed (a crash) or stopped (a controlled shutdown), then restarted — ``rounds`` times in a
  row, each time hitting the partition's leader of that moment;
- ``quorum-loss``: two of the three nodes stopped: the controller quorum and min ISR 2 are
  gone, so senders must get errors and nothing may be acknowledged falsely; then restarted;
- ``pause``: the leader is frozen (SIGSTOP) longer than the broker session timeout, so it
  is fenced while its connections stay open, then resumed (SIGCONT).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

from tests.faults import cluster

CRASH_HOLD_S = 5.0
"""Traffic with the leader gone before it is restarted: past the moment it is fenced
(broker.session.timeout.ms 9 s counts from its last heartbeat, so usually within this)."""

QUORUM_LOSS_HOLD_S = 30.0
"""Two nodes down this long: every send in flight meets the outage, and the gateway's own
send timeout (30 s) runs out for the first of them."""

PAUSE_HOLD_S = 20.0
"""Frozen for twice the broker session timeout (9 s): fenced, leadership moved, then back."""


@dataclass(frozen=True)
class Fault:
    action: str
    at_s: float
    """Seconds since the scenario started."""
    took_s: float


@dataclass
class FaultLog:
    scenario: str
    started: float = field(default_factory=time.monotonic)
    faults: list[Fault] = field(default_factory=list)
    ended: float | None = None

    async def inject(self, action: str, command: str, n: int) -> None:
        at = time.monotonic() - self.started
        took = await cluster.node(command, n)
        self.faults.append(Fault(action, round(at, 1), round(took, 1)))
        print(f"  [{self.scenario} +{at:5.1f}s] {action} ({took:.1f} s)", flush=True)


@dataclass(frozen=True)
class Target:
    """The partition whose leader the faults hit, and the topics that must be back in sync
    before the next fault."""

    topic: str
    partition: int
    topics: Sequence[str]


async def leader_crashes(log: FaultLog, target: Target, *, command: str, rounds: int) -> None:
    signal = {"kill": "SIGKILL", "stop": "SIGTERM"}[command]
    for n in range(1, rounds + 1):
        await cluster.wait_in_sync(target.topics)
        leader = await cluster.leader_of(target.topic, target.partition)
        await log.inject(f"round {n}: {signal} node {leader}, the leader", command, leader)
        await asyncio.sleep(CRASH_HOLD_S)
        await log.inject(f"round {n}: restart node {leader}", "start", leader)
    await cluster.wait_in_sync(target.topics)


async def quorum_loss(log: FaultLog, target: Target) -> None:
    await cluster.wait_in_sync(target.topics)
    leader = await cluster.leader_of(target.topic, target.partition)
    other = next(n for n in cluster.NODES if n != leader)
    await log.inject(f"stop node {leader}, the leader", "stop", leader)
    await log.inject(f"stop node {other}: one of three left", "stop", other)
    await asyncio.sleep(QUORUM_LOSS_HOLD_S)
    await log.inject(f"restart node {leader}", "start", leader)
    await log.inject(f"restart node {other}", "start", other)
    await cluster.wait_in_sync(target.topics)


async def pause(log: FaultLog, target: Target) -> None:
    await cluster.wait_in_sync(target.topics)
    leader = await cluster.leader_of(target.topic, target.partition)
    await log.inject(f"SIGSTOP node {leader}, the leader", "pause", leader)
    await asyncio.sleep(PAUSE_HOLD_S)
    await log.inject(f"SIGCONT node {leader}", "resume", leader)
    await cluster.wait_in_sync(target.topics)


def scenarios(rounds: int) -> dict[str, Callable[[FaultLog, Target], Awaitable[None]]]:
    """Every scenario by name, in the order a full run takes them."""
    return {
        "leader-sigkill": lambda log, t: leader_crashes(log, t, command="kill", rounds=rounds),
        "leader-sigterm": lambda log, t: leader_crashes(log, t, command="stop", rounds=rounds),
        "quorum-loss": quorum_loss,
        "pause": pause,
    }
