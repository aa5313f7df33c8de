"""Optional push delivery: POST each delivered message to the back office's webhook, with
retries and exponential back-off, and acknowledge it in the inbox once the back office
answered 2xx. Until then the message stays in the pull inbox too, so nothing is lost when
the back office is down for a while.

Every POST is signed with the webhook's own secret — never the API's bearer token, which
would let whoever runs the webhook endpoint (or reads its logs) use the gateway's API. The
scheme is Stripe's::

    LVVX-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>." || raw body)>

A back office verifies it over the raw body bytes exactly as received (before parsing the
JSON), compares in constant time, and refuses a timestamp more than 5 minutes
(`broker.api_contract.WEBHOOK_TOLERANCE_S`) from its own clock, so a captured request cannot be replayed later.
It may see the same message again after a timeout or a restart and keeps it once by its
``message_id``. The SDK's `broker.client.verify_webhook` does all of that; any ``v1`` in
the header may match, so a secret can be rotated by signing with both for a while. The
scheme itself is written once, in `broker.api_contract`.

The secret comes from ``LVVX_GATEWAY_WEBHOOK_SECRET`` or ``webhook_secret_file``, never from
the TOML file (`broker.gateway.settings`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import uuid
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, Protocol

import httpx

from broker.api_contract import SIGNATURE_HEADER, webhook_signature
from broker.tracecontext import TRACEPARENT_HEADER

log = logging.getLogger("lvvx.webhook")

WEBHOOK_TIMEOUT_S = 10.0
BACKOFF_FIRST_S = 0.5
BACKOFF_MAX_S = 60.0
"""Retries double their wait up to a minute, then keep trying once a minute."""

IDLE_POLL_S = 0.5


class PushItem(Protocol):
    """What the pusher reads of an inbox item (`broker.gateway.InboxItem`)."""

    @property
    def message_id(self) -> uuid.UUID: ...
    @property
    def message_type(self) -> str: ...
    @property
    def sender(self) -> str: ...
    @property
    def case_id(self) -> uuid.UUID: ...
    @property
    def created_at(self) -> datetime: ...
    @property
    def received_at(self) -> datetime: ...
    @property
    def traceparent(self) -> str | None: ...
    @property
    def message(self) -> dict[str, Any]: ...


class PushSource(Protocol):
    """The inbox the pusher drains (`broker.gateway.GatewayStore`)."""

    def inbox(self, *, limit: int) -> Sequence[PushItem]: ...
    def ack(self, message_id: uuid.UUID, now: datetime, *, sender: str | None = None) -> bool: ...


def _body(item: PushItem) -> bytes:
    """The JSON the back office gets, as the exact bytes that are signed and sent."""
    return json.dumps({
        "message_id": str(item.message_id), "type": item.message_type, "sender": item.sender,
        "case_id": str(item.case_id), "created_at": item.created_at.isoformat(),
        "message": item.message, "traceparent": item.traceparent,
    }, ensure_ascii=False, separators=(",", ":")).encode()  # fmt: skip


class WebhookPusher:
    def __init__(
        self,
        store: PushSource,
        url: str,
        secret: str,
        client: httpx.AsyncClient | None = None,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._store = store
        self._url = url
        self._secret = secret
        self._clock = clock
        # a redirect is not followed: it could lead the signed content somewhere else
        self._client = client or httpx.AsyncClient(
            timeout=WEBHOOK_TIMEOUT_S, follow_redirects=False
        )
        self._next_try: dict[uuid.UUID, tuple[float, float]] = {}  # id → (when, current back-off)
        self._stopping = asyncio.Event()

    def stop(self) -> None:
        self._stopping.set()

    async def aclose(self) -> None:
        await self._client.aclose()

    async def run(self) -> None:
        try:
            while not self._stopping.is_set():
                pushed = await self.push_due()
                if not pushed:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._stopping.wait(), IDLE_POLL_S)
        finally:
            await self.aclose()

    async def push_due(self) -> int:
        """POST every unacknowledged message whose back-off has passed; returns how many
        the back office took."""
        taken = 0
        now = time.monotonic()
        for item in self._store.inbox(limit=100):
            when, _ = self._next_try.get(item.message_id, (0.0, 0.0))
            if when > now:
                continue
            body = _body(item)
            headers = {
                "Content-Type": "application/json",
                SIGNATURE_HEADER: webhook_signature(self._secret, body, int(self._clock())),
            }  # signed afresh on every try, so a retry is within the receiver's window
            if item.traceparent is not None:  # W3C Trace Context: the delivery's span
                headers[TRACEPARENT_HEADER] = item.traceparent
            try:
                response = await self._client.post(self._url, content=body, headers=headers)
                ok = 200 <= response.status_code < 300
            except httpx.HTTPError as exc:
                log.info("webhook %s unreachable: %s", self._url, type(exc).__name__)
                ok = False
            if ok:
                await asyncio.to_thread(  # a write: it may wait for the receive loop's batch
                    self._store.ack, item.message_id, item.received_at, sender=item.sender
                )
                self._next_try.pop(item.message_id, None)
                taken += 1
            else:
                _, wait = self._next_try.get(item.message_id, (0.0, BACKOFF_FIRST_S / 2))
                wait = min(wait * 2, BACKOFF_MAX_S)
                self._next_try[item.message_id] = (now + wait, wait)
        return taken


__all__ = ["SIGNATURE_HEADER", "WebhookPusher", "webhook_signature"]
