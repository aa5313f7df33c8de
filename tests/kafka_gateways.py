"""Gateways of the test network on real Kafka, on topics of a fresh prefix: started, run as
tasks, and all closed at the end of the test (`tests/kafka/conftest.py` gives the fixture)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from broker.crypto import AnchorKey, Directory
from broker.gateway import Gateway, GatewayObserver, GatewayStore
from broker.topics import inbox
from broker.transport import Producer, Record
from broker.transport.kafka import KafkaOptions, KafkaTransport
from tests.crypto_net import CONTENT_KEY, NOW, Net

NET = Net()


class KafkaNetwork:
    """Gateways of the test network on real Kafka, on topics of a fresh prefix."""

    def __init__(self, folder: Path, options: KafkaOptions) -> None:
        self.folder, self.options = folder, options
        self.prefix = f"lvv.t-{uuid.uuid4().hex[:8]}.v1"
        self.transport = KafkaTransport(options)
        self.gateways: list[Gateway] = []
        self.loops: list[asyncio.Task[None]] = []
        self._producer: Producer | None = None

    async def gateway(
        self, party: str, clock: Callable[[], datetime] = lambda: NOW, *, run: bool = False,
        directory: Directory | None = None, anchor: AnchorKey | None = None,
        observer: GatewayObserver | None = None,
    ) -> Gateway:  # fmt: skip
        """A started gateway of ``party``; with ``anchor`` it follows the directory topic."""
        gw = Gateway(
            keys=NET.keys(party), directory=directory or NET.directory,
            transport=KafkaTransport(self.options),
            store=GatewayStore(self.folder / f"{party}.db", content_key=CONTENT_KEY),
            prefix=self.prefix, clock=clock, anchor=anchor, observer=observer,
        )  # fmt: skip
        self.gateways.append(gw)
        await gw.start()
        if run:
            self.loops.append(asyncio.create_task(gw.run()))
        return gw

    async def inject(self, topic: str, value: bytes, key: bytes) -> None:
        """Put raw bytes in ``topic``, as a party with write access to it can."""
        if self._producer is None:
            self._producer = self.transport.producer()
            await self._producer.start()
        await self._producer.send(topic, value, key=key)

    async def inject_inbox(self, party: str, value: bytes, key: bytes) -> None:
        await self.inject(inbox(party, self.prefix), value, key)

    async def records(self, topic: str) -> list[Record]:
        return await self.transport.read_topic(topic)

    async def aclose(self) -> None:
        for gw in self.gateways:
            gw.stop()
        await asyncio.gather(*self.loops, return_exceptions=True)
        for gw in self.gateways:
            await gw.close()
            await gw.transport.close()
            gw.store.close()
        if self._producer is not None:
            await self._producer.close()
        await self.transport.close()
