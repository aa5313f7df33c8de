"""The client against real gateways on the embedded log (`tests.unit.gateway.test_api`'s
`Stack`): the async client on the gateway's ASGI app in this process, the sync client
through a real uvicorn server on loopback (each of its calls in a worker thread, so the
event loop serving the gateway runs on). `Flavour` makes both look alike to a test, so
every behaviour is checked on both."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest

from broker.client import AsyncGatewayClient, GatewayClient
from broker.errors import TransportUnavailable
from broker.gateway import Gateway
from broker.gateway.api import create_app
from tests.crypto_net import NOW
from tests.unit.gateway.test_api import IND, MAX_BODY, MUNI, NGO, TOKEN, Stack
from tests.unit.gateway.test_api import stack as stack  # the fixture: a stack per test

__all__ = ["IND", "MUNI", "NGO", "NOW", "TOKEN", "Api", "Clock", "Flavour", "log_away", "log_back"]

FLAVOURS = ("async-asgi", "sync-uvicorn")


class Clock:
    """A gateway's clock that a test moves on."""

    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> datetime:
        return self.now

    def advance(self, by: timedelta) -> None:
        self.now += by


class Api:
    """Either client, with the async client's methods: the sync one's run in a thread."""

    def __init__(self, client: AsyncGatewayClient | GatewayClient) -> None:
        self.client = client

    def __getattr__(self, name: str) -> Callable[..., Any]:
        method = getattr(self.client, name)
        if isinstance(self.client, AsyncGatewayClient):
            return method  # type: ignore[no-any-return]

        async def threaded(*args: Any, **kwargs: Any) -> Any:
            return await asyncio.to_thread(functools.partial(method, *args, **kwargs))

        return threaded

    async def close(self) -> None:
        if isinstance(self.client, AsyncGatewayClient):
            await self.client.aclose()
        else:
            self.client.close()


@dataclass
class Flavour:
    """How a test reaches a gateway's API: `connect` gives a client of this flavour."""

    name: str
    stack: Stack
    apis: list[Api]

    async def connect(self, gw: Gateway, *, token: str | None = TOKEN, **options: Any) -> Api:
        """A client of ``gw``'s API (``options``: the client's, and ``app_*`` the app's)."""
        app_options = {k[4:]: options.pop(k) for k in list(options) if k.startswith("app_")}
        if self.name == "async-asgi":
            app = create_app(gw, token=TOKEN, **{"max_body_bytes": MAX_BODY, **app_options})
            transport = httpx.ASGITransport(app=app)
            client = AsyncGatewayClient(
                "http://gateway", token=token, transport=transport, **options
            )
            api = Api(client)
        else:
            served = await self.stack.serve(gw, **app_options)
            api = Api(GatewayClient(str(served.base_url), token=token, **options))
        self.apis.append(api)
        return api

    async def started(self, party: str, *, run: bool = False, **kwargs: Any) -> Gateway:
        return await self.stack.started(party, run=run, **kwargs)


def log_away(gw: Gateway) -> None:
    """``gw`` learns that its log is away, as its probe would find: sends get 503."""
    assert gw._health is not None, "a started gateway"
    gw._health.lost(TransportUnavailable("the log does not answer"))


def log_back(gw: Gateway) -> None:
    assert gw._health is not None, "a started gateway"
    gw._health.answered()


@pytest.fixture(params=FLAVOURS)
async def flavour(request: pytest.FixtureRequest, stack: Stack) -> AsyncIterator[Flavour]:
    f = Flavour(request.param, stack, [])
    try:
        yield f
    finally:
        for api in f.apis:
            await api.close()
