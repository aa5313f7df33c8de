"""Sealing a gateway's sends together: requests that arrive in the same turn of the event
loop are sealed as one batch (`broker.crypto.Sealer`), so they share one signature and
their recipient sets' epoch keys. A lone request is sealed at once, in the next turn."""

from __future__ import annotations

import asyncio

from broker.crypto import Sealer, SealRequest
from broker.errors import LocalError


class SealQueue:
    def __init__(self, sealer: Sealer) -> None:
        self.sealer = sealer
        self._waiting: list[tuple[SealRequest, asyncio.Future[bytes]]] = []
        self.batches = 0

    async def seal(self, request: SealRequest) -> bytes:
        """The envelope of ``request``; raises what kept it from being sealed."""
        loop = asyncio.get_running_loop()
        done: asyncio.Future[bytes] = loop.create_future()
        self._waiting.append((request, done))
        if len(self._waiting) == 1:
            loop.call_soon(self._seal_waiting)
        return await done

    def _seal_waiting(self) -> None:
        batch, self._waiting = self._waiting, []
        self.batches += 1
        try:
            outcomes = self.sealer.seal_each([request for request, _ in batch])
        except Exception as exc:  # a bug, not a refusal: every caller learns of it
            outcomes = [LocalError(f"sealing failed: {exc}", reason="SEAL_FAILED")] * len(batch)
        for (_, done), outcome in zip(batch, outcomes, strict=True):
            if done.done():  # the caller went away (cancelled)
                continue
            if isinstance(outcome, Exception):
                done.set_exception(outcome)
            else:
                done.set_result(outcome)
