"""The client SDK: a back office's way to its gateway's HTTP API (docs/CLIENT.md).

`GatewayClient` (blocking) and `AsyncGatewayClient` (asyncio) send one message or a batch,
read a sent message's status and the overdue ones, read the inbox (with a long-poll) and
acknowledge, and ask for health and readiness. Failures are the package's errors, split by
whose fault (`RequestRefused` is a `LocalError`, `GatewayFault` a `RemoteError`), with the
API's reason code and ``retriable``; retriable ones are retried with back-off, honouring
Retry-After, and every send carries an idempotency key, so a retry never sends twice.
`verify_webhook` checks a request the gateway's webhook pushed.

It stands on httpx, pydantic, `broker.models` and `broker.errors` only (an import contract
keeps it so): never the gateway's internals or the keys.
"""

from broker.client._async import AsyncGatewayClient
from broker.client._calls import MAX_INBOX_PAGE, MAX_WAIT_S, SendOutcome
from broker.client._config import TOKEN_ENV, TOKEN_FILE_ENV, ClientOptions, Tls
from broker.client._errors import (
    ApiError,
    Conflict,
    GatewayFailed,
    GatewayFault,
    NotFound,
    NotReached,
    OutcomeUnknown,
    RequestRefused,
    Unauthorized,
    Unavailable,
    UnexpectedAnswer,
    WebhookSignatureInvalid,
)
from broker.client._models import (
    Health,
    InboxEntry,
    MessageStatus,
    Outgoing,
    Readiness,
    SendFields,
)
from broker.client._retry import RetryPolicy
from broker.client._sync import GatewayClient
from broker.client._tries import CallRecord, OnCall
from broker.client._webhook import (
    SIGNATURE_HEADER,
    WEBHOOK_TOLERANCE_S,
    WebhookMessage,
    check_webhook_signature_at,
    verify_webhook,
    verify_webhook_at,
)

__all__ = [
    "MAX_INBOX_PAGE",
    "MAX_WAIT_S",
    "SIGNATURE_HEADER",
    "TOKEN_ENV",
    "TOKEN_FILE_ENV",
    "WEBHOOK_TOLERANCE_S",
    "ApiError",
    "AsyncGatewayClient",
    "CallRecord",
    "ClientOptions",
    "Conflict",
    "GatewayClient",
    "GatewayFailed",
    "GatewayFault",
    "Health",
    "InboxEntry",
    "MessageStatus",
    "NotFound",
    "NotReached",
    "OnCall",
    "OutcomeUnknown",
    "Outgoing",
    "Readiness",
    "RequestRefused",
    "RetryPolicy",
    "SendFields",
    "SendOutcome",
    "Tls",
    "Unauthorized",
    "Unavailable",
    "UnexpectedAnswer",
    "WebhookMessage",
    "WebhookSignatureInvalid",
    "check_webhook_signature_at",
    "verify_webhook",
    "verify_webhook_at",
]
