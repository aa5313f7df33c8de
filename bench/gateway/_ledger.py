"""What became of every message of a case: when it was due, when its POST was answered and
with which id, when each copy first showed in its recipient's inbox, when each was
acknowledged. The back offices report to it (it is their `bench._backoffice.Watcher`).

Times are `time.perf_counter` of this process, where the driver and the back offices both
run, so a message's end-to-end latency is one clock read against another.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from dataclasses import dataclass, field

from broker.client import InboxEntry


@dataclass(frozen=True, slots=True)
class Sent:
    """A message the sending gateway accepted (202)."""

    phase: int
    due: float
    """When it was to be sent: its slot at a fixed rate, or when a flat-out sender took it."""
    answered: float
    message_id: str


@dataclass
class Ledger:
    recipients: tuple[str, ...]
    phase: int = 0
    """The phase now running: errors are counted under it."""
    sent: list[Sent] = field(default_factory=list)
    seen: dict[str, dict[str, float]] = field(default_factory=dict)
    """Message id → recipient → when its back office first saw it."""
    seen_at: dict[str, list[float]] = field(default_factory=dict)
    acked_at: dict[str, list[float]] = field(default_factory=dict)
    errors: dict[int, Counter[str]] = field(default_factory=dict)
    duplicates: int = 0
    """Copies shown again after their acknowledgement went through (a second delivery)."""
    begun: int = 0
    failed: int = 0
    complete: int = 0
    """Messages seen in every recipient's inbox."""
    _progress: asyncio.Event = field(default_factory=asyncio.Event)

    def __post_init__(self) -> None:
        for party in self.recipients:
            self.seen_at.setdefault(party, [])
            self.acked_at.setdefault(party, [])

    # --- the driver ----------------------------------------------------------------------

    @property
    def in_flight(self) -> int:
        """POSTs begun whose message is not yet in every inbox (and did not fail)."""
        return self.begun - self.failed - self.complete

    def begin(self) -> None:
        self.begun += 1

    def accepted(self, due: float, message_id: str) -> None:
        self.sent.append(Sent(self.phase, due, time.perf_counter(), message_id))

    def refused(self, kind: str) -> None:
        self.failed += 1
        self._count(kind)
        self._progress.set()

    async def progress(self, timeout_s: float) -> None:
        """Until a message completes or fails, or ``timeout_s`` passed."""
        self._progress.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._progress.wait(), timeout_s)

    def drained(self) -> bool:
        """Every message begun is in every inbox (or failed) and every copy was acknowledged."""
        acked = all(len(self.acked_at[p]) >= len(self.seen_at[p]) for p in self.recipients)
        return self.in_flight <= 0 and acked

    def _count(self, kind: str) -> None:
        self.errors.setdefault(self.phase, Counter())[kind] += 1

    # --- the back offices (bench._backoffice.Watcher) --------------------------------------

    def delivered(self, party: str, entry: InboxEntry) -> None:
        now = time.perf_counter()
        copies = self.seen.setdefault(str(entry.message_id), {})
        if party in copies:
            self.duplicates += 1
            return
        copies[party] = now
        self.seen_at[party].append(now)
        if len(copies) == len(self.recipients):
            self.complete += 1
            self._progress.set()

    def acked(self, party: str, seconds: float) -> None:
        self.acked_at[party].append(time.perf_counter())

    def inbox_read(self, party: str, seconds: float) -> None:
        pass

    def error(self, party: str, kind: str) -> None:
        self._count(f"{party}: {kind}")
