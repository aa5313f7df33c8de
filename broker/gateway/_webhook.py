"""Optional push delivery: POST each delivered message to the back office's webhook, with
retries and exponential back-off, and acknowledge it in the inbox once the back office
answered 2xx. Until then the message stays in the pull inbox too, so nothing is lost when
the back office is down for a while."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid

import httpx

from broker.gateway._store import GatewayStore

log = logging.getLogger("lvvx.webhook")

WEBHOOK_TIMEOUT_S = 10.0
BACKOFF_FIRST_S = 0.5
BACKOFF_MAX_S = 60.0
"""Retries double their wait up to a minute, then keep trying once a minute."""

IDLE_POLL_S = 0.5


class WebhookPusher:
    def __init__(
        self, store: GatewayStore, url: str, token: str, client: httpx.AsyncClient | None = None
    ) -> None:
        self._store = store
        self._url = url
        self._token = token
        self._client = client or httpx.AsyncClient(timeout=WEBHOOK_TIMEOUT_S)
        self._next_try: dict[uuid.UUID, tuple[float, float]] = {}  # id → (when, current back-off)
        self._stopping = asyncio.Event()

    def stop(self) -> None:
        self._stopping.set()

    async def run(self) -> None:
        try:
            while not self._stopping.is_set():
                pushed = await self.push_due()
                if not pushed:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._stopping.wait(), IDLE_POLL_S)
        finally:
            await self._client.aclose()

    async def push_due(self) -> int:
        """POST every unacknowledged message whose back-off has passed; returns how many
        the back office took."""
        taken = 0
        now = time.monotonic()
        for item in self._store.inbox(limit=100):
            when, _ = self._next_try.get(item.message_id, (0.0, 0.0))
            if when > now:
                continue
            body = {
                "message_id": str(item.message_id), "type": item.message_type, "sender": item.sender,
                "case_id": str(item.case_id), "created_at": item.created_at.isoformat(),
                "message": item.message,
            }  # fmt: skip
            try:
                response = await self._client.post(
                    self._url, json=body, headers={"Authorization": f"Bearer {self._token}"}
                )
                ok = 200 <= response.status_code < 300
            except httpx.HTTPError as exc:
                log.info("webhook %s unreachable: %s", self._url, type(exc).__name__)
                ok = False
            if ok:
                self._store.ack(item.message_id, item.received_at)
                self._next_try.pop(item.message_id, None)
                taken += 1
            else:
                _, wait = self._next_try.get(item.message_id, (0.0, BACKOFF_FIRST_S / 2))
                wait = min(wait * 2, BACKOFF_MAX_S)
                self._next_try[item.message_id] = (now + wait, wait)
        return taken
