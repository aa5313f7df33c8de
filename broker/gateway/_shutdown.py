"""How a gateway process stops: always, and soon.

The first SIGTERM or SIGINT asks for a graceful stop — finish the record in hand, commit,
close — that must end within `STOP_DEADLINE_S`: each step waits at most its share of what
is left (`Shutdown.within`), and what overruns is cancelled, whether the log is away, a
transaction is pending or a batch is half done. Nothing acknowledged depends on these
steps: a send is acknowledged only once written, a delivery is visible only once its
follow-up is, and the store survives a crash at any point (the crash-point tests).

A second signal ends the process at once (exit 128 + the signal's number, after one line on
stderr). So does the watchdog, `HARD_EXIT_S` after the first, if the graceful stop is
wedged (a thread that does not return): the same as a crash, which the store survives.
"""

from __future__ import annotations

import asyncio
import os
import signal
import threading
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")

STOP_DEADLINE_S = 8.0
"""A graceful stop ends within this: inside the 10 s an orchestrator commonly grants between
SIGTERM and SIGKILL (Docker's default; Kubernetes grants 30 s)."""

HARD_EXIT_S = 9.5
"""If the process still runs this long after the first signal, it exits anyway: a stop has
an end even when a step ignores its deadline."""

SIGNALS = (signal.SIGTERM, signal.SIGINT)


def _exit_now(sig: int, why: str) -> None:
    """One line on stderr, then exit 128 + ``sig`` with no clean-up (async-signal-safe:
    only os.write and os._exit, so it also works from a plain signal handler)."""
    name = signal.Signals(sig).name
    os.write(2, f"lvvx gateway: {why} ({name}); exiting now [STOPPED_HARD]\n".encode())
    os._exit(128 + sig)


class Shutdown:
    """The stop of one service process, once `install` ed on the running loop."""

    def __init__(self, *, deadline_s: float = STOP_DEADLINE_S,
                 hard_exit_s: float = HARD_EXIT_S) -> None:  # fmt: skip
        self.requested = asyncio.Event()
        self.signal: int | None = None
        self._deadline_s, self._hard_exit_s = deadline_s, hard_exit_s
        self._deadline = float("inf")
        self._on_stop: Callable[[], None] = lambda: None
        self._watchdog: threading.Timer | None = None

    def install(self, on_stop: Callable[[], None]) -> None:
        """SIGTERM and SIGINT call ``on_stop`` (once) and start the deadline."""
        self._on_stop = on_stop
        loop = asyncio.get_running_loop()
        for sig in SIGNALS:
            loop.add_signal_handler(sig, self._first, sig)

    def _first(self, sig: int) -> None:
        self.signal = sig
        self._deadline = asyncio.get_running_loop().time() + self._deadline_s
        # from now on a signal ends the process at once, also while the loop is busy
        loop = asyncio.get_running_loop()
        for s in SIGNALS:
            loop.remove_signal_handler(s)
            signal.signal(s, lambda n, _frame: _exit_now(n, "a second signal"))
        self._watchdog = threading.Timer(
            self._hard_exit_s, _exit_now, (sig, f"not stopped within {self._hard_exit_s} s")
        )
        self._watchdog.daemon = True
        self._watchdog.start()
        self.request()

    def request(self) -> None:
        """Stop (also without a signal: a failed part stops the rest)."""
        if not self.requested.is_set():
            self.requested.set()
            self._on_stop()

    def remaining(self) -> float:
        return max(self._deadline - asyncio.get_running_loop().time(), 0.0)

    async def within(self, step: Awaitable[T], share_s: float) -> bool:
        """Run ``step`` for ``share_s`` at most (less if the deadline is nearer), then
        cancel it; True if it ended in time (its own error is raised)."""
        task = asyncio.ensure_future(step)
        done, _ = await asyncio.wait({task}, timeout=min(share_s, self.remaining()))
        if not done:
            task.cancel()
            await asyncio.wait({task}, timeout=0.5)
            return False
        task.result()
        return True

    async def unless_stopped(self, step: Awaitable[T]) -> bool:
        """Run ``step`` unless a stop comes first (then it is cancelled); True if it ended."""
        task = asyncio.ensure_future(step)
        stop = asyncio.ensure_future(self.requested.wait())
        try:
            await asyncio.wait({task, stop}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stop.cancel()
        if not task.done():
            task.cancel()
            await asyncio.wait({task}, timeout=0.5)
            return False
        task.result()
        return True
