"""The transport contract (``broker/transport/_base.py``), one suite run on both transports.

Each test takes the ``transport`` fixture, which is parametrized: ``[embedded]`` runs on
the SQLite log, ``[kafka]`` on the real broker started by `make kafka-up`.
"""

from __future__ import annotations

import asyncio
import time
import uuid

import pytest

from broker.errors import CommitFailed, RecordTooLarge, TransportClosed
from broker.transport import (
    Consumer,
    OutgoingRecord,
    Record,
    TopicPartition,
    TopicReader,
    TopicSpec,
    Transport,
)

# Generous: a Kafka group join plus first fetch takes a few seconds on a busy machine.
DRAIN_TIMEOUT_S = 45.0


async def drain(
    consumer: Consumer | TopicReader, count: int, timeout_s: float = DRAIN_TIMEOUT_S
) -> list[Record]:
    """Poll until ``count`` records came, failing after ``timeout_s``."""
    records: list[Record] = []
    deadline = time.monotonic() + timeout_s
    while len(records) < count:
        assert time.monotonic() < deadline, f"got {len(records)} of {count} records"
        records += await consumer.poll(timeout_ms=200)
    return records


async def quiet(consumer: Consumer | TopicReader, seconds: float = 2.0) -> list[Record]:
    """Everything a consumer returns within ``seconds`` (to show nothing more comes)."""
    records: list[Record] = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        records += await consumer.poll(timeout_ms=200)
    return records


def group() -> str:
    return f"group-{uuid.uuid4().hex[:8]}"


async def test_records_with_one_key_keep_their_order(transport: Transport, topic: str) -> None:
    await transport.ensure_topics([TopicSpec(topic, partitions=3)])
    keys = [f"case-{i}".encode() for i in range(4)]
    async with transport.producer() as producer:
        for n in range(40):
            for key in keys:
                await producer.send(topic, f"{key.decode()}:{n}".encode(), key=key)
    async with transport.consumer(group(), [topic]) as consumer:
        records = await drain(consumer, 160)
    for key in keys:
        values = [r.value for r in records if r.key == key]
        assert values == [f"{key.decode()}:{n}".encode() for n in range(40)]
        assert len({r.partition for r in records if r.key == key}) == 1
    assert len({(r.partition, r.offset) for r in records}) == 160


async def test_headers_are_kept(transport: Transport, topic: str) -> None:
    await transport.ensure_topics([TopicSpec(topic, partitions=1)])
    headers = (("lvv-type", b"nl.lvv.v1.CaseClosed"), ("dup", b"1"), ("dup", b"2"), ("empty", b""))
    async with transport.producer() as producer:
        meta = await producer.send(topic, b"payload", key=b"k", headers=headers)
    assert (meta.topic, meta.partition, meta.offset) == (topic, 0, 0)
    async with transport.consumer(group(), [topic]) as consumer:
        [record] = await drain(consumer, 1)
    assert record.headers == headers
    assert (record.key, record.value) == (b"k", b"payload")
    assert record.timestamp_ms > 0


async def test_a_one_mebibyte_record_passes(transport: Transport, topic: str) -> None:
    await transport.ensure_topics([TopicSpec(topic, partitions=1)])
    big = bytes(range(256)) * 4096  # 1 MiB
    async with transport.producer() as producer:
        await producer.send(topic, big, key=b"big")
    async with transport.consumer(group(), [topic]) as consumer:
        [record] = await drain(consumer, 1)
    assert record.value == big


async def test_an_oversized_record_is_refused(transport: Transport, topic: str) -> None:
    await transport.ensure_topics([TopicSpec(topic, partitions=1)])
    async with transport.producer() as producer:
        with pytest.raises(RecordTooLarge):
            await producer.send(topic, b"x" * (3 * 1024 * 1024))


async def test_uncommitted_records_come_again_after_restart(
    transport: Transport, topic: str
) -> None:
    await transport.ensure_topics([TopicSpec(topic, partitions=1)])
    async with transport.producer() as producer:
        for n in range(10):
            await producer.send(topic, str(n).encode())
    g = group()
    async with transport.consumer(g, [topic]) as consumer:
        first = await drain(consumer, 10)
        assert [r.value for r in first] == [str(n).encode() for n in range(10)]
        await consumer.commit({TopicPartition(topic, 0): 4})  # handled 0..3 only
    async with transport.consumer(g, [topic]) as consumer:
        again = await drain(consumer, 6)
    assert [r.value for r in again] == [str(n).encode() for n in range(4, 10)]


async def test_committed_records_are_not_delivered_again(transport: Transport, topic: str) -> None:
    await transport.ensure_topics([TopicSpec(topic, partitions=2)])
    async with transport.producer() as producer:
        for n in range(10):
            await producer.send(topic, str(n).encode(), key=str(n).encode())
        g = group()
        async with transport.consumer(g, [topic]) as consumer:
            await drain(consumer, 10)
            await consumer.commit()
        await producer.send(topic, b"new", key=b"new")
    async with transport.consumer(g, [topic]) as consumer:
        [record] = await drain(consumer, 1)
        assert record.value == b"new"
        assert await quiet(consumer, 1.5) == []


async def test_two_members_of_a_group_share_the_partitions(
    transport: Transport, topic: str
) -> None:
    await transport.ensure_topics([TopicSpec(topic, partitions=4)])
    all_partitions = {TopicPartition(topic, p) for p in range(4)}
    async with transport.producer() as producer:
        for n in range(200):
            await producer.send(topic, str(n).encode(), key=str(n).encode())
    g = group()
    seen: list[Record] = []
    async with transport.consumer(g, [topic]) as a, transport.consumer(g, [topic]) as b:
        deadline = time.monotonic() + DRAIN_TIMEOUT_S
        while True:
            batch_a, batch_b = await asyncio.gather(a.poll(timeout_ms=200), b.poll(timeout_ms=200))
            seen += batch_a + batch_b
            owned_a, owned_b = a.assignment(), b.assignment()
            if owned_a and owned_b and owned_a | owned_b == all_partitions:
                break
            assert time.monotonic() < deadline, f"assignment never settled: {owned_a} {owned_b}"
        assert not owned_a & owned_b
        while len({r.value for r in seen}) < 200:
            assert time.monotonic() < deadline, "records missing"
            batch_a, batch_b = await asyncio.gather(a.poll(timeout_ms=200), b.poll(timeout_ms=200))
            seen += batch_a + batch_b
    assert {r.value for r in seen} == {str(n).encode() for n in range(200)}


async def test_topic_creation_is_idempotent(transport: Transport, topic: str) -> None:
    await transport.ensure_topics([TopicSpec(topic, partitions=2)])
    await transport.ensure_topics([TopicSpec(topic, partitions=2)])
    await transport.ensure_topics([TopicSpec(topic, partitions=5)])  # existing one is kept
    async with transport.producer() as producer:
        partitions = {
            (await producer.send(topic, b"v", key=str(n).encode())).partition for n in range(60)
        }
    assert partitions == {0, 1}


async def test_atomic_send_stores_every_record(transport: Transport, topic: str) -> None:
    other = topic + ".b"
    await transport.ensure_topics([TopicSpec(topic, partitions=1), TopicSpec(other, partitions=1)])
    async with transport.producer(transactional_id=f"tx-{uuid.uuid4().hex[:8]}") as producer:
        metas = await producer.send_atomic(
            [OutgoingRecord(topic, b"one", b"case"), OutgoingRecord(other, b"two", b"case")]
        )
    assert [(m.topic, m.offset) for m in metas] == [(topic, 0), (other, 0)]
    async with transport.consumer(group(), [topic, other]) as consumer:
        records = await drain(consumer, 2)
    assert sorted(r.value for r in records) == [b"one", b"two"]


async def test_closed_clients_refuse_work(transport: Transport, topic: str) -> None:
    await transport.ensure_topics([TopicSpec(topic, partitions=1)])
    producer = transport.producer()
    with pytest.raises(TransportClosed):
        await producer.send(topic, b"too early")
    consumer = transport.consumer(group(), [topic])
    with pytest.raises(TransportClosed):
        await consumer.poll()


async def test_commit_of_a_partition_not_owned_fails(transport: Transport, topic: str) -> None:
    await transport.ensure_topics([TopicSpec(topic, partitions=1)])
    async with transport.producer() as producer:
        await producer.send(topic, b"x")
    async with transport.consumer(group(), [topic]) as consumer:
        await drain(consumer, 1)
        with pytest.raises(CommitFailed):
            await consumer.commit({TopicPartition(topic + ".other", 0): 1})


async def test_end_offsets_committed_offsets_and_lag(transport: Transport, topic: str) -> None:
    await transport.ensure_topics([TopicSpec(topic, partitions=2)])
    async with transport.producer() as producer:
        for n in range(10):
            await producer.send(topic, b"v", key=str(n).encode())
    ends = await transport.end_offsets([topic])
    assert set(ends) == {TopicPartition(topic, 0), TopicPartition(topic, 1)}
    assert sum(ends.values()) == 10
    g = group()
    assert await transport.committed(g, [topic]) == {}
    assert await transport.lag(g, [topic]) == 10
    async with transport.consumer(g, [topic]) as consumer:
        await drain(consumer, 10)
        await consumer.commit()
    assert await transport.committed(g, [topic]) == ends
    assert await transport.lag(g, [topic]) == 0


async def test_a_whole_topic_can_be_read_without_a_group(transport: Transport, topic: str) -> None:
    await transport.ensure_topics([TopicSpec(topic, partitions=3)])
    async with transport.producer() as producer:
        for n in range(30):
            await producer.send(topic, str(n).encode(), key=str(n % 5).encode())
    records = await transport.read_topic(topic)
    assert sorted(int(r.value) for r in records) == list(range(30))
    for p in range(3):
        offsets = [r.offset for r in records if r.partition == p]
        assert offsets == sorted(offsets)
    assert await transport.read_topic(topic) == records  # reading does not consume


async def test_a_reader_reads_a_topic_from_its_start_then_follows_it(
    transport: Transport, topic: str
) -> None:
    await transport.ensure_topics([TopicSpec(topic, partitions=2)])
    six = [OutgoingRecord(topic, str(n).encode(), key=str(n % 3).encode()) for n in range(6)]
    async with transport.producer(transactional_id=f"tx-{topic}") as producer:
        await producer.send_atomic(six)
        async with transport.reader(topic) as reader, transport.reader(topic) as second:
            first = await drain(reader, 6)
            assert sorted(int(r.value) for r in first) == list(range(6))
            await producer.send(topic, b"6", key=b"0")
            (later,) = await drain(reader, 1)
            assert later.value == b"6"
            assert await quiet(reader, 1.0) == []
            # readers share nothing (no group): another one reads it all from the start
            assert sorted(int(r.value) for r in await drain(second, 7)) == list(range(7))
    assert await transport.committed("any", [topic]) == {}


async def test_a_reader_of_a_topic_made_later_reads_it_once_it_exists(
    transport: Transport, topic: str
) -> None:
    async with transport.reader(topic) as reader:
        assert await reader.poll(timeout_ms=100) == []
        await transport.ensure_topics([TopicSpec(topic, partitions=1)])
        async with transport.producer() as producer:
            await producer.send(topic, b"late", key=b"k")
        (record,) = await drain(reader, 1)
        assert record.value == b"late"
