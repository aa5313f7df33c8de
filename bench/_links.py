"""The transport under a case: a topic of one partition, a producer side (`Sink`) and a
consumer side (`Source`).

Kafka is driven with aiokafka directly, for raw and sealed alike, with the producer
settings of `broker.transport.kafka` (acks=all, idempotence, its linger and batch size and
request size) and sends pipelined: `send()` futures are awaited only when more than
`MAX_PENDING_SENDS` are open. The consumer reads with `getmany` as the transport's does, but
assigned to the partition rather than in a group (no join, nothing committed), so a case
starts at once. The embedded log goes through the project's own `EmbeddedTransport`: one
`send_atomic` per sealed batch, `poll` on the way back, nothing committed either.
"""

from __future__ import annotations

import collections
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any, Protocol

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from bench._stages import Record
from broker.transport import (
    DEFAULT_MAX_POLL_RECORDS,
    MAX_RECORD_BYTES,
    Consumer,
    OutgoingRecord,
    Producer,
    TopicSpec,
)
from broker.transport.embedded import EmbeddedTransport
from broker.transport.kafka import REQUEST_OVERHEAD_BYTES, KafkaOptions, KafkaTransport

PARTITIONS = 1
"""One partition per case: one ordered stream, one consumer, nothing to balance."""

MAX_PENDING_SENDS = 4096
"""Sends awaiting their acknowledgement before the producer waits for the oldest: a bound
on memory, far above what one linger period holds at these rates."""

POLL_TIMEOUT_MS = 100
"""How long one poll waits for the first record; the loop checks its stop condition between."""


class Sink(Protocol):
    async def send(self, records: Sequence[Record]) -> None: ...

    async def flush(self) -> None:
        """Return once every record sent so far is acknowledged."""


class Source(Protocol):
    async def poll(self) -> list[Record]: ...


class Link(Protocol):
    transport: str

    @property
    def sink(self) -> Sink:
        """The producer side, started."""

    async def source(self) -> Source:
        """The consumer side, started now (at the start of the topic)."""


class KafkaSink:
    def __init__(self, producer: AIOKafkaProducer, topic: str) -> None:
        self._producer, self._topic = producer, topic
        self._pending: collections.deque[Any] = collections.deque()

    async def send(self, records: Sequence[Record]) -> None:
        for key, value in records:
            self._pending.append(await self._producer.send(self._topic, value, key=key))
        while len(self._pending) > MAX_PENDING_SENDS:
            await self._pending.popleft()

    async def flush(self) -> None:
        while self._pending:
            await self._pending.popleft()


class KafkaSource:
    def __init__(self, consumer: AIOKafkaConsumer) -> None:
        self._consumer = consumer

    async def poll(self) -> list[Record]:
        batches = await self._consumer.getmany(
            timeout_ms=POLL_TIMEOUT_MS, max_records=DEFAULT_MAX_POLL_RECORDS
        )
        return [(r.key, r.value) for batch in batches.values() for r in batch]


def _producer(o: KafkaOptions) -> AIOKafkaProducer:
    """As `KafkaProducer.start` makes it, without a transactional id (gateway sends are not
    transactional either)."""
    return AIOKafkaProducer(
        **o.connection(),
        bootstrap_servers=o.bootstrap_servers,
        client_id=f"{o.client_id}-producer",
        acks="all",
        enable_idempotence=True,
        request_timeout_ms=o.request_timeout_ms,
        linger_ms=o.linger_ms,
        max_batch_size=o.max_batch_size,
        max_request_size=MAX_RECORD_BYTES + REQUEST_OVERHEAD_BYTES,
    )


def _consumer(o: KafkaOptions) -> AIOKafkaConsumer:
    """As `KafkaConsumer.start` makes it, minus the group."""
    return AIOKafkaConsumer(
        **o.connection(),
        bootstrap_servers=o.bootstrap_servers,
        client_id=f"{o.client_id}-consumer",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        isolation_level="read_committed",
        request_timeout_ms=o.request_timeout_ms,
        max_partition_fetch_bytes=MAX_RECORD_BYTES + REQUEST_OVERHEAD_BYTES,
        fetch_max_bytes=8 * (MAX_RECORD_BYTES + REQUEST_OVERHEAD_BYTES),
    )


class KafkaLink:
    transport = "kafka"

    def __init__(self, options: KafkaOptions, topic: str, sink: KafkaSink, stack: AsyncExitStack):
        self._options, self._topic, self.sink, self._stack = options, topic, sink, stack

    async def source(self) -> Source:
        consumer = _consumer(self._options)
        await consumer.start()
        self._stack.push_async_callback(consumer.stop)
        partition = TopicPartition(self._topic, 0)
        consumer.assign([partition])
        await consumer.seek_to_beginning(partition)
        return KafkaSource(consumer)


@asynccontextmanager
async def kafka_link(bootstrap: str, topic: str) -> AsyncIterator[KafkaLink]:
    """A fresh topic on ``bootstrap`` and a started producer for it."""
    options = KafkaOptions(bootstrap_servers=bootstrap, client_id="lvvx-bench")
    admin = KafkaTransport(options)
    async with AsyncExitStack() as stack:
        stack.push_async_callback(admin.close)
        await admin.ensure_topics([TopicSpec(topic, PARTITIONS, replication_factor=1)])
        producer = _producer(options)
        await producer.start()
        stack.push_async_callback(producer.stop)
        yield KafkaLink(options, topic, KafkaSink(producer, topic), stack)


class EmbeddedSink:
    def __init__(self, producer: Producer, topic: str) -> None:
        self._producer, self._topic = producer, topic

    async def send(self, records: Sequence[Record]) -> None:
        await self._producer.send_atomic([OutgoingRecord(self._topic, v, k) for k, v in records])

    async def flush(self) -> None:
        return None  # send_atomic returns once the batch is stored


class EmbeddedSource:
    def __init__(self, consumer: Consumer) -> None:
        self._consumer = consumer

    async def poll(self) -> list[Record]:
        found = await self._consumer.poll(timeout_ms=POLL_TIMEOUT_MS)
        return [(r.key or b"", r.value) for r in found]


class EmbeddedLink:
    transport = "embedded"

    def __init__(
        self, log: EmbeddedTransport, topic: str, sink: EmbeddedSink, stack: AsyncExitStack
    ):
        self._log, self._topic, self.sink, self._stack = log, topic, sink, stack

    async def source(self) -> Source:
        consumer = self._log.consumer(f"bench-{uuid.uuid4().hex[:8]}", [self._topic])
        await consumer.start()
        self._stack.push_async_callback(consumer.close)
        return EmbeddedSource(consumer)


@asynccontextmanager
async def embedded_link(folder: Path, topic: str) -> AsyncIterator[EmbeddedLink]:
    """A fresh SQLite log in ``folder`` with the topic, and a started producer for it."""
    log = EmbeddedTransport(folder / f"{topic}.db")
    async with AsyncExitStack() as stack:
        stack.push_async_callback(log.close)
        await log.ensure_topics([TopicSpec(topic, PARTITIONS)])
        producer = log.producer()
        await producer.start()
        stack.push_async_callback(producer.close)
        yield EmbeddedLink(log, topic, EmbeddedSink(producer, topic), stack)
