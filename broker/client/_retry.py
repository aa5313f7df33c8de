"""When to try a call again, and after how long: a pure policy the sync and async clients
both follow (they only sleep)."""

from __future__ import annotations

import random
from dataclasses import dataclass

from broker.client._errors import ApiError

MAX_ATTEMPTS = 4
"""A first try and three retries: with the default back-off they span about 3.5 s, past a
gateway restart or a Kafka leader moving, yet a caller hears of a real outage soon."""

FIRST_BACKOFF_S = 0.5
MAX_BACKOFF_S = 8.0
"""Waits double from half a second, up to 8 s: retries are spread out, never hammering."""

MAX_RETRY_AFTER_S = 60.0
"""The longest Retry-After the client waits out; a longer one ends the retries (the caller
decides then). The gateway asks for 5 s (`broker.gateway.api.RETRY_AFTER_S`)."""


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How often and how patiently retriable failures are retried. ``jitter`` spreads the
    waits of many clients (a fraction of each wait, drawn at random)."""

    attempts: int = MAX_ATTEMPTS
    first_backoff_s: float = FIRST_BACKOFF_S
    max_backoff_s: float = MAX_BACKOFF_S
    max_retry_after_s: float = MAX_RETRY_AFTER_S
    jitter: float = 0.1

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError("attempts must be at least 1")

    @classmethod
    def never(cls) -> RetryPolicy:
        """One try: every failure goes straight to the caller (the fault suite's choice)."""
        return cls(attempts=1)

    def wait_s(self, attempt: int, error: ApiError, *, repeatable: bool) -> float | None:
        """Seconds to wait before try ``attempt + 1`` after ``error`` ended try ``attempt``
        (1-based), or None to give up. A call that is not ``repeatable`` (a send without an
        idempotency key) is retried only when it is known that nothing was done."""
        if attempt >= self.attempts or not error.retriable:
            return None
        if error.outcome_unknown and not repeatable:
            return None
        if error.retry_after_s is not None:  # the gateway said when: that, not our guess
            return error.retry_after_s if error.retry_after_s <= self.max_retry_after_s else None
        backoff = min(self.first_backoff_s * 2.0 ** (attempt - 1), self.max_backoff_s)
        return backoff * (1 + self.jitter * random.random())


__all__ = ["RetryPolicy"]
