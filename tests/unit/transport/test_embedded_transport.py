"""Behaviour of the embedded SQLite log that the shared contract suite does not reach:
reopening the file, several processes on one file, heartbeats and session expiry."""

from __future__ import annotations

import asyncio
import signal
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from broker.errors import (
    CommitFailed,
    RecordTooLarge,
    TransportClosed,
    TransportUnavailable,
    UnknownTopic,
)
from broker.transport import (
    MAX_RECORD_BYTES,
    Consumer,
    OutgoingRecord,
    Record,
    TopicPartition,
    TopicSpec,
)
from broker.transport.embedded import (
    EmbeddedTransport,
    _pack_headers,
    _unpack_headers,
    assign_partitions,
)

SESSION_MS = 1000  # short session timeout so expiry tests take about a second
PROCESS_TIMEOUT_S = 15  # generous bound for a child process; a healthy run takes < 1 s

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "log.db"


@pytest.fixture
async def transport(db: Path) -> AsyncIterator[EmbeddedTransport]:
    t = EmbeddedTransport(db, session_timeout_ms=SESSION_MS)
    await t.ensure_topics([TopicSpec("t", partitions=4), TopicSpec("other", partitions=1)])
    yield t
    await t.close()


def tps(topic: str, n: int) -> frozenset[TopicPartition]:
    return frozenset(TopicPartition(topic, p) for p in range(n))


async def drain(consumer: Consumer, *, expect: int, timeout_s: float = 5.0) -> list[Record]:
    """Poll until ``expect`` records arrived (or fail after ``timeout_s``)."""
    got: list[Record] = []
    deadline = time.monotonic() + timeout_s
    while len(got) < expect and time.monotonic() < deadline:
        got += await consumer.poll(timeout_ms=100)
    assert len(got) == expect, f"got {len(got)} records, wanted {expect}"
    return got


# --- child processes ----------------------------------------------------------------------------

# Prints "ready" once its producer has started, then sends when told "go" (a start barrier).
PRODUCER_SCRIPT = """
import asyncio, sys
from broker.transport.embedded import EmbeddedTransport

async def main(path, writer, count):
    t = EmbeddedTransport(path)
    async with t.producer() as p:
        print("ready", flush=True)
        sys.stdin.readline()
        for i in range(count):
            await p.send("t", f"{writer}:{i}".encode(), key=str(i % 3).encode())
    await t.close()

asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3])))
"""

# A group member driven line by line over stdin, so the test can freeze it between steps.
MEMBER_SCRIPT = """
import asyncio, sys
from broker.errors import CommitFailed
from broker.transport.embedded import EmbeddedTransport

async def main(path):
    loop = asyncio.get_running_loop()
    t = EmbeddedTransport(path, session_timeout_ms=int(sys.argv[2]))
    c = t.consumer("g", ["t"])
    await c.start()
    while (command := (await loop.run_in_executor(None, sys.stdin.readline)).strip()):
        if command == "poll":
            records = await c.poll(timeout_ms=0)
            owned = sorted(tp.partition for tp in c.assignment())
            print(len(records), *owned, flush=True)
        elif command == "commit":
            try:
                await c.commit()
                print("ok", flush=True)
            except CommitFailed:
                print("CommitFailed", flush=True)
        elif command == "close":
            await c.close()
            print("closed", flush=True)
            return

asyncio.run(main(sys.argv[1]))
"""


async def spawn(script: str, *args: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable, "-c", script, *args,
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip


async def read_line(child: asyncio.subprocess.Process) -> str:
    assert child.stdout is not None
    line = await asyncio.wait_for(child.stdout.readline(), PROCESS_TIMEOUT_S)
    return line.decode().strip()


async def tell(child: asyncio.subprocess.Process, command: str) -> None:
    assert child.stdin is not None
    child.stdin.write(command.encode() + b"\n")
    await child.stdin.drain()


async def ask(child: asyncio.subprocess.Process, command: str) -> str:
    await tell(child, command)
    return await read_line(child)


async def start_writers(db: Path, names: str, count: int) -> list[asyncio.subprocess.Process]:
    """Spawn one producer process per name and release them together once all are ready."""
    children = [await spawn(PRODUCER_SCRIPT, str(db), name, str(count)) for name in names]
    for child in children:
        assert await read_line(child) == "ready"
    for child in children:
        await tell(child, "go")
    return children


# --- durability ---------------------------------------------------------------------------------


async def test_reopened_file_keeps_records_offsets_and_topics(db: Path) -> None:
    first = EmbeddedTransport(db)
    await first.ensure_topics([TopicSpec("t", partitions=2)])
    async with first.producer() as p:
        sent = [await p.send("t", b"v%d" % i, key=b"k") for i in range(5)]
    async with first.consumer("g", ["t"]) as c:
        await drain(c, expect=5)
        await c.commit({TopicPartition("t", sent[0].partition): 3})
    await first.close()

    second = EmbeddedTransport(db)
    await second.ensure_topics([TopicSpec("t", partitions=8)])  # existing count is kept
    async with second.producer() as p:
        later = await p.send("t", b"v5", key=b"k")
    assert (later.partition, later.offset) == (sent[0].partition, 5)  # dense across restarts
    async with second.consumer("g", ["t"]) as c:
        again = await drain(c, expect=3)
        assert c.assignment() == tps("t", 2)
    assert [r.value for r in again] == [b"v3", b"v4", b"v5"]
    async with second.consumer("fresh", ["t"]) as c:
        assert len(await drain(c, expect=6)) == 6  # a new group starts at the earliest record
    await second.close()


async def test_record_fields_round_trip(transport: EmbeddedTransport) -> None:
    headers = (("a", b"1"), ("b", b""), ("a", b"2"))  # order and duplicates kept
    before = time.time_ns() // 1_000_000
    async with transport.producer() as p:
        meta = await p.send("other", b"value", headers=headers)
    async with transport.consumer("g", ["other"]) as c:
        (record,) = await drain(c, expect=1)
    assert (record.key, record.value, record.headers) == (None, b"value", headers)
    assert (record.partition, record.offset) == (meta.partition, meta.offset) == (0, 0)
    assert before <= record.timestamp_ms <= time.time_ns() // 1_000_000


async def test_partition_is_a_function_of_the_key(transport: EmbeddedTransport) -> None:
    async with transport.producer() as p:
        keyed = {(await p.send("t", b"", key=b"case-1")).partition for _ in range(6)}
        keyless = {(await p.send("t", b"")).partition for _ in range(8)}
    assert len(keyed) == 1
    assert keyless == {0, 1, 2, 3}


# --- errors -------------------------------------------------------------------------------------


async def test_send_to_missing_topic_fails(transport: EmbeddedTransport) -> None:
    async with transport.producer() as p:
        with pytest.raises(UnknownTopic, match="'nope' does not exist") as info:
            await p.send("nope", b"x")
    assert info.value.reason == "UNKNOWN_TOPIC"


async def test_record_size_limit(transport: EmbeddedTransport) -> None:
    headers = (("h", b"12"),)
    fill = MAX_RECORD_BYTES - len(b"key") - 3
    async with transport.producer() as p:
        await p.send("other", b"x" * fill, key=b"key", headers=headers)  # exactly at the limit
        with pytest.raises(RecordTooLarge):
            await p.send("other", b"x" * (fill + 1), key=b"key", headers=headers)


async def test_send_atomic_is_all_or_nothing(transport: EmbeddedTransport) -> None:
    good = OutgoingRecord("t", b"a", key=b"k")
    async with transport.producer() as p:
        with pytest.raises(UnknownTopic, match="does not exist"):
            await p.send_atomic([good, OutgoingRecord("other", b"b"), OutgoingRecord("gone", b"c")])
        with pytest.raises(RecordTooLarge):
            await p.send_atomic([good, OutgoingRecord("t", b"x" * (MAX_RECORD_BYTES + 1))])
        stored = await p.send_atomic([good, OutgoingRecord("other", b"b")])
    assert [m.offset for m in stored] == [0, 0]  # the failed batches used no offsets
    async with transport.consumer("g", ["t", "other"]) as c:
        assert sorted(r.value for r in await drain(c, expect=2)) == [b"a", b"b"]


async def test_use_before_start_or_after_close(transport: EmbeddedTransport) -> None:
    p, c = transport.producer(), transport.consumer("g", ["t"])
    with pytest.raises(TransportClosed):
        await p.send("t", b"x")
    with pytest.raises(TransportClosed):
        await c.poll(timeout_ms=0)
    await p.start()
    await c.start()
    await p.close()
    await c.close()
    with pytest.raises(TransportClosed):
        await p.send("t", b"x")
    with pytest.raises(TransportClosed):
        await c.commit()
    with pytest.raises(TransportClosed):
        c.assignment()


async def test_ping(transport: EmbeddedTransport, tmp_path: Path) -> None:
    await transport.ping()
    broken = EmbeddedTransport(tmp_path / "no-such-dir" / "log.db")
    with pytest.raises(TransportUnavailable):
        await broken.ping()
    await broken.close()


# --- several processes on one file --------------------------------------------------------------


async def test_consumer_sees_records_from_another_process(
    transport: EmbeddedTransport, db: Path
) -> None:
    async with transport.consumer("g", ["t"]) as c:
        assert await c.poll(timeout_ms=0) == []
        (child,) = await start_writers(db, "w", 5)
        got = await drain(c, expect=5, timeout_s=PROCESS_TIMEOUT_S)
        assert await asyncio.wait_for(child.wait(), PROCESS_TIMEOUT_S) == 0
    assert sorted(r.value for r in got) == [b"w:%d" % i for i in range(5)]


async def test_concurrent_writers_get_dense_unique_offsets(
    transport: EmbeddedTransport, db: Path
) -> None:
    count = 150
    children = await start_writers(db, "ab", count)
    async with transport.producer() as p:  # and a third writer in this process
        for i in range(count):
            await p.send("t", b"c:%d" % i, key=str(i % 3).encode())
    for child in children:
        assert await asyncio.wait_for(child.wait(), PROCESS_TIMEOUT_S) == 0
    async with transport.consumer("g", ["t"]) as c:
        got = await drain(c, expect=3 * count)
    by_partition: dict[int, list[int]] = {}
    for r in got:
        by_partition.setdefault(r.partition, []).append(r.offset)
    for offsets in by_partition.values():
        assert offsets == list(range(len(offsets)))
    assert len({r.value for r in got}) == 3 * count
    for writer in (b"a", b"b", b"c"):  # each writer's records stay in order per key
        for key in (b"0", b"1", b"2"):
            mine = [r.value for r in got if r.value[:1] == writer and r.key == key]
            assert mine == sorted(mine, key=lambda v: int(v.split(b":")[1]))
            assert len(mine) == count // 3


# --- consumer groups ----------------------------------------------------------------------------


async def test_members_share_partitions_and_commit_needs_ownership(
    transport: EmbeddedTransport,
) -> None:
    async with transport.producer() as p:
        for i in range(8):
            await p.send("t", b"%d" % i)  # keyless: two per partition
    async with transport.consumer("g", ["t"]) as a:
        await drain(a, expect=8)
        assert a.assignment() == tps("t", 4)
        async with transport.consumer("g", ["t"]) as b:
            await drain(b, expect=4)  # nothing committed: b starts its half at offset 0
            assert len(b.assignment()) == 2
            with pytest.raises(CommitFailed, match="no longer owns"):
                await a.commit()  # a read partitions that now belong to b
            assert await a.poll(timeout_ms=0) == []  # a stops reading b's partitions
            assert a.assignment() | b.assignment() == tps("t", 4)
            assert not a.assignment() & b.assignment()
            with pytest.raises(CommitFailed):
                await a.commit({next(iter(b.assignment())): 1})
            await a.commit()  # what a still owns
            await b.commit()
        async with transport.consumer("g", ["t"]) as c:  # a new member resumes at the commits
            assert await a.poll(timeout_ms=100) == []  # a and b committed every record
            assert await c.poll(timeout_ms=100) == []


async def test_closed_member_hands_over_at_once(transport: EmbeddedTransport) -> None:
    async with transport.consumer("g", ["t"]) as a:
        b = transport.consumer("g", ["t"])
        await b.start()
        await a.poll(timeout_ms=0)
        assert len(a.assignment()) == 2
        await b.close()
        await a.poll(timeout_ms=0)
        assert a.assignment() == tps("t", 4)


async def test_silent_member_loses_partitions_after_session_timeout(
    transport: EmbeddedTransport, db: Path
) -> None:
    async with transport.producer() as p:
        for i in range(8):
            await p.send("t", b"%d" % i)  # keyless: offsets 0 and 1 in each partition
    async with transport.consumer("g", ["t"]) as setup:
        await drain(setup, expect=8)
        await setup.commit({tp: 1 for tp in setup.assignment()})

    child = await spawn(MEMBER_SCRIPT, str(db), str(SESSION_MS))
    try:
        assert await ask(child, "poll") == "4 0 1 2 3"  # alone: every partition, from offset 1
        child.send_signal(signal.SIGSTOP)  # frozen: no more heartbeats
        async with transport.consumer("g", ["t"]) as b:
            stopped = time.monotonic()
            got: list[Record] = []
            while b.assignment() != tps("t", 4):
                assert time.monotonic() - stopped < 3 * SESSION_MS / 1000, "child never expired"
                got += await b.poll(timeout_ms=50)
            got += await b.poll(timeout_ms=50)
            # Gained partitions resume at the group's committed offset 1.
            assert sorted((r.partition, r.offset) for r in got) == [(p, 1) for p in range(4)]

            child.send_signal(signal.SIGCONT)
            assert await ask(child, "commit") == "CommitFailed"
            rejoined = await ask(child, "poll")
            assert rejoined.split()[0] == "2"  # back in the group with half the partitions
            await b.poll(timeout_ms=0)
            theirs = {TopicPartition("t", int(p)) for p in rejoined.split()[1:]}
            assert b.assignment() == tps("t", 4) - theirs
            await b.commit()
            assert await ask(child, "close") == "closed"
            await b.poll(timeout_ms=0)
            assert b.assignment() == tps("t", 4)
        assert await asyncio.wait_for(child.wait(), PROCESS_TIMEOUT_S) == 0
    finally:
        if child.returncode is None:
            child.send_signal(signal.SIGCONT)
            child.kill()
            await child.wait()


async def test_idle_member_stays_alive(transport: EmbeddedTransport) -> None:
    async with transport.consumer("g", ["t"]) as a, transport.consumer("g", ["t"]) as b:
        await a.poll(timeout_ms=0)
        # the scenario: twice the session passes while a does not poll; its heartbeat task beats
        await asyncio.sleep(2 * SESSION_MS / 1000)
        await b.poll(timeout_ms=0)
        assert len(b.assignment()) == 2


# --- pure parts ---------------------------------------------------------------------------------


@given(st.lists(st.tuples(st.text(), st.binary()), max_size=5).map(tuple))
def test_headers_encoding_round_trips(headers: tuple[tuple[str, bytes], ...]) -> None:
    assert _unpack_headers(_pack_headers(headers)) == headers


@given(
    st.dictionaries(st.text("abcdef", min_size=1, max_size=4), st.sets(st.sampled_from("xyz"))),
    st.dictionaries(st.sampled_from("xyzw"), st.integers(1, 12)),
)
def test_assignment_is_disjoint_and_covers_subscribed_topics(
    members: dict[str, set[str]], partitions: dict[str, int]
) -> None:
    owned = assign_partitions(members, partitions)
    every = [tp for tps_ in owned.values() for tp in tps_]
    assert len(every) == len(set(every))  # disjoint
    subscribed = {t for topics in members.values() for t in topics}
    wanted = [tps(t, n) for t, n in partitions.items() if t in subscribed]
    assert set(every) == frozenset().union(*wanted)
    for member, tps_ in owned.items():
        assert all(tp.topic in members[member] for tp in tps_)
    assert owned == assign_partitions(dict(reversed(list(members.items()))), partitions)
