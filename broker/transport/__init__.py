"""Transports: one interface, an embedded SQLite log and Apache Kafka."""

from broker.transport._base import (
    DEFAULT_MAX_POLL_RECORDS,
    MAX_RECORD_BYTES,
    Consumer,
    Headers,
    OutgoingRecord,
    Producer,
    Record,
    RecordMetadata,
    TopicPartition,
    TopicSpec,
    Transport,
)

__all__ = [
    "DEFAULT_MAX_POLL_RECORDS",
    "MAX_RECORD_BYTES",
    "Consumer",
    "Headers",
    "OutgoingRecord",
    "Producer",
    "Record",
    "RecordMetadata",
    "TopicPartition",
    "TopicSpec",
    "Transport",
]
