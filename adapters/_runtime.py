"""The adapter's receive loop over the gateway's HTTP API: long-poll the inbox, hand each
message to `Adapter.receive`, acknowledge it once the handler succeeded.

Rules, in the order they apply to a message of a page:

1. Acknowledged only after its handler succeeded: the ack says "the back office has it",
   and a message the back office does not have must stay in the gateway's inbox.
2. A handled message whose ack failed (the gateway away) is acknowledged again, not
   handled again, when it comes back: its case must not count it twice.
3. A failed handler is retried with back-off (`FIRST_RETRY_S`, doubling to `MAX_RETRY_S`),
   up to ``max_failures`` times; an error that says retrying cannot help (``retriable`` is
   False) counts as the last. Then the message is *parked*: left unacknowledged in the
   gateway's inbox — nothing is lost, and the operator sees it there — and passed by in
   this process until it restarts (a fixed back office gets another try).
4. More than `MAX_PARKED` parked messages is a broken back office, not a bad message: the
   loop stops with `TooManyParked` rather than page past an ever-growing heap.

Logs name the message's type, sender and id and the failure's reason code: never the
message or the exception's text, which may quote personal data (a V-number, a name).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from adapters._base import Adapter
from broker.client import MAX_INBOX_PAGE, MAX_WAIT_S, InboxEntry, NotFound
from broker.errors import LocalError, LvvError
from broker.models import AvroModel

log = logging.getLogger("lvvx.adapter")

T = TypeVar("T")

POLL_WAIT_S = 20.0
"""The long-poll: an idle adapter asks its gateway three times a minute, and a message
delivered meanwhile wakes the poll at once (below the API's `MAX_WAIT_S`)."""

PAGE = 100
"""Messages asked for per poll: a burst is taken in a few polls, and one page's handling
stays short enough to stop between pages quickly."""

MAX_HANDLER_FAILURES = 5
"""Tries of a failing handler before its message is parked: with the back-off that is
about 15 s, past a gateway restart or a short outage of what the handler sends to."""

FIRST_RETRY_S = 1.0
MAX_RETRY_S = 60.0

MAX_PARKED = 100
"""Parked messages this process passes by before it stops: each one widens every page."""

CALL_PAUSE_S = 1.0
"""After an inbox call failed (the client has already retried it): before the next poll."""


class InboxClient(Protocol):
    """The gateway's inbox as the loop reads it (`broker.client.AsyncGatewayClient`)."""

    async def inbox(self, *, limit: int = 50, wait_s: float = 0.0) -> list[InboxEntry]: ...

    async def ack(self, message_id: uuid.UUID, *, sender: str | None = None) -> None: ...


class TooManyParked(LocalError):
    """More messages failed for good than `MAX_PARKED`: the back office needs an operator."""

    reason = "TOO_MANY_PARKED"


OnHandled = Callable[[InboxEntry, AvroModel], None]
"""Called with each message once it was handled and acknowledged."""


def reason_of(exc: BaseException) -> str:
    """A failure's reason code, or its class's name: never its text."""
    return exc.reason if isinstance(exc, LvvError) else type(exc).__name__


@dataclass
class _Failing:
    failures: int
    retry_at: float


@dataclass
class RuntimeCounts:
    handled: int = 0
    failures: int = 0
    parked: int = 0


class AdapterRuntime:
    """One adapter's receive loop on ``client``. `run` until ``stop`` is set: a poll
    waiting for messages ends at once, a message being handled is finished first."""

    def __init__(
        self,
        adapter: Adapter[Any],
        client: InboxClient,
        *,
        wait_s: float = POLL_WAIT_S,
        page: int = PAGE,
        max_failures: int = MAX_HANDLER_FAILURES,
        on_handled: OnHandled | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not 0 <= wait_s <= MAX_WAIT_S or not 1 <= page <= MAX_INBOX_PAGE or max_failures < 1:
            raise LocalError("wait_s, page or max_failures out of range", reason="CONFIG")
        self.adapter, self.client = adapter, client
        self.wait_s, self.page, self.max_failures = wait_s, page, max_failures
        self.on_handled = on_handled
        self.clock = clock
        self.counts = RuntimeCounts()
        self._failing: dict[uuid.UUID, _Failing] = {}
        self._parked: set[uuid.UUID] = set()
        self._unacked: set[uuid.UUID] = set()  # handled, ack not yet taken

    @property
    def parked(self) -> frozenset[uuid.UUID]:
        return frozenset(self._parked)

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            entries = await _unless_stopped(self._poll(), stop)
            if entries is None:
                return
            took = await self.take(entries, stop)
            if entries and not took:  # only messages waiting for a retry, or parked
                await _unless_stopped(asyncio.sleep(self._idle_s()), stop)

    async def _poll(self) -> list[InboxEntry]:
        # each parked or waiting message takes a place in the page: ask for that many more
        limit = min(MAX_INBOX_PAGE, self.page + len(self._parked) + len(self._failing))
        try:
            return await self.client.inbox(limit=limit, wait_s=self.wait_s)
        except LvvError as exc:
            if not exc.retriable:
                raise
            log.warning("inbox not read: reason %s; again in %.0f s", exc.reason, CALL_PAUSE_S)
            await asyncio.sleep(CALL_PAUSE_S)
            return []

    def _idle_s(self) -> float:
        now = self.clock()
        soonest = min((f.retry_at for f in self._failing.values()), default=now + self.wait_s)
        return max(0.05, min(soonest - now, self.wait_s))

    async def take(self, entries: Sequence[InboxEntry], stop: asyncio.Event | None = None) -> int:
        """Handle and acknowledge what is due of ``entries``; how many were taken."""
        took = 0
        for entry in entries:
            if stop is not None and stop.is_set():
                break  # the rest stays in the inbox for the next start
            message_id = entry.message_id
            if message_id in self._parked or not self._due(message_id):
                continue
            if message_id not in self._unacked:
                message = await self._handle(entry)
                if message is None:
                    continue
                self._unacked.add(message_id)
            if await self._ack(entry):
                took += 1
                self._failing.pop(message_id, None)
                if self.on_handled is not None:
                    self.on_handled(entry, entry.model())
        return took

    def _due(self, message_id: uuid.UUID) -> bool:
        failing = self._failing.get(message_id)
        return failing is None or failing.retry_at <= self.clock()

    async def _handle(self, entry: InboxEntry) -> AvroModel | None:
        try:
            message = entry.model()
            await self.adapter.receive(message, sender=entry.sender, message_id=entry.message_id,
                                       received_at=entry.received_at)  # fmt: skip
        except Exception as exc:  # a handler's failure is the message's, not the loop's
            self._failed(entry, exc)
            return None
        self.counts.handled += 1
        return message

    def _failed(self, entry: InboxEntry, exc: Exception) -> None:
        self.counts.failures += 1
        failing = self._failing.get(entry.message_id) or _Failing(0, 0.0)
        failing.failures += 1
        last = failing.failures >= self.max_failures or not getattr(exc, "retriable", True)
        where = f"{entry.type} from {entry.sender}, message {entry.message_id}"
        if last:
            self._failing.pop(entry.message_id, None)
            self._parked.add(entry.message_id)
            self.counts.parked += 1
            log.error("parked %s: its handler failed %d times, reason %s; it stays in the "
                      "gateway's inbox", where, failing.failures, reason_of(exc))  # fmt: skip
            if len(self._parked) > MAX_PARKED:
                raise TooManyParked(f"more than {MAX_PARKED} messages parked")
            return
        delay = min(FIRST_RETRY_S * 2 ** (failing.failures - 1), MAX_RETRY_S)
        failing.retry_at = self.clock() + delay
        self._failing[entry.message_id] = failing
        log.warning("handler failed on %s: reason %s (try %d of %d); again in %.0f s", where,
                    reason_of(exc), failing.failures, self.max_failures, delay)  # fmt: skip

    async def _ack(self, entry: InboxEntry) -> bool:
        """True once the gateway took the ack (or had it already)."""
        try:
            await self.client.ack(entry.message_id, sender=entry.sender)
        except NotFound:
            pass  # acknowledged before (an earlier try whose answer was lost)
        except LvvError as exc:
            if not exc.retriable:
                raise
            log.warning("ack of message %s not taken: reason %s; again on its next delivery",
                        entry.message_id, exc.reason)  # fmt: skip
            return False
        self._unacked.discard(entry.message_id)
        return True


async def _unless_stopped(work: Awaitable[T], stop: asyncio.Event) -> T | None:
    """``work``'s result, or None (``work`` cancelled) if ``stop`` is set first."""
    task: asyncio.Task[T] = asyncio.ensure_future(work)
    stopping = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({task, stopping}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopping.cancel()
    if not task.done():
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        return None
    return task.result()


__all__ = [
    "MAX_HANDLER_FAILURES",
    "MAX_PARKED",
    "POLL_WAIT_S",
    "AdapterRuntime",
    "InboxClient",
    "OnHandled",
    "RuntimeCounts",
    "TooManyParked",
    "reason_of",
]
