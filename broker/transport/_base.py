"""The transport contract: a partitioned, durable log with consumer groups.

Two implementations honour it: Kafka (aiokafka) for real networks and an embedded SQLite
log for the zero-setup demo and fast tests. The gateway only ever sees these types, and
one set of contract tests (``tests/unit/transport/test_transport_contract.py``) runs on both.

Semantics shared by every implementation:

- a record's partition is a pure function of its key (records with the same key stay in
  order); records without a key are spread over partitions;
- ``Producer.send`` returns only once the record is durably stored (Kafka: acks=all);
- ``Producer.send_atomic`` stores all records or none (Kafka: a transaction);
- consumers never auto-commit: ``Consumer.commit`` stores the next offset to read, and a
  restarted member of the group resumes from there, so uncommitted records come again
  (at-least-once);
- the members of one consumer group share the partitions of the topics they subscribe to;
- ``ensure_topics`` is idempotent;
- a `TopicReader` reads one topic whole, from its start, without a consumer group.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Self

Headers = tuple[tuple[str, bytes], ...]

# How many records one poll returns at most, unless the caller asks for fewer.
DEFAULT_MAX_POLL_RECORDS = 500


@dataclass(frozen=True, slots=True)
class TopicPartition:
    topic: str
    partition: int


@dataclass(frozen=True, slots=True)
class TopicSpec:
    """A topic to create if missing. ``config`` holds Kafka topic configs
    (e.g. ``cleanup.policy=compact``); the embedded log ignores what it cannot apply.
    ``replication_factor`` None takes the cluster's default (3 on the three-broker cluster)."""

    name: str
    partitions: int = 3
    replication_factor: int | None = None
    config: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class OutgoingRecord:
    topic: str
    value: bytes
    key: bytes | None = None
    headers: Headers = ()


@dataclass(frozen=True, slots=True)
class RecordMetadata:
    """Where a sent record was stored."""

    topic: str
    partition: int
    offset: int


@dataclass(frozen=True, slots=True)
class Record:
    """A record read from the log."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes
    headers: Headers
    timestamp_ms: int

    @property
    def topic_partition(self) -> TopicPartition:
        return TopicPartition(self.topic, self.partition)


class _Client(ABC):
    """Started before use (or entered as ``async with``), closed after."""

    @abstractmethod
    async def start(self) -> None: ...

    @abstractmethod
    async def close(self) -> None: ...

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()


class Producer(_Client):
    """Appends records to topics."""

    @abstractmethod
    async def send(
        self,
        topic: str,
        value: bytes,
        *,
        key: bytes | None = None,
        headers: Headers = (),
    ) -> RecordMetadata:
        """Store one record durably, or raise `TransportError` (outcome unknown on timeout)."""

    @abstractmethod
    async def send_atomic(self, records: Sequence[OutgoingRecord]) -> list[RecordMetadata]:
        """Store all records or none of them (readers never see a partial set). On
        `TransportTimeout` the outcome is unknown: the set may still be stored later."""

    async def settle(self) -> None:
        """Return once no earlier atomic send is still in flight — after that its outcome
        is final and visible to readers — or raise `TransportTimeout`."""
        return None


class Consumer(_Client):
    """Reads records of the subscribed topics as one member of a consumer group."""

    @abstractmethod
    async def start(self) -> None:
        """Join the group. Reading begins at the committed offset, or the earliest record."""

    @abstractmethod
    async def close(self) -> None:
        """Leave the group without committing anything."""

    @abstractmethod
    async def poll(
        self, *, timeout_ms: int = 1000, max_records: int = DEFAULT_MAX_POLL_RECORDS
    ) -> list[Record]:
        """Records after the current position, waiting up to ``timeout_ms`` for the first."""

    @abstractmethod
    async def commit(self, offsets: Mapping[TopicPartition, int] | None = None) -> None:
        """Commit the next offset to read per partition.

        Without ``offsets``, commits the position after every record returned by ``poll``
        so far. Raises `CommitFailed` for partitions this member no longer owns.
        """

    @abstractmethod
    def assignment(self) -> frozenset[TopicPartition]:
        """The partitions this member currently owns."""


class TopicReader(_Client):
    """Reads every partition of one topic from its first record on and then follows it,
    outside any consumer group: nothing is committed, and a restarted reader reads the
    topic from its start again (for a compacted topic: its newest record per key). Made
    for small topics every reader must see whole, such as the key directory's."""

    @abstractmethod
    async def start(self) -> None:
        """Connect. A topic that does not exist yet is read once it does."""

    @abstractmethod
    async def poll(
        self, *, timeout_ms: int = 1000, max_records: int = DEFAULT_MAX_POLL_RECORDS
    ) -> list[Record]:
        """Records after the current position, waiting up to ``timeout_ms`` for the first."""


class Transport(ABC):
    """A connection to one log: creates topics and hands out producers and consumers."""

    name: str

    @abstractmethod
    async def ensure_topics(self, specs: Sequence[TopicSpec]) -> None:
        """Create the topics that do not exist yet; existing ones are left as they are."""

    @abstractmethod
    def producer(self, *, transactional_id: str | None = None) -> Producer:
        """A new, not yet started producer. ``transactional_id`` fences an older instance
        of the same producer (Kafka transactions); it is needed for `send_atomic` on Kafka."""

    @abstractmethod
    def consumer(self, group_id: str, topics: Sequence[str]) -> Consumer:
        """A new, not yet started member of ``group_id`` subscribed to ``topics``."""

    @abstractmethod
    def reader(self, topic: str) -> TopicReader:
        """A new, not yet started `TopicReader` of ``topic``, from its first record on."""

    @abstractmethod
    async def ping(self) -> None:
        """Raise `TransportUnavailable` unless the log answers now."""

    @abstractmethod
    async def end_offsets(self, topics: Sequence[str]) -> dict[TopicPartition, int]:
        """The offset the next record of each partition will get (for read-committed readers:
        after the last committed transaction)."""

    @abstractmethod
    async def committed(self, group_id: str, topics: Sequence[str]) -> dict[TopicPartition, int]:
        """The next offset ``group_id`` will read per partition; partitions it never
        committed are missing."""

    @abstractmethod
    async def read_topic(self, topic: str) -> list[Record]:
        """Every record of ``topic`` up to its end now, in offset order within a partition,
        read without any consumer group (for audit verification and tools)."""

    async def lag(self, group_id: str, topics: Sequence[str]) -> int:
        """Records in ``topics`` that ``group_id`` has not committed yet."""
        ends = await self.end_offsets(topics)
        done = await self.committed(group_id, topics)
        return sum(max(end - done.get(tp, 0), 0) for tp, end in ends.items())

    @abstractmethod
    async def close(self) -> None:
        """Release shared resources (admin clients, database handles)."""
