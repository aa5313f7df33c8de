"""A gateway's own durable state, in one SQLite file: what it delivered, what it sent and
which receipts came back, and the (sender, message id) pairs it has seen (its replay guard).

Delivery is exactly-once because three writes happen in one transaction: the message
into the inbox the back office reads, its (sender, id) into the replay guard, and the
record's position (topic/partition/offset) with the envelope's digest into `handled`. A
record the log delivers again after a crash (same position) is recognised and only its
receipt is completed; the same envelope bytes at another position, or another envelope
with a (sender, id) seen before, is a replay.

Message ids are unique per sender, not across the network: a party cannot claim another
party's id (the guard, the inbox and the receipts are keyed by sender and id), so a hostile
co-recipient that reuses an id it saw cannot make a gateway refuse the real message.

At rest: the inbox keeps message content sealed under the party's content key
(`broker.crypto.ContentKey`), never as plaintext, and drops it when the back office
acknowledges; ``secure_delete`` zeroes what SQLite frees, and the write-ahead log is
truncated after acknowledgements, so removed content is not left behind. The file and its
side files are owner-only (0600).

The file carries its layout's version (``PRAGMA user_version``); a store of an older layout
is migrated on open (`broker.gateway._store_migration`), one of a newer layout refused.

Who waits for what: writes go through one connection, one transaction at a time, and each
commit is an fsync; the gateway batches them (`batch`: a polled batch of records in one
transaction, each record in a savepoint of its own; `record_sent_many` and `ack_many` for
the sends and acknowledgements that arrive together), so the fsyncs are per batch, not per
message. Every write may block (on the disk, or behind another batch): the gateway calls
them from a worker thread, never on its event loop. The back office's reads (`inbox`,
`sent_status`, `overdue`, the counts) use a second, read-only connection, which the
write-ahead log lets read the last committed state while a batch is being written: they
never wait for a writer, and are cheap enough to run on the loop.

The records of exactly-once delivery are typed: each row of `handled` has a `HandledOutcome`,
the refusal's reason code in a column of its own, and its follow-up as versioned JSON
(`broker.gateway._followup_models`), read back strictly.
"""

from __future__ import annotations

import enum
import json
import logging
import os
import sqlite3
import threading
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from broker.crypto import ContentKey
from broker.errors import LocalError, ReplayDetected
from broker.gateway import _followup_models as followups
from broker.gateway import _store_idempotency as idempotency
from broker.gateway._followup_models import (
    DeliveryFollowUp,
    FollowUp,
    ReceiptFollowUp,
    RejectionFollowUp,
)
from broker.gateway._idempotency import Claim, Recorded
from broker.gateway._store_errors import StoredRecordUnreadable, StoreVersionError
from broker.owner_only import private_sqlite

log = logging.getLogger("lvvx.gateway")

SCHEMA_VERSION = 4
"""The store's layout. 0: before content was sealed at rest and ids were keyed by sender;
1: before outcomes had their reason in a column of their own and follow-ups a version;
2: before idempotency keys (`broker.gateway._store_idempotency`)."""

_SCHEMA = (
    """
CREATE TABLE IF NOT EXISTS seen (
    sender TEXT NOT NULL, message_id BLOB NOT NULL, keep_until_ms INTEGER NOT NULL,
    PRIMARY KEY (sender, message_id));
CREATE TABLE IF NOT EXISTS handled (
    source TEXT PRIMARY KEY, envelope_sha256 BLOB NOT NULL, message_id TEXT,
    outcome TEXT NOT NULL, followup TEXT, pending INTEGER NOT NULL, reason TEXT);
CREATE INDEX IF NOT EXISTS handled_digest ON handled (envelope_sha256, outcome);
CREATE TABLE IF NOT EXISTS inbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, message_id TEXT NOT NULL,
    message_type TEXT NOT NULL, sender TEXT NOT NULL, case_id TEXT NOT NULL,
    created_at_ms INTEGER NOT NULL, received_at_ms INTEGER NOT NULL,
    envelope_sha256 BLOB NOT NULL, content BLOB, acked_at_ms INTEGER,
    visible INTEGER NOT NULL DEFAULT 0, source TEXT UNIQUE, traceparent TEXT,
    UNIQUE (sender, message_id));
CREATE TABLE IF NOT EXISTS sent (
    message_id TEXT PRIMARY KEY, message_type TEXT NOT NULL, case_id TEXT NOT NULL,
    recipients TEXT NOT NULL, sent_at_ms INTEGER NOT NULL, status TEXT NOT NULL,
    envelope_sha256 BLOB);
CREATE TABLE IF NOT EXISTS receipts (
    message_id TEXT NOT NULL, recipient TEXT NOT NULL, outcome TEXT NOT NULL,
    reason TEXT, received_at_ms INTEGER NOT NULL, PRIMARY KEY (message_id, recipient));
CREATE TABLE IF NOT EXISTS facts (name TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS inbox_unacked ON inbox (visible, acked_at_ms, seq);
CREATE INDEX IF NOT EXISTS inbox_id ON inbox (message_id);
CREATE INDEX IF NOT EXISTS sent_open ON sent (status, sent_at_ms);
"""
    + idempotency.TABLE
)

ANY_SENDER = "*"
"""Sender of a guard entry taken over from a layout-0 store, which did not record senders:
it blocks the id for every sender, as the old guard did (conservative until it expires)."""

SCRUB_EVERY_ACKS = 64
"""Truncate the write-ahead log after this many acknowledgements, so the frames that held
acknowledged (sealed) content do not linger in it."""


TRANSIENT_STORE_FAULTS: tuple[type[Exception], ...] = (sqlite3.OperationalError,)
"""Faults of the moment (the disk away or full, the file busy): worth trying again, unlike
the store's own rules, which are verdicts (`ReplayDetected`)."""


PURGE_SEEN_EVERY = 1000
"""Forget expired message ids once per this many claims."""


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def _from_ms(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC)


class HandledOutcome(enum.StrEnum):
    """How a record was handled (the `handled` table's ``outcome``)."""

    DELIVERED = "DELIVERED"
    """Taken into the inbox."""
    RECEIPT = "RECEIPT"
    """Taken as a receipt (for a message of ours, or kept out of the books if not)."""
    REJECTED = "REJECTED"
    """Refused; the row's ``reason`` says why."""


class Verdict(enum.Enum):
    """What became of an envelope's bytes the first time they came."""

    ACCEPTED = "ACCEPTED"
    REFUSED = "REFUSED"


@dataclass(frozen=True, slots=True)
class Handled:
    """How a record was handled, and what must follow it (receipts, dead letter, audit
    events) if that was not yet published."""

    outcome: HandledOutcome
    reason: str | None
    """The refusal's reason code (a `RefusalReason`); None unless REJECTED."""
    followup: FollowUp
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
    traceparent: str | None = None
    """The receiving gateway's span of the delivery (None for messages delivered before
    layout 4): what the back office continues the trace from."""


@dataclass(frozen=True, slots=True)
class SentStatus:
    message_id: uuid.UUID
    message_type: str
    case_id: uuid.UUID
    recipients: tuple[str, ...]
    sent_at: datetime
    status: str  # SENT, RECEIPTED, REJECTED
    receipts: dict[str, dict[str, Any]]


@dataclass(frozen=True, slots=True)
class SentRow:
    """A message about to be sent, as `GatewayStore.record_sent_many` notes it."""

    message_id: uuid.UUID
    message_type: str
    case_id: uuid.UUID
    recipients: tuple[str, ...]
    sent_at: datetime
    envelope_sha256: bytes | None = None
    idempotency: Claim | None = None
    """The request's idempotency key, noted with the row (`broker.gateway._idempotency`)."""


_ITEM_COLUMNS = (
    "message_id, message_type, sender, case_id, created_at_ms, received_at_ms,"
    " envelope_sha256, content, acked_at_ms, traceparent"
)


def _row(sender: str, message_id: uuid.UUID) -> bytes:
    """What a row's sealed content is bound to: it opens in that row only."""
    return f"inbox/{sender}/{message_id}".encode()


class AmbiguousMessageId(LocalError):
    """An acknowledgement by message id alone, of an id that several senders used."""

    reason = "AMBIGUOUS_MESSAGE_ID"


class StagedClaims:
    """A replay guard for one `open_envelope` call whose claims are written only when the
    delivery they belong to is (`GatewayStore.record_delivery`), in the same transaction."""

    __slots__ = ("_store", "claims")

    def __init__(self, store: GatewayStore) -> None:
        self._store = store
        self.claims: list[tuple[str, uuid.UUID, datetime]] = []

    def claim(
        self, sender: str, message_id: uuid.UUID, keep_until: datetime, now: datetime
    ) -> None:
        if self._store.seen(sender, message_id, now) or any(
            (s, m) == (sender, message_id) for s, m, _ in self.claims
        ):
            raise ReplayDetected(f"message {message_id} of {sender} was seen before")
        self.claims.append((sender, message_id, keep_until))


class GatewayStore:
    """One gateway's state file. Thread-safe; every write is a durable transaction (or a
    savepoint of the `batch` it is part of)."""

    def __init__(self, path: str | os.PathLike[str], *, content_key: ContentKey) -> None:
        self._key = content_key
        self._db = sqlite3.connect(
            private_sqlite(path), isolation_level=None, check_same_thread=False
        )
        try:
            self._db.execute("PRAGMA secure_delete=ON")  # freed content is zeroed, not left
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")  # a delivery survives a power cut
            self._db.execute("PRAGMA busy_timeout=5000")
            self._take_up_layout()
            self._reader = sqlite3.connect(
                private_sqlite(path), isolation_level=None, check_same_thread=False
            )
        except BaseException:
            self._db.close()
            raise
        self._reader.execute("PRAGMA query_only=ON")
        self._reader.execute("PRAGMA busy_timeout=5000")
        private_sqlite(path)  # the side files SQLite just made (mode set again, to be sure)
        self._lock = threading.RLock()
        """Held by the thread using the writing connection: one transaction at a time."""
        self._read_lock = threading.Lock()
        self._batch_depth = 0
        self._claims = 0
        self._acks = 0
        self._keys = 0

    def _take_up_layout(self) -> None:
        version = self._db.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise StoreVersionError(
                f"the store is of layout {version}, newer than this gateway's ({SCHEMA_VERSION})"
            )
        made = self._db.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'inbox'"
        ).fetchone()
        if made and version < SCHEMA_VERSION:
            from broker.gateway._store_migration import migrate

            migrate(self._db, self._key, version)
            return
        self._db.executescript(_SCHEMA + f"PRAGMA user_version = {SCHEMA_VERSION};")

    def close(self) -> None:
        with self._lock, self._read_lock:
            self._reader.close()
            self._db.close()

    @contextmanager
    def batch(self) -> Iterator[None]:
        """One durable transaction (one fsync) for every write made inside it, by this
        thread: each write is a savepoint of it, undone alone if it fails. Other threads'
        writes wait until it ends; the readers do not. If the commit fails, none of it is
        stored."""
        with self._lock:
            if self._batch_depth:
                raise RuntimeError("a batch is open already")
            self._db.execute("BEGIN IMMEDIATE")
            self._batch_depth = 1
            try:
                yield
            except BaseException:
                self._batch_depth = 0
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                raise
            self._batch_depth = 0
            try:
                self._db.execute("COMMIT")
            except BaseException:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                raise

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        """A transaction of its own, or inside a `batch` a savepoint of it."""
        with self._lock:
            if self._batch_depth:
                with self._savepoint():
                    yield self._db
                return
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                if self._db.in_transaction:  # (SQLite may have rolled back already)
                    self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    @contextmanager
    def savepoint(self) -> Iterator[None]:
        """Inside a `batch`: the writes of this block are undone alone if it fails."""
        with self._lock:
            if not self._batch_depth:
                raise RuntimeError("a savepoint needs a batch")
            with self._savepoint():
                yield

    @contextmanager
    def _savepoint(self) -> Iterator[None]:
        if not self._db.in_transaction:  # SQLite rolled the batch back (an I/O error, say)
            raise sqlite3.OperationalError("the batch's transaction was rolled back")
        self._batch_depth += 1
        name = f"s{self._batch_depth}"
        self._db.execute(f"SAVEPOINT {name}")
        try:
            yield
        except BaseException:
            if self._db.in_transaction:
                self._db.execute(f"ROLLBACK TO {name}")
                self._db.execute(f"RELEASE {name}")
            raise
        else:
            self._db.execute(f"RELEASE {name}")
        finally:
            self._batch_depth -= 1

    def _read(self, sql: str, args: Sequence[Any] = ()) -> list[Any]:
        """Rows of a query on the read-only connection: committed state, never waiting for
        a writer (the write-ahead log keeps the last commit readable)."""
        with self._read_lock:
            return self._reader.execute(sql, args).fetchall()

    # --- replay guard and redelivery -------------------------------------------------------

    def seen(self, sender: str, message_id: uuid.UUID, now: datetime) -> bool:
        """Whether ``sender`` used ``message_id`` before: in the guard while its envelope
        could still be accepted, or in the inbox at all (an id whose guard entry expired is
        still not free for a new message of the same sender)."""
        with self._lock:
            row = self._db.execute(
                "SELECT 1 FROM seen WHERE sender IN (?, ?) AND message_id = ? AND keep_until_ms >= ?"
                " UNION ALL SELECT 1 FROM inbox WHERE sender = ? AND message_id = ? LIMIT 1",
                (sender, ANY_SENDER, message_id.bytes, _ms(now), sender, str(message_id)),
            ).fetchone()
        return row is not None

    def staged_claims(self) -> StagedClaims:
        return StagedClaims(self)

    def _write_claims(self, db: sqlite3.Connection, claims: StagedClaims, now: datetime) -> None:
        for sender, message_id, keep_until in claims.claims:
            db.execute(
                "INSERT INTO seen VALUES (?, ?, ?) ON CONFLICT(sender, message_id) DO UPDATE "
                "SET keep_until_ms = excluded.keep_until_ms WHERE seen.keep_until_ms < ?",
                (sender, message_id.bytes, _ms(keep_until), _ms(now)),
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
                "SELECT outcome, reason, followup, pending FROM handled WHERE source = ?", (source,)
            ).fetchone()
        if row is None:
            return None
        outcome, reason, followup, pending = row
        try:
            known = HandledOutcome(outcome)
        except ValueError:
            raise StoredRecordUnreadable(
                f"the record at {source} has the unknown outcome {outcome!r}",
                reason="OUTCOME_UNKNOWN",
            ) from None
        return Handled(known, reason, followups.loads(followup or "", source=source), bool(pending))

    def earlier_verdict(self, envelope_sha256: bytes) -> Verdict | None:
        """The verdict on the same envelope bytes at another position, if there was one:
        REFUSED if any copy was refused (a copy of it is then only counted), else ACCEPTED
        if it was delivered or taken as a receipt (a copy of it is a replay)."""
        with self._lock:
            rows = self._db.execute(
                "SELECT DISTINCT outcome = 'REJECTED' FROM handled WHERE envelope_sha256 = ?",
                (envelope_sha256,),
            ).fetchall()
        if not rows:
            return None
        return Verdict.REFUSED if any(refused for (refused,) in rows) else Verdict.ACCEPTED

    def _handled(self, db: sqlite3.Connection, source: str, digest: bytes, message_id: uuid.UUID | None,
                 outcome: HandledOutcome, followup: FollowUp) -> None:  # fmt: skip
        """Note how the record at ``source`` was handled, its follow-up pending; a refusal's
        reason is taken from its follow-up, so the two cannot disagree."""
        reason = followup.reason if isinstance(followup, RejectionFollowUp) else None
        db.execute(
            "INSERT INTO handled (source, envelope_sha256, message_id, outcome, reason, followup,"
            " pending) VALUES (?, ?, ?, ?, ?, ?, 1)",
            (source, digest, str(message_id) if message_id else None, outcome.value, reason,
             followups.dumps(followup)),
        )  # fmt: skip

    def followup_done(self, source: str) -> None:
        self.followups_done([source])

    def followups_done(self, sources: Sequence[str]) -> None:
        """What follows the records at ``sources`` is published; a delivered message becomes
        visible to the back office only now (after its audit event: fail closed)."""
        with self._tx() as db:
            for source in sources:
                db.execute("UPDATE handled SET pending = 0 WHERE source = ?", (source,))
                db.execute("UPDATE inbox SET visible = 1 WHERE source = ?", (source,))

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
        followup: DeliveryFollowUp,
        now: datetime,
        traceparent: str | None = None,
    ) -> None:
        """Take a message into the inbox, exactly once (see the module docstring), its
        content sealed under the content key; it stays hidden until its follow-up is
        published (`followup_done`). Raises `ReplayDetected` if ``sender`` used
        ``message_id`` before: the store's own rule, decided once like any refusal."""
        content = self._key.seal(message_json.encode(), _row(sender, message_id))
        try:
            with self._tx() as db:
                self._write_claims(db, claims, now)
                db.execute(
                    "INSERT INTO inbox (message_id, message_type, sender, case_id, created_at_ms,"
                    " received_at_ms, envelope_sha256, content, source, traceparent)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (str(message_id), message_type, sender, str(case_id), _ms(created_at), _ms(now),
                     envelope_sha256, content, source, traceparent),
                )  # fmt: skip
                self._handled(
                    db, source, envelope_sha256, message_id, HandledOutcome.DELIVERED, followup
                )
        except sqlite3.IntegrityError:
            raise ReplayDetected(
                f"message {message_id} of {sender} is in the inbox already"
            ) from None

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
        followup: ReceiptFollowUp,
        now: datetime,
        receipted_sha256: bytes | None = None,
    ) -> bool:
        """Note a recipient's receipt for a message this gateway sent; False if the message
        is not one of ours (the receipt is kept out of the books): not sent from here, not
        to that recipient, or about other envelope bytes (``receipted_sha256``) than the
        ones sent — another party's message that reused the id."""
        with self._tx() as db:
            self._write_claims(db, claims, now)
            self._handled(db, source, envelope_sha256, message_id, HandledOutcome.RECEIPT, followup)
            row = db.execute(
                "SELECT recipients, envelope_sha256 FROM sent WHERE message_id = ?",
                (str(message_id),),
            ).fetchone()
            if row is None or recipient not in json.loads(row[0]):
                return False
            if (
                row[1] is not None
                and receipted_sha256 is not None
                and bytes(row[1]) != receipted_sha256
            ):
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

    def record_rejection(self, source: str, envelope_sha256: bytes, message_id: uuid.UUID | None,
                         followup: RejectionFollowUp, *, claims: StagedClaims | None = None,
                         now: datetime | None = None) -> None:  # fmt: skip
        """Note a refused record, for the reason its ``followup`` gives; the follow-up says
        what to publish (dead letter, audit event, a REJECTED receipt), so a crash before it
        goes out does not lose it.
        ``claims`` (with ``now``) are (sender, id) pairs the refusal settles: a verdict is
        final, so a later envelope with that sender and id is a replay, never delivered."""
        with self._tx() as db:
            if claims is not None and now is not None:
                self._write_claims(db, claims, now)
            self._handled(
                db, source, envelope_sha256, message_id, HandledOutcome.REJECTED, followup
            )

    # --- the back office's inbox -----------------------------------------------------------

    def inbox(self, *, limit: int, include_acked: bool = False) -> list[InboxItem]:
        """Delivered messages, oldest first, their content opened (acknowledged ones, with
        ``include_acked``, have none left: an empty message)."""
        sql = (
            f"SELECT {_ITEM_COLUMNS} FROM inbox"
            + " WHERE visible = 1"
            + ("" if include_acked else " AND acked_at_ms IS NULL")
            + " ORDER BY seq LIMIT ?"
        )
        return [self._item(r) for r in self._read(sql, (limit,))]

    def _item(self, r: tuple[Any, ...]) -> InboxItem:
        message_id, sender = uuid.UUID(r[0]), r[2]
        content = r[7]
        message = (
            json.loads(self._key.open(bytes(content), _row(sender, message_id)))
            if content is not None
            else {}
        )
        return InboxItem(message_id, r[1], sender, uuid.UUID(r[3]), _from_ms(r[4]), _from_ms(r[5]),
                         message, r[8] is not None, bytes(r[6]), r[9])  # fmt: skip

    def directory_serial(self) -> int:
        """The highest directory serial this gateway has used (0 before the first)."""
        rows = self._read("SELECT value FROM facts WHERE name = 'directory_serial'")
        return int(rows[0][0]) if rows else 0

    def use_directory_serial(self, serial: int) -> None:
        with self._tx() as db:
            db.execute(
                "INSERT INTO facts VALUES ('directory_serial', ?) ON CONFLICT(name) DO UPDATE "
                "SET value = excluded.value WHERE CAST(facts.value AS INTEGER) < CAST(excluded.value AS INTEGER)",
                (str(serial),),
            )

    def ack(self, message_id: uuid.UUID, now: datetime, *, sender: str | None = None) -> bool:
        """Mark a delivered message as taken by the back office; False if unknown. Its
        content leaves the gateway then: the back office has it, and the gateway keeps only
        the metadata it needs against replays and for its counts.

        Ids are unique per sender: without ``sender``, an id that two senders used is
        `AmbiguousMessageId` (the back office names the sender, as its inbox shows it)."""
        [outcome] = self.ack_many([(message_id, sender)], now)
        if isinstance(outcome, AmbiguousMessageId):
            raise outcome
        return outcome

    def ack_many(self, acks: Sequence[tuple[uuid.UUID, str | None]], now: datetime
                 ) -> list[bool | AmbiguousMessageId]:  # fmt: skip
        """`ack` for each (message id, sender or None), in one transaction: each one's
        outcome, a refusal (`AmbiguousMessageId`) in its place rather than raised."""
        outcomes: list[bool | AmbiguousMessageId] = []
        with self._tx() as db:
            for message_id, sender in acks:
                where = "message_id = ? AND visible = 1" + (" AND sender = ?" if sender else "")
                args = (str(message_id), sender) if sender else (str(message_id),)
                rows = db.execute(
                    f"SELECT seq, acked_at_ms FROM inbox WHERE {where}", args
                ).fetchall()
                waiting = [seq for seq, acked_at in rows if acked_at is None]
                if len(waiting) > 1:
                    outcomes.append(AmbiguousMessageId(
                        f"message id {message_id} was used by {len(waiting)} senders: name the sender"
                    ))  # fmt: skip
                    continue
                if waiting:  # acknowledging again is a no-op that succeeds
                    db.execute("UPDATE inbox SET acked_at_ms = ?, content = NULL WHERE seq = ?",
                               (_ms(now), waiting[0]))  # fmt: skip
                    self._acks += 1
                outcomes.append(bool(rows))
        if self._acks >= SCRUB_EVERY_ACKS:
            self.scrub()
        return outcomes

    def scrub(self) -> None:
        """Truncate the write-ahead log: its frames of acknowledged content go too (they
        were sealed, and now they are not even that). Skipped while a reader holds it."""
        with self._lock:
            self._acks = 0
            self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    def counts(self) -> dict[str, int]:
        """Totals for dashboards and the demo: no ids, no content."""
        [row] = self._read(
            """SELECT
                    (SELECT COUNT(*) FROM inbox WHERE visible = 1),
                    (SELECT COUNT(*) FROM inbox WHERE visible = 1 AND acked_at_ms IS NULL),
                    (SELECT COUNT(*) FROM handled WHERE outcome = 'REJECTED'),
                    (SELECT COUNT(*) FROM sent),
                    (SELECT COUNT(*) FROM sent WHERE status = 'RECEIPTED'),
                    (SELECT COUNT(*) FROM sent WHERE status = 'SENT')"""
        )
        names = ("delivered", "unacked", "rejected", "sent", "receipted", "awaiting_receipt")
        return dict(zip(names, (int(v) for v in row), strict=True))

    def settled(self) -> bool:
        """Nothing in flight here: every message sent has its receipt, and every record taken
        has its follow-up (receipt, audit event) published. The demo's calendar waits for
        this on every gateway, often, so it asks only that (no counts)."""
        [row] = self._read(
            """SELECT NOT EXISTS (SELECT 1 FROM sent WHERE status = 'SENT')
                  AND NOT EXISTS (SELECT 1 FROM handled WHERE pending = 1)"""
        )
        return bool(row[0])

    def rejection_reasons(self) -> list[str]:
        """The reason of every record this gateway refused, oldest first."""
        rows = self._read("SELECT reason FROM handled WHERE outcome = 'REJECTED' ORDER BY rowid")
        return [r[0] for r in rows]

    def sent_records(self) -> int:
        """Records this gateway put into inboxes: one per recipient of each message it sent
        for its back office (receipts not counted)."""
        rows = self._read("SELECT recipients FROM sent")
        return sum(len(json.loads(r[0])) for r in rows)

    def receipted_records(self) -> int:
        """(message, recipient) pairs of sent messages with an ACCEPTED receipt."""
        [row] = self._read("SELECT COUNT(*) FROM receipts WHERE outcome = 'ACCEPTED'")
        return int(row[0])

    # --- sending ---------------------------------------------------------------------------

    def record_sent_many(self, rows: Sequence[SentRow], now: datetime | None = None) -> None:
        """Note messages about to be sent, each with the digest of its envelope (receipts
        count only if they are about those bytes) and its idempotency key if it has one, in
        one transaction (one fsync): a crash leaves a key with its row or neither. Every
        `PURGE_EVERY_KEYS` keys, expired ones are purged (in bounded work)."""
        now_ms = _ms(now or rows[0].sent_at) if rows else 0
        keyed = [(r.idempotency, r.message_id) for r in rows if r.idempotency is not None]
        with self._tx() as db:
            db.executemany(
                "INSERT INTO sent VALUES (?, ?, ?, ?, ?, 'SENT', ?)",
                [(str(r.message_id), r.message_type, str(r.case_id), json.dumps(list(r.recipients)),
                  _ms(r.sent_at), r.envelope_sha256) for r in rows],
            )  # fmt: skip
            self._keys += idempotency.insert(db, keyed, now_ms)
            if self._keys >= idempotency.PURGE_EVERY_KEYS:
                self._keys = 0
                idempotency.purge(db, now_ms)

    def forget_sent(self, message_id: uuid.UUID) -> None:
        """Undo `record_sent_many` for a message the log refused (nothing was stored), its
        idempotency key with it: the key is free for a new try."""
        with self._tx() as db:
            db.execute("DELETE FROM sent WHERE message_id = ?", (str(message_id),))
            idempotency.forget(db, message_id)

    def idempotent_send(self, key_sha256: bytes, now: datetime) -> Recorded | None:
        """What the store holds for an idempotency key still kept at ``now`` (committed
        state, on the read-only connection: cheap enough for the event loop)."""
        with self._read_lock:
            return idempotency.find(self._reader, key_sha256, _ms(now))

    def confirm_sent(self, message_ids: Sequence[uuid.UUID]) -> None:
        """The log took these messages: their idempotency keys answer with them from now on."""
        with self._tx() as db:
            idempotency.confirm(db, message_ids)

    def unconfirmed_sends(self) -> list[uuid.UUID]:
        """Messages of idempotency keys whose send has no known outcome (a crash or a
        timeout between noting it and hearing from the log)."""
        with self._read_lock:
            return idempotency.unconfirmed(self._reader)

    def sent_status(self, message_id: uuid.UUID) -> SentStatus | None:
        with self._read_lock:  # the message and its receipts from one snapshot
            self._reader.execute("BEGIN")
            try:
                row = self._reader.execute(
                    "SELECT message_id, message_type, case_id, recipients, sent_at_ms, status"
                    " FROM sent WHERE message_id = ?",
                    (str(message_id),),
                ).fetchone()
                receipts = self._reader.execute(
                    "SELECT recipient, outcome, reason, received_at_ms FROM receipts"
                    " WHERE message_id = ?",
                    (str(message_id),),
                ).fetchall()
            finally:
                self._reader.execute("COMMIT")
        if row is None:
            return None
        return SentStatus(
            message_id=uuid.UUID(row[0]), message_type=row[1], case_id=uuid.UUID(row[2]),
            recipients=tuple(json.loads(row[3])), sent_at=_from_ms(row[4]), status=row[5],
            receipts={r: {"outcome": o, "reason": why, "received_at": _from_ms(t)} for r, o, why, t in receipts},
        )  # fmt: skip

    def overdue(self, now: datetime, timeout: timedelta) -> list[uuid.UUID]:
        """Sent messages still waiting for a receipt after ``timeout``."""
        rows = self._read(
            "SELECT message_id FROM sent WHERE status = 'SENT' AND sent_at_ms < ? ORDER BY sent_at_ms",
            (_ms(now - timeout),),
        )
        return [uuid.UUID(r[0]) for r in rows]
