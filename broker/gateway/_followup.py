"""What must follow a record once the gateway has decided about it: the receipt to the
sender, the dead letter, and the audit events — published together in one atomic write.

The decision is stored first (with this follow-up, as JSON) and the follow-up published
after; a crash in between is repaired when the log delivers the record again, by
publishing the stored follow-up. Receipts are sealed at publication, so a repeated
publication after a crash sends a receipt with a new id for the same message, which the
sender counts once.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

from broker.audit import EventSpec
from broker.errors import EnvelopeRejected, RejectReason
from broker.models import (
    AuditAction,
    AuditOutcome,
    DeliveryReceipt,
    EnvelopeHeader,
    ReceiptOutcome,
)
from broker.transport import OutgoingRecord, Record

# Rejections after which the sender is authenticated and addressed us, so it may be told.
ANSWERABLE = frozenset(RejectReason) - {
    RejectReason.TOO_LARGE, RejectReason.MALFORMED, RejectReason.UNSUPPORTED_VERSION,
    RejectReason.UNKNOWN_SENDER, RejectReason.SENDER_KEY_INVALID, RejectReason.BAD_SIGNATURE,
    RejectReason.NOT_A_RECIPIENT, RejectReason.REPLAY,
}  # fmt: skip


def _about(h: EnvelopeHeader, digest: bytes) -> dict[str, Any]:
    return {
        "message_id": str(h.message_id), "message_type": h.message_type, "sender": h.sender,
        "recipients": list(h.recipients), "case_id": str(h.case_id), "digest": digest.hex(),
        "correlation_id": str(h.correlation_id) if h.correlation_id else None,
    }  # fmt: skip


def delivered(h: EnvelopeHeader, digest: bytes) -> dict[str, Any]:
    return {"kind": "DELIVERED", **_about(h, digest)}


def receipt_received(h: EnvelopeHeader, receipt: DeliveryReceipt, digest: bytes) -> dict[str, Any]:
    return {
        "kind": "RECEIPT", **_about(h, digest), "receipted_message_id": str(receipt.message_id),
        "receipted_type": receipt.message_type, "outcome": receipt.outcome.value, "reason": receipt.reason,
    }  # fmt: skip


def rejected(reason: str, rejection: EnvelopeRejected | None, digest: bytes) -> dict[str, Any]:
    """A refusal; the sender is answered only if it is authenticated, addressed us, and did
    not send a receipt (answering receipts could loop between two gateways)."""
    h = rejection.authenticated_header if rejection is not None else None
    about = _about(h, digest) if h is not None else {"digest": digest.hex()}
    answer = (
        rejection is not None
        and h is not None
        and rejection.reject_reason in ANSWERABLE
        and h.message_type != DeliveryReceipt.avro_name
    )
    return {"kind": "REJECTED", **about, "reason": reason, "answer": answer}


def _uuid(value: str | None) -> uuid.UUID | None:
    return uuid.UUID(value) if value else None


def _event(action: AuditAction, f: dict[str, Any], **changes: Any) -> EventSpec:
    fields: dict[str, Any] = {
        "message_id": _uuid(f.get("message_id")), "message_type": f.get("message_type"),
        "sender": f.get("sender"), "recipients": tuple(f.get("recipients", ())),
        "case_id": _uuid(f.get("case_id")), "envelope_sha256": bytes.fromhex(f["digest"]),
    }  # fmt: skip
    fields.update(changes)
    return EventSpec(action=action, **fields)


def receipt_wanted(f: dict[str, Any]) -> tuple[ReceiptOutcome, str | None] | None:
    """The outcome and reason of the receipt that answers the record ``f`` describes, if
    it is answered."""
    if f["kind"] == "DELIVERED":
        return ReceiptOutcome.ACCEPTED, None
    if f["kind"] == "REJECTED" and f["answer"]:
        return ReceiptOutcome.REJECTED, f["reason"]
    return None


def publication(
    f: dict[str, Any], record: Record, *, me: str, dead_letter: Callable[[Record, dict[str, Any]], OutgoingRecord],
    receipt: OutgoingRecord | None,
) -> tuple[list[OutgoingRecord], list[EventSpec]]:  # fmt: skip
    """The records and audit events that follow ``record``, handled as ``f`` says.
    ``receipt`` is the sealed answer `receipt_wanted` asked for; None if none was wanted
    or it could not be sealed (the sender left the directory): then nothing is answered."""
    kind = f["kind"]
    if kind == "DELIVERED":
        if receipt is None:
            return [], [_event(AuditAction.DELIVERED, f)]
        return [receipt], [
            _event(AuditAction.DELIVERED, f),
            _event(AuditAction.RECEIPT_SENT, f, sender=me, recipients=(f["sender"],)),
        ]
    if kind == "RECEIPT":
        ok = f["outcome"] == ReceiptOutcome.ACCEPTED.value
        return [], [
            _event(
                AuditAction.RECEIPT_RECEIVED, f, message_id=_uuid(f["receipted_message_id"]),
                message_type=f["receipted_type"], outcome=AuditOutcome.OK if ok else AuditOutcome.FAILED,
                reason=f["reason"],
            )
        ]  # fmt: skip
    records = [dead_letter(record, f)]
    events = [_event(AuditAction.REJECTED, f, outcome=AuditOutcome.FAILED, reason=f["reason"])]
    if receipt is not None:
        records.append(receipt)
        events.append(
            _event(AuditAction.RECEIPT_SENT, f, sender=me, recipients=(f["sender"],),
                   outcome=AuditOutcome.FAILED, reason=f["reason"])
        )  # fmt: skip
    return records, events
