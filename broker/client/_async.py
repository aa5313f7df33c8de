"""`AsyncGatewayClient`: the API for a back office on asyncio. Each method does what
`GatewayClient`'s of the same name does, and is documented there."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Mapping, Sequence
from types import TracebackType
from typing import Any, TypeVar, Unpack

import httpx

from broker.client import _calls as calls
from broker.client import _models as models
from broker.client._config import ClientOptions, Setup
from broker.client._errors import ApiError
from broker.client._tries import Tries, translated
from broker.models import AvroModel

T = TypeVar("T")


class AsyncGatewayClient:
    """`GatewayClient` on asyncio, with the same options. ``transport`` may be
    ``httpx.ASGITransport(app)``: the gateway's app in this process. Its `send` fits
    `adapters.GatewayClient`, so an adapter can send through it."""

    def __init__(
        self, base_url: str, *, transport: httpx.AsyncBaseTransport | None = None,
        **options: Unpack[ClientOptions],
    ) -> None:  # fmt: skip
        self._setup = Setup.of(base_url, options)
        self._http = httpx.AsyncClient(transport=transport, **self._setup.http)  # type: ignore[arg-type]

    async def _run(self, call: calls.Call[T]) -> T:
        tries = Tries(call, self._setup.retry, self._setup.on_call)
        while True:
            tries.start()
            try:
                with translated(call.operation):
                    response = await self._http.send(call.request(self._http))
                return tries.done(response)
            except ApiError as error:
                await asyncio.sleep(tries.failed(error))

    async def send(
        self,
        message: AvroModel | Mapping[str, Any],
        recipients: Sequence[str],
        *,
        timeout_s: float | None = None,
        **fields: Unpack[models.SendFields],
    ) -> uuid.UUID:
        outgoing = models.Outgoing.of(message, recipients, **fields)
        return await self._run(
            calls.send(outgoing, keyed=self._setup.keyed, read_timeout_s=timeout_s)
        )

    async def send_batch(
        self, messages: Sequence[models.Outgoing], *, timeout_s: float | None = None
    ) -> list[calls.SendOutcome]:
        call = calls.send_batch(messages, keyed=self._setup.keyed, read_timeout_s=timeout_s)
        return await self._run(call)

    async def status(self, message_id: uuid.UUID) -> models.MessageStatus:
        return await self._run(calls.status(message_id))

    async def overdue(self) -> list[uuid.UUID]:
        return await self._run(calls.overdue())

    async def inbox(self, *, limit: int = 50, wait_s: float = 0.0) -> list[models.InboxEntry]:
        return await self._run(calls.inbox(limit, wait_s, read_timeout_s=None))

    async def ack(self, message_id: uuid.UUID, *, sender: str | None = None) -> None:
        await self._run(calls.ack(message_id, sender))

    async def health(self) -> models.Health:
        return await self._run(calls.health())

    async def ready(self) -> models.Readiness:
        return await self._run(calls.ready())

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> AsyncGatewayClient:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()


__all__ = ["AsyncGatewayClient"]
