"""The store's table of idempotency keys (`broker.gateway._idempotency`): SQL only, run by
`GatewayStore` on its connections, inside its transactions.

A key's row is written in the transaction that notes its `sent` row (`record_sent_many`),
so after a crash at any step the two are there together or not at all; ``confirmed`` is
set once the log took the message. A row holds digests and the message id: no key, no body.
"""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Iterable, Sequence

from broker.gateway._idempotency import Claim, Recorded, keep_until_ms

TABLE = """
CREATE TABLE IF NOT EXISTS idempotency (
    key_sha256 BLOB PRIMARY KEY, body_sha256 BLOB NOT NULL, message_id TEXT NOT NULL,
    keep_until_ms INTEGER NOT NULL, confirmed INTEGER NOT NULL DEFAULT 0);
CREATE INDEX IF NOT EXISTS idempotency_expiry ON idempotency (keep_until_ms);
CREATE INDEX IF NOT EXISTS idempotency_message ON idempotency (message_id);
"""

PURGE_EVERY_KEYS = 1000
"""Expired keys are purged once per this many new keys ..."""

PURGE_AT_MOST = 2000
"""... at most this many at a time, so a purge never holds a send's transaction long (it
removes more than are added meanwhile, so the table stays bounded)."""


def insert(db: sqlite3.Connection, rows: Iterable[tuple[Claim, uuid.UUID]], now_ms: int) -> int:
    """Note each claim with the message it sends; the keys written. An expired row under
    the same key (not purged yet) is replaced: the key is free again."""
    values = [(c.key_sha256, c.body_sha256, str(m), keep_until_ms(now_ms)) for c, m in rows]
    db.executemany(
        "INSERT OR REPLACE INTO idempotency (key_sha256, body_sha256, message_id, keep_until_ms)"
        " VALUES (?, ?, ?, ?)",
        values,
    )
    return len(values)


def purge(db: sqlite3.Connection, now_ms: int) -> None:
    db.execute(
        "DELETE FROM idempotency WHERE rowid IN (SELECT rowid FROM idempotency"
        " WHERE keep_until_ms < ? LIMIT ?)",
        (now_ms, PURGE_AT_MOST),
    )


def find(db: sqlite3.Connection, key_sha256: bytes, now_ms: int) -> Recorded | None:
    row = db.execute(
        "SELECT message_id, body_sha256, confirmed FROM idempotency"
        " WHERE key_sha256 = ? AND keep_until_ms >= ?",
        (key_sha256, now_ms),
    ).fetchone()
    return Recorded(uuid.UUID(row[0]), bytes(row[1]), bool(row[2])) if row else None


def confirm(db: sqlite3.Connection, message_ids: Sequence[uuid.UUID]) -> None:
    db.executemany(
        "UPDATE idempotency SET confirmed = 1 WHERE message_id = ?",
        [(str(m),) for m in message_ids],
    )


def forget(db: sqlite3.Connection, message_id: uuid.UUID) -> None:
    db.execute("DELETE FROM idempotency WHERE message_id = ?", (str(message_id),))


def unconfirmed(db: sqlite3.Connection) -> list[uuid.UUID]:
    """Messages of keys whose send has no known outcome."""
    rows = db.execute("SELECT message_id FROM idempotency WHERE confirmed = 0").fetchall()
    return [uuid.UUID(r[0]) for r in rows]
