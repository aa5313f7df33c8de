"""Crash points: a test can make a gateway process die at an exact step of the receive path,
as a SIGKILL would, to check that nothing is lost or duplicated (issue 8).

Set ``LVVX_CRASH_AT=<point>[:<n>]`` in the gateway's environment and the process exits with
`os._exit` — no cleanup, no flushing, no offsets committed, no transaction aborted — the
``n``-th time (default: the first) it reaches ``<point>``. The points, in the order a record
meets them (module docstring of `broker.gateway._gateway`):

- ``after_open``: an envelope was opened; nothing is stored yet (once per record);
- ``after_deliver``: the delivery is stored — inbox, replay guard, position — but hidden from
  the back office, its follow-up pending (once per delivered record);
- ``after_audit``: an atomic write (receipts, dead letters, audit events) is in the log, but the
  audit chain has not advanced in memory (once per write: follow-ups, sends and checkpoints);
- ``after_receipt``: a batch's follow-ups — receipts and audit events — are published, but
  not yet marked done: the messages are still hidden (once per batch);
- ``after_visible``: the follow-ups are marked done, the messages visible to the back office;
  the offsets are not committed (once per batch);
- ``after_commit``: the batch's offsets are committed (once per batch).

And one of the send path (issue 16): ``after_send``: a message the back office sent is in
the log, its SENT event too, but the HTTP answer has not gone out (once per send).

Without the variable (as in production) `reached` only tests a module global for None. A
malformed value fails the import, so a test can never believe it armed a crash it did not.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from typing import Literal, get_args

Point = Literal[
    "after_open",
    "after_deliver",
    "after_audit",
    "after_receipt",
    "after_visible",
    "after_commit",
    "after_send",
]
POINTS: tuple[Point, ...] = get_args(Point)
RECEIVE_POINTS: tuple[Point, ...] = tuple(p for p in POINTS if p != "after_send")
"""The receive path's points, in the order a batch reaches them."""

ENV_VAR = "LVVX_CRASH_AT"

EXIT_CODE = 137
"""What a shell reports for a process killed by SIGKILL (128 + 9); tests check for it."""


@dataclass(slots=True)
class CrashPlan:
    """Die at the ``nth`` time ``point`` is reached."""

    point: Point
    nth: int = 1
    seen: int = 0

    @classmethod
    def parse(cls, value: str) -> CrashPlan:
        """``<point>[:<n>]``, e.g. ``after_open`` or ``after_commit:3``."""
        name, _, count = value.strip().partition(":")
        if name not in POINTS:
            raise ValueError(f"{ENV_VAR}: unknown crash point {name!r}; one of {', '.join(POINTS)}")
        try:
            nth = int(count) if count else 1
        except ValueError:
            raise ValueError(f"{ENV_VAR}: {count!r} is not a count") from None
        if nth < 1:
            raise ValueError(f"{ENV_VAR}: the count must be 1 or more, not {nth}")
        return cls(name, nth)

    def due(self, point: Point) -> bool:
        """Count ``point`` if it is this plan's; True when the process must die now."""
        if point != self.point:
            return False
        self.seen += 1
        return self.seen == self.nth


def _die(point: Point, nth: int) -> None:
    # one unbuffered line, so the test's log shows where the process died
    os.write(sys.stderr.fileno(), f"{ENV_VAR}: crash point {point} #{nth} reached\n".encode())
    os._exit(EXIT_CODE)


_plan: CrashPlan | None = None
_exit = _die  # tests replace it to observe a crash without dying


def arm(value: str | None) -> None:
    """Arm the plan ``value`` describes (None or empty disarms); done once at import from
    the environment, and by unit tests."""
    global _plan
    _plan = CrashPlan.parse(value) if value else None


def reached(point: Point) -> None:
    """The gateway passed ``point``: die here if the plan says so."""
    if _plan is not None and _plan.due(point):
        _exit(point, _plan.nth)


arm(os.environ.get(ENV_VAR))
