"""Transports: one interface (`Transport`), two implementations: the embedded SQLite log
(`broker.transport.embedded`) and Apache Kafka (`broker.transport.kafka`, with its ACLs in
`broker.transport.kafka_acl`) — the only modules that import aiokafka. Import them by name;
`open_transport` picks one without loading aiokafka for the embedded log."""

from __future__ import annotations

from pathlib import Path

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


def open_transport(kafka: str | None, data_dir: str | Path, *, tls: Path | None = None,
                   identity: str = "admin") -> Transport:  # fmt: skip
    """Kafka at bootstrap servers ``kafka`` if given (over mutual TLS as ``identity`` with the
    PKI in ``tls``), else the embedded log in ``data_dir``.

    Imports lazily so the embedded default never loads aiokafka.
    """
    if kafka:
        from broker.transport.kafka import KafkaOptions, KafkaTransport

        return KafkaTransport(KafkaOptions.for_identity(kafka, tls, identity))
    from broker.transport.embedded import EmbeddedTransport

    Path(data_dir).mkdir(parents=True, exist_ok=True)
    return EmbeddedTransport(Path(data_dir) / "log.db")


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
    "TopicReader",
    "TopicSpec",
    "Transport",
    "open_transport",
]
