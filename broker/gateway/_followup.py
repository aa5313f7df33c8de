"""What must follow a record once the gateway has decided about it: the receipt to the
sender, the dead letter, and the audit events — published together in one atomic write.

The decision is stored first (with this follow-up, a typed record of
`broker.gateway._followup_models`) and the follow-up published after; a crash in between is
repaired when the log delivers the record again, by publishing the stored follow-up.
Receipts are sealed at publication, so a repeated publication after a crash sends a receipt
with a new id for the same message, which the sender counts once.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from broker import tracecontext as tc
from broker.audit import EventSpec
from broker.errors import EnvelopeRejected, RejectReason
from broker.gateway._followup_models import (
    DeliveryFollowUp,
    EnvelopeFacts,
    FollowUp,
    ReceiptFollowUp,
    RefusalReason,
    RejectionFollowUp,
)
from broker.models import (
    AuditAction,
    AuditOutcome,
    DeliveryReceipt,
    EnvelopeHeader,
    ReceiptOutcome,
)
from broker.tracecontext import TraceParent
from broker.transport import OutgoingRecord, Record

# Rejections after which the sender is authenticated and addressed us, so it may be told.
ANSWERABLE = frozenset(RejectReason) - {
    RejectReason.TOO_LARGE, RejectReason.MALFORMED, RejectReason.UNSUPPORTED_VERSION,
    RejectReason.UNKNOWN_SENDER, RejectReason.SENDER_KEY_INVALID, RejectReason.BAD_SIGNATURE,
    RejectReason.NOT_A_RECIPIENT, RejectReason.REPLAY,
}  # fmt: skip


def delivered(h: EnvelopeHeader, digest: bytes) -> DeliveryFollowUp:
    return DeliveryFollowUp(version=1, digest=digest, envelope=EnvelopeFacts.of(h))


def receipt_received(h: EnvelopeHeader, receipt: DeliveryReceipt, digest: bytes) -> ReceiptFollowUp:
    return ReceiptFollowUp(
        version=1, digest=digest, envelope=EnvelopeFacts.of(h), receipted_message_id=receipt.message_id,
        receipted_type=receipt.message_type, outcome=receipt.outcome, reason=receipt.reason,
    )  # fmt: skip


def rejected(
    reason: RefusalReason, rejection: EnvelopeRejected | None, digest: bytes
) -> RejectionFollowUp:
    """A refusal; the sender is answered only if it is authenticated, addressed us, and did
    not send a receipt (answering receipts could loop between two gateways)."""
    h = rejection.authenticated_header if rejection is not None else None
    answer = (
        rejection is not None
        and h is not None
        and rejection.reject_reason in ANSWERABLE
        and h.message_type != DeliveryReceipt.avro_name
    )
    envelope = EnvelopeFacts.of(h) if h is not None else None
    return RejectionFollowUp(
        version=1, digest=digest, envelope=envelope, reason=reason, answer=answer
    )


# --- trace context: each step's span, derived from the record (broker.tracecontext.derived) ---


def _parent(e: EnvelopeFacts | None) -> TraceParent | None:
    return tc.parse(e.traceparent) if e is not None and e.traceparent is not None else None


def delivery_span(e: EnvelopeFacts | None, digest: bytes, me: str) -> TraceParent:
    """This gateway's span for taking the record in (delivering, receiving a receipt or
    refusing it): in the envelope's trace, a child of the sender's span. The back office
    gets it with the message (``traceparent`` of the inbox item and the webhook)."""
    return tc.derived(_parent(e), digest + me.encode(), "take")  # each recipient its own


def receipt_span(e: EnvelopeFacts | None, digest: bytes, me: str) -> TraceParent:
    """The span of the receipt that answers the record: a child of `delivery_span`; the
    receipt's envelope carries it back to the sender."""
    return tc.derived(delivery_span(e, digest, me), digest + me.encode(), "receipt")


def _trace(action: AuditAction, f: FollowUp, me: str) -> dict[str, Any]:
    take = delivery_span(f.envelope, f.digest, me)
    if action is AuditAction.RECEIPT_SENT:
        receipt = receipt_span(f.envelope, f.digest, me)
        return {"traceparent": str(receipt), "parent_span_id": take.span_id}
    parent = _parent(f.envelope)
    return {"traceparent": str(take), "parent_span_id": parent.span_id if parent else None}


def _event(action: AuditAction, f: FollowUp, me: str, **changes: Any) -> EventSpec:
    fields: dict[str, Any] = {"envelope_sha256": f.digest, **_trace(action, f, me)}
    if (e := f.envelope) is not None:
        fields |= {
            "message_id": e.message_id, "message_type": e.message_type, "sender": e.sender,
            "recipients": e.recipients, "case_id": e.case_id,
        }  # fmt: skip
    return EventSpec(action=action, **(fields | changes))


@dataclass(frozen=True, slots=True)
class Answer:
    """What the receipt that answers a record says: which message (and envelope bytes) it
    is about, the outcome, and the reason of a refusal."""

    envelope: EnvelopeFacts
    digest: bytes
    outcome: ReceiptOutcome
    reason: RefusalReason | None = None


def receipt_wanted(f: FollowUp) -> Answer | None:
    """The answer to the record ``f`` describes, if its sender is answered."""
    match f:
        case DeliveryFollowUp():
            return Answer(f.envelope, f.digest, ReceiptOutcome.ACCEPTED)
        case RejectionFollowUp(envelope=EnvelopeFacts() as envelope, answer=True):
            return Answer(envelope, f.digest, ReceiptOutcome.REJECTED, f.reason)
        case _:
            return None


def publication(
    f: FollowUp, record: Record, *, me: str, dead_letter: Callable[[Record, RejectionFollowUp], OutgoingRecord],
    receipt: OutgoingRecord | None,
) -> tuple[list[OutgoingRecord], list[EventSpec]]:  # fmt: skip
    """The records and audit events that follow ``record``, handled as ``f`` says.
    ``receipt`` is the sealed answer `receipt_wanted` asked for; None if none was wanted
    or it could not be sealed (the sender left the directory): then nothing is answered."""
    match f:
        case DeliveryFollowUp():
            if receipt is None:
                return [], [_event(AuditAction.DELIVERED, f, me)]
            return [receipt], [
                _event(AuditAction.DELIVERED, f, me),
                _event(AuditAction.RECEIPT_SENT, f, me, sender=me, recipients=(f.envelope.sender,)),
            ]
        case ReceiptFollowUp():
            ok = f.outcome is ReceiptOutcome.ACCEPTED
            return [], [
                _event(
                    AuditAction.RECEIPT_RECEIVED, f, me, message_id=f.receipted_message_id,
                    message_type=f.receipted_type, outcome=AuditOutcome.OK if ok else AuditOutcome.FAILED,
                    reason=f.reason,
                )
            ]  # fmt: skip
        case RejectionFollowUp():
            records = [dead_letter(record, f)]
            events = [
                _event(AuditAction.REJECTED, f, me, outcome=AuditOutcome.FAILED, reason=f.reason)
            ]
            if receipt is not None and f.envelope is not None:
                records.append(receipt)
                events.append(
                    _event(AuditAction.RECEIPT_SENT, f, me, sender=me, recipients=(f.envelope.sender,),
                           outcome=AuditOutcome.FAILED, reason=f.reason)
                )  # fmt: skip
            return records, events
