"""Transports: one interface, an embedded SQLite log and Apache Kafka."""

from __future__ import annotations

from pathlib import Path

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


def open_transport(kafka: str | None, data_dir: str | Path, *, tls: Path | None = None,
                   identity: str = "admin") -> Transport:  # fmt: skip
    """Kafka at bootstrap servers ``kafka`` if given (over mutual TLS as ``identity`` with the
    PKI in ``tls``), else the embedded log in ``data_dir``.

    Imports lazily so the embedded default never loads aiokafka.
    """
    if kafka:
        from broker.transport._kafka import KafkaOptions, KafkaTransport

        return KafkaTransport(KafkaOptions.for_identity(kafka, tls, identity))
    from broker.transport._embedded import EmbeddedTransport

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
    "TopicSpec",
    "Transport",
    "open_transport",
]
