"""Kafka-specific behaviour: a broker that does not answer gives an error, not a hang."""

from __future__ import annotations

import socket
import sys
import time
from types import SimpleNamespace

import pytest
from aiokafka.errors import NodeNotReadyError

from broker.errors import LocalError, TransportError, TransportUnavailable
from broker.transport import OutgoingRecord, TopicSpec
from broker.transport.kafka import KafkaOptions, KafkaProducer, KafkaTransport


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


@pytest.mark.kafka
async def test_a_transaction_right_after_another_does_not_wait_20_ms_to_begin(
    kafka_transport: KafkaTransport, topic: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Right after a commit the coordinator refuses the next transaction's partitions
    (CONCURRENT_TRANSACTIONS) until its markers are written, about a millisecond; aiokafka
    waited 20 ms each time, which made transactions in series cost 25 ms."""
    from aiokafka.producer import sender

    waits: list[float] = []
    real_sleep = sender.asyncio.sleep

    async def recorded(delay: float, *args: object) -> None:
        if sys._getframe(1).f_code.co_filename == sender.__file__:
            waits.append(delay)
        await real_sleep(delay, *args)

    await kafka_transport.ensure_topics([TopicSpec(topic)])
    async with kafka_transport.producer(transactional_id=f"t-{topic}") as producer:
        # The first transaction may wait the full retry back-off while the coordinator is
        # found or, on a fresh broker, while the transaction-state topic is made: that is
        # not a transaction waiting for the one before it, so it is not recorded.
        await producer.send_atomic([OutgoingRecord(topic, b"first")])
        monkeypatch.setattr(sender.asyncio, "sleep", recorded)
        for i in range(20):
            await producer.send_atomic([OutgoingRecord(topic, b"%d" % i)])
    assert waits, "no transaction had to wait for the one before it: nothing was tested"
    assert max(waits) <= 0.001


@pytest.mark.kafka
async def test_a_producer_a_fatal_error_ended_is_started_anew_not_left_refusing_every_send(
    kafka_transport: KafkaTransport, topic: str
) -> None:
    """After a broker outage aiokafka can end a producer for good (OutOfOrderSequenceNumber:
    its sender stops, every later transaction is InvalidTxnState). Found by the fault suite:
    a gateway refused every send and delivered nothing until restarted."""
    from aiokafka.errors import OutOfOrderSequenceNumber

    await kafka_transport.ensure_topics([TopicSpec(topic, partitions=1)])  # one order to check
    async with kafka_transport.producer(transactional_id=f"t-{topic}") as producer:
        assert isinstance(producer, KafkaProducer)
        await producer.send_atomic([OutgoingRecord(topic, b"before")])
        dead = producer._live()
        dead._txn_manager.fatal_error(OutOfOrderSequenceNumber())  # what aiokafka's sender does

        await producer.send_atomic([OutgoingRecord(topic, b"after")])

        assert producer.restarts == 1
        assert producer._live() is not dead
    values = [r.value for r in await kafka_transport.read_topic(topic)]
    assert values == [b"before", b"after"]


class _ClusterWithOneBrokerDown:
    """What aiokafka's client knows a few seconds after one broker of three was killed: the
    metadata still lists it, and a request sent to it fails at once."""

    def __init__(self, dead: int) -> None:
        self.dead = dead
        self.cluster = self
        self.asked: list[int] = []

    def brokers(self) -> list[SimpleNamespace]:
        return [SimpleNamespace(nodeId=n) for n in (1, 2, 3)]

    async def send(self, node_id: int, request: object) -> object:
        self.asked.append(node_id)
        if node_id == self.dead:
            raise NodeNotReadyError(f"Attempt to send a request to node {node_id}")
        return object()


async def test_ping_answers_while_any_broker_answers() -> None:
    """Regression (CI, leader-kill test: 81 sends refused): the probe asked one broker at
    random, so with one of three killed every third probe declared an outage and the gateway
    refused sends the two live brokers would have taken."""
    transport = _unreachable()
    client = _ClusterWithOneBrokerDown(dead=1)
    transport._admin = SimpleNamespace(_client=client)
    for _ in range(30):
        await transport.ping()
    assert client.dead in client.asked  # it was asked, and its silence was not an outage


async def test_ping_fails_when_no_broker_answers() -> None:
    transport = _unreachable()
    client = _ClusterWithOneBrokerDown(dead=1)
    client.brokers = lambda: [SimpleNamespace(nodeId=1)]  # type: ignore[method-assign]
    transport._admin = SimpleNamespace(_client=client, close=_nothing)
    with pytest.raises(TransportUnavailable):
        await transport.ping()


async def _nothing() -> None:
    return None
