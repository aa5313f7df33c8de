"""Running the console: the live audit follower (`broker.audit.follow`, the same one as
`lvvx audit follow`) and the web server on one event loop. The follower's reports land in a
`ConsoleState`, the pages render from it: what a page shows is at most one verify pass
(`broker.audit._follow.STALE_BOUND_S`) behind the audit topics."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime, timedelta

import uvicorn

from broker.audit import DEFAULT_GRACE, follow
from broker.console._app import create_console_app
from broker.console._state import ConsoleState
from broker.crypto import Directory
from broker.transport import Transport

Topics = Sequence[str] | Callable[[Directory], Sequence[str]]
"""The audit topics to follow, or how to get them from a directory (`follow`'s)."""

HTTP_STOP_S = 1
"""Requests in flight when the console stops: pages render from memory, so they are quick."""


class _Server(uvicorn.Server):
    """uvicorn without its own signal handling: whoever runs the console stops it."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


async def run_console(
    transport: Transport,
    topics: Topics,
    directory: Directory | Callable[[], Directory],
    *,
    token: str,
    stop: asyncio.Event,
    host: str = "127.0.0.1",
    port: int = 8090,
    grace: timedelta = DEFAULT_GRACE,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    state: ConsoleState | None = None,
) -> ConsoleState:
    """Follow the audit topics and serve the console on ``host:port`` until ``stop``;
    ``topics`` and ``directory`` as `follow` takes them (callables: followed live). Returns
    the state it held."""
    state = state or ConsoleState(clock=clock)
    app = create_console_app(state, token=token)
    server = _Server(uvicorn.Config(app, host=host, port=port, log_level="warning",
                                    lifespan="off", timeout_graceful_shutdown=HTTP_STOP_S))  # fmt: skip
    serving = asyncio.create_task(server.serve())
    try:
        following = asyncio.create_task(follow(
            transport, topics, directory, stop=stop, grace=grace, clock=clock,
            on_issue=state.on_issue, on_resolved=state.on_resolved, on_report=state.on_report,
        ))  # fmt: skip
        done, _ = await asyncio.wait([following, serving], return_when=asyncio.FIRST_COMPLETED)
        if serving in done and not following.done():  # the server could not start (port taken)
            stop.set()
        await following
    finally:
        server.should_exit = True
        await serving
    return state
