"""Taking a gateway store of an older layout up to the current one (`SCHEMA_VERSION`), on
open, one layout at a time: 0 → 1 → 2 → 3. Each step is one transaction that ends by setting
the file's layout (``PRAGMA user_version``), so a failure or a crash in a step leaves the
store of the layout before it, whole, and the next open takes it up again from there.

Layout 0 → 1: layout 0 kept the inbox's content as plaintext JSON and its replay guard by
message id alone. The step:

- seals every unacknowledged message's content under the content key (acknowledged ones
  had none left) and drops the plaintext column;
- gives each guard entry its sender, from the inbox or the stored follow-up of the record
  it came with; an entry whose sender cannot be found blocks its id for every sender
  (`ANY_SENDER`), as layout 0 did, until it expires;
- links each inbox row to the record position it came from, and leaves sent messages
  without an envelope digest (their receipts are matched by id and recipient, as before);
- then rewrites the file (VACUUM) and truncates the write-ahead log, so no page or frame of
  the old plaintext is left in either.

Layout 1 → 2: layout 1 wrote a refusal's outcome as ``REJECTED:<reason>`` and follow-ups as
flat JSON without a version. The step:

- adds the ``reason`` column and splits each ``REJECTED:<reason>`` into outcome REJECTED
  and its reason (the only place that still parses the old form);
- rewrites every follow-up into the versioned form of `broker.gateway._followup_models`
  (version 1: the envelope's facts under ``envelope``) and reads it back strictly. A
  follow-up that does not fit stops the migration with a `StoredRecordUnreadable` naming
  its record — the store stays at layout 1 — rather than losing one still pending.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import uuid
from collections.abc import Callable
from typing import Any

from broker.crypto import ContentKey
from broker.gateway import _followup_models as followups
from broker.gateway import _store_idempotency as idempotency
from broker.gateway._store import _SCHEMA, ANY_SENDER, HandledOutcome, _row
from broker.gateway._store_errors import StoredRecordUnreadable

log = logging.getLogger("lvvx.gateway")


def migrate(db: sqlite3.Connection, key: ContentKey, layout: int) -> None:
    """Take the store ``db``, of layout ``layout``, up to `SCHEMA_VERSION` (4)."""
    if layout < 1:
        _step(db, 1, lambda: _layout_0_to_1(db, key))
        db.execute("VACUUM")  # no page of layout 0's plaintext left in the file ...
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # ... nor a frame in the log
    if layout < 2:
        _step(db, 2, lambda: _layout_1_to_2(db))
    if layout < 3:
        _step(db, 3, lambda: _layout_2_to_3(db))
    if layout < 4:
        _step(db, 4, lambda: _layout_3_to_4(db))


def _step(db: sqlite3.Connection, to: int, work: Callable[[], int]) -> None:
    db.execute("BEGIN IMMEDIATE")
    try:
        rows = work()
        db.execute(f"PRAGMA user_version = {to}")
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")
    log.info("gateway store taken up to layout %d (%d rows rewritten)", to, rows)


# --- layout 0 → 1 ----------------------------------------------------------------------------


def _layout_0_to_1(db: sqlite3.Connection, key: ContentKey) -> int:
    """The inbox sealed, the guard keyed by sender; the inbox rows it rewrote."""
    for index in ("inbox_unacked",):
        db.execute(f"DROP INDEX IF EXISTS {index}")
    db.execute("ALTER TABLE seen RENAME TO seen_0")
    db.execute("ALTER TABLE inbox RENAME TO inbox_0")
    db.execute("ALTER TABLE sent ADD COLUMN envelope_sha256 BLOB")
    # layout 1's `seen` and `inbox` as _SCHEMA makes them (layout 2 left both as they were);
    # `handled` is there already, and keeps layout 0's columns for the next step
    for statement in _SCHEMA.split(";"):
        if statement.strip():
            db.execute(statement)
    senders = dict(db.execute("SELECT message_id, sender FROM inbox_0").fetchall())
    for message_id, followup in db.execute(
        "SELECT message_id, followup FROM handled WHERE message_id IS NOT NULL"
    ).fetchall():
        sender = json.loads(followup or "{}").get("sender")  # layout 0's flat follow-up
        if sender:
            senders.setdefault(message_id, sender)
    for raw_id, keep_until in db.execute("SELECT message_id, keep_until_ms FROM seen_0").fetchall():
        sender = senders.get(str(uuid.UUID(bytes=bytes(raw_id))), ANY_SENDER)
        db.execute("INSERT OR REPLACE INTO seen VALUES (?, ?, ?)", (sender, raw_id, keep_until))
    rows = db.execute(
        "SELECT seq, message_id, message_type, sender, case_id, created_at_ms, received_at_ms,"
        " envelope_sha256, message_json, acked_at_ms, visible,"
        " (SELECT source FROM handled h WHERE h.message_id = i.message_id"
        "  AND h.outcome = 'DELIVERED' LIMIT 1) FROM inbox_0 i ORDER BY seq"
    ).fetchall()
    for row in rows:
        (seq, message_id, message_type, sender, case_id, created, received, digest,
         message_json, acked_at, visible, source) = row  # fmt: skip
        content = (
            None
            if acked_at is not None
            else key.seal(message_json.encode(), _row(sender, uuid.UUID(message_id)))
        )
        db.execute(
            "INSERT INTO inbox (seq, message_id, message_type, sender, case_id, created_at_ms,"
            " received_at_ms, envelope_sha256, content, acked_at_ms, visible, source)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (seq, message_id, message_type, sender, case_id, created, received, digest,
             content, acked_at, visible, source),
        )  # fmt: skip
    db.execute("DROP TABLE seen_0")
    db.execute("DROP TABLE inbox_0")
    return len(rows)


# --- layout 1 → 2 ----------------------------------------------------------------------------

_ENVELOPE_FACTS = ("message_id", "message_type", "sender", "recipients", "case_id",
                   "correlation_id")  # fmt: skip
"""Layout 1's follow-up fields that version 1 keeps under ``envelope``."""

_OWN_FIELDS = {
    "DELIVERED": (),
    "RECEIPT": ("receipted_message_id", "receipted_type", "outcome", "reason"),
    "REJECTED": ("reason", "answer"),
}
"""The fields of each kind of layout 1's follow-ups that version 1 keeps as they were."""


def _layout_1_to_2(db: sqlite3.Connection) -> int:
    """Outcomes and reasons apart, follow-ups versioned; the follow-ups it rewrote."""
    db.execute("ALTER TABLE handled ADD COLUMN reason TEXT")
    db.execute(
        "UPDATE handled SET outcome = 'REJECTED', reason = substr(outcome, 10)"
        " WHERE substr(outcome, 1, 9) = 'REJECTED:'"
    )
    known = [outcome.value for outcome in HandledOutcome]
    unknown = db.execute(
        f"SELECT source, outcome FROM handled WHERE outcome NOT IN ({', '.join('?' * len(known))})",
        known,
    ).fetchone()
    if unknown is not None:
        raise StoredRecordUnreadable(
            f"the record at {unknown[0]} has the unknown outcome {unknown[1]!r}",
            reason="OUTCOME_UNKNOWN",
        )
    rows = db.execute("SELECT source, followup FROM handled").fetchall()
    for source, followup in rows:
        db.execute(
            "UPDATE handled SET followup = ? WHERE source = ?",
            (followups.dumps(_versioned(followup, source)), source),
        )
    return len(rows)


def _versioned(layout_1: str | None, source: str) -> followups.FollowUp:
    """Layout 1's follow-up of the record at ``source`` as a typed record (version 1)."""
    try:
        old: dict[str, Any] = json.loads(layout_1 or "null")
        kind = old["kind"]
        envelope = {name: old[name] for name in _ENVELOPE_FACTS} if "message_id" in old else None
        own = {name: old[name] for name in _OWN_FIELDS.get(kind, ())}
        digest = old["digest"]
    except (ValueError, TypeError, KeyError) as exc:
        raise StoredRecordUnreadable(
            f"the follow-up stored for the record at {source} is not one of layout 1 ({exc!r})",
            reason="FOLLOWUP_INVALID",
        ) from None
    new = {"kind": kind, "version": 1, "digest": digest, "envelope": envelope, **own}
    return followups.loads(json.dumps(new), source=source)


# --- layout 2 → 3 ----------------------------------------------------------------------------


def _layout_2_to_3(db: sqlite3.Connection) -> int:
    """The idempotency keys' table, empty; no row rewritten."""
    for statement in idempotency.TABLE.split(";"):
        if statement.strip():
            db.execute(statement)
    return 0


def _layout_3_to_4(db: sqlite3.Connection) -> int:
    """The inbox's ``traceparent`` column, null for what was delivered before; no row
    rewritten. (A layout-0 store's inbox was made anew by step 1, with the column.)"""
    columns = {row[1] for row in db.execute("PRAGMA table_info(inbox)")}
    if "traceparent" not in columns:
        db.execute("ALTER TABLE inbox ADD COLUMN traceparent TEXT")
    return 0
