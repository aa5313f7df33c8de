"""The load: 4 KiB dossiers sent to the sending gateway through the client SDK (keep-alive
connections, an idempotency key on each send, no retries: a refusal is counted, not hidden),
open loop at a fixed offered rate, or closed loop flat out.

Open loop: message i is due at start + i/rate whether or not earlier ones were answered;
its latencies run from that due time, so a gateway that falls behind pays for the wait
(no coordinated omission). At most `CONNECTIONS` requests are open at once, one per
keep-alive connection; the rest wait their turn in the driver, and that wait counts. Past
`MAX_WAITING` waiting, a due message is skipped and counted as not offered.

Flat out: `FLAT_OUT_SENDERS` senders each POST again as soon as they are answered, while
fewer than `FLAT_OUT_WINDOW` messages are in flight (POSTed, not yet in every inbox), so
the pair runs at its own pace and no backlog builds up behind it.
"""

from __future__ import annotations

import asyncio
import json
import math
import time
import uuid
from typing import Any

from bench._backoffice import problem
from bench._payload import padded_dossier
from bench.gateway._ledger import Ledger
from broker.client import ApiError, AsyncGatewayClient

PAYLOAD_BYTES = 4096
"""The Avro-encoded `DossierDelivered`, its notes padded to this (bench/_payload.py)."""

CONNECTIONS = 8
"""Keep-alive connections to each gateway (the back offices' too): POSTs open at once, which
the sending gateway may group into one write. Not more: httpcore checks every connection of
its pool at each request (≈ 50 µs each here), and the driver's CPU is CPU the gateways on
the same machine lack (16 instead of 8 cost the driver a third more CPU per message)."""

MAX_WAITING = 256
"""Due messages waiting for a connection before the next due one is skipped: a rate the
gateway cannot take shows as skipped messages, not as a queue that takes minutes to drain."""

FLAT_OUT_SENDERS = CONNECTIONS
FLAT_OUT_WINDOW = 256

STALL_S = 1.0
"""A flat-out sender waiting for room looks again after this, delivered or not."""


class Bodies:
    """The padded dossier to ``recipients``, in its JSON form, each with a case id of its
    own (a case id has a fixed length, so the payload stays `PAYLOAD_BYTES`)."""

    TYPE = "DossierDelivered"

    def __init__(self, recipients: tuple[str, ...]) -> None:
        self.recipients = recipients
        self._message: dict[str, Any] = json.loads(padded_dossier(PAYLOAD_BYTES).model_dump_json())

    def next(self) -> dict[str, Any]:
        return {**self._message, "case_id": str(uuid.uuid4())}


class Driver:
    def __init__(self, client: AsyncGatewayClient, bodies: Bodies, ledger: Ledger) -> None:
        self.client, self.bodies, self.ledger = client, bodies, ledger
        self._connections = asyncio.Semaphore(CONNECTIONS)

    async def post(self, due: float) -> None:
        self.ledger.begin()
        body = self.bodies.next()
        async with self._connections:
            try:
                message_id = await self.client.send(body, self.bodies.recipients,
                                                    message_type=Bodies.TYPE)  # fmt: skip
            except ApiError as error:
                self.ledger.refused(f"send {problem(error)}")
                return
        self.ledger.accepted(due, str(message_id))

    async def paced(self, rate: float, seconds: float) -> int:
        """``rate`` messages a second for ``seconds``; returns how many were not offered."""
        start, skipped = time.perf_counter(), 0
        open_posts: set[asyncio.Task[None]] = set()
        for i in range(math.floor(rate * seconds)):
            due = start + i / rate
            await asyncio.sleep(max(due - time.perf_counter(), 0.0))
            if len(open_posts) >= CONNECTIONS + MAX_WAITING:
                skipped += 1
                continue
            task = asyncio.create_task(self.post(due))
            open_posts.add(task)
            task.add_done_callback(open_posts.discard)
        await asyncio.gather(*open_posts)
        return skipped

    async def flat_out(self, seconds: float) -> int:
        """As fast as the pair takes them for ``seconds``; returns 0 (none is skipped)."""
        until = time.perf_counter() + seconds

        async def sender() -> None:
            while (now := time.perf_counter()) < until:
                if self.ledger.in_flight >= FLAT_OUT_WINDOW:
                    await self.ledger.progress(STALL_S)
                    continue
                await self.post(now)

        await asyncio.gather(*(sender() for _ in range(FLAT_OUT_SENDERS)))
        return 0
