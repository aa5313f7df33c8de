"""A gateway's own durable state, in one SQLite file: what it delivered, what it sent and
which receipts came back, and the message ids it has seen (its replay guard).

Delivery is exactly-once because three writes happen in one transaction: the message
into the inbox the back office reads, its id into the replay guard, and the record's
position (topic/partition/offset) with the envelope's digest into `handled`. A record the
log delivers again after a crash (same position) is recognised and only its receipt is
completed; the same envelope bytes at another position, or another envelope with a seen
message id, is a replay.

The inbox holds decrypted messages: the file is as sensitive as the back office's own
data and belongs on the gateway's encrypted disk (docs in deploy/README.md).
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from broker._errors import ReplayDetected

_SCHEMA = """
CREATE TABLE IF NOT EXISTS seen (
    message_id BLOB PRIMARY KEY, keep_until_ms INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS handled (
    source TEXT PRIMARY KEY, envelope_sha256 BLOB NOT NULL, message_id TEXT,
    outcome TEXT NOT NULL, followup TEXT, pending INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS handled_digest ON handled (envelope_sha256, outcome);
CREATE TABLE IF NOT EXISTS inbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, message_id TEXT NOT NULL UNIQUE,
    message_type TEXT NOT NULL, sender TEXT NOT NULL, case_id TEXT NOT NULL,
    created_at_ms INTEGER NOT NULL, received_at_ms INTEGER NOT NULL,
    envelope_sha256 BLOB NOT NULL, message_json TEXT NOT NULL, acked_at_ms INTEGER,
    visible INTEGER NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS sent (
    message_id TEXT PRIMARY KEY, message_type TEXT NOT NULL, case_id TEXT NOT NULL,
    recipients TEXT NOT NULL, sent_at_ms INTEGER NOT NULL, status TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS receipts (
    message_id TEXT NOT NULL, recipient TEXT NOT NULL, outcome TEXT NOT NULL,
    reason TEXT, received_at_ms INTEGER NOT NULL, PRIMARY KEY (message_id, recipient));
CREATE TABLE IF NOT EXISTS facts (name TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS inbox_unacked ON inbox (visible, acked_at_ms, seq);
CREATE INDEX IF NOT EXISTS sent_open ON sent (status, sent_at_ms);
"""

PURGE_SEEN_EVERY = 1000
"""Forget expired message ids once per this many claims."""


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def _from_ms(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC)


@dataclass(frozen=True, slots=True)
class Handled:
    """How a record was handled, and what must follow it (receipts, dead letter, audit
    events) if that was not yet published."""

    outcome: str  # DELIVERED, RECEIPT or REJECTED:<reason>
    followup: dict[str, Any]
    pending: bool


@dataclass(frozen=True, slots=True)
class InboxItem:
    """One message delivered to the back office, as the inbox API shows it."""

    message_id: uuid.UUID
    message_type: str
    sender: str
    case_id: uuid.UUID
    created_at: datetime
    received_at: datetime
    message: dict[str, Any]
    acked: bool
    envelope_sha256: bytes


@dataclass(frozen=True, slots=True)
class SentStatus:
    message_id: uuid.UUID
    message_type: str
    case_id: uuid.UUID
    recipients: tuple[str, ...]
    sent_at: datetime
    status: str  # SENT, RECEIPTED, REJECTED
    receipts: dict[str, dict[str, Any]]


def _item(r: tuple[Any, ...]) -> InboxItem:
    return InboxItem(uuid.UUID(r[1]), r[2], r[3], uuid.UUID(r[4]), _from_ms(r[5]), _from_ms(r[6]),
                     json.loads(r[8]), r[9] is not None, bytes(r[7]))  # fmt: skip


class StagedClaims:
    """A replay guard for one `open_envelope` call whose claims are written only when the
    delivery they belong to is (`GatewayStore.record_delivery`), in the same transaction."""

    __slots__ = ("_store", "claims")

    def __init__(self, store: GatewayStore) -> None:
        self._store = store
        self.claims: list[tuple[uuid.UUID, datetime]] = []

    def claim(self, message_id: uuid.UUID, keep_until: datetime, now: datetime) -> None:
        if self._store.seen(message_id, now) or any(m == message_id for m, _ in self.claims):
            raise ReplayDetected(f"message {message_id} was seen before")
        self.claims.append((message_id, keep_until))


class GatewayStore:
    """One gateway's state file. Thread-safe; every write is a durable transaction."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self._db = sqlite3.connect(os.fspath(path), isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")  # a delivery survives a power cut
        self._db.execute("PRAGMA busy_timeout=5000")
        self._db.executescript(_SCHEMA)
        self._lock = threading.RLock()
        self._claims = 0

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    # --- replay guard and redelivery -------------------------------------------------------

    def seen(self, message_id: uuid.UUID, now: datetime) -> bool:
        with self._lock:
            row = self._db.execute(
                "SELECT 1 FROM seen WHERE message_id = ? AND keep_until_ms >= ?",
                (message_id.bytes, _ms(now)),
            ).fetchone()
        return row is not None

    def staged_claims(self) -> StagedClaims:
        return StagedClaims(self)

    def _write_claims(self, db: sqlite3.Connection, claims: StagedClaims, now: datetime) -> None:
        for message_id, keep_until in claims.claims:
            db.execute(
                "INSERT INTO seen VALUES (?, ?) ON CONFLICT(message_id) DO UPDATE "
                "SET keep_until_ms = excluded.keep_until_ms WHERE seen.keep_until_ms < ?",
                (message_id.bytes, _ms(keep_until), _ms(now)),
            )
        self._claims += len(claims.claims)
        if self._claims >= PURGE_SEEN_EVERY:
            self._claims = 0
            db.execute("DELETE FROM seen WHERE keep_until_ms < ?", (_ms(now),))

    def handled_at(self, source: str) -> Handled | None:
        """How the record at ``source`` (topic/partition/offset) was handled, if it was:
        the log delivered it again after a restart."""
        with self._lock:
            row = self._db.execute(
                "SELECT outcome, followup, pending FROM handled WHERE source = ?", (source,)
            ).fetchone()
        return None if row is None else Handled(row[0], json.loads(row[1] or "{}"), bool(row[2]))

    def delivered_elsewhere(self, envelope_sha256: bytes) -> bool:
        """True if the same envelope bytes were delivered from another position: a replay."""
        with self._lock:
            row = self._db.execute(
                "SELECT 1 FROM handled WHERE envelope_sha256 = ? AND outcome IN ('DELIVERED', 'RECEIPT')",
                (envelope_sha256,),
            ).fetchone()
        return row is not None

    def _handled(self, db: sqlite3.Connection, source: str, digest: bytes, message_id: uuid.UUID | None,
                 outcome: str, followup: dict[str, Any]) -> None:  # fmt: skip
        db.execute(
            "INSERT INTO handled VALUES (?, ?, ?, ?, ?, 1)",
            (
                source,
                digest,
                str(message_id) if message_id else None,
                outcome,
                json.dumps(followup),
            ),
        )

    def followup_done(self, source: str) -> None:
        self.followups_done([source])

    def followups_done(self, sources: Sequence[str]) -> None:
        """What follows the records at ``sources`` is published; a delivered message becomes
        visible to the back office only now (after its audit event: fail closed)."""
        with self._tx() as db:
            for source in sources:
                db.execute("UPDATE handled SET pending = 0 WHERE source = ?", (source,))
                db.execute(
                    "UPDATE inbox SET visible = 1 WHERE message_id = "
                    "(SELECT message_id FROM handled WHERE source = ? AND outcome = 'DELIVERED')",
                    (source,),
                )

    # --- receiving -------------------------------------------------------------------------

    def record_delivery(
        self,
        *,
        source: str,
        claims: StagedClaims,
        envelope_sha256: bytes,
        message_id: uuid.UUID,
        message_type: str,
        sender: str,
        case_id: uuid.UUID,
        created_at: datetime,
        message_json: str,
        followup: dict[str, Any],
        now: datetime,
    ) -> None:
        """Take a message into the inbox, exactly once (see the module docstring); it stays
        hidden until its follow-up is published (`followup_done`)."""
        with self._tx() as db:
            self._write_claims(db, claims, now)
            db.execute(
                "INSERT INTO inbox (message_id, message_type, sender, case_id, created_at_ms,"
                " received_at_ms, envelope_sha256, message_json) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (str(message_id), message_type, sender, str(case_id), _ms(created_at), _ms(now),
                 envelope_sha256, message_json),
            )  # fmt: skip
            self._handled(db, source, envelope_sha256, message_id, "DELIVERED", followup)

    def record_receipt(
        self,
        *,
        source: str,
        claims: StagedClaims,
        envelope_sha256: bytes,
        message_id: uuid.UUID,
        recipient: str,
        outcome: str,
        reason: str | None,
        followup: dict[str, Any],
        now: datetime,
    ) -> bool:
        """Note a recipient's receipt for a message this gateway sent; False if the message
        is not one of ours (the receipt is kept out of the books)."""
        with self._tx() as db:
            self._write_claims(db, claims, now)
            self._handled(db, source, envelope_sha256, message_id, "RECEIPT", followup)
            row = db.execute(
                "SELECT recipients FROM sent WHERE message_id = ?", (str(message_id),)
            ).fetchone()
            if row is None or recipient not in json.loads(row[0]):
                return False
            db.execute(
                "INSERT OR IGNORE INTO receipts VALUES (?, ?, ?, ?, ?)",
                (str(message_id), recipient, outcome, reason, _ms(now)),
            )
            count, rejected = db.execute(
                "SELECT COUNT(*), SUM(outcome = 'REJECTED') FROM receipts WHERE message_id = ?",
                (str(message_id),),
            ).fetchone()
            everyone = count == len(json.loads(row[0]))
            status = "REJECTED" if rejected else "RECEIPTED" if everyone else "SENT"
            db.execute("UPDATE sent SET status = ? WHERE message_id = ?", (status, str(message_id)))
        return True

    def record_rejection(self, source: str, envelope_sha256: bytes, reason: str,
                         message_id: uuid.UUID | None, followup: dict[str, Any]) -> None:  # fmt: skip
        """Note a refused record; ``followup`` says what to publish (dead letter, audit
        event, a REJECTED receipt), so a crash before it goes out does not lose it."""
        with self._tx() as db:
            self._handled(db, source, envelope_sha256, message_id, f"REJECTED:{reason}", followup)

    # --- the back office's inbox -----------------------------------------------------------

    def inbox(self, *, limit: int, include_acked: bool = False) -> list[InboxItem]:
        sql = (
            "SELECT * FROM inbox"
            + " WHERE visible = 1"
            + ("" if include_acked else " AND acked_at_ms IS NULL")
            + " ORDER BY seq LIMIT ?"
        )
        with self._lock:
            rows = self._db.execute(sql, (limit,)).fetchall()
        return [_item(r) for r in rows]

    def directory_serial(self) -> int:
        """The highest directory serial this gateway has used (0 before the first)."""
        with self._lock:
            row = self._db.execute(
                "SELECT value FROM facts WHERE name = 'directory_serial'"
            ).fetchone()
        return int(row[0]) if row else 0

    def use_directory_serial(self, serial: int) -> None:
        with self._tx() as db:
            db.execute(
                "INSERT INTO facts VALUES ('directory_serial', ?) ON CONFLICT(name) DO UPDATE "
                "SET value = excluded.value WHERE CAST(facts.value AS INTEGER) < CAST(excluded.value AS INTEGER)",
                (str(serial),),
            )

    def ack(self, message_id: uuid.UUID, now: datetime) -> bool:
        """Mark a delivered message as taken by the back office; False if unknown. Its
        content leaves the gateway then: the back office has it, and the gateway keeps only
        the metadata it needs against replays and for its counts."""
        with self._tx() as db:
            cursor = db.execute(
                "UPDATE inbox SET acked_at_ms = COALESCE(acked_at_ms, ?), message_json = '{}' "
                "WHERE message_id = ? AND visible = 1",
                (_ms(now), str(message_id)),
            )
        return cursor.rowcount == 1

    def counts(self) -> dict[str, int]:
        """Totals for dashboards and the demo: no ids, no content."""
        with self._lock:
            row = self._db.execute(
                """SELECT
                    (SELECT COUNT(*) FROM inbox WHERE visible = 1),
                    (SELECT COUNT(*) FROM inbox WHERE visible = 1 AND acked_at_ms IS NULL),
                    (SELECT COUNT(*) FROM handled WHERE outcome LIKE 'REJECTED:%'),
                    (SELECT COUNT(*) FROM sent),
                    (SELECT COUNT(*) FROM sent WHERE status = 'RECEIPTED'),
                    (SELECT COUNT(*) FROM sent WHERE status = 'SENT')"""
            ).fetchone()
        names = ("delivered", "unacked", "rejected", "sent", "receipted", "awaiting_receipt")
        return dict(zip(names, (int(v) for v in row), strict=True))

    def rejection_reasons(self) -> list[str]:
        """The reason of every record this gateway refused, oldest first."""
        with self._lock:
            rows = self._db.execute(
                "SELECT outcome FROM handled WHERE outcome LIKE 'REJECTED:%' ORDER BY rowid"
            ).fetchall()
        return [r[0].split(":", 1)[1] for r in rows]

    def sent_records(self) -> int:
        """Records this gateway put into inboxes: one per recipient of each message it sent
        for its back office (receipts not counted)."""
        with self._lock:
            rows = self._db.execute("SELECT recipients FROM sent").fetchall()
        return sum(len(json.loads(r[0])) for r in rows)

    def receipted_records(self) -> int:
        """(message, recipient) pairs of sent messages with an ACCEPTED receipt."""
        with self._lock:
            row = self._db.execute(
                "SELECT COUNT(*) FROM receipts WHERE outcome = 'ACCEPTED'"
            ).fetchone()
        return int(row[0])

    # --- sending ---------------------------------------------------------------------------

    def record_sent(self, message_id: uuid.UUID, message_type: str, case_id: uuid.UUID,
                    recipients: tuple[str, ...], now: datetime) -> None:  # fmt: skip
        with self._tx() as db:
            db.execute(
                "INSERT INTO sent VALUES (?, ?, ?, ?, ?, 'SENT')",
                (
                    str(message_id),
                    message_type,
                    str(case_id),
                    json.dumps(list(recipients)),
                    _ms(now),
                ),
            )

    def forget_sent(self, message_id: uuid.UUID) -> None:
        """Undo `record_sent` for a message the log refused (nothing was stored)."""
        with self._tx() as db:
            db.execute("DELETE FROM sent WHERE message_id = ?", (str(message_id),))

    def sent_status(self, message_id: uuid.UUID) -> SentStatus | None:
        with self._lock:
            row = self._db.execute(
                "SELECT * FROM sent WHERE message_id = ?", (str(message_id),)
            ).fetchone()
            receipts = self._db.execute(
                "SELECT recipient, outcome, reason, received_at_ms FROM receipts WHERE message_id = ?",
                (str(message_id),),
            ).fetchall()
        if row is None:
            return None
        return SentStatus(
            message_id=uuid.UUID(row[0]), message_type=row[1], case_id=uuid.UUID(row[2]),
            recipients=tuple(json.loads(row[3])), sent_at=_from_ms(row[4]), status=row[5],
            receipts={r: {"outcome": o, "reason": why, "received_at": _from_ms(t)} for r, o, why, t in receipts},
        )  # fmt: skip

    def overdue(self, now: datetime, timeout: timedelta) -> list[uuid.UUID]:
        """Sent messages still waiting for a receipt after ``timeout``."""
        with self._lock:
            rows = self._db.execute(
                "SELECT message_id FROM sent WHERE status = 'SENT' AND sent_at_ms < ? ORDER BY sent_at_ms",
                (_ms(now - timeout),),
            ).fetchall()
        return [uuid.UUID(r[0]) for r in rows]
