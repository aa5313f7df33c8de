"""The durable records of exactly-once delivery are typed (`broker.gateway._followup_models`):
each follow-up is stored with its kind and version and read back equal, or refused with a
reason code — an unknown kind or version, a field missing, extra or of the wrong type — as a
`StoredRecordUnreadable`, never a KeyError.
"""

from __future__ import annotations

import json
import uuid

import pytest

from broker._errors import RejectReason
from broker.gateway import PROCESSING_FAILED
from broker.gateway._followup_models import (
    EnvelopeFacts,
    FollowUp,
    ReceiptFollowUp,
    RejectionFollowUp,
    dumps,
    loads,
)
from broker.gateway._store_errors import StoredRecordUnreadable, StoreError
from broker.models import ReceiptOutcome, ReceiptReason
from tests.stores import delivery_followup, rejection_followup

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
    assert loads(dumps(followup), source="inbox/0/0").reason == PROCESSING_FAILED  # type: ignore[union-attr]
