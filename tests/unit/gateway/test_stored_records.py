"""The durable records of exactly-once delivery are typed (`broker.gateway._followup_models`,
`broker.gateway._store`): each follow-up is stored with its kind and version and read back
equal, or refused with a reason code — an unknown kind or version, a field missing, extra or
of the wrong type — as a `StoredRecordUnreadable`, never a KeyError; a row's outcome is a
`HandledOutcome` with the refusal's reason in a column of its own; and a layout-1 follow-up
that does not fit stops the migration, the store left at layout 1 as it was.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
import uuid
from pathlib import Path
from typing import Literal

import pytest

from broker.errors import RejectReason
from broker.gateway import PROCESSING_FAILED, GatewayStore
from broker.gateway._followup_models import (
    DeliveryFollowUp,
    EnvelopeFacts,
    FollowUp,
    ReceiptFollowUp,
    RejectionFollowUp,
    dumps,
    loads,
)
from broker.gateway._store import HandledOutcome
from broker.gateway._store_errors import StoredRecordUnreadable, StoreError
from broker.models import ReceiptOutcome, ReceiptReason
from tests.crypto_net import CONTENT_KEY, NOW
from tests.stores import LAYOUT_1, delivery_followup, rejection_followup

FACTS = EnvelopeFacts(
    message_id=uuid.uuid4(), message_type="nl.lvv.v1.DeliveryReceipt", sender="ind",
    recipients=("gemeente-amsterdam",), case_id=uuid.uuid4(), correlation_id=uuid.uuid4(),
)  # fmt: skip
KINDS: dict[str, FollowUp] = {
    "DELIVERED": delivery_followup("ind", uuid.uuid4(), digest=b"\x01" * 32),
    "RECEIPT": ReceiptFollowUp(
        version=1,
        digest=b"\x02" * 32,
        envelope=FACTS,
        receipted_message_id=uuid.uuid4(),
        receipted_type="nl.lvv.v1.IntakeRegistered",
        outcome=ReceiptOutcome.REJECTED,
        reason=ReceiptReason.POLICY_DENIED,
    ),
    "REJECTED": RejectionFollowUp(
        version=1, digest=b"\x03" * 32, envelope=FACTS, reason=RejectReason.EXPIRED, answer=True
    ),
}


@pytest.mark.parametrize("kind", KINDS)
def test_each_kind_of_follow_up_is_stored_with_its_kind_and_version_and_read_back_equal(
    kind: str,
) -> None:
    followup = KINDS[kind]
    stored = json.loads(dumps(followup))
    assert (stored["kind"], stored["version"]) == (kind, 1)
    assert loads(dumps(followup), source="inbox/0/0") == followup


def _changed(of: str, **changes: object) -> str:
    """The stored form of the follow-up ``of`` with ``changes`` (None: the field removed)."""
    stored = json.loads(dumps(KINDS[of])) | changes
    return json.dumps({k: v for k, v in stored.items() if v is not None or k not in changes})


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        (_changed("DELIVERED", kind="DELIVERED_TWICE"), "FOLLOWUP_KIND_UNKNOWN"),
        (_changed("DELIVERED", kind=None), "FOLLOWUP_KIND_UNKNOWN"),
        (_changed("RECEIPT", version=2), "FOLLOWUP_VERSION_UNKNOWN"),
        (_changed("RECEIPT", version=None), "FOLLOWUP_VERSION_UNKNOWN"),
        (_changed("REJECTED", reason="NOT_A_REASON"), "FOLLOWUP_INVALID"),
        (_changed("REJECTED", answer=None), "FOLLOWUP_INVALID"),
        (_changed("REJECTED", answer="yes"), "FOLLOWUP_INVALID"),
        (_changed("DELIVERED", sender="ind"), "FOLLOWUP_INVALID"),  # layout 1's flat form
        (_changed("DELIVERED", digest="00"), "FOLLOWUP_INVALID"),
        ('{"kind": "DELIVERED"', "FOLLOWUP_INVALID"),
        ("[]", "FOLLOWUP_INVALID"),
    ],
    ids=["unknown kind", "no kind", "unknown version", "no version", "unknown reason",
         "field missing", "wrong type", "field extra", "short digest", "not JSON", "no object"],
)  # fmt: skip
def test_a_follow_up_that_does_not_fit_is_refused_with_its_reason(text: str, reason: str) -> None:
    with pytest.raises(StoredRecordUnreadable, match="inbox/0/7") as refused:
        loads(text, source="inbox/0/7")
    assert refused.value.reason == reason
    assert isinstance(refused.value, StoreError)


def test_a_refusal_of_ours_is_a_reason_of_its_own() -> None:
    followup = rejection_followup(PROCESSING_FAILED)
    assert loads(dumps(followup), source="inbox/0/0").reason == PROCESSING_FAILED  # type: ignore[union-attr]  # loads() gives the union: a refusal


def test_outcomes_are_an_enum_with_the_reason_in_a_column_of_its_own(tmp_path: Path) -> None:
    store = GatewayStore(tmp_path / "gateway.db", content_key=CONTENT_KEY)
    try:
        delivered = KINDS["DELIVERED"]
        assert isinstance(delivered, DeliveryFollowUp)
        store.record_delivery(
            source="inbox/0/0", claims=store.staged_claims(), envelope_sha256=delivered.digest,
            message_id=delivered.envelope.message_id, message_type="nl.lvv.v1.DossierDelivered",
            sender="ind", case_id=uuid.uuid4(), created_at=NOW, message_json="{}",
            followup=delivered, now=NOW,
        )  # fmt: skip
        reasons: tuple[RejectReason | Literal["PROCESSING_FAILED"], ...] = (
            RejectReason.EXPIRED,
            PROCESSING_FAILED,
        )
        for offset, reason in enumerate(reasons, start=1):
            refusal = rejection_followup(reason, digest=bytes([offset]) * 32)
            store.record_rejection(f"inbox/0/{offset}", refusal.digest, None, refusal)
        rows = sqlite3.connect(tmp_path / "gateway.db").execute(
            "SELECT source, outcome, reason FROM handled ORDER BY rowid"
        )
        assert rows.fetchall() == [
            ("inbox/0/0", "DELIVERED", None),
            ("inbox/0/1", "REJECTED", "EXPIRED"),
            ("inbox/0/2", "REJECTED", "PROCESSING_FAILED"),
        ]
        handled = store.handled_at("inbox/0/1")
        assert handled is not None
        assert (handled.outcome, handled.reason) == (HandledOutcome.REJECTED, "EXPIRED")
        assert isinstance(handled.followup, RejectionFollowUp) and handled.pending
        assert store.rejection_reasons() == ["EXPIRED", "PROCESSING_FAILED"]
        assert store.counts()["rejected"] == 2
    finally:
        store.close()


@pytest.mark.parametrize(
    ("column", "value", "reason"),
    [("followup", '{"kind": "DELIVERED", "version": 9}', "FOLLOWUP_VERSION_UNKNOWN"),
     ("followup", "{}", "FOLLOWUP_KIND_UNKNOWN"),
     ("outcome", "REJECTED:EXPIRED", "OUTCOME_UNKNOWN")],
)  # fmt: skip
def test_a_row_that_does_not_fit_is_a_store_error_never_a_key_error(
    tmp_path: Path, column: str, value: str, reason: str
) -> None:
    store = GatewayStore(tmp_path / "gateway.db", content_key=CONTENT_KEY)
    try:
        refusal = KINDS["REJECTED"]
        store.record_rejection("inbox/0/3", refusal.digest, None, refusal)  # type: ignore[arg-type]  # KINDS holds the union: a refusal
        with sqlite3.connect(tmp_path / "gateway.db") as db:
            db.execute(f"UPDATE handled SET {column} = ?", (value,))
        with pytest.raises(StoredRecordUnreadable, match="inbox/0/3") as refused:
            store.handled_at("inbox/0/3")
        assert refused.value.reason == reason
    finally:
        store.close()


def test_a_layout_1_follow_up_that_does_not_fit_stops_the_migration_at_layout_1(
    tmp_path: Path,
) -> None:
    path = tmp_path / "gateway.db"
    shutil.copyfile(LAYOUT_1, path)
    with sqlite3.connect(path) as db:
        (source,) = db.execute(
            "SELECT source FROM handled WHERE outcome = 'REJECTED:FROM_FUTURE'"
        ).fetchone()
        db.execute("UPDATE handled SET followup = '{\"kind\": \"REJECTED\"}' WHERE source = ?",
                   (source,))  # fmt: skip
    with pytest.raises(StoredRecordUnreadable, match=source) as refused:
        GatewayStore(path, content_key=CONTENT_KEY)
    assert refused.value.reason == "FOLLOWUP_INVALID"
    db = sqlite3.connect(path)
    assert db.execute("PRAGMA user_version").fetchone()[0] == 1
    columns = [row[1] for row in db.execute("PRAGMA table_info(handled)")]
    assert "reason" not in columns  # the step rolled back whole
    outcomes = {o for (o,) in db.execute("SELECT outcome FROM handled")}
    assert outcomes == {
        "DELIVERED",
        "RECEIPT",
        "REJECTED:FROM_FUTURE",
        "REJECTED:UNSUPPORTED_VERSION",
    }
