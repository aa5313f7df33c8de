"""Nothing readable at rest: personal data a gateway holds is never on disk as plaintext —
while unacknowledged, after the back office acknowledged it, and after a SIGKILL — and every
file and folder a gateway, the demo and the CLI make under a data folder is owner-only,
whatever the umask. A store of an earlier layout — 0 (plaintext inbox, ids without
senders), or 1 (outcomes and follow-ups untyped; a file its own gateway wrote,
``tests/stores/layout1.db``) — is migrated on open and its pending rows recover.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import sqlite3
import stat
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from broker.audit import decode_event
from broker.crypto import ContentKey, ContentUnreadable
from broker.gateway import GatewayStore
from broker.gateway._followup_models import DeliveryFollowUp, ReceiptFollowUp, RejectionFollowUp
from broker.gateway._store import SCHEMA_VERSION, HandledOutcome, Verdict
from broker.gateway._store_errors import StoreVersionError
from broker.models import AuditAction, DossierDelivered, PartyRole, ReceiptOutcome, ReceiptReason
from broker.owner_only import private_dir
from broker.topics import audit, dlq, inbox
from broker.transport import Record
from broker.transport.embedded import EmbeddedTransport
from tests.crypto_net import CONTENT_KEY, NOW, A, Net
from tests.embedded_gateways import EmbeddedNetwork
from tests.gateway_processes import RECIPIENT, rig
from tests.stores import LAYOUT_1, delivery_followup, layout_1_records
from tests.support import eventually, example_of

NET = Net()
IND, MUNI = A[PartyRole.IND], A[PartyRole.MUNICIPALITY]

MARKER = f"Marker-{uuid.uuid4().hex}"
"""Personal data that exists only in this test run: a name and a medical note carry it."""


def files_under(folder: Path) -> Iterator[Path]:
    for root, _, names in os.walk(folder):
        for name in names:
            yield Path(root) / name


def holding(folder: Path, needle: str) -> list[Path]:
    """Every file under ``folder`` whose raw bytes hold ``needle`` (WAL and logs included)."""
    return [p for p in files_under(folder) if needle.encode() in p.read_bytes()]


def not_owner_only(folder: Path) -> list[str]:
    """Files and folders under ``folder`` (itself included) that others may read or enter."""
    found = []
    for root, _dirs, names in os.walk(folder):
        for path in [Path(root), *(Path(root) / n for n in names)]:
            mode = stat.S_IMODE(path.lstat().st_mode)
            if mode & 0o077:
                found.append(f"{path.relative_to(folder.parent)} {oct(mode)}")
    return found


@contextlib.contextmanager
def umask(mask: int) -> Iterator[None]:
    before = os.umask(mask)
    try:
        yield
    finally:
        os.umask(before)


@pytest.mark.kafka
async def test_personal_data_is_never_on_disk_unacknowledged_acknowledged_or_after_sigkill(
    tmp_path: Path,
) -> None:
    personal = example_of(DossierDelivered)
    person = personal.person.model_copy(update={"family_name": MARKER})
    async with rig(tmp_path, "at-rest") as r, httpx.AsyncClient(timeout=10) as client:
        r.recipient.start()
        await r.recipient.wait_ready(client)
        sent = []
        for _ in range(3):
            message = personal.model_copy(update={
                "case_id": uuid.uuid4(), "person": person, "medical_notes": f"note on {MARKER}",
            })  # fmt: skip
            sent.append(await r.sender.send(message, [RECIPIENT]))
        api = f"http://127.0.0.1:{r.recipient.port}/v1"
        auth = {"Authorization": f"Bearer {r.recipient.token}"}

        async def all_three() -> list[dict[str, object]]:
            items: list[dict[str, object]] = (
                await client.get(f"{api}/inbox", headers=auth)
            ).json()["items"]
            return items if len(items) == 3 else []

        items = await eventually(all_three, "the three messages", timeout_s=20, every_s=0.1)
        assert MARKER in str(items), "the back office reads the content"
        assert holding(tmp_path, MARKER) == [], "plaintext on disk while unacknowledged"

        for item in items[:2]:
            answer = await client.post(f"{api}/inbox/{item['message_id']}/ack", headers=auth)
            assert answer.status_code == 204
        assert r.recipient.alive()
        r.recipient.kill()  # SIGKILL right after the acknowledgements
        assert holding(tmp_path, MARKER) == [], "plaintext on disk after ack and SIGKILL"
        assert not_owner_only(r.net.state_dir(RECIPIENT)) == []

        r.recipient.start()  # and the one left is still there to read, after the restart
        await r.recipient.wait_ready(client)
        left = (await client.get(f"{api}/inbox", headers=auth)).json()["items"]
        assert [i["message_id"] for i in left] == [items[2]["message_id"]]
        assert MARKER in str(left)
    assert holding(tmp_path, MARKER) == [], "plaintext on disk after a clean stop"


def test_a_gateway_store_and_embedded_log_are_owner_only_whatever_the_umask(tmp_path: Path) -> None:
    data = tmp_path / "state"
    data.mkdir(mode=0o755)

    async def open_both() -> None:
        store = GatewayStore(data / "gateway.db", content_key=CONTENT_KEY)
        log = EmbeddedTransport(data / "log.db")
        try:
            store.use_directory_serial(1)  # a write: the store's WAL exists now
            await log.ping()
            names = {p.name for p in files_under(data)}  # while open: side files included
            assert {"gateway.db", "gateway.db-wal", "gateway.db-shm", "log.db"} <= names, names
            assert not_owner_only(data) == []
        finally:
            await log.close()
            store.close()

    with umask(0o022):
        private_dir(data)
        asyncio.run(open_both())
    assert not_owner_only(data) == []


def test_the_demo_and_the_cli_make_only_owner_only_files(tmp_path: Path) -> None:
    data = tmp_path / "demo"
    env = {**os.environ, "COLUMNS": "200"}
    done = subprocess.run(
        [sys.executable, "-m", "cli.main", "demo", "--data", str(data), "--cases", "2"],
        env=env, capture_output=True, text=True, timeout=300,
        preexec_fn=lambda: os.umask(0o022),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert not_owner_only(data) == []
    assert any(p.name.endswith("-wal") or p.name == "gateway.db" for p in files_under(data))


# --- the store's layout ----------------------------------------------------------------------

_LAYOUT_0 = """
CREATE TABLE seen (message_id BLOB PRIMARY KEY, keep_until_ms INTEGER NOT NULL);
CREATE TABLE handled (source TEXT PRIMARY KEY, envelope_sha256 BLOB NOT NULL, message_id TEXT,
    outcome TEXT NOT NULL, followup TEXT, pending INTEGER NOT NULL);
CREATE INDEX handled_digest ON handled (envelope_sha256, outcome);
CREATE TABLE inbox (seq INTEGER PRIMARY KEY AUTOINCREMENT, message_id TEXT NOT NULL UNIQUE,
    message_type TEXT NOT NULL, sender TEXT NOT NULL, case_id TEXT NOT NULL,
    created_at_ms INTEGER NOT NULL, received_at_ms INTEGER NOT NULL,
    envelope_sha256 BLOB NOT NULL, message_json TEXT NOT NULL, acked_at_ms INTEGER,
    visible INTEGER NOT NULL DEFAULT 0);
CREATE TABLE sent (message_id TEXT PRIMARY KEY, message_type TEXT NOT NULL, case_id TEXT NOT NULL,
    recipients TEXT NOT NULL, sent_at_ms INTEGER NOT NULL, status TEXT NOT NULL);
CREATE TABLE receipts (message_id TEXT NOT NULL, recipient TEXT NOT NULL, outcome TEXT NOT NULL,
    reason TEXT, received_at_ms INTEGER NOT NULL, PRIMARY KEY (message_id, recipient));
CREATE TABLE facts (name TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE INDEX inbox_unacked ON inbox (visible, acked_at_ms, seq);
CREATE INDEX sent_open ON sent (status, sent_at_ms);
"""
"""The store's layout before it had a version (as main wrote it up to this change)."""


def _layout_0_store(path: Path) -> tuple[uuid.UUID, uuid.UUID, uuid.UUID]:
    """A layout-0 store with a delivered message still pending its follow-up, an
    acknowledged one, and a guard entry whose sender is not on record."""
    pending, acked, orphan = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    db = sqlite3.connect(path)
    db.executescript(_LAYOUT_0)
    ms = int(NOW.timestamp() * 1000)
    until = ms + 86_400_000
    for message_id, json_text, acked_at, visible, offset in (
        (pending, f'{{"notes": "{MARKER}"}}', None, 0, 0),
        (acked, "{}", ms, 1, 1),
    ):
        case_id, digest = uuid.uuid4(), bytes([offset]) * 32
        db.execute("INSERT INTO seen VALUES (?, ?)", (message_id.bytes, until))
        db.execute("INSERT INTO inbox (message_id, message_type, sender, case_id, created_at_ms,"
                   " received_at_ms, envelope_sha256, message_json, acked_at_ms, visible)"
                   " VALUES (?, 'nl.lvv.v1.DossierDelivered', 'ind', ?, ?, ?, ?, ?, ?, ?)",
                   (str(message_id), str(case_id), ms, ms, digest, json_text, acked_at, visible))  # fmt: skip
        followup = {  # as layout 0's gateway wrote it (and layout 1's: flat, without a version)
            "kind": "DELIVERED", "message_id": str(message_id), "message_type": "nl.lvv.v1.DossierDelivered",
            "sender": "ind", "recipients": ["gemeente-amsterdam"], "case_id": str(case_id),
            "digest": digest.hex(), "correlation_id": None,
        }  # fmt: skip
        db.execute("INSERT INTO handled VALUES (?, ?, ?, 'DELIVERED', ?, ?)",
                   (f"inbox/0/{offset}", digest, str(message_id), json.dumps(followup), 1 - visible))  # fmt: skip
    db.execute("INSERT INTO seen VALUES (?, ?)", (orphan.bytes, until))
    db.execute("INSERT INTO sent VALUES (?, 'nl.lvv.v1.IntakeRegistered', ?, '[\"dtv\"]', ?, 'SENT')",
               (str(uuid.uuid4()), str(uuid.uuid4()), ms))  # fmt: skip
    db.commit()
    db.close()
    return pending, acked, orphan


def test_a_store_of_layout_0_is_migrated_and_its_pending_rows_recover(tmp_path: Path) -> None:
    path = tmp_path / "gateway.db"
    pending, acked, orphan = _layout_0_store(path)
    assert holding(tmp_path, MARKER)  # layout 0 kept it as plaintext

    store = GatewayStore(path, content_key=CONTENT_KEY)
    try:
        assert holding(tmp_path, MARKER) == [], "the plaintext is gone from every page and frame"
        handled = store.handled_at("inbox/0/0")
        assert handled is not None and handled.pending  # its follow-up is still to publish
        assert isinstance(handled.followup, DeliveryFollowUp)  # taken up through layout 1
        assert handled.outcome is HandledOutcome.DELIVERED
        assert handled.followup.envelope.message_id == pending
        store.followups_done(["inbox/0/0"])  # as the gateway does once it published it
        (item,) = store.inbox(limit=10)
        assert (item.message_id, item.sender, item.message) == (pending, "ind", {"notes": MARKER})
        assert store.seen("ind", pending, NOW) and store.seen("ind", acked, NOW)
        # a guard entry without its sender blocks the id for every sender (ANY_SENDER)
        assert store.seen("ngo-any", orphan, NOW)
        assert not store.seen("ngo-any", pending, NOW)
        assert store.counts()["sent"] == 1
    finally:
        store.close()
    version = sqlite3.connect(path).execute("PRAGMA user_version").fetchone()[0]
    assert version == SCHEMA_VERSION


async def test_a_store_of_layout_1_made_by_its_own_gateway_is_migrated_and_recovers(
    tmp_path: Path,
) -> None:
    """``tests/stores/layout1.db``, written by the gateway of layout 1 (its rows pending as
    after a crash before the follow-ups went out), opens as the current layout: outcomes and
    reasons apart, follow-ups typed, a table of idempotency keys; then the log delivers its records again, and today's gateway
    publishes each pending follow-up, once — receipts, dead letters, audit events."""
    path = tmp_path / "gateway.db"
    shutil.copyfile(LAYOUT_1, path)
    records = layout_1_records()
    lvv = EmbeddedNetwork(tmp_path, NET)
    store = GatewayStore(path, content_key=CONTENT_KEY)
    try:
        assert sqlite3.connect(path).execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        assert store.unconfirmed_sends() == []  # layout 3's table, empty
        handled = {label: store.handled_at(source(r)) for label, r in records.items()}
        assert {label: (h.outcome, h.reason, type(h.followup), h.pending)
                for label, h in handled.items() if h is not None} == {
            "acknowledged": (HandledOutcome.DELIVERED, None, DeliveryFollowUp, False),
            "delivered": (HandledOutcome.DELIVERED, None, DeliveryFollowUp, True),
            "refused-answered": (HandledOutcome.REJECTED, "FROM_FUTURE", RejectionFollowUp, True),
            "refused-unanswered": (HandledOutcome.REJECTED, "UNSUPPORTED_VERSION", RejectionFollowUp, True),
            "receipt": (HandledOutcome.RECEIPT, None, ReceiptFollowUp, True),
        }  # fmt: skip
        assert store.rejection_reasons() == ["FROM_FUTURE", "UNSUPPORTED_VERSION"]
        assert store.counts() == {"delivered": 1, "unacked": 0, "rejected": 2, "sent": 1,
                                  "receipted": 1, "awaiting_receipt": 0}  # fmt: skip
        delivered_row, answered_row = handled["delivered"], handled["refused-answered"]
        assert delivered_row is not None and answered_row is not None
        delivered, answered = delivered_row.followup, answered_row.followup
        assert isinstance(delivered, DeliveryFollowUp) and isinstance(answered, RejectionFollowUp)
        assert answered.answer and answered.envelope is not None
        assert store.earlier_verdict(delivered.digest) is Verdict.ACCEPTED
        assert store.earlier_verdict(answered.digest) is Verdict.REFUSED

        await lvv.gateway(IND)  # its inbox exists: the answers go there
        muni = await lvv.gateway(MUNI, store=store)
        for _ in range(2):  # and once more: published once all the same
            for record in records.values():
                await muni.handle(record)
        (item,) = muni.store.inbox(limit=10)
        assert (item.message_id, item.sender) == (delivered.envelope.message_id, IND)
        assert item.message["case_id"] == str(delivered.envelope.case_id)
        answers = [NET.open(r.value, IND).message for r in await lvv.records(inbox(IND))]
        assert sorted((a.message_id, a.outcome, a.reason) for a in answers) == sorted([  # type: ignore[attr-defined]  # open() gives an AvroModel: these are receipts
            (delivered.envelope.message_id, ReceiptOutcome.ACCEPTED, None),
            (answered.envelope.message_id, ReceiptOutcome.REJECTED, ReceiptReason.FROM_FUTURE),
        ])  # fmt: skip
        dead = {dict(r.headers)["lvv-source"].decode(): dict(r.headers)["lvv-reason"].decode()
                for r in await lvv.records(dlq(MUNI))}  # fmt: skip
        assert dead == {source(records["refused-answered"]): "FROM_FUTURE",
                        source(records["refused-unanswered"]): "UNSUPPORTED_VERSION"}  # fmt: skip
        events = [decode_event(r.value) for r in await lvv.records(audit(MUNI))]
        assert sorted(e.action.value for e in events if e.action is not AuditAction.CHECKPOINT) == [
            "DELIVERED", "RECEIPT_RECEIVED", "RECEIPT_SENT", "RECEIPT_SENT", "REJECTED", "REJECTED",
        ]  # fmt: skip
        assert not any(store.handled_at(source(r)).pending for r in records.values())  # type: ignore[union-attr]  # every row exists
    finally:
        await lvv.aclose()
        store.close()


def source(record: Record) -> str:
    return f"{record.topic}/{record.partition}/{record.offset}"


def test_a_store_of_a_newer_layout_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "gateway.db"
    db = sqlite3.connect(path)
    db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    db.close()
    with pytest.raises(StoreVersionError, match="newer"):
        GatewayStore(path, content_key=CONTENT_KEY)


def test_content_sealed_under_one_key_does_not_open_under_another(tmp_path: Path) -> None:
    store = GatewayStore(tmp_path / "gateway.db", content_key=CONTENT_KEY)
    claims = store.staged_claims()
    message_id = uuid.uuid4()
    store.record_delivery(source="inbox/0/0", claims=claims, envelope_sha256=bytes(32), message_id=message_id,
                          message_type="nl.lvv.v1.DossierDelivered", sender="ind", case_id=uuid.uuid4(),
                          created_at=NOW, message_json=f'{{"notes": "{MARKER}"}}',
                          followup=delivery_followup("ind", message_id), now=NOW)  # fmt: skip
    store.followups_done(["inbox/0/0"])
    store.close()
    other = GatewayStore(tmp_path / "gateway.db", content_key=ContentKey.generate())
    try:
        with pytest.raises(ContentUnreadable):
            other.inbox(limit=10)
    finally:
        other.close()
