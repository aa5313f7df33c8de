"""A back office reading its gateway's inbox (GET /v1/inbox) and acknowledging each message
(POST /v1/inbox/{id}/ack) before it reads again — the reader the soak and the fault suite
share. What it sees goes to a `Watcher`: the soak's ledger, the fault suite's history."""

from __future__ import annotations

import asyncio
import time
from typing import Any, Protocol

import httpx

ACKS_IN_FLIGHT = 16
"""Acknowledgements a back office has open at once."""

INBOX_BATCH = 500
"""Messages read per GET /v1/inbox (the API's maximum)."""

READ_IDLE_S = 0.05
"""Pause after reading an empty inbox."""

ERROR_PAUSE_S = 1.0
"""Pause after a failed read: a gateway that is down is not asked again at full speed."""


class Watcher(Protocol):
    def delivered(self, party: str, item: dict[str, Any]) -> None:
        """A message shown in ``party``'s inbox: once per delivery (see `read_inbox`)."""

    def acked(self, party: str, seconds: float) -> None:
        """An acknowledgement the gateway took, and how long the call took."""

    def inbox_read(self, party: str, seconds: float) -> None:
        """A successful GET /v1/inbox, and how long it took."""

    def error(self, party: str, kind: str) -> None:
        """A failed call: ``kind`` is the operation and the error, e.g. ``ack HTTP 503 ...``."""


def reason_of(response: httpx.Response) -> str:
    """The API's reason code of an error response (``TRANSPORT_TIMEOUT``), or ``""``."""
    try:
        return str(response.json().get("reason", ""))
    except ValueError:
        return ""


def problem(response: httpx.Response) -> str:
    """``HTTP 503 TRANSPORT_TIMEOUT``: the status and the API's reason code, if it gave one."""
    return f"HTTP {response.status_code} {reason_of(response)}".strip()


async def read_inbox(
    party: str, client: httpx.AsyncClient, watcher: Watcher, stop: asyncio.Event,
    idle_s: float = READ_IDLE_S,
) -> None:  # fmt: skip
    """Read and acknowledge ``party``'s inbox until ``stop`` is set and it is empty, pausing
    ``idle_s`` after each empty read.

    A message shown again before its acknowledgement went through is the same delivery, not
    a second one; a message twice on one page is two deliveries."""
    held: set[str] = set()  # shown, acknowledgement not yet through
    while True:
        items = await _page(party, client, watcher)
        on_page: set[str] = set()
        for item in items:
            message_id = item["message_id"]
            if message_id not in held or message_id in on_page:
                watcher.delivered(party, item)
            held.add(message_id)
            on_page.add(message_id)
        held -= await _ack_all(party, client, watcher, list(on_page))
        if not items:
            if stop.is_set():
                return
            await asyncio.sleep(idle_s)


async def _page(party: str, client: httpx.AsyncClient, watcher: Watcher) -> list[dict[str, Any]]:
    started = time.perf_counter()
    try:
        response = await client.get("/v1/inbox", params={"limit": INBOX_BATCH})
    except httpx.HTTPError as exc:
        watcher.error(party, f"inbox {type(exc).__name__}")
        await asyncio.sleep(ERROR_PAUSE_S)
        return []
    if response.status_code != 200:
        watcher.error(party, f"inbox {problem(response)}")
        await asyncio.sleep(ERROR_PAUSE_S)
        return []
    watcher.inbox_read(party, time.perf_counter() - started)
    items: list[dict[str, Any]] = response.json()["items"]
    return items


async def _ack_all(
    party: str, client: httpx.AsyncClient, watcher: Watcher, ids: list[str]
) -> set[str]:
    """Acknowledge ``ids``, `ACKS_IN_FLIGHT` at a time; those the gateway took."""
    gate = asyncio.Semaphore(ACKS_IN_FLIGHT)

    async def one(message_id: str) -> str | None:
        async with gate:
            started = time.perf_counter()
            try:
                response = await client.post(f"/v1/inbox/{message_id}/ack")
            except httpx.HTTPError as exc:
                watcher.error(party, f"ack {type(exc).__name__}")
                return None
            if response.status_code != 204:
                watcher.error(party, f"ack {problem(response)}")
                return None
            watcher.acked(party, time.perf_counter() - started)
            return message_id

    return {m for m in await asyncio.gather(*map(one, ids)) if m is not None}
