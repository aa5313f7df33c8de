"""`lvvx demo --serve`: after the run, the network stays up for dashboards — every gateway's
HTTP API and metrics on its port, the DT&V verifier's metrics, and a new case every few
seconds so the graphs move. Ctrl-C (or SIGTERM) stops it all gracefully.

**Ports.** By default the gateways on 8081, 8082, … in the directory's order and the
verifier's metrics on 9108, where `deploy/prometheus/` scrapes them. With ``--port-base`` B:
the gateways on B+1, B+2, …, the verifier on B + `VERIFIER_OFFSET` — one block of 100
ports (`ports_from`). `port_table` is printed at the start: which port is which party.

**The clock.** The run's calendar ended in the past (`demo.calendar`); while serving, the
clock is the wall clock. A case takes weeks, so each new case is what happens today: its
intake and the two dossiers; it then sits in its rest period, as a real one would, and the
case monitor shows it there — no rule broken.

**Idle.** Nothing polls on a short timer: the back offices wait on their gateways' inbox
signal (`demo.backoffice`), the gateways' consumers on the log."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import uvicorn

from broker.audit import audit_topics, follow
from broker.audit.metrics import serve_follow_metrics
from broker.gateway import Gateway, utc_now
from broker.gateway.api import create_app
from broker.gateway.metrics import PrometheusObserver, watch_log
from broker.gateway.service import ApiServer
from broker.models import DossierDelivered, IntakeRegistered
from demo.casebook import CaseWriter
from demo.run import Demo

TRICKLE_EVERY_S = 5.0
"""A new case this often while serving: enough for rates on a dashboard, little load."""

DEFAULT_PORT_BASE = 8080
"""The gateways on 8081, 8082, …: the ports `deploy/prometheus/` scrapes."""

VERIFIER_PORT = 9108
"""The verifier's metrics without ``--port-base``: where `deploy/prometheus/` scrapes it."""

VERIFIER_OFFSET = 28
"""With ``--port-base`` B, the verifier's metrics on B + 28: past the gateways (B+1 … B+12,
room for more parties), within the block of 100 ports from B."""


def ports_from(port_base: int | None) -> tuple[int, int]:
    """(first gateway port, verifier port) for ``--port-base`` (None: the defaults)."""
    if port_base is None:
        return DEFAULT_PORT_BASE + 1, VERIFIER_PORT
    return port_base + 1, port_base + VERIFIER_OFFSET


OPENING = (IntakeRegistered, DossierDelivered)
"""What a case served live sends: its intake and dossiers (the rest period then takes
14 days)."""


def port_table(ports: dict[str, int], verifier_port: int) -> list[tuple[str, str]]:
    """(port, party) rows: each gateway's API and metrics, then the verifier's metrics."""
    rows = [(str(port), f"{party} (gateway: /v1, /metrics)") for party, port in ports.items()]
    return [*rows, (str(verifier_port), "dtv (audit verifier: /metrics)")]


OPENED_BEFORE = timedelta(hours=42)
"""A served case's intake, this long before now: its dossiers (20 hours apart) then are
dated before now too."""


def _watch(observer: PrometheusObserver, gateway: Gateway) -> None:
    """The gauges `lvvx gateway run` keeps, for one gateway of the demo."""
    observer.ready.labels(gateway.party_id).set_function(lambda: float(gateway.ready))
    observer.watch_store(
        gateway.store, lambda: len(gateway.store.overdue(utc_now(), gateway.receipt_timeout))
    )


async def serve(
    demo: Demo,
    ports: dict[str, int],
    *,
    say: Callable[[str], None],
    seed: int = 4242,
    verifier_port: int = VERIFIER_PORT,
    show: Callable[[list[tuple[str, str]]], None] | None = None,
) -> None:
    """Serve ``demo`` on ``ports`` (party → gateway port) until SIGINT or SIGTERM; ``show``
    prints the port table (else `say`, a line each)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    servers: list[ApiServer] = []
    serving: list[asyncio.Task[Any]] = []
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
        serving.append(asyncio.create_task(server.serve()))
        tasks.append(asyncio.create_task(watch_log(gateway, observer, stop)))
    tasks += serving
    # every port listens before the table says so
    while not all(server.started for server in servers):
        if failed := [t for t in serving if t.done()]:
            failed[0].result()  # it could not start (a port taken): say why
            raise RuntimeError("a gateway's API server stopped before it started")
        await asyncio.sleep(0.01)
    metrics = serve_follow_metrics(verifier_port, host="127.0.0.1")
    tasks.append(asyncio.create_task(follow(
        demo.transport, audit_topics(demo.net.directory, demo.prefix), demo.net.directory, stop=stop, on_report=metrics.update,
        on_issue=lambda i: say(f"audit finding: {i.kind.value} {i.gateway} {i.detail}"),
    )))  # fmt: skip
    rows = port_table(ports, verifier_port)
    if show is not None:
        show(rows)
    else:
        for port, party in rows:
            say(f"127.0.0.1:{port}  {party}")
    say(f"serving: gateways on 127.0.0.1:{min(ports.values())}-{max(ports.values())} (/metrics, /v1 with the "
        f"tokens in secrets/), verifier metrics on 127.0.0.1:{verifier_port}; a new case every "
        f"{TRICKLE_EVERY_S:.0f} s (its intake and dossiers); Ctrl-C stops")  # fmt: skip
    writer = CaseWriter(seed=seed)
    n = 0
    while not stop.is_set():
        case = writer.case(n, intake_at=utc_now() - OPENED_BEFORE)
        opening = [s for s in case.steps if isinstance(s.message, OPENING)]
        tasks.append(asyncio.create_task(demo.drive(case, opening)))
        n += 1
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), TRICKLE_EVERY_S)
    for server in servers:
        server.should_exit = True
    await asyncio.gather(*tasks, return_exceptions=True)
    say(f"stopped after {n} more cases")
