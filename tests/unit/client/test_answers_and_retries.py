"""The pure parts: which answer is which error (every status class, the API's reasons that
change the class), Retry-After in both of its forms, and the retry policy's decisions."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import httpx
import pytest

from broker.client import (
    MAX_WAIT_S,
    ApiError,
    Conflict,
    GatewayFailed,
    NotFound,
    NotReached,
    OutcomeUnknown,
    RequestRefused,
    RetryPolicy,
    Unauthorized,
    Unavailable,
)
from broker.client import _calls as calls
from broker.client._answers import error_for, retry_after_s
from broker.errors import LocalError, RemoteError

NOW = datetime(2026, 5, 1, 12, 0, tzinfo=UTC).timestamp()

ANSWERS: dict[str, tuple[int, str | None, type[ApiError], bool, bool]] = {
    # status, reason → class, retriable, outcome unknown
    "schema": (422, "SCHEMA_VIOLATION", RequestRefused, False, False),
    "policy": (403, "POLICY_DENIED", RequestRefused, False, False),
    "too-large": (413, "TOO_LARGE", RequestRefused, False, False),
    "token": (401, "UNAUTHORIZED", Unauthorized, False, False),
    "missing": (404, "NOT_FOUND", NotFound, False, False),
    "ambiguous": (409, "AMBIGUOUS_MESSAGE_ID", Conflict, False, False),
    "key-reused": (409, "IDEMPOTENCY_CONFLICT", Conflict, False, False),
    "key-in-flight": (409, "IDEMPOTENCY_IN_PROGRESS", Unavailable, True, False),
    "too-many": (429, None, Unavailable, True, False),
    "log-away": (503, "TRANSPORT_UNAVAILABLE", Unavailable, True, False),
    "stopping": (503, "STOPPING", Unavailable, True, False),
    "not-ready": (503, "NOT_READY", Unavailable, True, False),
    "log-timed-out": (503, "TRANSPORT_TIMEOUT", OutcomeUnknown, True, True),
    "proxy-gave-up": (504, None, OutcomeUnknown, True, True),
    "bad-gateway": (502, None, OutcomeUnknown, True, True),
    "bug": (500, None, GatewayFailed, False, True),
}


@pytest.mark.parametrize("case", ANSWERS, ids=list(ANSWERS))
def test_each_answer_is_its_error_by_whose_fault(case: str) -> None:
    status, reason, kind, retriable, unknown = ANSWERS[case]
    body = json.dumps({"reason": reason, "detail": "why"}).encode() if reason else b"<html>"

    error = error_for("send", status, {"retry-after": "3"}, body, now=NOW)

    assert type(error) is kind
    assert (error.status, error.reason) == (status, reason or f"HTTP_{status}")
    assert (error.retriable, error.outcome_unknown, error.retry_after_s) == (retriable, unknown, 3)
    assert isinstance(
        error, LocalError if status < 500 and kind is not Unavailable else RemoteError
    )
    assert str(error).startswith(f"[{error.reason}] send: HTTP {status}")


def test_retry_after_is_seconds_or_a_date() -> None:
    later = datetime.fromtimestamp(NOW, UTC) + timedelta(seconds=90)
    assert retry_after_s("7", now=NOW) == 7.0
    assert retry_after_s(format_datetime(later, usegmt=True), now=NOW) == 90.0
    assert retry_after_s(format_datetime(later - timedelta(hours=1), usegmt=True), now=NOW) == 0
    assert retry_after_s("soon", now=NOW) is None
    assert retry_after_s(None, now=NOW) is None


def test_the_policy_retries_only_what_can_help() -> None:
    policy = RetryPolicy(attempts=3, first_backoff_s=1.0, max_backoff_s=1.5, jitter=0.0)
    away = Unavailable("x", status=503, retry_after_s=5.0)
    unreached = NotReached("x")
    unknown = OutcomeUnknown("x")

    assert policy.wait_s(1, away, repeatable=False) == 5.0  # nothing was sent: always safe
    assert policy.wait_s(1, unreached, repeatable=True) == 1.0
    assert policy.wait_s(2, unreached, repeatable=True) == 1.5  # capped
    assert policy.wait_s(3, unreached, repeatable=True) is None  # the last try
    assert policy.wait_s(1, unknown, repeatable=True) == 1.0
    assert policy.wait_s(1, unknown, repeatable=False) is None  # it may have been sent
    assert policy.wait_s(1, RequestRefused("x", status=422), repeatable=True) is None
    too_long = Unavailable("x", status=503, retry_after_s=policy.max_retry_after_s + 1)
    assert policy.wait_s(1, too_long, repeatable=True) is None
    assert RetryPolicy.never().wait_s(1, unreached, repeatable=True) is None
    with pytest.raises(ValueError):
        RetryPolicy(attempts=0)


def test_jitter_spreads_the_waits_within_its_fraction() -> None:
    policy = RetryPolicy(first_backoff_s=1.0, jitter=0.5)
    waits = {policy.wait_s(1, NotReached("x"), repeatable=True) for _ in range(50)}
    assert len(waits) > 1 and all(w is not None and 1.0 <= w <= 1.5 for w in waits)


def test_a_long_poll_outlasts_its_wait_and_both_limits_are_checked() -> None:
    call = calls.inbox(10, 20.0, read_timeout_s=None)
    assert (call.params, call.read_timeout_s) == ({"limit": 10, "wait": 20.0}, 25.0)
    with httpx.Client(timeout=httpx.Timeout(3.0, connect=1.0)) as http:
        built = call.request(http)
    assert built.extensions["timeout"] == {"connect": 1.0, "read": 25.0, "write": 3.0, "pool": 3.0}
    assert calls.inbox(10, 0.0, read_timeout_s=None).params == {"limit": 10}
    for limit, wait, reason in ((0, 0.0, "BAD_LIMIT"), (501, 0.0, "BAD_LIMIT"),
                                (10, MAX_WAIT_S + 1, "BAD_WAIT"), (10, -1.0, "BAD_WAIT")):  # fmt: skip
        with pytest.raises(LocalError) as refused:
            calls.inbox(limit, wait, read_timeout_s=None)
        assert refused.value.reason == reason
