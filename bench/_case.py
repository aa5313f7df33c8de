"""One case — a stage on a link — measured in four phases, on one topic, in one event loop:

1. produce: the producer flat out for the phase's seconds, nobody consuming;
2. consume: a consumer started only now reads that backlog until every message is delivered;
3. saturation: producer and consumer together, at most a window of messages in flight;
4. paced: producer and consumer together, messages arriving at a fixed rate.

Each phase reports messages, record bytes, wall time and this process's CPU time
(`time.process_time`: every thread, so aiokafka and SQLite work is in; the broker is another
process and is not); the last two also latencies from arrival to delivery.
"""

from __future__ import annotations

import asyncio
import math
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from bench._links import Link, Sink, Source
from bench._load import Admission, FlatOut, Paced, Tracker, Windowed
from bench._stages import BenchFailure, Record, Stage

STALL_S = 30.0
"""A consumer that sees nothing for this long while messages are in flight has lost them."""

PERCENTILES = (50, 95, 99)


@dataclass(frozen=True, slots=True)
class Phase:
    messages: int
    record_bytes: int
    wall_s: float
    cpu_s: float
    latency_ms: dict[str, float] | None = None

    @property
    def msg_per_s(self) -> float:
        return self.messages / self.wall_s

    @property
    def mb_per_s(self) -> float:
        return self.record_bytes / self.wall_s / 1e6

    @property
    def cpu_us_per_msg(self) -> float:
        return self.cpu_s / self.messages * 1e6

    def summary(self) -> dict[str, object]:
        return {
            "messages": self.messages,
            "wall_s": round(self.wall_s, 4),
            "cpu_s": round(self.cpu_s, 4),
            "msg_per_s": round(self.msg_per_s, 1),
            "mb_per_s": round(self.mb_per_s, 3),
            "cpu_us_per_msg": round(self.cpu_us_per_msg, 1),
            "latency_ms": self.latency_ms,
        }


def percentiles_ms(samples_s: list[float]) -> dict[str, float] | None:
    """Nearest-rank percentiles, in milliseconds."""
    if not samples_s:
        return None
    ordered = sorted(samples_s)
    rank = {p: max(math.ceil(p / 100 * len(ordered)) - 1, 0) for p in PERCENTILES}
    return {f"p{p}": round(ordered[i] * 1e3, 3) for p, i in rank.items()}


Moved = tuple[int, int]
"""Messages and record-value bytes a phase moved."""


async def _measured(work: Callable[[], Awaitable[Moved]], tracker: Tracker) -> Phase:
    tracker.latencies_s = []
    wall, cpu = time.perf_counter(), time.process_time()
    messages, record_bytes = await work()
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    if messages == 0:
        raise BenchFailure("a phase moved no message at all")
    latency = percentiles_ms(tracker.latencies_s) if tracker.recording else None
    return Phase(messages, record_bytes, wall, cpu, latency)


def _bytes(records: Sequence[Record]) -> int:
    return sum(len(value) for _, value in records)


async def produce(admission: Admission, stage: Stage, sink: Sink, tracker: Tracker) -> Moved:
    """Seal (or not) and send what the admission lets in, batch by batch; then wait for acks."""
    sent = sent_bytes = 0
    while (arrivals := await admission.next()) is not None:
        ids = [uuid.uuid4() for _ in arrivals]
        tracker.admit(ids, arrivals)
        records = stage.encode(ids)
        await sink.send(records)
        sent, sent_bytes = sent + len(records), sent_bytes + _bytes(records)
    await sink.flush()
    return sent, sent_bytes


async def consume(source: Source, stage: Stage, tracker: Tracker, done: Callable[[], bool]) -> int:
    """Poll, open (or not) and deliver until ``done``; returns the record bytes consumed."""
    last, consumed = time.perf_counter(), 0
    while not done():
        records = await source.poll()
        now = time.perf_counter()
        if records:
            stage.decode(records, tracker.deliver)
            last, consumed = now, consumed + _bytes(records)
        elif tracker.in_flight and now - last > STALL_S:
            raise BenchFailure(f"{tracker.in_flight} messages not delivered after {STALL_S} s")
    return consumed


async def backlog(source: Source, stage: Stage, tracker: Tracker) -> Moved:
    before = tracker.delivered
    consumed = await consume(source, stage, tracker, lambda: tracker.in_flight == 0)
    return tracker.delivered - before, consumed


async def end_to_end(
    admission: Admission, stage: Stage, sink: Sink, source: Source, tracker: Tracker
) -> Moved:
    """Producer and consumer at once, until everything produced is delivered."""
    producing = asyncio.create_task(produce(admission, stage, sink, tracker))

    def done() -> bool:
        return producing.done() and (producing.exception() is not None or not tracker.in_flight)

    try:
        consumed = await consume(source, stage, tracker, done)
        sent, _ = await producing
        return sent, consumed
    finally:
        producing.cancel()


async def run_case(link: Link, stage: Stage, seconds: float, rate: float) -> dict[str, Phase]:
    """The four phases of one case, in order, on one topic."""
    tracker, sink = Tracker(), link.sink
    flat_out = await _measured(lambda: produce(FlatOut(seconds), stage, sink, tracker), tracker)
    source = await link.source()
    backlogged = await _measured(lambda: backlog(source, stage, tracker), tracker)
    tracker.recording = True

    def both(admission: Admission) -> Awaitable[Moved]:
        return end_to_end(admission, stage, sink, source, tracker)

    saturated = await _measured(lambda: both(Windowed(seconds, tracker)), tracker)
    paced = await _measured(lambda: both(Paced(seconds, rate)), tracker)
    return {"produce": flat_out, "consume": backlogged, "saturation": saturated, "paced": paced}
