"""What a call to a gateway's API can end in, as the package's errors: split by whose fault
it is (`LocalError`: fix the request; `RemoteError`: the gateway or the way to it), each
with the API's ``reason`` code, its HTTP ``status`` and whether trying again can help.

``outcome_unknown`` is the one thing a sender must know beyond ``retriable``: the request
may have been carried out although no success came back (no answer, a gateway that timed
out on its log). With the idempotency key the client sets on every send, sending again is
safe then; without one, check ``GET /v1/messages/{id}`` first.
"""

from __future__ import annotations

from typing import Any

from broker.errors import LocalError, LvvError, RemoteError


class ApiError(LvvError):
    """Root of the client's errors. ``status`` is None when no HTTP answer came at all;
    ``retry_after_s`` is the gateway's ``Retry-After``, when it gave one."""

    outcome_unknown: bool = False

    def __init__(
        self,
        message: str,
        *,
        reason: str | None = None,
        status: int | None = None,
        detail: Any = None,
        retry_after_s: float | None = None,
        retriable: bool | None = None,
        outcome_unknown: bool | None = None,
    ) -> None:
        super().__init__(message, reason=reason)
        self.status = status
        self.detail = detail
        self.retry_after_s = retry_after_s
        if retriable is not None:
            self.retriable = retriable
        if outcome_unknown is not None:
            self.outcome_unknown = outcome_unknown


# --- the caller's fault: the same request fails the same way ------------------------------


class RequestRefused(ApiError, LocalError):
    """4xx: the request breaks the schema, the policy or a limit; it was not carried out."""


class Unauthorized(RequestRefused):
    """401: the bearer token is missing or wrong."""

    reason = "UNAUTHORIZED"


class NotFound(RequestRefused):
    """404: no such message (sent from this gateway, or in its inbox)."""

    reason = "NOT_FOUND"


class Conflict(RequestRefused):
    """409: an idempotency key reused for another body, or an ambiguous message id."""


# --- the gateway's or the network's fault -------------------------------------------------


class GatewayFault(ApiError, RemoteError):
    """The gateway, or the way to it, failed."""


class Unavailable(GatewayFault):
    """The gateway cannot take the request now (503, 429, or the same idempotency key still
    in flight); nothing was done. Try again after ``retry_after_s``."""

    retriable = True


class NotReached(GatewayFault):
    """The request never reached the gateway (no connection, TLS refused, no free
    connection in the pool): nothing was done."""

    reason = "NOT_REACHED"
    retriable = True


class OutcomeUnknown(GatewayFault):
    """Sent, but no success came back: it may have been carried out. Retried only with an
    idempotency key (every send of this client has one)."""

    reason = "NO_ANSWER"
    retriable = True
    outcome_unknown = True


class GatewayFailed(GatewayFault):
    """A 5xx the API does not document (a bug of the gateway, or a proxy in front of it):
    whether it was carried out is unknown, and the same request likely fails again."""

    outcome_unknown = True


class UnexpectedAnswer(GatewayFault):
    """A 2xx whose body is not what the API promises: not a gateway of this API version."""

    reason = "UNEXPECTED_ANSWER"


class WebhookSignatureInvalid(RemoteError):
    """A webhook request is not (or no longer) the gateway's: ``reason`` is MALFORMED,
    BAD_SIGNATURE, EXPIRED or FROM_FUTURE."""


__all__ = [
    "ApiError",
    "Conflict",
    "GatewayFailed",
    "GatewayFault",
    "NotFound",
    "NotReached",
    "OutcomeUnknown",
    "RequestRefused",
    "Unauthorized",
    "Unavailable",
    "UnexpectedAnswer",
    "WebhookSignatureInvalid",
]
