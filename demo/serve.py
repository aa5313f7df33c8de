"""`lvvx demo --serve`: after the run, the network stays up for dashboards — every gateway's
HTTP API and metrics on its port, the DT&V verifier's metrics, and a new case every few
seconds so the graphs move. Ctrl-C (or SIGTERM) stops it all gracefully."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Callable
from typing import Any

import uvicorn

from broker.audit import audit_topics, follow
from broker.audit.metrics import serve_follow_metrics
from broker.gateway import Gateway, utc_now
from broker.gateway.api import create_app
from broker.gateway.metrics import PrometheusObserver, watch_log
from broker.gateway.service import ApiServer
from demo.casebook import CaseWriter
from demo.run import Demo

TRICKLE_EVERY_S = 5.0
"""A new case this often while serving: enough for rates on a dashboard, little load."""

VERIFIER_PORT = 9108


def _watch(observer: PrometheusObserver, gateway: Gateway) -> None:
    """The gauges `lvvx gateway run` keeps, for one gateway of the demo."""
    observer.ready.labels(gateway.party_id).set_function(lambda: float(gateway.ready))
    observer.watch_store(
        gateway.store, lambda: len(gateway.store.overdue(utc_now(), gateway.receipt_timeout))
    )


async def serve(
    demo: Demo, ports: dict[str, int], *, say: Callable[[str], None], seed: int = 4242
) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    servers: list[ApiServer] = []
    tasks: list[asyncio.Task[Any]] = []
    for party, gateway in demo.gateways.items():
        observer = demo.observers[party]
        _watch(observer, gateway)
        app = create_app(gateway, token=demo.net.tokens[party], metrics=observer.page)
        server = ApiServer(
            uvicorn.Config(
                app, host="127.0.0.1", port=ports[party], log_level="warning", lifespan="off"
            )
        )
        servers.append(server)
        tasks += [
            asyncio.create_task(server.serve()),
            asyncio.create_task(watch_log(gateway, observer, stop)),
        ]
    metrics = serve_follow_metrics(VERIFIER_PORT, host="127.0.0.1")
    tasks.append(asyncio.create_task(follow(
        demo.transport, audit_topics(demo.net.directory, demo.prefix), demo.net.directory, stop=stop, on_report=metrics.update,
        on_issue=lambda i: say(f"audit finding: {i.kind.value} {i.gateway} {i.detail}"),
    )))  # fmt: skip
    say(f"serving: gateways on 127.0.0.1:{min(ports.values())}-{max(ports.values())} (/metrics, /v1 with the "
        f"tokens in secrets/), verifier metrics on 127.0.0.1:{VERIFIER_PORT}; a new case every "
        f"{TRICKLE_EVERY_S:.0f} s; Ctrl-C stops")  # fmt: skip
    writer = CaseWriter(seed=seed)
    n = 0
    while not stop.is_set():
        tasks.append(asyncio.create_task(demo.drive(writer.case(n))))
        n += 1
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), TRICKLE_EVERY_S)
    for server in servers:
        server.should_exit = True
    await asyncio.gather(*tasks, return_exceptions=True)
    say(f"stopped after {n} more cases")
