"""An HTTP answer of the gateway's API, turned into the error it means (no I/O here: the
sync and async clients both hand their answers to `error_for`)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from email.utils import parsedate_to_datetime
from typing import Any

from broker.client._errors import (
    ApiError,
    Conflict,
    GatewayFailed,
    NotFound,
    OutcomeUnknown,
    RequestRefused,
    Unauthorized,
    Unavailable,
)

IN_PROGRESS = "IDEMPOTENCY_IN_PROGRESS"
"""409 while the first request of the same idempotency key is still being carried out."""

UNKNOWN_OUTCOME_REASONS = frozenset({"TRANSPORT_TIMEOUT"})
"""503 reasons after which the write may have happened: the gateway's own Kafka request
timed out (docs/OPERATING.md, Reason codes). Every other 503 means nothing was sent."""

LOST_ANSWER_STATUSES = frozenset({502, 504})
"""A proxy in front of the gateway gave up on it: the request may have been carried out."""


def retry_after_s(value: str | None, *, now: float) -> float | None:
    """``Retry-After`` (RFC 9110 §10.2.3) in seconds from ``now`` (unix seconds): a number of
    seconds or an HTTP date; None when absent or unreadable."""
    if value is None:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - now)


def _problem(body: bytes) -> tuple[str | None, Any]:
    """``reason`` and ``detail`` of an API error body (``{"reason", "detail"}``), if it is one."""
    try:
        parsed = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return None, None
    if not isinstance(parsed, dict) or not isinstance(parsed.get("reason"), str):
        return None, None
    return parsed["reason"], parsed.get("detail")


def error_for(
    operation: str, status: int, headers: Mapping[str, str], body: bytes, *, now: float
) -> ApiError:
    """The error a non-success answer means, with its reason code and Retry-After."""
    reason, detail = _problem(body)
    wait = retry_after_s(headers.get("retry-after"), now=now)
    return error_of(operation, status, reason, detail, retry_after_s=wait)


def error_of(
    operation: str, status: int, reason: str | None, detail: Any, *,
    retry_after_s: float | None = None,
) -> ApiError:  # fmt: skip
    """The error of ``status`` and ``reason`` (an answer's, or a batch item's)."""
    reason = reason or f"HTTP_{status}"
    said = f"{operation}: HTTP {status} {reason}"
    if isinstance(detail, str):
        said += f": {detail}"
    kind: type[ApiError]
    if status == 401:
        kind = Unauthorized
    elif status == 404:
        kind = NotFound
    elif status == 409:
        kind = Unavailable if reason == IN_PROGRESS else Conflict
    elif status == 429 or (status == 503 and reason not in UNKNOWN_OUTCOME_REASONS):
        kind = Unavailable
    elif status == 503 or status in LOST_ANSWER_STATUSES:
        kind = OutcomeUnknown
    elif 400 <= status < 500:
        kind = RequestRefused
    else:
        kind = GatewayFailed
    return kind(said, reason=reason, status=status, detail=detail, retry_after_s=retry_after_s)


__all__ = ["error_for", "error_of", "retry_after_s"]
