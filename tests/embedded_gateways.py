"""Gateways of the test network on one embedded log, for the tests of the gateway runtime and
of the audit trail: started, run as tasks, halted, restarted on their state files, and all
closed at the end of the test. Also `sent_status`, a sent message's status."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from broker.crypto import AnchorKey, Directory, KeyRing, PartyKeys
from broker.gateway import Gateway, GatewayStore
from broker.gateway.metrics import PrometheusObserver
from broker.transport import Producer, Record, RecordMetadata, Transport
from broker.transport.embedded import EmbeddedTransport
from tests.crypto_net import CONTENT_KEY, NOW, Net
from tests.support import WAIT_S

KEY = b"one-partition"
"""Records injected with one key stay in order (one partition)."""


def sent_status(gw: Gateway, message_id: uuid.UUID) -> str | None:
    """The status of a message ``gw`` sent (``None``: it has no such message)."""
    sent = gw.store.sent_status(message_id)
    return None if sent is None else sent.status


class EmbeddedNetwork:
    """Gateways of ``net`` on one embedded log in ``folder``, one state file per party (a
    restarted gateway reopens the state of the one before)."""

    def __init__(self, folder: Path, net: Net) -> None:
        self.folder, self.net = folder, net
        self.log = EmbeddedTransport(folder / "log.db")
        self.gateways: list[Gateway] = []
        self.tasks: dict[int, asyncio.Task[None]] = {}
        self.stores: list[GatewayStore] = []
        self._producer: Producer | None = None

    def store(self, party: str) -> GatewayStore:
        store = GatewayStore(self.folder / f"{party}.db", content_key=CONTENT_KEY)
        self.stores.append(store)
        return store

    async def gateway(
        self,
        party: str,
        *,
        run: bool = False,
        net: Net | None = None,
        store: GatewayStore | None = None,
        transport: Transport | None = None,
        observer: PrometheusObserver | None = None,
        clock: Callable[[], datetime] = lambda: NOW,
        directory: Directory | None = None,
        anchor: AnchorKey | None = None,
        keys: PartyKeys | None = None,
        key_ring: KeyRing | None = None,
        reload_keys: Callable[[KeyRing], KeyRing] | None = None,
    ) -> Gateway:
        """A started gateway of ``party`` (its inbox and DLQ topics exist from here on),
        its loop running if ``run``; with ``anchor`` it follows the directory topic."""
        net = net or self.net
        gw = Gateway(
            keys=keys or net.keys(party), directory=directory or net.directory, transport=transport or self.log,
            store=store or self.store(party), clock=clock, observer=observer, anchor=anchor,
            key_ring=key_ring, reload_keys=reload_keys,
        )  # fmt: skip
        self.gateways.append(gw)
        await gw.start()
        if run:
            self.run(gw)
        return gw

    def run(self, gw: Gateway) -> asyncio.Task[None]:
        task = asyncio.create_task(gw.run(), name=f"run {gw.party_id}")
        self.tasks[id(gw)] = task
        return task

    async def halt(self, gw: Gateway) -> None:
        """stop() and wait for run() to return (it must, within a poll or two); its last
        events get a checkpoint."""
        gw.stop()
        await asyncio.wait_for(self.tasks.pop(id(gw)), WAIT_S)

    async def halt_all(self) -> None:
        for gw in self.gateways:
            if id(gw) in self.tasks:
                await self.halt(gw)

    async def shut(self, gw: Gateway) -> None:
        """Halt (if running) and close ``gw`` and its store, as a process that exits."""
        if id(gw) in self.tasks:
            await self.halt(gw)
        await gw.close()
        gw.store.close()
        self.gateways.remove(gw)
        self.stores.remove(gw.store)

    async def inject(self, topic: str, value: bytes, key: bytes = KEY) -> RecordMetadata:
        """Put raw bytes in a topic, as a hostile or broken party with write access could."""
        if self._producer is None:
            self._producer = self.log.producer()
            await self._producer.start()
        return await self._producer.send(topic, value, key=key)

    async def records(self, topic: str) -> list[Record]:
        """Every record of ``topic``, read by a consumer of a fresh group."""
        consumer = self.log.consumer(f"test-reader-{uuid.uuid4().hex}", [topic])
        await consumer.start()
        found: list[Record] = []
        try:
            while batch := await consumer.poll(timeout_ms=50):
                found += batch
        finally:
            await consumer.close()
        return sorted(found, key=lambda r: (r.partition, r.offset))

    async def aclose(self) -> None:
        for gw in self.gateways:
            gw.stop()
        results = await asyncio.gather(*self.tasks.values(), return_exceptions=True)
        for gw in self.gateways:
            await gw.close()
        if self._producer is not None:
            await self._producer.close()
        for store in self.stores:
            store.close()
        await self.log.close()
        for result in results:
            if isinstance(result, BaseException):
                raise result
