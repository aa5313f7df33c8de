"""The transport on Apache Kafka, through aiokafka. The only module that imports aiokafka.

Producers are idempotent with acks=all (a retried send is never stored twice); consumers
never auto-commit and read committed data only, so records of an aborted `send_atomic`
transaction are never seen. Every aiokafka exception is translated here into the
package's own errors (`_translated`), so the layers above never see a foreign one.

Closing never hangs on a broker that is away: aiokafka's own ``stop()`` waits for its
goodbyes (pending batches flushed, the group left) without a bound, so every close here is
given `_CLOSE_TIMEOUT_S` and then cut short (`_stop_within`); an unfinished transaction is
aborted, not waited for.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import re
import ssl
import time
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener
from aiokafka import TopicPartition as KafkaTopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import (
    CommitFailedError,
    IllegalStateError,
    KafkaConnectionError,
    KafkaError,
    KafkaTimeoutError,
    MessageSizeTooLargeError,
    RecordTooLargeError,
    TopicAlreadyExistsError,
    TopicAuthorizationFailedError,
    UnknownTopicOrPartitionError,
    for_code,
)
from aiokafka.producer import sender as _aiokafka_sender
from aiokafka.protocol.metadata import MetadataRequest
from pydantic import BaseModel, ConfigDict, Field

from broker.errors import (
    CommitFailed,
    LocalError,
    RecordTooLarge,
    TransportClosed,
    TransportError,
    TransportTimeout,
    TransportUnavailable,
)
from broker.limits import MAX_RECORD_BYTES
from broker.transport._base import (
    DEFAULT_MAX_POLL_RECORDS,
    Consumer,
    Headers,
    OutgoingRecord,
    Producer,
    Record,
    RecordMetadata,
    TopicPartition,
    TopicReader,
    TopicSpec,
    Transport,
)

# Room for the record batch framing Kafka adds around the largest record we accept.
REQUEST_OVERHEAD_BYTES = 64 * 1024

# How long ensure_topics waits for new topics to show up in the cluster's metadata.
_TOPIC_VISIBLE_TIMEOUT_S = 30.0

_CLOSE_TIMEOUT_S = 2.0
"""A client's goodbyes (flush, LeaveGroup) take milliseconds when a broker answers; past this
none will, and the close goes on without them (a gateway's whole stop has 8 s)."""

_DROP_WAIT_S = 0.5
"""After a client's connections are dropped, how long its stop may take to notice."""

_ABORT_WAIT_S = 0.5
"""How long a close waits for an unfinished transaction's abort to be acknowledged (a broker
that answers does in milliseconds); one the broker never hears of is aborted by it anyway
(the transaction timeout, or the next start of this transactional id fencing it)."""

NEXT_TRANSACTION_RETRY_S = 0.0005
"""How soon a transaction that follows another tries again to add its partitions. Right after
a commit the coordinator still writes the commit markers, and refuses the next transaction's
AddPartitionsToTxn with CONCURRENT_TRANSACTIONS until it is done (KAFKA-5477). aiokafka waits
a fixed 20 ms then (its ``BACKOFF_OVERRIDE``), which made every transaction in series cost
25 ms on a local broker; the markers take about a millisecond, so retrying every 0.5 ms
brought that to 2.5 ms, at no more CPU per transaction."""

if not hasattr(_aiokafka_sender, "BACKOFF_OVERRIDE"):  # pragma: no cover - an aiokafka upgrade
    raise ImportError("aiokafka no longer has producer.sender.BACKOFF_OVERRIDE: see kafka.py")
_aiokafka_sender.BACKOFF_OVERRIDE = NEXT_TRANSACTION_RETRY_S

log = logging.getLogger("lvvx.transport")


class KafkaOptions(BaseModel):
    """Client settings for the Kafka transport (the typed model STYLE §8 asks for)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    bootstrap_servers: str = "127.0.0.1:9092"
    client_id: str = "lvvx"
    send_timeout_ms: int = Field(
        30_000, gt=0, description="Bound on one send; then the outcome is unknown."
    )
    request_timeout_ms: int = Field(20_000, gt=0)
    session_timeout_ms: int = Field(10_000, gt=0)
    heartbeat_interval_ms: int = Field(3_000, gt=0)
    max_poll_interval_ms: int = Field(300_000, gt=0)
    linger_ms: int = Field(
        5,
        ge=0,
        description="Batching delay of a producer without transactions. A transactional one"
        " never waits: its transaction is the batch, and a linger only delays its commit.",
    )
    max_batch_size: int = Field(256 * 1024, gt=0)
    transaction_timeout_ms: int = Field(60_000, gt=0)
    security_protocol: Literal["PLAINTEXT", "SSL"] = "PLAINTEXT"
    ssl_cafile: Path | None = Field(
        None, description="The network's CA (PEM), to trust the brokers."
    )
    ssl_certfile: Path | None = Field(None, description="This party's client certificate (PEM).")
    ssl_keyfile: Path | None = Field(None, description="Its private key (PEM, PKCS#8).")

    def connection(self) -> dict[str, Any]:
        """The aiokafka arguments for how to connect: plain, or mutual TLS 1.3."""
        if self.security_protocol == "PLAINTEXT":
            return {"security_protocol": "PLAINTEXT"}
        if not (self.ssl_cafile and self.ssl_certfile and self.ssl_keyfile):
            raise LocalError("TLS needs ssl_cafile, ssl_certfile and ssl_keyfile", reason="CONFIG")
        context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(self.ssl_cafile))
        context.minimum_version = ssl.TLSVersion.TLSv1_3
        try:
            context.load_cert_chain(str(self.ssl_certfile), str(self.ssl_keyfile))
        except (OSError, ssl.SSLError) as exc:
            raise LocalError(
                f"cannot load the TLS certificate and key: {exc}", reason="CONFIG"
            ) from exc
        return {"security_protocol": "SSL", "ssl_context": context}

    @classmethod
    def for_identity(
        cls, bootstrap_servers: str, pki_folder: Path | None, name: str, **more: Any
    ) -> KafkaOptions:
        """Options for ``name`` (a party id or ``admin``) with the PKI in ``pki_folder``, or
        plaintext without one."""
        if pki_folder is None:
            return cls(bootstrap_servers=bootstrap_servers, **more)
        return cls(
            bootstrap_servers=bootstrap_servers, security_protocol="SSL",
            ssl_cafile=pki_folder / "ca.pem", ssl_certfile=pki_folder / f"{name}.crt",
            ssl_keyfile=pki_folder / f"{name}.key", **more,
        )  # fmt: skip


def _is_dead(producer: AIOKafkaProducer) -> bool:
    """Whether aiokafka ended ``producer`` for good: its transactions in a fatal state, or
    its sender task over (aiokafka has no public way to ask)."""
    txn = producer._txn_manager
    sender = producer._sender.sender_task
    return bool(
        (txn is not None and txn.is_fatal_error()) or (sender is not None and sender.done())
    )


async def _any_broker_answers(client: Any, timeout_s: float) -> None:
    """Send a metadata request for no topic to the known brokers in turn (shuffled, to
    spread the probes), each within its share of ``timeout_s``, until one answers; raise
    the last failure if none does."""
    brokers = [b.nodeId for b in client.cluster.brokers()]
    random.shuffle(brokers)
    if not brokers:
        raise KafkaConnectionError("no broker is known")
    failure: BaseException | None = None
    for node_id in brokers:
        try:
            await asyncio.wait_for(client.send(node_id, MetadataRequest([])),
                                   timeout_s / len(brokers))  # fmt: skip
            return
        except (KafkaError, TimeoutError) as exc:
            failure = exc
    assert failure is not None
    raise failure


@contextlib.contextmanager
def _translated(action: str) -> Iterator[None]:
    """Turn aiokafka's exceptions into ours, keeping the original as the cause."""
    try:
        yield
    except (MessageSizeTooLargeError, RecordTooLargeError) as exc:
        raise RecordTooLarge(f"{action}: record too large for Kafka: {exc}") from exc
    except CommitFailedError as exc:
        raise CommitFailed(f"{action}: {exc}") from exc
    except (KafkaTimeoutError, TimeoutError) as exc:
        raise TransportTimeout(f"{action}: Kafka did not answer in time") from exc
    except KafkaConnectionError as exc:
        raise TransportUnavailable(f"{action}: cannot reach Kafka: {_plain(exc)}") from exc
    except IllegalStateError as exc:
        raise TransportClosed(f"{action}: {exc}") from exc
    except KafkaError as exc:
        raise TransportError(f"{action}: {type(exc).__name__}: {exc}") from exc


def _plain(exc: KafkaConnectionError) -> str:
    """aiokafka's text without its class name and the Python reprs in its address list:
    ``Unable to bootstrap from [('127.0.0.1', 1, <AddressFamily.AF_INET: 2>)]`` becomes
    ``Unable to bootstrap from 127.0.0.1:1``."""
    text = str(exc).removeprefix(f"{type(exc).__name__}: ")
    return re.sub(r"\[?\('([^']*)', (\d+), <[^<>]*>\)\]?", r"\1:\2", text)


async def _stop_within(
    stop: Coroutine[Any, Any, None], client: Any, what: str,
    *, before_drop: Callable[[], None] | None = None, patience_s: float = _CLOSE_TIMEOUT_S,
) -> None:  # fmt: skip
    """Run an aiokafka client's ``stop()`` for ``patience_s`` at most; past that, call
    ``before_drop`` (fail what it is flushing) and close its connections under it, so that
    whatever it still waits for fails at once. Never raises for a broker that is away."""
    task = asyncio.ensure_future(stop)
    try:
        done, _ = await asyncio.wait({task}, timeout=patience_s)
        if not done:
            if before_drop is not None:
                before_drop()
            await client.close()
            done, _ = await asyncio.wait({task}, timeout=_DROP_WAIT_S)
        if not done:
            log.warning("%s: gave up waiting for its stop; its connections are closed", what)
    finally:
        if not task.done():
            task.cancel()
        await asyncio.wait({task}, timeout=_DROP_WAIT_S)
        with contextlib.suppress(KafkaError, OSError):  # a goodbye that failed: gone anyway
            if task.done() and not task.cancelled():
                task.result()


def _record(r: Any) -> Record:
    return Record(
        topic=r.topic,
        partition=r.partition,
        offset=r.offset,
        key=r.key,
        value=r.value if r.value is not None else b"",
        headers=tuple((k, bytes(v)) for k, v in r.headers),
        timestamp_ms=r.timestamp,
    )


def _check_size(key: bytes | None, value: bytes, headers: Headers) -> None:
    size = len(value) + len(key or b"") + sum(len(k) + len(v) for k, v in headers)
    if size > MAX_RECORD_BYTES:
        raise RecordTooLarge(f"record of {size} bytes exceeds {MAX_RECORD_BYTES}")


class KafkaProducer(Producer):
    def __init__(self, options: KafkaOptions, transactional_id: str | None) -> None:
        self._options = options
        self._transactional_id = transactional_id
        self._producer: AIOKafkaProducer | None = None
        self._lock = asyncio.Lock()  # one transaction at a time per producer
        self._unfinished: asyncio.Future[list[RecordMetadata]] | None = None
        self._dead = False
        """A fatal error ended the producer; the next send starts a new one (`_alive`)."""
        self.restarts = 0

    async def start(self) -> None:
        o = self._options
        producer = AIOKafkaProducer(
            **o.connection(),
            bootstrap_servers=o.bootstrap_servers,
            client_id=o.client_id,
            acks="all",
            enable_idempotence=True,
            transactional_id=self._transactional_id,
            transaction_timeout_ms=o.transaction_timeout_ms,
            request_timeout_ms=o.request_timeout_ms,
            linger_ms=o.linger_ms if self._transactional_id is None else 0,
            max_batch_size=o.max_batch_size,
            max_request_size=MAX_RECORD_BYTES + REQUEST_OVERHEAD_BYTES,
        )
        with _translated("start producer"):
            try:
                await asyncio.wait_for(producer.start(), o.send_timeout_ms / 1000)
            except BaseException:
                await self._stop(producer)
                raise
        self._producer = producer

    async def close(self) -> None:
        """Abort an unfinished transaction (never wait for it), then stop: bounded."""
        self._dead = False
        producer, self._producer = self._producer, None
        unfinished, self._unfinished = self._unfinished, None
        heard = True
        if unfinished is not None and not unfinished.done():
            heard = await self._abort(unfinished)
        if producer is not None:
            await self._stop(producer, flush=heard)

    @staticmethod
    async def _abort(transaction: asyncio.Future[list[RecordMetadata]]) -> bool:
        """Cancel ``transaction``'s task: aiokafka aborts it on the way out. Its abort is
        waited for `_ABORT_WAIT_S`, then cancelled too: with the broker away it never comes.
        True if the broker acknowledged the abort."""
        heard = False
        for attempt in range(2):  # 1: end the transaction by aborting it; 2: stop waiting
            transaction.cancel()
            done, _ = await asyncio.wait({transaction}, timeout=_ABORT_WAIT_S)
            if done:
                heard = attempt == 0
                break
        if transaction.done() and not transaction.cancelled():
            transaction.exception()  # its own caller was told; consumed here, not logged
        return heard

    @staticmethod
    async def _stop(producer: AIOKafkaProducer, *, flush: bool = True) -> None:
        def drop_batches() -> None:
            # what no broker takes is failed, not flushed forever (aiokafka has no public way)
            producer._message_accumulator.fail_all(TransportClosed("producer closed"))

        if not flush:  # the broker did not hear the abort: it will not answer a goodbye either
            drop_batches()
        await _stop_within(producer.stop(), producer.client, "producer", before_drop=drop_batches,
                           patience_s=_CLOSE_TIMEOUT_S if flush else _DROP_WAIT_S)  # fmt: skip

    def _live(self) -> AIOKafkaProducer:
        if self._producer is None:
            raise TransportClosed("producer is not started")
        return self._producer

    def _live_or_dead(self) -> None:
        """Raise `TransportClosed` unless started (a producer a fatal error killed counts:
        `_alive` starts it anew)."""
        if self._producer is None and not self._dead:
            raise TransportClosed("producer is not started")

    async def _alive(self) -> AIOKafkaProducer:
        """The producer, started anew if a fatal error killed it. aiokafka ends a producer
        for good on some errors — OutOfOrderSequenceNumber after a broker outage, say: its
        sender stops, and every later transaction fails with InvalidTxnState — so without
        this a gateway would refuse every send and deliver nothing until restarted. A new
        producer of the same transactional id fences the old one and aborts its open
        transaction (InitProducerId), as a restart would. Call with the lock held."""
        producer = self._producer
        if producer is not None and not _is_dead(producer):
            return producer
        self._live_or_dead()
        self._dead, self._producer = True, None
        if producer is not None:
            log.warning("the Kafka producer %s hit a fatal error; starting it anew",
                        self._transactional_id or "(idempotent)")  # fmt: skip
            await self._stop(producer, flush=False)
        await self.start()  # a TransportError if the broker is away: tried again next time
        self._dead = False
        self.restarts += 1
        return self._live()

    async def send(
        self, topic: str, value: bytes, *, key: bytes | None = None, headers: Headers = ()
    ) -> RecordMetadata:
        _check_size(key, value, headers)
        if self._transactional_id is not None:
            [meta] = await self.send_atomic([OutgoingRecord(topic, value, key, headers)])
            return meta
        async with self._lock:
            producer = await self._alive()
        with _translated(f"send to {topic}"):
            result = await asyncio.wait_for(
                producer.send_and_wait(topic, value, key=key, headers=list(headers)),
                self._options.send_timeout_ms / 1000,
            )
        return RecordMetadata(result.topic, result.partition, result.offset)

    async def send_atomic(self, records: Sequence[OutgoingRecord]) -> list[RecordMetadata]:
        if self._transactional_id is None:
            raise LocalError(
                "send_atomic on Kafka needs a producer with a transactional_id",
                reason="NOT_TRANSACTIONAL",
            )
        for r in records:
            _check_size(r.key, r.value, r.headers)
        self._live_or_dead()
        async with self._lock:
            await self._settle_unlocked()
            producer = await self._alive()
            # A transaction is never cancelled half way: aiokafka would go on committing it
            # in the background, and the next one would find the producer mid-commit. On a
            # timeout it runs on (outcome unknown), and the next send waits for its end.
            task = asyncio.ensure_future(self._transaction(producer, records))
            self._unfinished = task
            with _translated("atomic send"):
                return await asyncio.wait_for(
                    asyncio.shield(task), self._options.send_timeout_ms / 1000
                )

    async def settle(self) -> None:
        async with self._lock:
            await self._settle_unlocked()

    async def _settle_unlocked(self) -> None:
        task, timeout = self._unfinished, self._options.send_timeout_ms / 1000
        if task is None:
            return
        try:
            await asyncio.wait_for(asyncio.shield(task), timeout)
        except TimeoutError:
            raise TransportTimeout("an earlier atomic send is still unfinished") from None
        except Exception:  # its own caller was told (or timed out: outcome unknown)
            pass
        self._unfinished = None

    @staticmethod
    async def _transaction(
        producer: AIOKafkaProducer, records: Sequence[OutgoingRecord]
    ) -> list[RecordMetadata]:
        async with producer.transaction():
            futures = [
                await producer.send(r.topic, r.value, key=r.key, headers=list(r.headers))
                for r in records
            ]
            results = [await f for f in futures]
        return [RecordMetadata(m.topic, m.partition, m.offset) for m in results]


class _Revocations(ConsumerRebalanceListener):  # type: ignore[misc]
    """Forgets read positions of partitions taken away, so they are never committed."""

    def __init__(self, positions: dict[TopicPartition, int]) -> None:
        self._positions = positions

    async def on_partitions_revoked(self, revoked: Any) -> None:
        for tp in revoked:
            self._positions.pop(TopicPartition(tp.topic, tp.partition), None)

    async def on_partitions_assigned(self, assigned: Any) -> None:
        return None


def _groupless(options: KafkaOptions, role: str) -> AIOKafkaConsumer:
    """A consumer outside any group (partitions assigned by hand, nothing committed), read
    committed, from the earliest record of a partition it has no position in."""
    return AIOKafkaConsumer(
        **options.connection(),
        bootstrap_servers=options.bootstrap_servers,
        client_id=f"{options.client_id}-{role}",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        isolation_level="read_committed",
        request_timeout_ms=options.request_timeout_ms,
        max_partition_fetch_bytes=MAX_RECORD_BYTES + REQUEST_OVERHEAD_BYTES,
    )


async def _started(consumer: AIOKafkaConsumer, options: KafkaOptions, what: str) -> None:
    """Start ``consumer`` within the request timeout; on failure it is stopped again."""
    try:
        await asyncio.wait_for(consumer.start(), options.request_timeout_ms / 1000)
    except BaseException:
        await _stop_within(consumer.stop(), consumer._client, what)
        raise


class KafkaConsumer(Consumer):
    def __init__(self, options: KafkaOptions, group_id: str, topics: Sequence[str]) -> None:
        self._options = options
        self._group_id = group_id
        self._topics = tuple(topics)
        self._consumer: AIOKafkaConsumer | None = None
        self._positions: dict[TopicPartition, int] = {}

    async def start(self) -> None:
        o = self._options
        consumer = AIOKafkaConsumer(
            **o.connection(),
            bootstrap_servers=o.bootstrap_servers,
            client_id=o.client_id,
            group_id=self._group_id,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            isolation_level="read_committed",
            request_timeout_ms=o.request_timeout_ms,
            session_timeout_ms=o.session_timeout_ms,
            heartbeat_interval_ms=o.heartbeat_interval_ms,
            max_poll_interval_ms=o.max_poll_interval_ms,
            max_partition_fetch_bytes=MAX_RECORD_BYTES + REQUEST_OVERHEAD_BYTES,
            fetch_max_bytes=8 * (MAX_RECORD_BYTES + REQUEST_OVERHEAD_BYTES),
        )
        consumer.subscribe(self._topics, listener=_Revocations(self._positions))
        with _translated("start consumer"):
            await _started(consumer, o, "consumer")
        self._consumer = consumer

    async def close(self) -> None:
        """Leave the group if the coordinator answers within `_CLOSE_TIMEOUT_S`; the group
        notices a member that left without a word after its session timeout."""
        consumer, self._consumer = self._consumer, None
        self._positions.clear()
        if consumer is not None:
            await _stop_within(consumer.stop(), consumer._client, "consumer")

    def _live(self) -> AIOKafkaConsumer:
        if self._consumer is None:
            raise TransportClosed("consumer is not started")
        return self._consumer

    async def poll(
        self, *, timeout_ms: int = 1000, max_records: int = DEFAULT_MAX_POLL_RECORDS
    ) -> list[Record]:
        consumer = self._live()
        with _translated("poll"):
            batches = await consumer.getmany(timeout_ms=timeout_ms, max_records=max_records)
        records: list[Record] = []
        for tp, batch in batches.items():
            records += [_record(r) for r in batch]
            if batch:
                self._positions[TopicPartition(tp.topic, tp.partition)] = batch[-1].offset + 1
        return records

    async def commit(self, offsets: Mapping[TopicPartition, int] | None = None) -> None:
        consumer = self._live()
        chosen = dict(self._positions if offsets is None else offsets)
        if not chosen:
            return
        owned = self.assignment()
        lost = [tp for tp in chosen if tp not in owned]
        if lost:
            raise CommitFailed(f"partitions no longer owned by this member: {lost}")
        with _translated("commit"):
            await asyncio.wait_for(
                consumer.commit(
                    {KafkaTopicPartition(tp.topic, tp.partition): o for tp, o in chosen.items()}
                ),
                self._options.request_timeout_ms / 1000,
            )

    def assignment(self) -> frozenset[TopicPartition]:
        consumer = self._live()
        return frozenset(TopicPartition(tp.topic, tp.partition) for tp in consumer.assignment())


_AUTHORIZATION_SETTLE_S = 5.0
"""How long a topic refused to this principal is asked about again before the refusal counts."""

_CREATE_REFUSED_TRIES = 5
"""Creations refused for want of authorization tried again, a second apart, when the topics
are still unknown: enough for a new topic's metadata to reach every broker."""


READER_DISCOVER_EVERY_S = 1.0
"""How often a `KafkaReader` looks again for a topic that does not exist yet."""


class KafkaReader(TopicReader):
    """Every partition of one topic from its start, assigned by hand (no group, nothing
    committed), read committed. Partitions are found through the transport's admin client;
    a topic that is missing at start is looked for again at most every
    `READER_DISCOVER_EVERY_S`."""

    def __init__(self, transport: KafkaTransport, topic: str) -> None:
        self._transport = transport
        self._topic = topic
        self._consumer: AIOKafkaConsumer | None = None
        self._assigned = False
        self._looked_at = float("-inf")

    async def start(self) -> None:
        if self._consumer is not None:
            return
        consumer = _groupless(self._transport.options, "follow")
        with _translated(f"start reader of {self._topic}"):
            await _started(consumer, self._transport.options, "reader")
        self._consumer = consumer

    async def close(self) -> None:
        consumer, self._consumer = self._consumer, None
        if consumer is not None:
            await _stop_within(consumer.stop(), consumer._client, "reader")

    async def _assign(self, consumer: AIOKafkaConsumer) -> None:
        if self._assigned or time.monotonic() - self._looked_at < READER_DISCOVER_EVERY_S:
            return
        self._looked_at = time.monotonic()
        partitions = await self._transport._partitions([self._topic])
        if partitions:
            consumer.assign(partitions)
            await consumer.seek_to_beginning(*partitions)
            self._assigned = True

    async def poll(
        self, *, timeout_ms: int = 1000, max_records: int = DEFAULT_MAX_POLL_RECORDS
    ) -> list[Record]:
        consumer = self._consumer
        if consumer is None:
            raise TransportClosed(f"reader of {self._topic} is not started")
        with _translated(f"read {self._topic}"):
            await self._assign(consumer)
            if not self._assigned:
                await asyncio.sleep(timeout_ms / 1000)
                return []
            batches = await consumer.getmany(timeout_ms=timeout_ms, max_records=max_records)
        return [_record(r) for batch in batches.values() for r in batch]


class KafkaTransport(Transport):
    """A Kafka cluster reached through ``options.bootstrap_servers``."""

    name = "kafka"

    def __init__(self, options: KafkaOptions | None = None) -> None:
        self.options = options or KafkaOptions()
        self._admin: AIOKafkaAdminClient | None = None

    async def _admin_client(self) -> AIOKafkaAdminClient:
        if self._admin is None:
            admin = AIOKafkaAdminClient(
                **self.options.connection(),
                bootstrap_servers=self.options.bootstrap_servers,
                client_id=f"{self.options.client_id}-admin",
                request_timeout_ms=self.options.request_timeout_ms,
            )
            with _translated("connect admin client"):
                try:
                    await asyncio.wait_for(admin.start(), self.options.request_timeout_ms / 1000)
                except BaseException:
                    await _stop_within(admin.close(), admin._client, "admin client")
                    raise
            self._admin = admin
        return self._admin

    async def ensure_topics(self, specs: Sequence[TopicSpec]) -> None:
        """Only topics that do not exist are asked for: on a secured cluster a party may
        use its provisioned topics but not create any (`lvvx topics apply` does)."""
        specs = await self._missing(specs)
        for _ in range(_CREATE_REFUSED_TRIES):
            refused = await self._create(specs)
            if not refused:
                return
            # a party may not create topics; one `topics apply` just made may not be known
            # yet to the broker we asked (metadata spreads): ask again before giving up
            await asyncio.sleep(1.0)
            specs = await self._missing([s for s in specs if s.name in refused])
            if not specs:
                return
        raise TransportError(f"cannot create topics {[s.name for s in specs]}: not authorized")

    async def _missing(self, specs: Sequence[TopicSpec]) -> list[TopicSpec]:
        """The topics the cluster does not know (a topic still electing leaders exists)."""
        if not specs:
            return []
        described = await self._describe([s.name for s in specs])
        unknown = (UnknownTopicOrPartitionError.errno, TopicAuthorizationFailedError.errno)
        present = {t["topic"] for t in described if t["error_code"] not in unknown}
        return [s for s in specs if s.name not in present]

    async def _create(self, specs: Sequence[TopicSpec]) -> set[str]:
        """Create ``specs``; the names refused for want of authorization."""
        if not specs:
            return set()
        admin = await self._admin_client()
        new = [
            # -1: the broker's default.replication.factor (CreateTopics v4+); aiokafka then
            # wants an (empty) replica assignment, or its argument check refuses
            NewTopic(
                s.name,
                s.partitions,
                s.replication_factor or -1,
                replica_assignments=None if s.replication_factor else {},
                topic_configs=dict(s.config),
            )
            for s in specs
        ]
        with _translated("create topics"):
            response = await admin.create_topics(new)
        refused = set()
        for topic, code, *message in response.topic_errors:
            error = for_code(code)
            if error is TopicAuthorizationFailedError:
                refused.add(topic)
            elif code != 0 and error is not TopicAlreadyExistsError:
                raise TransportError(f"cannot create topic {topic}: {error.__name__} {message}")
        await self._wait_visible([s.name for s in specs if s.name not in refused])
        return refused

    async def _describe(self, names: list[str]) -> list[dict[str, Any]]:
        """Describe ``names``, asking again for up to `_AUTHORIZATION_SETTLE_S` while a topic
        is refused: ACLs just applied reach every broker of a cluster a moment later."""
        admin = await self._admin_client()
        deadline = time.monotonic() + _AUTHORIZATION_SETTLE_S
        while True:
            with _translated("describe topics"):
                described: list[dict[str, Any]] = await admin.describe_topics(names)
            refused = any(t["error_code"] == TopicAuthorizationFailedError.errno for t in described)
            if not refused or time.monotonic() > deadline:
                return described
            await asyncio.sleep(0.5)

    async def _wait_visible(self, names: list[str]) -> None:
        """New topics take a moment to get leaders; sending before that only retries."""
        admin = await self._admin_client()
        deadline = time.monotonic() + _TOPIC_VISIBLE_TIMEOUT_S
        while True:
            with _translated("describe topics"):
                described = await admin.describe_topics(names)
            ready = all(
                t["error_code"] == 0
                and t["partitions"]
                and all(p["leader"] >= 0 for p in t["partitions"])
                for t in described
            )
            if ready:
                return
            if time.monotonic() > deadline:
                raise TransportTimeout(f"topics {names} did not become available")
            await asyncio.sleep(0.1)

    def producer(self, *, transactional_id: str | None = None) -> Producer:
        return KafkaProducer(self.options, transactional_id)

    def consumer(self, group_id: str, topics: Sequence[str]) -> Consumer:
        return KafkaConsumer(self.options, group_id, topics)

    def reader(self, topic: str) -> TopicReader:
        return KafkaReader(self, topic)

    async def ping(self) -> None:
        """The log answers if any broker answers. One broker of three away is no outage
        (writes carry on with min ISR 2), so the probe must not ask just one at random, as
        aiokafka's ``describe_cluster`` does: it would find the dead one a third of the time."""
        try:
            admin = await self._admin_client()
            with _translated("ping"):
                await _any_broker_answers(admin._client, self.options.request_timeout_ms / 1000)
        except TransportError as exc:
            await self.close()
            raise TransportUnavailable(f"Kafka at {self.options.bootstrap_servers}: {exc}") from exc

    @contextlib.asynccontextmanager
    async def _reader(self) -> AsyncIterator[AIOKafkaConsumer]:
        """A started consumer outside any group, for offsets and whole-topic reads; stopped
        on the way out — also when it never got started (an outage), or it is left unclosed."""
        reader = _groupless(self.options, "reader")
        try:
            await asyncio.wait_for(reader.start(), self.options.request_timeout_ms / 1000)
            yield reader
        finally:
            await _stop_within(reader.stop(), reader._client, "reader")

    async def _partitions(self, topics: Sequence[str]) -> list[KafkaTopicPartition]:
        """The partitions of ``topics``; a topic that does not exist has none, one this
        principal may not see is an error (a reader must not take it for an empty one)."""
        described = await self._describe(list(topics))
        for t in described:
            if t["error_code"] not in (0, UnknownTopicOrPartitionError.errno):
                error = for_code(t["error_code"])
                raise TransportError(f"cannot describe topic {t['topic']}: {error.__name__}", reason="NOT_AUTHORIZED"
                                     if t["error_code"] == TopicAuthorizationFailedError.errno else None)  # fmt: skip
        return [
            KafkaTopicPartition(t["topic"], p["partition"])
            for t in described
            if t["error_code"] == 0
            for p in sorted(t["partitions"], key=lambda p: p["partition"])
        ]

    async def end_offsets(self, topics: Sequence[str]) -> dict[TopicPartition, int]:
        with _translated("end offsets"):
            async with self._reader() as reader:
                partitions = await self._partitions(topics)
                ends = await reader.end_offsets(partitions) if partitions else {}
        return {TopicPartition(tp.topic, tp.partition): int(o) for tp, o in ends.items()}

    async def committed(self, group_id: str, topics: Sequence[str]) -> dict[TopicPartition, int]:
        admin = await self._admin_client()
        with _translated("committed offsets"):
            found = await admin.list_consumer_group_offsets(group_id)
        return {
            TopicPartition(tp.topic, tp.partition): int(meta.offset)
            for tp, meta in found.items()
            if tp.topic in topics and meta.offset >= 0
        }

    async def read_topic(self, topic: str) -> list[Record]:
        records: list[Record] = []
        with _translated(f"read {topic}"):
            async with self._reader() as reader:
                partitions = await self._partitions([topic])
                if not partitions:
                    return []
                reader.assign(partitions)
                await reader.seek_to_beginning(*partitions)
                ends = await reader.end_offsets(partitions)
                deadline = time.monotonic() + self.options.request_timeout_ms / 1000
                while [tp for tp in partitions if await reader.position(tp) < ends[tp]]:
                    if time.monotonic() > deadline:
                        raise TransportTimeout(f"reading {topic} did not reach its end")
                    for batch in (await reader.getmany(timeout_ms=200)).values():
                        records += [_record(r) for r in batch]
        return sorted(records, key=lambda r: (r.partition, r.offset))

    async def close(self) -> None:
        admin, self._admin = self._admin, None
        if admin is not None:
            await _stop_within(admin.close(), admin._client, "admin client")
