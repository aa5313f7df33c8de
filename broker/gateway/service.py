"""`lvvx gateway run`: one party's gateway as a service — the consume loop, the HTTP API,
metrics and the optional webhook pusher in one process, stopped gracefully by SIGTERM or
SIGINT (finish the record in hand, commit, close) within a deadline (`_shutdown`).

One process per party: the data folder is locked (`_lock`) before the store is opened.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import importlib
import logging
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Literal, NamedTuple

import uvicorn

from broker.crypto import AnchorKey, KeyStore, load_directory, passphrase_from_env
from broker.gateway._gateway import STOP_WRITE_WAIT_S, Gateway, utc_now
from broker.gateway._lock import DataDirLock
from broker.gateway._shutdown import Shutdown
from broker.gateway._store import GatewayStore
from broker.gateway._webhook import WebhookPusher
from broker.gateway.api import create_app
from broker.gateway.metrics import PrometheusObserver, watch_log
from broker.gateway.settings import GatewaySettings
from broker.models import PublicKey
from broker.owner_only import private_dir
from broker.transport import Transport

log = logging.getLogger("lvvx.gateway")

# Each step's share of the stop deadline (`_shutdown.STOP_DEADLINE_S`, 8 s in all); a step
# that overruns is cancelled, and none is given more than what is left of the deadline.
RUN_STOP_S = STOP_WRITE_WAIT_S + 1.0
"""The consume loop: the record in hand finished and committed (writes give up before)."""
HTTP_STOP_S = STOP_WRITE_WAIT_S + 1.0
"""Requests in flight answered: a send waiting for its write hears by then."""
PUSH_STOP_S = 1.0
"""The webhook pusher: a delivery in flight is tried again after a restart."""
CLOSE_STOP_S = 3.5
"""The log's clients: the gateway's consumer and producer side by side, then the transport's
own (each bounded by the transport itself; an embedded log is closed after its users)."""


class ApiServer(uvicorn.Server):
    """uvicorn without its own signal handling: the service stops the gateway first."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class ServerStack(NamedTuple):
    """What the API runs on: uvicorn's HTTP parser, and the process's event loop."""

    http: Literal["httptools", "h11"]
    loop: Literal["uvloop", "asyncio"]

    def __str__(self) -> str:
        return f"{self.http} on {self.loop}"


def _importable(module: str) -> bool:
    try:
        importlib.import_module(module)
    except ImportError:
        return False
    return True


@functools.cache
def server_stack() -> ServerStack:
    """httptools and uvloop (uvicorn's standard extras, in C) where they import; else, each
    on its own, uvicorn's pure-Python h11 and the standard library's asyncio loop."""
    return ServerStack(
        "httptools" if _importable("httptools") else "h11",
        "uvloop" if _importable("uvloop") else "asyncio",
    )


def run(settings: GatewaySettings) -> None:
    """`serve` on the event loop `server_stack` names: uvloop's where it imports. (uvicorn's
    own ``Config(loop=...)`` applies only when uvicorn runs the loop itself, `Server.run`.)"""
    loop_factory: Callable[[], asyncio.AbstractEventLoop] | None = None
    if server_stack().loop == "uvloop":
        import uvloop

        loop_factory = uvloop.new_event_loop
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        runner.run(serve(settings))


def _transport(settings: GatewaySettings) -> Transport:
    if settings.transport == "kafka":
        from broker.transport.kafka import KafkaTransport

        return KafkaTransport(settings.kafka)
    from broker.transport.embedded import EmbeddedTransport

    return EmbeddedTransport(settings.embedded_log or settings.data_dir / "log.db")


def build_gateway(settings: GatewaySettings) -> tuple[Gateway, PrometheusObserver]:
    """The gateway described by ``settings``: keys, a checked directory, store, transport."""
    passphrase = passphrase_from_env()
    key_store = KeyStore(settings.keys_dir)
    # the whole ring, and the means to read it again: after `lvvx keys rotate` the next
    # directory lists keys the gateway takes from the folder then (kept: the passphrase)
    ring = key_store.load_ring(settings.party, passphrase)
    content_key = key_store.content_key(settings.party, passphrase)
    anchor = AnchorKey.from_record(PublicKey.model_validate_json(settings.anchor_file.read_text()))
    private_dir(settings.data_dir)
    store = GatewayStore(settings.data_dir / "gateway.db", content_key=content_key)
    # never go back to an older directory than one used before (a withheld revocation)
    try:
        directory = load_directory(
            settings.directory_file.read_bytes(), anchor=anchor, now=utc_now(), network=settings.network,
            min_serial=store.directory_serial(),
        )  # fmt: skip
    except BaseException:
        store.close()  # refused: nothing stays open or changed
        raise
    store.use_directory_serial(directory.serial)
    if missing := ring.missing_from(directory, utc_now()):
        log.error("the directory lists keys of %s its key folder lacks: %s (what is sealed to "
                  "them cannot be opened)", settings.party, ", ".join(sorted(missing)))  # fmt: skip
    keys = ring.keys_at(directory, utc_now())
    observer = PrometheusObserver(settings.party)
    timeout = timedelta(seconds=settings.receipt_timeout_s)
    gateway = Gateway(
        keys=keys, directory=directory, transport=_transport(settings), store=store,
        prefix=settings.topic_prefix, observer=observer, receipt_timeout=timeout, anchor=anchor,
        key_ring=ring, envelope_format=settings.envelope_format,
        reload_keys=lambda previous: key_store.load_ring(settings.party, passphrase, previous=previous),
    )  # fmt: skip
    observer.watch_directory(lambda: gateway.directory, utc_now)
    observer.watch_store(store, lambda: len(store.overdue(utc_now(), timeout)))
    observer.ready.labels(settings.party).set_function(lambda: float(gateway.ready))
    return gateway, observer


async def serve(settings: GatewaySettings) -> None:
    """Run the party's gateway until SIGTERM or SIGINT; refuse (`AlreadyRunning`) if
    another process has its data folder."""
    token = settings.token()
    lock = DataDirLock(settings.data_dir)
    lock.acquire()  # before the store is opened: a second gateway of the party ends here
    try:
        await _serve(settings, token)
    finally:
        lock.release()


async def _serve(settings: GatewaySettings, token: str) -> None:
    gateway, observer = build_gateway(settings)
    app = create_app(
        gateway, token=token, metrics=observer.page,
        receipt_timeout=timedelta(seconds=settings.receipt_timeout_s),
        max_body_bytes=settings.max_body_bytes,
    )  # fmt: skip
    server = ApiServer(uvicorn.Config(app, host=settings.http_host, port=settings.http_port,
                                    log_level="warning", lifespan="off", http=server_stack().http,
                                    timeout_graceful_shutdown=int(HTTP_STOP_S)))  # fmt: skip
    pusher = (
        # signed with its own secret: the API token never leaves for the webhook
        WebhookPusher(gateway.store, str(settings.webhook_url), settings.webhook_key())
        if settings.webhook_url
        else None
    )

    def stop() -> None:
        log.info("stopping gateway %s (a second signal ends it at once)", settings.party)
        gateway.stop()
        server.should_exit = True  # no new requests; those in flight are answered
        if pusher:
            pusher.stop()

    shutdown = Shutdown()
    shutdown.install(stop)
    watching = asyncio.Event()
    tasks: list[asyncio.Task[None]] = []
    clean = True
    try:
        if not await shutdown.unless_stopped(gateway.start()):
            return  # stopped while starting (the log may be away): nothing to finish
        tasks = [asyncio.create_task(watch_log(gateway, observer, watching)),
                 asyncio.create_task(server.serve())]  # fmt: skip
        if pusher:
            tasks.append(asyncio.create_task(pusher.run()))
        run = asyncio.create_task(gateway.run())
        await asyncio.wait({run, tasks[1]}, return_when=asyncio.FIRST_COMPLETED)
        shutdown.request()  # a signal, or the loop or the API ended by itself: all stop
        # returns after stop(): the record in hand finished and committed
        clean = await shutdown.within(run, RUN_STOP_S)
    finally:
        await _stop_the_rest(gateway, shutdown, tasks, watching, clean=clean)


async def _stop_the_rest(gateway: Gateway, shutdown: Shutdown, tasks: list[asyncio.Task[None]],
                         watching: asyncio.Event, *, clean: bool) -> None:  # fmt: skip
    """Everything but the consume loop, each step within its share of the deadline. The
    store is closed only after a clean end of the loop: a loop cut short may still have a
    store call running in a thread, and the store is crash-safe anyway."""
    watching.set()
    if tasks:
        tasks[0].cancel()  # the log figures: a reading in an outage would wait 20 s
    for task, share in zip(tasks[1:], (HTTP_STOP_S, PUSH_STOP_S), strict=False):
        try:
            await shutdown.within(task, share)
        except Exception as exc:  # it ended in an error: the rest stops all the same
            log.warning("gateway %s: %r ended with %r", gateway.party_id, task.get_name(), exc)

    async def close_clients() -> None:
        try:
            await gateway.close()
        finally:
            await gateway.transport.close()

    try:
        if not await shutdown.within(close_clients(), CLOSE_STOP_S):
            log.warning(
                "gateway %s: closing its log clients did not finish in time", gateway.party_id
            )
    except Exception as exc:  # closed as far as it went; the process ends all the same
        log.warning("gateway %s: closing its log clients failed: %s", gateway.party_id, exc)
    if clean:
        gateway.store.close()
