"""A back office reading its gateway's inbox and acknowledging each message before it reads
again, through the client SDK (`broker.client`) — the reader the soak, the gateway bench and
the fault suite share. What it sees goes to a `Watcher`: the soak's ledger, the bench's, the
fault suite's history."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Protocol

from broker.client import ApiError, AsyncGatewayClient, InboxEntry

ACKS_IN_FLIGHT = 16
"""Acknowledgements a back office has open at once."""

INBOX_BATCH = 500
"""Messages read per GET /v1/inbox (the API's maximum)."""

READ_IDLE_S = 0.05
"""Pause after reading an empty inbox."""

ERROR_PAUSE_S = 1.0
"""Pause after a read that failed (after the client's own retries): a gateway that is down,
or refuses the token, is not asked again at full speed."""


class Watcher(Protocol):
    def delivered(self, party: str, entry: InboxEntry) -> None:
        """A message shown in ``party``'s inbox: once per delivery (see `read_inbox`)."""

    def acked(self, party: str, seconds: float) -> None:
        """An acknowledgement the gateway took, and how long the call took."""

    def inbox_read(self, party: str, seconds: float) -> None:
        """A successful inbox read, and how long it took."""

    def error(self, party: str, kind: str) -> None:
        """A failed call: ``kind`` is the operation and the error, e.g. ``ack HTTP 503 ...``."""


def problem(error: ApiError) -> str:
    """``HTTP 503 TRANSPORT_TIMEOUT``, or the reason alone when no answer came (``TIMEOUT``)."""
    return f"HTTP {error.status} {error.reason}" if error.status is not None else str(error.reason)


async def read_inbox(
    party: str, client: AsyncGatewayClient, watcher: Watcher, stop: asyncio.Event,
    idle_s: float = READ_IDLE_S,
) -> None:  # fmt: skip
    """Read and acknowledge ``party``'s inbox until ``stop`` is set and it is empty, pausing
    ``idle_s`` after each empty read.

    A message shown again before its acknowledgement went through is the same delivery, not
    a second one; a message twice on one page is two deliveries."""
    held: set[uuid.UUID] = set()  # shown, acknowledgement not yet through
    while True:
        entries = await _page(party, client, watcher)
        on_page: set[uuid.UUID] = set()
        for entry in entries:
            if entry.message_id not in held or entry.message_id in on_page:
                watcher.delivered(party, entry)
            held.add(entry.message_id)
            on_page.add(entry.message_id)
        held -= await _ack_all(party, client, watcher, list(on_page))
        if not entries:
            if stop.is_set():
                return
            await asyncio.sleep(idle_s)


async def _page(party: str, client: AsyncGatewayClient, watcher: Watcher) -> list[InboxEntry]:
    started = time.perf_counter()
    try:
        entries = await client.inbox(limit=INBOX_BATCH)
    except ApiError as error:
        watcher.error(party, f"inbox {problem(error)}")
        await asyncio.sleep(ERROR_PAUSE_S)
        return []
    watcher.inbox_read(party, time.perf_counter() - started)
    return entries


async def _ack_all(
    party: str, client: AsyncGatewayClient, watcher: Watcher, ids: list[uuid.UUID]
) -> set[uuid.UUID]:
    """Acknowledge ``ids``, `ACKS_IN_FLIGHT` at a time; those the gateway took."""
    gate = asyncio.Semaphore(ACKS_IN_FLIGHT)

    async def one(message_id: uuid.UUID) -> uuid.UUID | None:
        async with gate:
            started = time.perf_counter()
            try:
                await client.ack(message_id)
            except ApiError as error:
                watcher.error(party, f"ack {problem(error)}")
                return None
            watcher.acked(party, time.perf_counter() - started)
            return message_id

    return {m for m in await asyncio.gather(*map(one, ids)) if m is not None}
