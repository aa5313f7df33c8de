"""What both ends of the gateway's HTTP API must agree on, written once: the bodies it
answers with — the gateway builds and describes them (its OpenAPI at /openapi.json), the
client SDK (`broker.client`) reads them, ignoring fields it does not know so that it keeps
working against a newer gateway —, what an idempotency key may be, and how a webhook
request is signed (the gateway signs, `broker.client.verify_webhook` checks)."""

from __future__ import annotations

import hashlib
import hmac
import uuid
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from broker.models import AvroModel, model_for

IDEMPOTENCY_HEADER = "Idempotency-Key"
MAX_IDEMPOTENCY_KEY_CHARS = 255
"""Longer keys are refused: a UUID (36) fits many times over; the IETF draft sets no limit."""


def is_idempotency_key(key: str) -> bool:
    """1 to `MAX_IDEMPOTENCY_KEY_CHARS` printable ASCII characters, as the draft's
    sf-string allows."""
    return 1 <= len(key) <= MAX_IDEMPOTENCY_KEY_CHARS and all(" " <= c <= "~" for c in key)


SIGNATURE_HEADER = "LVVX-Signature"
SIGNATURE_SCHEME = "v1"  # HMAC-SHA256 over "<t>.<body>"; a new scheme gets a new name

WEBHOOK_TOLERANCE_S = 300.0
"""The replay window a receiver applies: 5 minutes covers clocks apart and a slow request,
and bounds how long a captured request stays usable."""


def webhook_mac(secret: str | bytes, timestamp: int, body: bytes) -> str:
    """The hex HMAC-SHA256 of ``"<timestamp>." + body`` under the webhook's secret (Stripe's
    scheme): what ``v1=`` carries in the `SIGNATURE_HEADER`."""
    key = secret.encode() if isinstance(secret, str) else secret
    return hmac.new(key, b"%d." % timestamp + body, hashlib.sha256).hexdigest()


def webhook_signature(secret: str | bytes, body: bytes, timestamp: int) -> str:
    """The `SIGNATURE_HEADER` value for ``body`` sent at ``timestamp`` (unix seconds)."""
    return f"t={timestamp},{SIGNATURE_SCHEME}={webhook_mac(secret, timestamp, body)}"


class Body(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")


class Accepted(Body):
    message_id: uuid.UUID
    status: Literal["SENT"] = "SENT"


class Problem(Body):
    reason: str = Field(description="Machine-readable reason code, e.g. POLICY_DENIED.")
    detail: Any = None


class BatchItem(Body):
    """One item's answer: ``status`` is what POST /v1/messages would have answered."""

    status: int
    message_id: uuid.UUID | None = None
    reason: str | None = Field(None, description="Why it was not sent (a reason code).")
    detail: Any = None


class BatchAnswer(Body):
    items: list[BatchItem] = Field(description="One answer per item, in the items' order.")


class MessageStatus(Body):
    """A sent message: ``SENT`` until every recipient's receipt came, then ``RECEIPTED``
    (all accepted) or ``REJECTED``; ``receipts`` by recipient."""

    message_id: uuid.UUID
    type: str
    case_id: uuid.UUID
    recipients: list[str]
    sent_at: datetime
    status: Literal["SENT", "RECEIPTED", "REJECTED"]
    overdue: bool
    receipts: dict[str, dict[str, Any]]


class InboxEntry(Body):
    """A delivered message not yet acknowledged; ``message`` is its JSON form."""

    message_id: uuid.UUID
    type: str
    sender: str
    case_id: uuid.UUID
    created_at: datetime
    received_at: datetime
    message: dict[str, Any]
    traceparent: str | None = None
    """W3C Trace Context of the receiving gateway's delivery: continue the trace from it
    (None for a message delivered before trace context)."""

    def model(self) -> AvroModel:
        """The message as its Avro model (`broker.models`); `UnknownSchema` for a type this
        version of the package does not know."""
        return model_for(self.type).model_validate(self.message)


class Inbox(Body):
    items: list[InboxEntry]


__all__ = [
    "IDEMPOTENCY_HEADER",
    "MAX_IDEMPOTENCY_KEY_CHARS",
    "SIGNATURE_HEADER",
    "SIGNATURE_SCHEME",
    "WEBHOOK_TOLERANCE_S",
    "Accepted",
    "BatchAnswer",
    "BatchItem",
    "Body",
    "Inbox",
    "InboxEntry",
    "MessageStatus",
    "Problem",
    "is_idempotency_key",
    "webhook_mac",
    "webhook_signature",
]
