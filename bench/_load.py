"""Offered load: when messages enter the pipeline, and what became of them.

An admission hands the producer loop the arrival times of the messages to seal next:
`FlatOut` as many as a batch holds, every time (produce throughput); `Windowed` as many
as keep at most a window of messages between arrival and delivery (saturation, end to
end); `Paced` those whose time has come at a fixed rate (a given offered load).

Latency runs from a message's arrival to its delivery. Arrival is when the message was
due, not when sealing actually began: if the pipeline falls behind, the wait counts too
(no coordinated omission); when it keeps up the two differ by less than one loop turn.
"""

from __future__ import annotations

import asyncio
import math
import time
import uuid
from collections.abc import Sequence
from typing import Protocol

from bench._stages import BenchFailure

SEAL_BATCH_MAX = 64
"""At most this many messages per `seal_many` call: whatever is queued, up to here. Format 2
amortises a signature over a batch; 64 keeps a paced batch's latency well below a millisecond
of sealing per message while giving that amortisation room."""

SATURATION_WINDOW = 8 * SEAL_BATCH_MAX
"""Messages in flight (arrived, not yet delivered) at saturation: eight full batches keep
sealing, the broker and opening all busy at once; latency at saturation is then about this
window divided by the throughput, not an ever-growing backlog."""


class Tracker:
    """Arrival times of messages in flight; latencies of those delivered while recording."""

    def __init__(self) -> None:
        self._arrivals: dict[bytes, float] = {}
        self.latencies_s: list[float] = []
        self.recording = False
        self.delivered = 0
        self._progress = asyncio.Event()

    @property
    def in_flight(self) -> int:
        return len(self._arrivals)

    def admit(self, ids: Sequence[uuid.UUID], arrivals: Sequence[float]) -> None:
        self._arrivals.update((i.bytes, t) for i, t in zip(ids, arrivals, strict=True))

    def deliver(self, message_id: bytes) -> None:
        now = time.perf_counter()
        arrival = self._arrivals.pop(message_id, None)
        if arrival is None:
            raise BenchFailure(f"message {message_id.hex()} delivered twice or never sent")
        if self.recording:
            self.latencies_s.append(now - arrival)
        self.delivered += 1
        self._progress.set()

    async def progress(self) -> None:
        """Wait until something is delivered."""
        self._progress.clear()
        await self._progress.wait()


class Admission(Protocol):
    async def next(self) -> list[float] | None:
        """Arrival times of the messages to seal now; None once the phase is over."""


class FlatOut:
    def __init__(self, seconds: float) -> None:
        self._until = time.perf_counter() + seconds

    async def next(self) -> list[float] | None:
        now = time.perf_counter()
        await asyncio.sleep(0)  # let the other side of the pipeline run between batches
        return [now] * SEAL_BATCH_MAX if now < self._until else None


class Windowed:
    def __init__(self, seconds: float, tracker: Tracker, window: int = SATURATION_WINDOW):
        self._until = time.perf_counter() + seconds
        self._tracker, self._window = tracker, window

    async def next(self) -> list[float] | None:
        while (room := self._window - self._tracker.in_flight) <= 0:
            await self._tracker.progress()
        now = time.perf_counter()
        await asyncio.sleep(0)
        return [now] * min(room, SEAL_BATCH_MAX) if now < self._until else None


class Paced:
    def __init__(self, seconds: float, rate: float) -> None:
        self._start = time.perf_counter()
        self._rate = rate
        self._total = math.floor(seconds * rate)
        self._taken = 0

    async def next(self) -> list[float] | None:
        if self._taken >= self._total:
            return None
        while (due := self._due()) <= self._taken:
            await asyncio.sleep(self._start + self._taken / self._rate - time.perf_counter())
        count = min(due - self._taken, SEAL_BATCH_MAX)
        first, self._taken = self._taken, self._taken + count
        return [self._start + i / self._rate for i in range(first, first + count)]

    def _due(self) -> int:
        """How many messages are due by now since the start."""
        elapsed = time.perf_counter() - self._start
        return min(math.floor(elapsed * self._rate) + 1, self._total)
