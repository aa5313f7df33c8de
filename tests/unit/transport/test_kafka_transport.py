"""Kafka-specific behaviour: a broker that does not answer gives an error, not a hang."""

from __future__ import annotations

import socket
import time

import pytest

from broker.errors import LocalError, TransportError, TransportUnavailable
from broker.transport import OutgoingRecord
from broker.transport.kafka import KafkaOptions, KafkaTransport


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _unreachable() -> KafkaTransport:
    return KafkaTransport(
        KafkaOptions(
            bootstrap_servers=f"127.0.0.1:{_closed_port()}",
            request_timeout_ms=2_000,
            send_timeout_ms=3_000,
        )
    )


async def test_ping_of_an_unreachable_broker_fails_quickly() -> None:
    transport = _unreachable()
    started = time.monotonic()
    with pytest.raises(TransportUnavailable):
        await transport.ping()
    assert time.monotonic() - started < 15
    await transport.close()


async def test_producer_start_against_no_broker_is_an_error_not_a_hang() -> None:
    transport = _unreachable()
    started = time.monotonic()
    with pytest.raises(TransportError):
        await transport.producer().start()
    assert time.monotonic() - started < 15


async def test_reading_offsets_while_kafka_is_away_leaves_no_consumer_unclosed() -> None:
    """The transport's reader (offsets, whole-topic reads) is stopped also when it could
    not start; the conftest fixture fails this test on an "Unclosed AIOKafkaConsumer"."""
    away = _unreachable()
    try:
        for read in (away.end_offsets(["t"]), away.read_topic("t")):
            with pytest.raises(TransportError):
                await read
    finally:
        await away.close()


@pytest.mark.kafka
async def test_atomic_send_needs_a_transactional_producer(
    kafka_transport: KafkaTransport, topic: str
) -> None:
    async with kafka_transport.producer() as producer:
        with pytest.raises(LocalError, match="transactional_id"):
            await producer.send_atomic([OutgoingRecord(topic, b"x")])
