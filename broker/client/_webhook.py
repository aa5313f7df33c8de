"""Checking a webhook request, as a back office that takes pushed messages must: the
``LVVX-Signature`` header (Stripe's scheme, ``t=<unix s>,v1=<hex HMAC-SHA256(secret,
"<t>." + raw body)>``) over the raw body as received, compared in constant time, and a
timestamp within `WEBHOOK_TOLERANCE_S` of the receiver's clock, so a captured request
cannot be replayed later (docs/OPERATING.md, Webhook). Any ``v1`` may match: a gateway
rotating its secret signs with both for a while.

The layering of Fernet: `verify_webhook` → `verify_webhook_at(now)`, so tests fix the clock.
"""

from __future__ import annotations

import hmac
import time
import uuid
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from broker.api_contract import SIGNATURE_HEADER, SIGNATURE_SCHEME, WEBHOOK_TOLERANCE_S, webhook_mac
from broker.client._errors import WebhookSignatureInvalid
from broker.client._models import _Answer

SCHEME = SIGNATURE_SCHEME

MAX_HEADER_CHARS = 1024
"""A timestamp and a few signatures take under 300 characters: a longer header is not ours,
and is refused before any work."""


class WebhookMessage(_Answer):
    """A pushed message, as the webhook's body carries it. Keep it once by ``message_id``:
    a retry of the gateway's may bring it again."""

    message_id: uuid.UUID
    type: str
    sender: str
    case_id: uuid.UUID
    created_at: datetime
    message: dict[str, Any]


def _fields(header: str) -> tuple[int, list[bytes]]:
    if len(header) > MAX_HEADER_CHARS:
        raise WebhookSignatureInvalid("signature header too long", reason="MALFORMED")
    pairs = [item.strip().partition("=") for item in header.split(",")]
    if not all(eq for _, eq, _ in pairs):
        raise WebhookSignatureInvalid("signature header is not key=value", reason="MALFORMED")
    stamps = [value for name, _, value in pairs if name == "t"]
    # other schemes are skipped, so that a new one can be added beside v1
    macs = [value.encode("utf-8", errors="replace") for name, _, value in pairs if name == SCHEME]
    if len(stamps) != 1 or not (stamps[0].isascii() and stamps[0].isdigit()):
        raise WebhookSignatureInvalid("no single t=<unix seconds>", reason="MALFORMED")
    if not macs:
        raise WebhookSignatureInvalid(f"no {SCHEME}= signature", reason="MALFORMED")
    return int(stamps[0]), macs


def check_webhook_signature_at(
    secret: str | bytes, header: str, body: bytes, now: float,
    *, tolerance_s: float = WEBHOOK_TOLERANCE_S,
) -> None:  # fmt: skip
    """Return only if ``header`` signs ``body`` with ``secret`` within ``tolerance_s`` of
    ``now`` (unix seconds); `WebhookSignatureInvalid` with its reason otherwise."""
    signed_at, macs = _fields(header)
    age = now - signed_at
    if age > tolerance_s:
        raise WebhookSignatureInvalid("signed too long ago (a replay?)", reason="EXPIRED")
    if -age > tolerance_s:
        raise WebhookSignatureInvalid("signed in the future", reason="FROM_FUTURE")
    expected = webhook_mac(secret, signed_at, body).encode()
    if not any([hmac.compare_digest(expected, mac) for mac in macs]):  # all compared
        raise WebhookSignatureInvalid("signature does not match", reason="BAD_SIGNATURE")


def verify_webhook_at(
    secret: str | bytes, header: str, body: bytes, now: float,
    *, tolerance_s: float = WEBHOOK_TOLERANCE_S,
) -> WebhookMessage:  # fmt: skip
    """The message of a genuine, fresh webhook request received at ``now`` (unix seconds);
    `WebhookSignatureInvalid` otherwise (it never returns a verdict to ignore)."""
    check_webhook_signature_at(secret, header, body, now, tolerance_s=tolerance_s)
    try:
        return WebhookMessage.model_validate_json(body)
    except ValidationError as exc:  # signed by the gateway, yet not its body: a newer API?
        raise WebhookSignatureInvalid("the signed body is not a webhook message",
                                      reason="MALFORMED") from exc  # fmt: skip


def verify_webhook(
    secret: str | bytes, header: str | None, body: bytes,
    *, tolerance_s: float = WEBHOOK_TOLERANCE_S,
) -> WebhookMessage:  # fmt: skip
    """`verify_webhook_at` on this machine's clock; a missing header is MALFORMED."""
    if header is None:
        raise WebhookSignatureInvalid(f"no {SIGNATURE_HEADER} header", reason="MALFORMED")
    return verify_webhook_at(secret, header, body, time.time(), tolerance_s=tolerance_s)


__all__ = [
    "SIGNATURE_HEADER",
    "WEBHOOK_TOLERANCE_S",
    "WebhookMessage",
    "check_webhook_signature_at",
    "verify_webhook",
    "verify_webhook_at",
]
