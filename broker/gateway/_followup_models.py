"""The follow-ups a gateway stores with each decision, as typed records (`broker.gateway.
_followup` says what they are for).

A follow-up is stored as JSON in the `handled` table and read back after a crash, maybe
by a later version of the gateway. Each kind is a frozen model with two fixed fields: its
``kind`` (the union's tag) and its ``version`` (the form of that kind; bumped when its
fields change, together with a store migration or a reader of the old form). Reading is
strict: a follow-up of an unknown kind or version, or with a field missing, extra or of the
wrong type, is a `StoredRecordUnreadable`, never a guess.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Final, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from broker.errors import RejectReason
from broker.gateway._store_errors import StoredRecordUnreadable
from broker.models import (
    AvroFullName,
    EnvelopeHeader,
    PartyId,
    ReceiptOutcome,
    ReceiptReason,
    Sha256,
    Traceparent,
)

PROCESSING_FAILED: Final = "PROCESSING_FAILED"
"""DLQ reason for a record this gateway could not handle (a fault of ours, not the sender's)."""

RefusalReason = RejectReason | Literal["PROCESSING_FAILED"]
"""Why a gateway refused a record: an envelope check, a store rule (REPLAY), or a fault of ours."""


class _Stored(BaseModel):
    model_config = ConfigDict(
        frozen=True, extra="forbid", strict=True, ser_json_bytes="hex", val_json_bytes="hex"
    )


class EnvelopeFacts(_Stored):
    """What a follow-up needs of an authenticated envelope's header: whom to answer, and
    what its audit events say about the message."""

    message_id: uuid.UUID
    message_type: AvroFullName
    sender: PartyId
    recipients: tuple[PartyId, ...]
    case_id: uuid.UUID
    correlation_id: uuid.UUID | None
    traceparent: Traceparent | None = None
    """The envelope's (format 3). Optional with a default: a follow-up stored before trace
    context reads as it was (its version stays 1), with no trace."""

    @classmethod
    def of(cls, h: EnvelopeHeader) -> EnvelopeFacts:
        return cls(message_id=h.message_id, message_type=h.message_type, sender=h.sender,
                   recipients=tuple(h.recipients), case_id=h.case_id,
                   correlation_id=h.correlation_id, traceparent=h.traceparent)  # fmt: skip


# ``version`` has no default: a stored follow-up without one is refused, not taken for 1.


class DeliveryFollowUp(_Stored):
    """A message taken into the inbox: its DELIVERED event and an ACCEPTED receipt."""

    kind: Literal["DELIVERED"] = "DELIVERED"
    version: Literal[1]
    digest: Sha256
    envelope: EnvelopeFacts


class ReceiptFollowUp(_Stored):
    """A receipt for a message this gateway sent (``envelope`` is the receipt's own): its
    RECEIPT_RECEIVED event."""

    kind: Literal["RECEIPT"] = "RECEIPT"
    version: Literal[1]
    digest: Sha256
    envelope: EnvelopeFacts
    receipted_message_id: uuid.UUID
    receipted_type: AvroFullName
    outcome: ReceiptOutcome
    reason: ReceiptReason | None


class RejectionFollowUp(_Stored):
    """A refused record: its dead letter, its REJECTED event, and — if ``answer`` — a
    REJECTED receipt to its sender. ``envelope`` is None unless its signature verified."""

    kind: Literal["REJECTED"] = "REJECTED"
    version: Literal[1]
    digest: Sha256
    envelope: EnvelopeFacts | None
    reason: RefusalReason
    answer: bool


FollowUp = Annotated[
    DeliveryFollowUp | ReceiptFollowUp | RejectionFollowUp, Field(discriminator="kind")
]

"""One of the kinds above, told apart by ``kind``."""

_FOLLOW_UP: TypeAdapter[FollowUp] = TypeAdapter(FollowUp)


def dumps(followup: FollowUp) -> str:
    """The stored form: JSON with ``kind`` and ``version`` first."""
    return followup.model_dump_json()


def loads(text: str, *, source: str) -> FollowUp:
    """Read the follow-up stored for the record at ``source``, strictly."""
    try:
        return _FOLLOW_UP.validate_json(text)
    except ValidationError as exc:
        raise _unreadable(exc, source) from None


def _unreadable(exc: ValidationError, source: str) -> StoredRecordUnreadable:
    error = exc.errors(include_url=False)[0]
    where = ".".join(str(part) for part in error["loc"][1:])
    if error["type"] in ("union_tag_invalid", "union_tag_not_found"):
        reason, what = "FOLLOWUP_KIND_UNKNOWN", f"of no known kind ({error['msg']})"
    elif where == "version":
        reason, what = "FOLLOWUP_VERSION_UNKNOWN", f"of no known version ({error['msg']})"
    else:
        reason, what = "FOLLOWUP_INVALID", f"invalid at {where or 'the top'} ({error['msg']})"
    return StoredRecordUnreadable(
        f"the follow-up stored for the record at {source} is {what}", reason=reason
    )
