"""The demo's simulated clock: the calendar its cases run on (issue 17 §2).

The flow takes seconds, the agreement's calendar weeks — a rest period of 14 days, an
escalation's answer time, the closing a month on. So every gateway and adapter of the demo
reads one `CalendarClock`, injected (`Demo(clock=...)`, `Gateway(clock=...)`, the adapters'
``clock``), never patched, and the demo moves it along the case book's days:

- **Forward only, between days.** The demo drives one calendar day at a time: it moves
  the clock to the day's moment, sends that day's steps of every case (each case's steps in
  order, the cases side by side), and waits until every message of the day reached its
  recipients and every receipt and audit event is written (`Demo.settled`). Only then does it
  move on. An envelope's ``created_at``/``expires_at`` and its recipient's expiry check
  therefore read the same day: nothing is in flight when the clock jumps.
- **Running within a day.** Between jumps the clock runs at the wall clock's pace, so the
  events of a day keep their order in every audit chain and the case monitor, which sorts a
  case's messages by their SENT time, sees them in the order they were sent.
- **In the past.** The calendar starts `CalendarClock.for_span` before today and ends at
  least `END_BEFORE_NOW` before the real now: `lvvx audit verify`, `lvvx audit follow` and
  `lvvx cases`, which judge at the real time afterwards, find nothing in the future.
  `live` then makes it the wall clock (`lvvx demo --serve` after the run).

One clock for the whole network, not one per case: the gateways' audit chains interleave the
cases, and a chain's events must stay in time order. Each case still has its own timeline
(`demo.casebook`): it starts on a day of its own and its steps fall on the days its path has.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

END_BEFORE_NOW = timedelta(days=1)
"""The calendar's last day starts at least this long before the real now: a day's messages
take seconds, and the monitor judges at the real time later."""

MIN_JUMP = timedelta(milliseconds=1)
"""A jump that would land at or before the running clock lands this far after it instead:
the clock never stands still or goes back across days."""


def _wall() -> datetime:
    return datetime.now(UTC)


class CalendarClock:
    """A clock the demo sets: call it for the time. Without a start, the wall clock."""

    def __init__(self, start: datetime | None = None) -> None:
        self._base = start
        self._since = time.monotonic()

    @classmethod
    def for_span(cls, span: timedelta, *, now: datetime | None = None) -> CalendarClock:
        """A calendar of ``span`` that ends `END_BEFORE_NOW` before ``now`` (the wall
        clock), starting on a day at 08:00 UTC: the office hours the case book keeps."""
        now = now or _wall()
        first = (now - END_BEFORE_NOW - span).replace(hour=8, minute=0, second=0, microsecond=0)
        return cls(first)

    @property
    def simulated(self) -> bool:
        return self._base is not None

    @property
    def start(self) -> datetime:
        """Where the calendar began (the wall clock's now, when live)."""
        return self._base if self._base is not None else _wall()

    def __call__(self) -> datetime:
        if self._base is None:
            return _wall()
        return self._base + timedelta(seconds=time.monotonic() - self._since)

    def jump_to(self, at: datetime) -> datetime:
        """Move the clock forward to ``at`` (or just past where it is); the time it reads
        now. Only between days: the caller waited until nothing was in flight."""
        if self._base is None:
            raise ValueError("a live clock follows the wall clock: it cannot jump")
        target = max(at, self() + MIN_JUMP)
        if target > _wall():
            raise ValueError(f"the calendar may not pass the real now: {target.isoformat()}")
        self._base, self._since = target, time.monotonic()
        return target

    def live(self) -> None:
        """From now on, the wall clock (a forward jump: the calendar ended in the past)."""
        self._base = None


__all__ = ["END_BEFORE_NOW", "CalendarClock"]
