"""Taking a gateway store of layout 0 (before content was sealed at rest and message ids
were keyed by sender) up to the current layout, in one transaction, on open.

Layout 0 kept the inbox's content as plaintext JSON and its replay guard by message id
alone. The migration:

- seals every unacknowledged message's content under the content key (acknowledged ones
  had none left) and drops the plaintext column;
- gives each guard entry its sender, from the inbox or the stored follow-up of the record
  it came with; an entry whose sender cannot be found blocks its id for every sender
  (`ANY_SENDER`), as layout 0 did, until it expires;
- links each inbox row to the record position it came from, and leaves sent messages
  without an envelope digest (their receipts are matched by id and recipient, as before);
- then rewrites the file (VACUUM) and truncates the write-ahead log, so no page or frame of
  the old plaintext is left in either.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import uuid

from broker.crypto import ContentKey

log = logging.getLogger("lvvx.gateway")


def migrate_from_layout_0(db: sqlite3.Connection, key: ContentKey) -> None:
    from broker.gateway._store import _SCHEMA, ANY_SENDER, SCHEMA_VERSION, _row

    db.execute("BEGIN IMMEDIATE")
    try:
        for index in ("inbox_unacked",):
            db.execute(f"DROP INDEX IF EXISTS {index}")
        db.execute("ALTER TABLE seen RENAME TO seen_0")
        db.execute("ALTER TABLE inbox RENAME TO inbox_0")
        db.execute("ALTER TABLE sent ADD COLUMN envelope_sha256 BLOB")
        for statement in _SCHEMA.split(";"):
            if statement.strip():
                db.execute(statement)
        senders = dict(db.execute("SELECT message_id, sender FROM inbox_0").fetchall())
        for message_id, followup in db.execute(
            "SELECT message_id, followup FROM handled WHERE message_id IS NOT NULL"
        ).fetchall():
            sender = json.loads(followup or "{}").get("sender")
            if sender:
                senders.setdefault(message_id, sender)
        for raw_id, keep_until in db.execute(
            "SELECT message_id, keep_until_ms FROM seen_0"
        ).fetchall():
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
                "INSERT INTO inbox VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (seq, message_id, message_type, sender, case_id, created, received, digest,
                 content, acked_at, visible, source),
            )  # fmt: skip
        db.execute("DROP TABLE seen_0")
        db.execute("DROP TABLE inbox_0")
        db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")
    db.execute("VACUUM")
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    log.info(
        "gateway store taken up from layout 0 to %d (%d inbox rows)", SCHEMA_VERSION, len(rows)
    )
