"""The embedded transport: a durable, partitioned log with consumer groups in one SQLite file.

The zero-setup default for the demo and for fast tests. Several processes on one machine may
share the file: every write is one ``BEGIN IMMEDIATE`` transaction (SQLite serialises writers,
the busy timeout queues them) and WAL mode lets readers run beside the writer. It keeps the
semantics of `broker.transport._base`; what is specific to it:

- partition = crc32(key) % partitions, not Kafka's murmur2: partition numbers differ between
  the transports, per-key order holds in both; keyless records go round-robin per producer;
- group membership is a table of heartbeats. Every poll recomputes the assignment from the
  live members, and a commit re-checks ownership inside its write transaction, which plays
  the part of Kafka's generation fencing;
- no retention or compaction: topic ``config`` is ignored and the log only grows;
- ``transactional_id`` is accepted and ignored: one SQLite transaction already makes
  ``send_atomic`` all-or-nothing, and a zombie producer can at worst append duplicates, which
  the gateway drops by message id.

The transport and every producer and consumer own one connection, used only from their own
single-thread executor: SQLite never blocks the event loop, a connection never changes thread.

A waiting poll re-reads the file after `POLL_INTERVAL_S`, and, while nothing comes, less and
less often, up to `IDLE_POLL_INTERVAL_S`; a write by a producer of the same process (and
event loop) to a topic it reads wakes it at once (`_wrote`). So an idle network in one process (`lvvx demo
--serve`) costs next to nothing, and a write from another process is seen within
`IDLE_POLL_INTERVAL_S` at worst.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import re
import sqlite3
import struct
import time
import uuid
import weakref
import zlib
from collections.abc import Awaitable, Callable, Collection, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import TypeVar

from broker.errors import (
    CommitFailed,
    LocalError,
    RecordTooLarge,
    TransportClosed,
    TransportError,
    TransportTimeout,
    TransportUnavailable,
    UnknownTopic,
)
from broker.limits import MAX_RECORD_BYTES
from broker.owner_only import private_sqlite
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

__all__ = ["DEFAULT_SESSION_TIMEOUT_MS", "EmbeddedTransport", "assign_partitions"]

T = TypeVar("T")

# PRAGMA user_version of the table layout below; a file with another version is refused.
SCHEMA_VERSION = 1
# A write holds the lock for milliseconds; waiting longer than this means a stuck writer.
BUSY_TIMEOUT_S = 5.0
# How often a waiting poll re-reads the file: writers in other processes cannot wake it.
POLL_INTERVAL_S = 0.015
# The longest pause between reads of a quiet file: each empty read doubles the pause up to
# this. A write of this process wakes the poll at once; one of another process is seen
# within this much.
IDLE_POLL_INTERVAL_S = 0.5
# A silent member keeps its partitions this long (Kafka's default before 3.0 was also 10 s).
DEFAULT_SESSION_TIMEOUT_MS = 10_000
# Kafka's advice: at least three heartbeats per session timeout.
HEARTBEATS_PER_SESSION = 3
# Kafka's legal topic names, so a topic that works here also works on Kafka.
TOPIC_NAME = re.compile(r"[A-Za-z0-9._-]{1,249}")
# Stored header encoding: name length and value length before each header.
_HEADER_PREFIX = struct.Struct(">II")

_SCHEMA = (
    "CREATE TABLE topics (name TEXT PRIMARY KEY, partitions INT NOT NULL) WITHOUT ROWID",
    "CREATE TABLE ends (topic TEXT, part INT, next INT NOT NULL, PRIMARY KEY (topic, part))",
    # Values reach MAX_RECORD_BYTES, too large for a WITHOUT ROWID b-tree, hence a rowid table.
    "CREATE TABLE records (topic TEXT NOT NULL, part INT NOT NULL, ofs INT NOT NULL, key BLOB,"
    " value BLOB NOT NULL, headers BLOB NOT NULL, ts_ms INT NOT NULL, UNIQUE (topic, part, ofs))",
    "CREATE TABLE offsets (grp TEXT, topic TEXT, part INT, next INT NOT NULL,"
    " PRIMARY KEY (grp, topic, part)) WITHOUT ROWID",
    "CREATE TABLE members (grp TEXT, member TEXT, topics TEXT NOT NULL, beat_ms INT NOT NULL,"
    " session_ms INT NOT NULL, PRIMARY KEY (grp, member)) WITHOUT ROWID",
)


def assign_partitions(
    members: Mapping[str, Collection[str]], partitions: Mapping[str, int]
) -> dict[str, frozenset[TopicPartition]]:
    """Deal each topic's partitions round-robin over its subscribers sorted by member id.

    Pure, so every member computes the same answer from the same live set. The deal starts
    at the subscriber picked by the topic's crc32, so the first member does not get the odd
    partition of every topic.
    """
    owned: dict[str, set[TopicPartition]] = {m: set() for m in members}
    for topic, count in partitions.items():
        if subs := sorted(m for m, topics in members.items() if topic in topics):
            start = zlib.crc32(topic.encode())
            for p in range(count):
                owned[subs[(start + p) % len(subs)]].add(TopicPartition(topic, p))
    return {m: frozenset(tps) for m, tps in owned.items()}


def _pack_headers(headers: Headers) -> bytes:
    out = bytearray()
    for name, value in headers:
        raw = name.encode()
        out += _HEADER_PREFIX.pack(len(raw), len(value)) + raw + value
    return bytes(out)


def _unpack_headers(blob: bytes) -> Headers:
    items, i = [], 0
    while i < len(blob):
        n, v = _HEADER_PREFIX.unpack_from(blob, i)
        i += _HEADER_PREFIX.size + n + v
        items.append((blob[i - n - v : i - v].decode(), blob[i - v : i]))
    return tuple(items)


def _check_record(r: OutgoingRecord) -> None:
    if not isinstance(r.value, bytes) or not isinstance(r.key, bytes | None):
        raise TypeError("record key and value must be bytes")
    size = len(r.key or b"") + len(r.value) + sum(len(n.encode()) + len(v) for n, v in r.headers)
    if size > MAX_RECORD_BYTES:
        raise RecordTooLarge(f"record for {r.topic!r} is {size} bytes, limit {MAX_RECORD_BYTES}")


def _check_topic(name: str) -> None:
    if not isinstance(name, str) or not TOPIC_NAME.fullmatch(name):
        raise LocalError(f"invalid topic name {name!r}", reason="INVALID_TOPIC")


def _now_ms() -> int:
    return time.time_ns() // 1_000_000  # wall clock: heartbeats are compared across processes


@contextlib.contextmanager
def _transaction(conn: sqlite3.Connection, mode: str = "IMMEDIATE") -> Iterator[None]:
    """IMMEDIATE takes the write lock up front, so the busy timeout applies; a deferred
    transaction that upgrades to writing later fails at once with SQLITE_BUSY."""
    conn.execute(f"BEGIN {mode}")
    try:
        yield
        conn.execute("COMMIT")
    finally:
        if conn.in_transaction:
            conn.execute("ROLLBACK")


def _connect(path: str) -> sqlite3.Connection:
    # owner-only, and so are the -wal and -shm files SQLite makes beside it (same mode)
    conn = sqlite3.connect(private_sqlite(path), timeout=BUSY_TIMEOUT_S, isolation_level=None)
    try:
        if conn.execute("PRAGMA journal_mode=WAL").fetchone()[0] != "wal":
            raise TransportUnavailable(f"embedded log {path!r}: WAL mode unavailable")
        # FULL syncs the WAL at every commit, so a returned send survives power loss as acks=all
        # survives losing a broker; NORMAL survives only a process crash. The price is one
        # fsync per send; send_atomic batches.
        conn.execute("PRAGMA synchronous=FULL")
        with _transaction(conn):
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version == 0:
                for statement in _SCHEMA:
                    conn.execute(statement)
                conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
            elif version != SCHEMA_VERSION:
                raise TransportUnavailable(f"embedded log {path!r} has schema {version}")
    except BaseException:
        conn.close()
        raise
    return conn


class _Connection:
    """One SQLite connection, opened lazily and used only from its own thread."""

    def __init__(self, path: str) -> None:
        self._path = path
        self._conn: sqlite3.Connection | None = None
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="lvv-embedded")

    async def call(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, self._run, fn)

    def _run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        try:
            if self._conn is None:
                self._conn = _connect(self._path)
            return fn(self._conn)
        except sqlite3.Error as exc:
            if self._conn is None:
                raise TransportUnavailable(f"cannot open {self._path!r}: {exc}") from exc
            if exc.sqlite_errorcode & 0xFF in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED):
                raise TransportTimeout(f"embedded log locked over {BUSY_TIMEOUT_S} s") from exc
            raise TransportError(f"embedded log: {exc}") from exc

    async def close(self) -> None:
        def shut() -> None:
            if self._conn is not None:
                self._conn.close()

        try:
            await asyncio.get_running_loop().run_in_executor(self._executor, shut)
        finally:
            self._executor.shutdown(wait=False)


def _create_topics(conn: sqlite3.Connection, specs: Sequence[TopicSpec]) -> None:
    with _transaction(conn):
        for s in specs:
            sql = "INSERT INTO topics VALUES (?, ?) ON CONFLICT DO NOTHING"
            if conn.execute(sql, (s.name, s.partitions)).rowcount:
                rows = [(s.name, p) for p in range(s.partitions)]
                conn.executemany("INSERT INTO ends VALUES (?, ?, 0)", rows)


def _append(
    conn: sqlite3.Connection, records: Sequence[OutgoingRecord], seeds: Sequence[int]
) -> list[RecordMetadata]:
    stored, counts, now = [], dict[str, int](), _now_ms()
    with _transaction(conn):
        for r, seed in zip(records, seeds, strict=True):
            if r.topic not in counts:
                sql = "SELECT partitions FROM topics WHERE name = ?"
                if (found := conn.execute(sql, (r.topic,)).fetchone()) is None:
                    raise UnknownTopic(
                        f"topic {r.topic!r} does not exist; topics are not auto-created,"
                        " create it with ensure_topics"
                    )
                counts[r.topic] = found[0]
            part = (zlib.crc32(r.key) if r.key is not None else seed) % counts[r.topic]
            sql = "UPDATE ends SET next = next + 1 WHERE topic = ? AND part = ? RETURNING next - 1"
            ((offset,),) = conn.execute(sql, (r.topic, part)).fetchall()
            row = (r.topic, part, offset, r.key, r.value, _pack_headers(r.headers), now)
            conn.execute("INSERT INTO records VALUES (?, ?, ?, ?, ?, ?, ?)", row)
            stored.append(RecordMetadata(r.topic, part, offset))
    return stored


_WAITING: weakref.WeakKeyDictionary[
    asyncio.AbstractEventLoop, dict[tuple[str, str], set[asyncio.Event]]
] = weakref.WeakKeyDictionary()
"""Per event loop, per (log file, topic): the events of the pollers reading it."""


def _wrote(path: str, topics: Collection[str]) -> None:
    """Records were appended to ``topics`` of ``path``: wake this loop's pollers of them."""
    waiting = _WAITING.get(asyncio.get_running_loop(), {})
    for topic in topics:
        for event in waiting.get((path, topic), ()):
            event.set()


class _Waiter:
    """One poller's pace: when it reads the file next, and the event a write by this
    process to one of its topics sets (or a member joining or leaving its group). After records it reads again at once; after a
    wake-up that found nothing, after `POLL_INTERVAL_S`; after an empty read that nothing
    woke, after twice the pause before, up to `IDLE_POLL_INTERVAL_S`."""

    def __init__(self, path: str, topics: Collection[str]) -> None:
        self.topics = tuple(topics)
        self._keys = [(path, t) for t in topics]
        self.written = asyncio.Event()
        self.pause = POLL_INTERVAL_S
        self.next_read = 0.0
        self._loop: asyncio.AbstractEventLoop | None = None

    def register(self) -> None:
        loop = asyncio.get_running_loop()
        if self._loop is not loop:  # first poll (in this loop)
            self._loop = loop
            waiting = _WAITING.setdefault(loop, {})
            for key in self._keys:
                waiting.setdefault(key, set()).add(self.written)

    def unregister(self) -> None:
        waiting = _WAITING.get(self._loop, {}) if self._loop is not None else {}
        for key in self._keys:
            events = waiting.get(key)
            if events is not None:
                events.discard(self.written)
                if not events:
                    del waiting[key]
        self._loop = None

    def read(self, records: int, woken: bool) -> None:
        now = time.monotonic()
        if records:
            self.pause, self.next_read = POLL_INTERVAL_S, now
            return
        self.pause = POLL_INTERVAL_S if woken else min(self.pause * 2, IDLE_POLL_INTERVAL_S)
        self.next_read = now + self.pause


async def _poll_until(
    fetch: Callable[[], Awaitable[list[Record]]], timeout_ms: int, max_records: int,
    waiter: _Waiter,
) -> list[Record]:  # fmt: skip
    """What ``fetch`` returns once it returns records, or after ``timeout_ms`` (nothing);
    the file is read at ``waiter``'s pace — but a poll of ``timeout_ms`` 0 (a look, now)
    always reads it once."""
    if max_records < 1:
        raise LocalError(f"max_records must be positive, not {max_records}")
    waiter.register()
    deadline = time.monotonic() + timeout_ms / 1000
    look = timeout_ms <= 0
    while True:
        now = time.monotonic()
        if not look and not waiter.written.is_set() and now < waiter.next_read:
            if now >= deadline:
                return []
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(waiter.written.wait(), min(waiter.next_read, deadline) - now)
            continue
        woken = waiter.written.is_set()
        waiter.written.clear()  # before the read: a write during it sets it again
        records = await fetch()
        waiter.read(len(records), woken)
        if records or time.monotonic() >= deadline:
            return records


class _Lifecycle:
    """Not started, started with a connection of its own, then closed for good."""

    def __init__(self, path: str) -> None:
        self._path = path
        self._db: _Connection | None = None
        self._closed = False

    def _require(self) -> _Connection:
        if self._closed or self._db is None:
            state = "closed" if self._closed else "not started"
            raise TransportClosed(f"{type(self).__name__} is {state}")
        return self._db

    async def _open(self, first: Callable[[sqlite3.Connection], object]) -> None:
        """Connect and run ``first`` now, so a bad file fails at start, not at first use."""
        if self._closed:
            raise TransportClosed(f"{type(self).__name__} is closed")
        if self._db is None:
            db = _Connection(self._path)
            try:
                await db.call(first)
            except BaseException:
                await db.close()
                raise
            self._db = db


class EmbeddedProducer(_Lifecycle, Producer):
    def __init__(self, path: str) -> None:
        super().__init__(path)
        self._round_robin = itertools.count()

    async def start(self) -> None:
        await self._open(lambda conn: None)

    async def close(self) -> None:
        if not self._closed and self._db is not None:
            await self._db.close()
        self._closed = True

    async def send(
        self, topic: str, value: bytes, *, key: bytes | None = None, headers: Headers = ()
    ) -> RecordMetadata:
        (stored,) = await self.send_atomic([OutgoingRecord(topic, value, key, tuple(headers))])
        return stored

    async def send_atomic(self, records: Sequence[OutgoingRecord]) -> list[RecordMetadata]:
        db, batch = self._require(), list(records)
        for r in batch:
            _check_record(r)
        seeds = [next(self._round_robin) for _ in batch]
        if not batch:
            return []
        stored = await db.call(partial(_append, records=batch, seeds=seeds))
        _wrote(self._path, {r.topic for r in batch})
        return stored


class EmbeddedConsumer(_Lifecycle, Consumer):
    """The ``_sql_*`` methods run in the connection's thread and read only fixed attributes."""

    def __init__(self, path: str, group: str, topics: Sequence[str], session_ms: int) -> None:
        super().__init__(path)
        self._group, self._member = group, uuid.uuid4().hex
        self._topics, self._session_ms = " ".join(sorted(set(topics))), session_ms
        self._assignment: frozenset[TopicPartition] = frozenset()
        self._positions: dict[TopicPartition, int] = {}
        self._dirty: set[TopicPartition] = set()  # returned by poll since their last commit
        self._dropped = False  # the heartbeat found this member dropped from the group
        self._expelled = False  # dropped since the last poll: commit() must fail
        self._last_beat = 0.0
        self._rotation = 0  # which partition a fetch reads first, so none starves the others
        self._lock = asyncio.Lock()  # one state change at a time: poll, commit, heartbeat
        self._beater: asyncio.Task[None] | None = None
        self._waiter = _Waiter(path, sorted(set(topics)))

    def _sql_beat(self, conn: sqlite3.Connection) -> None:
        """Refresh this member's heartbeat, or join (again) if it was dropped."""
        now, key = _now_ms(), (self._group, self._member)
        with _transaction(conn):
            sql = "DELETE FROM members WHERE grp = ? AND beat_ms + session_ms < ?"
            conn.execute(sql, (self._group, now))
            sql = "UPDATE members SET beat_ms = ? WHERE grp = ? AND member = ?"
            if not conn.execute(sql, (now, *key)).rowcount:
                row = (*key, self._topics, now, self._session_ms)
                conn.execute("INSERT INTO members VALUES (?, ?, ?, ?, ?)", row)
                self._dropped = True  # set here, so a cancelled await cannot lose it

    def _sql_leave(self, conn: sqlite3.Connection) -> None:
        with _transaction(conn):
            sql = "DELETE FROM members WHERE grp = ? AND member = ?"
            conn.execute(sql, (self._group, self._member))

    def _sql_owned(self, conn: sqlite3.Connection) -> frozenset[TopicPartition]:
        sql = "SELECT member, topics FROM members WHERE grp = ? AND beat_ms + session_ms >= ?"
        live = {m: t.split() for m, t in conn.execute(sql, (self._group, _now_ms()))}
        if self._member not in live:
            return frozenset()
        wanted = {t for topics in live.values() for t in topics}
        counts = {n: c for n, c in conn.execute("SELECT * FROM topics") if n in wanted}
        return assign_partitions(live, counts)[self._member]

    def _sql_fetch(
        self, conn: sqlite3.Connection, positions: Mapping[TopicPartition, int], limit: int
    ) -> tuple[dict[TopicPartition, int], list[Record]]:
        """The owned partitions with their start positions, and the records after those.

        One read transaction: assignment and records come from one snapshot, so a
        ``send_atomic`` is seen whole or not at all.
        """
        records: list[Record] = []
        with _transaction(conn, "DEFERRED"):
            owned = self._sql_owned(conn)
            start = {tp: positions[tp] for tp in owned if tp in positions}
            for tp in owned - start.keys():  # newly gained: resume at the group's commit
                sql = "SELECT next FROM offsets WHERE grp = ? AND topic = ? AND part = ?"
                row = conn.execute(sql, (self._group, *_tp(tp))).fetchone()
                start[tp] = row[0] if row else 0
            order = sorted(owned, key=_tp)
            turn = self._rotation % len(order) if order else 0
            for tp in order[turn:] + order[:turn]:
                sql = (
                    "SELECT ofs, key, value, headers, ts_ms FROM records"
                    " WHERE topic = ? AND part = ? AND ofs >= ? ORDER BY ofs LIMIT ?"
                )
                rows = conn.execute(sql, (*_tp(tp), start[tp], limit - len(records)))
                for ofs, key, value, packed, ts in rows:
                    records.append(Record(*_tp(tp), ofs, key, value, _unpack_headers(packed), ts))
                if len(records) >= limit:
                    break
        return start, records

    def _sql_commit(self, conn: sqlite3.Connection, offsets: Mapping[TopicPartition, int]) -> None:
        with _transaction(conn):
            if lost := offsets.keys() - self._sql_owned(conn):
                names = ", ".join(sorted(f"{tp.topic}[{tp.partition}]" for tp in lost))
                raise CommitFailed(f"member of {self._group!r} no longer owns {names}; poll again")
            sql = "INSERT OR REPLACE INTO offsets VALUES (?, ?, ?, ?)"
            conn.executemany(sql, [(self._group, *_tp(tp), o) for tp, o in offsets.items()])

    async def start(self) -> None:
        if self._db is None and not self._closed:
            await self._open(self._sql_beat)  # joins the group
            self._last_beat, self._dropped = time.monotonic(), False
            self._beater = asyncio.create_task(self._beat_forever(), name=f"beat {self._group}")
            _wrote(self._path, self._waiter.topics)  # the group changed: its members look now
        self._require()

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._waiter.unregister()
        if self._beater is not None:
            self._beater.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._beater
        if self._db is not None:
            try:
                await self._db.call(self._sql_leave)  # hand the partitions over at once
                _wrote(self._path, self._waiter.topics)  # and tell the members that stay
            finally:
                await self._db.close()

    async def _beat_if_due(self) -> None:
        db = self._require()
        if time.monotonic() - self._last_beat >= self._session_ms / 1000 / HEARTBEATS_PER_SESSION:
            await db.call(self._sql_beat)
            self._last_beat = time.monotonic()
        if self._dropped:  # like a fenced Kafka member: forget positions, resume from commits
            self._dropped, self._expelled, self._assignment = False, True, frozenset()
            self._positions.clear()
            self._dirty.clear()

    async def _beat_forever(self) -> None:
        """Keeps an idle member alive: looks twice per interval, so no gap exceeds 1.5 of it."""
        while not self._closed:
            await asyncio.sleep(self._session_ms / 1000 / HEARTBEATS_PER_SESSION / 2)
            with contextlib.suppress(TransportError):  # a missed beat shows up as expiry
                async with self._lock:
                    await self._beat_if_due()

    async def poll(
        self, *, timeout_ms: int = 1000, max_records: int = DEFAULT_MAX_POLL_RECORDS
    ) -> list[Record]:
        async def fetch_once() -> list[Record]:
            async with self._lock:
                await self._beat_if_due()
                fetch = partial(self._sql_fetch, positions=dict(self._positions), limit=max_records)
                self._positions, records = await self._require().call(fetch)
                self._rotation += 1
                self._assignment, self._expelled = frozenset(self._positions), False
                self._dirty &= self._assignment  # a lost partition's records go to its new owner
                for r in records:
                    self._positions[r.topic_partition] = r.offset + 1
                    self._dirty.add(r.topic_partition)
            return records

        return await _poll_until(fetch_once, timeout_ms, max_records, self._waiter)

    async def commit(self, offsets: Mapping[TopicPartition, int] | None = None) -> None:
        async with self._lock:
            db = self._require()
            if offsets is None and self._expelled:
                self._expelled = False
                raise CommitFailed(
                    f"member of {self._group!r} missed its heartbeats and was dropped from the"
                    " group; its uncommitted records come again, poll again"
                )
            wanted = (
                dict(offsets)
                if offsets is not None
                else {tp: self._positions[tp] for tp in self._dirty}
            )
            if any(not isinstance(o, int) or o < 0 for o in wanted.values()):
                raise LocalError(f"offsets must be non-negative integers: {wanted}")
            if wanted:
                await db.call(partial(self._sql_commit, offsets=wanted))
                self._dirty -= {tp for tp, o in wanted.items() if self._positions.get(tp) == o}

    def assignment(self) -> frozenset[TopicPartition]:
        self._require()
        return self._assignment


class EmbeddedReader(_Lifecycle, TopicReader):
    """Every partition of one topic from offset 0 on, outside any group."""

    def __init__(self, path: str, topic: str) -> None:
        super().__init__(path)
        self._topic = topic
        self._positions: dict[int, int] = {}
        self._waiter = _Waiter(path, (topic,))

    def _sql_fetch(self, conn: sqlite3.Connection, limit: int) -> list[Record]:
        records: list[Record] = []
        with _transaction(conn, "DEFERRED"):  # one snapshot: an atomic send whole or not at all
            row = conn.execute(
                "SELECT partitions FROM topics WHERE name = ?", (self._topic,)
            ).fetchone()
            for part in range(row[0] if row else 0):
                sql = (
                    "SELECT ofs, key, value, headers, ts_ms FROM records"
                    " WHERE topic = ? AND part = ? AND ofs >= ? ORDER BY ofs LIMIT ?"
                )
                start = self._positions.get(part, 0)
                for ofs, key, value, packed, ts in conn.execute(
                    sql, (self._topic, part, start, limit - len(records))
                ):
                    records.append(
                        Record(self._topic, part, ofs, key, value, _unpack_headers(packed), ts)
                    )
                if len(records) >= limit:
                    break
        return records

    async def start(self) -> None:
        if self._db is None and not self._closed:
            await self._open(lambda conn: conn.execute("SELECT 1 FROM topics").fetchone())
        self._require()

    async def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._waiter.unregister()
            if self._db is not None:
                await self._db.close()

    async def poll(
        self, *, timeout_ms: int = 1000, max_records: int = DEFAULT_MAX_POLL_RECORDS
    ) -> list[Record]:
        async def fetch_once() -> list[Record]:
            records = await self._require().call(partial(self._sql_fetch, limit=max_records))
            for r in records:
                self._positions[r.partition] = r.offset + 1
            return records

        return await _poll_until(fetch_once, timeout_ms, max_records, self._waiter)


def _tp(tp: TopicPartition) -> tuple[str, int]:
    return tp.topic, tp.partition


class EmbeddedTransport(Transport):
    """A log in the SQLite file at ``path``, shared with every process that opens the file."""

    name = "embedded"

    def __init__(
        self, path: str | os.PathLike[str], *, session_timeout_ms: int = DEFAULT_SESSION_TIMEOUT_MS
    ) -> None:
        if session_timeout_ms <= 0:
            raise LocalError(f"session_timeout_ms must be positive, not {session_timeout_ms}")
        self._path, self._session_ms = os.fspath(path), session_timeout_ms
        self._admin = _Connection(self._path)
        self._closed = False

    def _require_open(self) -> None:
        if self._closed:
            raise TransportClosed("EmbeddedTransport is closed")

    async def ensure_topics(self, specs: Sequence[TopicSpec]) -> None:
        self._require_open()
        for spec in specs:
            _check_topic(spec.name)
            if spec.partitions < 1:
                raise LocalError(f"topic {spec.name!r} needs at least one partition")
        await self._admin.call(partial(_create_topics, specs=list(specs)))

    def producer(self, *, transactional_id: str | None = None) -> Producer:
        self._require_open()
        return EmbeddedProducer(self._path)

    def consumer(self, group_id: str, topics: Sequence[str]) -> Consumer:
        self._require_open()
        if isinstance(topics, str):
            raise LocalError("topics must be a sequence of names, not one string")
        for topic in topics:
            _check_topic(topic)
        return EmbeddedConsumer(self._path, group_id, topics, self._session_ms)

    def reader(self, topic: str) -> TopicReader:
        self._require_open()
        _check_topic(topic)
        return EmbeddedReader(self._path, topic)

    async def ping(self) -> None:
        self._require_open()
        try:
            await self._admin.call(lambda conn: conn.execute("SELECT 1 FROM topics").fetchone())
        except TransportUnavailable:
            raise
        except TransportError as exc:
            raise TransportUnavailable(f"embedded log {self._path!r} does not answer") from exc

    async def end_offsets(self, topics: Sequence[str]) -> dict[TopicPartition, int]:
        self._require_open()

        def query(conn: sqlite3.Connection) -> list[tuple[str, int, int]]:
            marks = ",".join("?" * len(topics))
            sql = f"SELECT topic, part, next FROM ends WHERE topic IN ({marks})"
            return list(conn.execute(sql, list(topics)))

        return {TopicPartition(t, p): n for t, p, n in await self._admin.call(query)}

    async def committed(self, group_id: str, topics: Sequence[str]) -> dict[TopicPartition, int]:
        self._require_open()

        def query(conn: sqlite3.Connection) -> list[tuple[str, int, int]]:
            marks = ",".join("?" * len(topics))
            sql = f"SELECT topic, part, next FROM offsets WHERE grp = ? AND topic IN ({marks})"
            return list(conn.execute(sql, [group_id, *topics]))

        return {TopicPartition(t, p): n for t, p, n in await self._admin.call(query)}

    async def read_topic(self, topic: str) -> list[Record]:
        self._require_open()

        def query(conn: sqlite3.Connection) -> list[Record]:
            sql = "SELECT part, ofs, key, value, headers, ts_ms FROM records WHERE topic = ? ORDER BY part, ofs"
            return [
                Record(topic, p, o, k, v, _unpack_headers(h), ts)
                for p, o, k, v, h, ts in conn.execute(sql, (topic,))
            ]

        return await self._admin.call(query)

    async def close(self) -> None:
        if not self._closed:
            self._closed = True
            await self._admin.close()
