"""`lvvx gateway run`: one party's gateway as a service — the consume loop, the HTTP API,
metrics and the optional webhook pusher in one process, stopped gracefully by SIGTERM or
SIGINT (finish the record in hand, commit, close)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Iterator
from datetime import timedelta

import uvicorn

from broker.crypto import AnchorKey, KeyStore, load_directory, passphrase_from_env
from broker.gateway._api import create_app
from broker.gateway._gateway import Gateway, utc_now
from broker.gateway._metrics import PrometheusObserver, watch_log
from broker.gateway._settings import GatewaySettings
from broker.gateway._store import GatewayStore
from broker.gateway._webhook import WebhookPusher
from broker.models import PublicKey
from broker.transport import Transport

log = logging.getLogger("lvvx.gateway")


class _Server(uvicorn.Server):
    """uvicorn without its own signal handling: the service stops the gateway first."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def _transport(settings: GatewaySettings) -> Transport:
    if settings.transport == "kafka":
        from broker.transport._kafka import KafkaTransport

        return KafkaTransport(settings.kafka)
    from broker.transport._embedded import EmbeddedTransport

    return EmbeddedTransport(settings.embedded_log or settings.data_dir / "log.db")


def build_gateway(settings: GatewaySettings) -> tuple[Gateway, PrometheusObserver]:
    """The gateway described by ``settings``: keys, a checked directory, store, transport."""
    keys = KeyStore(settings.keys_dir).load_party(settings.party, passphrase_from_env())
    anchor = AnchorKey.from_record(PublicKey.model_validate_json(settings.anchor_file.read_text()))
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    store = GatewayStore(settings.data_dir / "gateway.db")
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
    observer = PrometheusObserver(settings.party)
    timeout = timedelta(seconds=settings.receipt_timeout_s)
    gateway = Gateway(
        keys=keys, directory=directory, transport=_transport(settings), store=store,
        prefix=settings.topic_prefix, observer=observer, receipt_timeout=timeout,
    )  # fmt: skip
    observer.watch_store(store, lambda: len(store.overdue(utc_now(), timeout)))
    observer.ready.labels(settings.party).set_function(lambda: float(gateway.ready))
    return gateway, observer


async def serve(settings: GatewaySettings) -> None:
    token = settings.token()
    gateway, observer = build_gateway(settings)
    app = create_app(
        gateway, token=token, registry=observer.registry,
        receipt_timeout=timedelta(seconds=settings.receipt_timeout_s),
        max_body_bytes=settings.max_body_bytes,
    )  # fmt: skip
    server = _Server(uvicorn.Config(app, host=settings.http_host, port=settings.http_port,
                                    log_level="warning", lifespan="off"))  # fmt: skip
    pusher = (
        WebhookPusher(gateway.store, str(settings.webhook_url), token)
        if settings.webhook_url
        else None
    )

    def stop() -> None:
        log.info("stopping gateway %s", settings.party)
        gateway.stop()
        if pusher:
            pusher.stop()

    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop)
    await gateway.start()
    watching = asyncio.Event()
    figures = asyncio.create_task(watch_log(gateway, observer, watching))
    http = asyncio.create_task(server.serve())
    push = asyncio.create_task(pusher.run()) if pusher else None
    try:
        await gateway.run()  # returns after stop(): the record in hand finished and committed
    finally:
        server.should_exit = True
        watching.set()
        await http
        await figures
        if push:
            await push
        await gateway.close()
        await gateway.transport.close()
        gateway.store.close()
