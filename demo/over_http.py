"""`lvvx demo --over-http`: every gateway's real HTTP API served by uvicorn on a loopback
port of its own, and every back office an `AsyncGatewayClient` user of it — the case
book's sends, the long-polled inbox, the acks — so the whole case flow crosses the API a
back office in production uses. Each port is bound before its server starts, so two runs
on one machine never race for one."""

from __future__ import annotations

import asyncio
import socket

import uvicorn

from broker.client import AsyncGatewayClient
from broker.gateway import Gateway
from broker.gateway.api import create_app
from broker.gateway.service import ApiServer


class ServedGateway:
    """One gateway's API on a port of its own, and its back office's client for it."""

    def __init__(self, gateway: Gateway, token: str) -> None:
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._socket.bind(("127.0.0.1", 0))
        port = self._socket.getsockname()[1]
        app = create_app(gateway, token=token)
        self.server = ApiServer(
            uvicorn.Config(app, log_config=None, log_level="warning", lifespan="off")
        )
        self.client = AsyncGatewayClient(f"http://127.0.0.1:{port}", token=token)
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self.server.serve(sockets=[self._socket]))
        while not self.server.started:
            if self._task.done():  # it could not start: say why
                self._task.result()
            await asyncio.sleep(0.005)

    async def stop(self) -> None:
        """After the back office stopped: the server, then the client and the socket."""
        self.server.should_exit = True
        if self._task is not None:
            await asyncio.gather(self._task, return_exceptions=True)
        await self.client.aclose()
        self._socket.close()


__all__ = ["ServedGateway"]
