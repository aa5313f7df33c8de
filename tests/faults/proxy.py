"""A TCP proxy on loopback whose network a test can cut and restore (issue 8: faults).

`TcpProxy` listens on 127.0.0.1 and forwards every connection to a target host:port, byte
for byte in both directions. `cut()` makes the link fail, in one of three ways:

- ``"drop"`` (default): every open connection is reset; new ones are accepted but blackholed
  — nothing is forwarded, nothing answered, as behind a dead router — and closed on restore;
- ``"refuse"``: open connections are reset and the port is closed, so connecting fails at
  once (ECONNREFUSED), as when the far host is down;
- ``"hang"``: open connections stay up but nothing flows; new ones are accepted and wait.
  On restore everything flows again, bytes held meanwhile included, as after a partition
  that heals before TCP gives up.

`restore()` lets traffic through again. Loopback only, and no parsing: the proxy knows
nothing of Kafka.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from types import TracebackType
from typing import Literal, Self

log = logging.getLogger("lvvx.faults.proxy")

CutMode = Literal["drop", "refuse", "hang"]

CHUNK_BYTES = 64 * 1024
"""Bytes read at a time from one side; a Kafka fetch response passes in a few chunks."""


class _Link:
    """One client connection and, once the target answered, its upstream connection."""

    def __init__(self, client: asyncio.StreamWriter) -> None:
        self.client = client
        self.upstream: asyncio.StreamWriter | None = None
        self.tasks: set[asyncio.Task[None]] = set()

    def abort(self) -> None:
        """Reset both sides (RST where the OS allows it): what a dropped link looks like."""
        for writer in (self.client, self.upstream):
            if writer is not None:
                writer.transport.abort()
        for task in self.tasks:
            task.cancel()


class TcpProxy:
    """Forwards ``listen_port`` (0: any free port, see `port`) on 127.0.0.1 to
    ``target_host:target_port`` until cut."""

    def __init__(self, target_host: str, target_port: int, *, listen_port: int = 0) -> None:
        self.target = (target_host, target_port)
        self._port = listen_port
        self._server: asyncio.Server | None = None
        self._links: set[_Link] = set()
        self._flowing = asyncio.Event()
        self._flowing.set()
        self.mode: CutMode | None = None
        self.connections = 0
        """Connections accepted so far (a test can see that clients came back)."""

    @property
    def port(self) -> int:
        return self._port

    @property
    def is_cut(self) -> bool:
        return self.mode is not None

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", self._port)
        self._port = int(self._server.sockets[0].getsockname()[1])

    async def close(self) -> None:
        self._drop_all()
        await self._stop_listening()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def cut(self, mode: CutMode = "drop") -> None:
        """Make the link fail as ``mode`` says (module docstring)."""
        self.mode = mode
        self._flowing.clear()
        if mode != "hang":
            self._drop_all()
        if mode == "refuse":
            await self._stop_listening()
        log.info("proxy :%s cut (%s)", self._port, mode)

    async def restore(self) -> None:
        """Let traffic through again: blackholed connections are closed (their clients
        reconnect), held ones flow on, and a refused port listens again."""
        mode, self.mode = self.mode, None
        if mode == "drop":
            self._drop_all()  # only blackholed ones are left: nothing was forwarded on them
        if mode == "refuse" and self._server is None:
            await self.start()
        self._flowing.set()
        log.info("proxy :%s restored", self._port)

    # --- inside ------------------------------------------------------------------------------

    async def _stop_listening(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.close()
            await server.wait_closed()

    def _drop_all(self) -> None:
        links, self._links = self._links, set()
        for link in links:
            link.abort()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        link = _Link(writer)
        self._links.add(link)
        try:
            if self.mode == "drop":  # blackholed: swallow what comes until restore drops it
                while await reader.read(CHUNK_BYTES):
                    pass
                return
            await self._flowing.wait()  # "hang": connect upstream only once restored
            try:
                up_reader, link.upstream = await asyncio.open_connection(*self.target)
            except OSError as exc:
                log.info("proxy :%s cannot reach %s:%s: %s", self._port, *self.target, exc)
                return
            pumps = (self._pump(reader, link.upstream), self._pump(up_reader, writer))
            link.tasks = {asyncio.create_task(p) for p in pumps}
            # one direction ending (EOF, reset) ends the link, as a TCP proxy should
            await asyncio.wait(link.tasks, return_when=asyncio.FIRST_COMPLETED)
        except (OSError, asyncio.CancelledError):
            pass
        finally:
            self._links.discard(link)
            link.abort()

    async def _pump(self, source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError):
            while data := await source.read(CHUNK_BYTES):
                await self._flowing.wait()  # "hang": hold the bytes until restored
                sink.write(data)
                await sink.drain()
