"""Group commit for the store's small writes: the calls that arrive while one write is on the
disk are written together in the next, in one transaction (one fsync), from a worker thread.

A lone call is written at once, so nothing waits for company; under load a write takes all
that queued up meanwhile (at most `MAX_ITEMS_PER_WRITE`), and the fsyncs per call fall with
the rate instead of capping it. Each caller gets its own outcome: the write function answers
one per item, a refusal of that item in its place; a write that fails as a whole fails every
caller in it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

Item = TypeVar("Item")
Outcome = TypeVar("Outcome")

MAX_ITEMS_PER_WRITE = 512
"""Items one transaction takes at most: bounds how long it holds the store."""


class Coalescer(Generic[Item, Outcome]):
    """Calls of ``write_all`` (blocking: it runs in a worker thread, one at a time), each
    for as many items as have queued up."""

    def __init__(
        self, write_all: Callable[[Sequence[Item]], Sequence[Outcome | Exception]],
        *, gather_s: float = 0.0,
    ) -> None:  # fmt: skip
        """``gather_s`` > 0 makes the first call of a quiet spell wait that long for company
        before its write: for writes nobody waits on (a confirmation that memory answers
        for meanwhile), which then share one fsync even at a low rate."""
        self._write_all = write_all
        self._gather_s = gather_s
        self._queue: list[tuple[Item, asyncio.Future[Outcome]]] = []
        self._writer: asyncio.Task[None] | None = None
        self.writes = 0

    async def submit(self, item: Item) -> Outcome:
        """``item``'s outcome once its write is done; raises its refusal, or what failed the
        write. A caller that is cancelled meanwhile does not undo its item's write."""
        done: asyncio.Future[Outcome] = asyncio.get_running_loop().create_future()
        self._queue.append((item, done))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write_queue())
        return await done

    async def _write_queue(self) -> None:
        if self._gather_s > 0:
            await asyncio.sleep(self._gather_s)
        while self._queue:
            batch = self._queue[:MAX_ITEMS_PER_WRITE]
            del self._queue[:MAX_ITEMS_PER_WRITE]
            self.writes += 1
            try:
                outcomes = await asyncio.to_thread(self._write_all, [item for item, _ in batch])
            except Exception as exc:  # the write as a whole: each of its callers is told
                outcomes = [exc] * len(batch)
            except BaseException:  # cancelled (the loop is closing): no caller waits forever
                for _, done in (*batch, *self._queue):
                    if not done.done():
                        done.cancel()
                self._queue.clear()
                raise
            for (_, done), outcome in zip(batch, outcomes, strict=True):
                if done.done():  # its caller went away
                    continue
                if isinstance(outcome, Exception):
                    done.set_exception(outcome)
                else:
                    done.set_result(outcome)
