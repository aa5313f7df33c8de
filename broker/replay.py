"""Replay guards: remember every accepted (sender, message id) for as long as its envelope
could be accepted, so the same message is never opened twice — also across restarts.

Ids are the sender's: one sender's id says nothing about another's. Keying by id alone
would let any party that saw an id (a co-recipient) seal a message of its own under it and
so have the real one refused as a replay at a recipient that had not yet read it.

An envelope is only accepted until its ``expires_at`` (plus the allowed clock skew), so a
guard may forget an id after that: whoever replays it later is refused as EXPIRED.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import uuid
from datetime import datetime, timedelta
from typing import Protocol

from broker.errors import ReplayDetected
from broker.owner_only import private_sqlite

PURGE_EVERY_CLAIMS = 1000
"""Forget expired ids once per this many claims: keeps the table small at a negligible cost."""


class ReplayGuard(Protocol):
    def claim(
        self, sender: str, message_id: uuid.UUID, keep_until: datetime, now: datetime
    ) -> None:
        """Record ``sender``'s ``message_id`` until ``keep_until``; raise `ReplayDetected`
        if it is known."""


class MemoryReplayGuard:
    """For tests and one-shot tools: forgets everything when the process ends."""

    def __init__(self) -> None:
        self._seen: dict[tuple[str, uuid.UUID], datetime] = {}

    def claim(
        self, sender: str, message_id: uuid.UUID, keep_until: datetime, now: datetime
    ) -> None:
        known = self._seen.get((sender, message_id))
        if known is not None and known >= now:
            raise ReplayDetected(f"message {message_id} of {sender} was seen before")
        self._seen[(sender, message_id)] = keep_until
        if len(self._seen) % PURGE_EVERY_CLAIMS == 0:
            self._seen = {k: v for k, v in self._seen.items() if v >= now}


class SqliteReplayGuard:
    """Durable: ids are in a SQLite file (WAL, synchronous=FULL), so a restart or a power
    cut does not let a replay through. Safe to share between threads of one process."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self._db = sqlite3.connect(
            private_sqlite(path), isolation_level=None, check_same_thread=False
        )
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        # a table of its own name: a file of the id-only guard keeps its old table, unused
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS seen_by_sender (sender TEXT NOT NULL, message_id BLOB NOT NULL,"
            " keep_until_ms INTEGER NOT NULL, PRIMARY KEY (sender, message_id))"
        )
        self._lock = threading.Lock()
        self._claims = 0

    def claim(
        self, sender: str, message_id: uuid.UUID, keep_until: datetime, now: datetime
    ) -> None:
        now_ms, until_ms = _ms(now), _ms(keep_until)
        with self._lock:
            # an expired entry may be reused; a live one makes this a replay
            cursor = self._db.execute(
                "INSERT INTO seen_by_sender VALUES (?, ?, ?) ON CONFLICT(sender, message_id) DO UPDATE "
                "SET keep_until_ms = excluded.keep_until_ms WHERE seen_by_sender.keep_until_ms < ?",
                (sender, message_id.bytes, until_ms, now_ms),
            )
            if cursor.rowcount == 0:
                raise ReplayDetected(f"message {message_id} of {sender} was seen before")
            self._claims += 1
            if self._claims % PURGE_EVERY_CLAIMS == 0:
                self._db.execute("DELETE FROM seen_by_sender WHERE keep_until_ms < ?", (now_ms,))

    def close(self) -> None:
        self._db.close()


def _ms(moment: datetime) -> int:
    return (moment - datetime(1970, 1, 1, tzinfo=moment.tzinfo)) // timedelta(milliseconds=1)
