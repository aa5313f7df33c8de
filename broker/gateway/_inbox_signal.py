"""Waking the back office's long polls (``GET /v1/inbox?wait=S``) when messages become
visible, without polling the store.

The gateway calls `InboxSignal.notify` after the store transaction that makes a batch's
deliveries visible has committed; every waiter of that moment wakes and reads the inbox
once. A waiter costs one awaited `asyncio.Event` shared by all the waiters of the same
moment (a generation): nothing runs for it until a delivery or its timeout, so an idle long
poll costs nothing per second, and a thousand of them one event. `close` (the gateway
stopping) wakes them all for good: each answers with what the inbox holds.
"""

from __future__ import annotations

import asyncio
import contextlib

MAX_INBOX_WAIT_S = 30.0
"""Longest ``wait`` a long poll may ask for: below the idle timeouts of common proxies and
load balancers (60 s), so a waiting request is not cut off on the way."""


class InboxSignal:
    """Generations of an `asyncio.Event`: `notify` sets the current one and starts the next."""

    def __init__(self) -> None:
        self._event = asyncio.Event()
        self._closed = False
        self.notified = 0

    @property
    def closed(self) -> bool:
        return self._closed

    def generation(self) -> asyncio.Event:
        """The event the next `notify` sets: take it *before* reading the inbox, so a
        delivery between the read and the wait is not missed."""
        return self._event

    def notify(self) -> None:
        """Messages became visible: wake every waiter of this generation."""
        self.notified += 1
        event, self._event = self._event, asyncio.Event()
        event.set()
        if self._closed:  # a closed signal stays set for any later waiter
            self._event.set()

    def close(self) -> None:
        """The gateway is stopping: wake every waiter now and later."""
        self._closed = True
        self._event.set()

    @staticmethod
    async def wait(generation: asyncio.Event, timeout_s: float) -> bool:
        """Until ``generation`` is set (True) or ``timeout_s`` passed (False)."""
        if timeout_s <= 0:
            return generation.is_set()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(generation.wait(), timeout_s)
        return generation.is_set()
