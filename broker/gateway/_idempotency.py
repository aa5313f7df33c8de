"""Idempotent sends: the rules, with no I/O (draft-ietf-httpapi-idempotency-key-header).

A back office that does not know whether a send went through (a timeout, a gateway killed
before it answered) sends the same request again with the same ``Idempotency-Key``; the
gateway answers what it answered the first time and sends nothing new. The rules:

- a key is 1–`MAX_IDEMPOTENCY_KEY_CHARS` printable ASCII characters, as the draft's sf-string allows;
  the structured-field form ``"..."`` names the same key as its bare content;
- the same key with the same body (its `fingerprint`) → the first answer, nothing sent;
- the same key with another body → `IdempotencyConflict` (409; the draft says 422, the
  API's contract is 409 with this reason code);
- the same key while its first request is in flight, or while its outcome is being settled
  → `IdempotencyInProgress` (409 with Retry-After, as the draft says);
- only a send that was taken (202) keeps its key: a refused request (403, 422, 503) left
  nothing behind, so the same key may be tried again;
- a key is kept `KEEP_KEYS_FOR`: as long as the message could still be accepted anywhere.

No personal data is kept: the store holds a SHA-256 of the key (a back office could put a
case number in it) and of the body, never either. Keys are scoped to the gateway, which
serves one back office with one token.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from broker.api_contract import IDEMPOTENCY_HEADER, MAX_IDEMPOTENCY_KEY_CHARS, is_idempotency_key
from broker.crypto import MAX_CLOCK_SKEW, MAX_TTL
from broker.errors import LocalError

HEADER = IDEMPOTENCY_HEADER
BATCH_FIELD = "idempotency_key"
"""The field of a ``POST /v1/messages:batch`` item that carries its key."""

KEEP_KEYS_FOR = MAX_TTL + MAX_CLOCK_SKEW
"""A retry later than an envelope's maximum lifetime could not be delivered anyway."""

IN_PROGRESS_RETRY_AFTER_S = 1
"""Retry-After of `IdempotencyInProgress`: a send in flight ends within milliseconds, one
being settled after an unknown outcome within a read of the audit topic."""

_KEY_TAG, _BODY_TAG = b"lvvx/idempotency-key/v1\x00", b"lvvx/idempotency-body/v1\x00"


class InvalidIdempotencyKey(LocalError):
    reason = "INVALID_IDEMPOTENCY_KEY"


class IdempotencyConflict(LocalError):
    """The key was used for another body."""

    reason = "IDEMPOTENCY_CONFLICT"


class IdempotencyInProgress(LocalError):
    """The key's first request has no final answer yet: try again after Retry-After."""

    reason = "IDEMPOTENCY_IN_PROGRESS"
    retriable = True


@dataclass(frozen=True, slots=True)
class Claim:
    """A request's key and body, as the store keeps them: digests only."""

    key_sha256: bytes
    body_sha256: bytes


@dataclass(frozen=True, slots=True)
class Recorded:
    """What the store holds for a key: the message its first request sent."""

    message_id: uuid.UUID
    body_sha256: bytes
    confirmed: bool
    """The log took the message. Unconfirmed and not in flight: the gateway died or timed
    out between noting the send and hearing from the log; the outcome must be settled."""


def parse_key(value: str) -> str:
    """The key a header (or batch field) names; `InvalidIdempotencyKey` if it is none."""
    key = value
    if len(value) >= 2 and value[0] == value[-1] == '"':  # RFC 8941 sf-string
        key = value[1:-1].replace('\\"', '"').replace("\\\\", "\\")
    if not is_idempotency_key(key):
        raise InvalidIdempotencyKey(
            f"an {HEADER} is 1 to {MAX_IDEMPOTENCY_KEY_CHARS} printable ASCII characters"
        )
    return key


def fingerprint(body: Any) -> bytes:
    """SHA-256 of a request body in canonical JSON (sorted keys, no spaces): the same
    request, however its JSON was laid out, has the same fingerprint."""
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(_BODY_TAG + canonical.encode()).digest()


def claim(key: str, body: Any) -> Claim:
    """The claim of a valid ``key`` (`parse_key`) for ``body`` (JSON-able)."""
    return Claim(hashlib.sha256(_KEY_TAG + key.encode()).digest(), fingerprint(body))


def decide(claim: Claim, recorded: Recorded | None, *, in_flight: bool) -> uuid.UUID | None:
    """The first answer's message id if ``claim`` repeats a send that was taken; None if
    it is new (send it). Raises `IdempotencyConflict` for another body under the key, and
    `IdempotencyInProgress` while its first request is in flight or unsettled."""
    if recorded is not None and recorded.body_sha256 != claim.body_sha256:
        raise IdempotencyConflict(f"the {HEADER} was used for another request body")
    if in_flight or (recorded is not None and not recorded.confirmed):
        raise IdempotencyInProgress(f"the first request with this {HEADER} is not answered yet")
    return recorded.message_id if recorded is not None else None


def keep_until_ms(now_ms: int) -> int:
    return now_ms + int(KEEP_KEYS_FOR / timedelta(milliseconds=1))
