"""Every call of the API as data — method, path, body, how its answer is read, whether it
may be repeated — so the sync and the async client only carry it out (as httpcore's
backends carry out one core)."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import httpx
from pydantic import BaseModel, ValidationError

from broker.client._answers import error_for, error_of
from broker.client._errors import ApiError, UnexpectedAnswer
from broker.client._models import (
    Accepted,
    BatchAnswer,
    Health,
    Inbox,
    InboxEntry,
    MessageStatus,
    Outgoing,
    Overdue,
    Readiness,
    check_idempotency_key,
)
from broker.errors import LocalError

T = TypeVar("T")
M = TypeVar("M", bound=BaseModel)

IDEMPOTENCY_HEADER = "Idempotency-Key"
TRACEPARENT_HEADER = "traceparent"
"""W3C Trace Context (the gateway's `broker.tracecontext.TRACEPARENT_HEADER`)."""

MAX_WAIT_S = 30.0
"""The longest long-poll the API grants (``GET /v1/inbox?wait=S``)."""

WAIT_MARGIN_S = 5.0
"""Added to the read timeout of a long-poll: the gateway answers after ``wait`` seconds, and
a busy one a little later; the client must not give up first."""

MAX_INBOX_PAGE = 500
"""The API's largest inbox page."""

SendOutcome = uuid.UUID | ApiError
"""A batch item's outcome: its message id, or the error a single send would have raised."""


@dataclass(frozen=True, slots=True)
class Call(Generic[T]):
    """One API call. ``repeatable``: carrying it out twice does what once does (a read, an
    acknowledgement, a send with an idempotency key). ``retry``: whether to retry at all (a
    probe wants the answer of now)."""

    operation: str
    method: str
    path: str
    read: Callable[[httpx.Response], T]
    ok: frozenset[int] = frozenset({200})
    params: dict[str, str | int | float] = field(default_factory=dict)
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    repeatable: bool = True
    retry: bool = True
    read_timeout_s: float | None = None
    """This call's read timeout, when it needs another than the client's."""

    def request(self, http: httpx.Client | httpx.AsyncClient) -> httpx.Request:
        timeout: Any = httpx.USE_CLIENT_DEFAULT
        if self.read_timeout_s is not None:
            given = http.timeout
            timeout = httpx.Timeout(None, connect=given.connect, read=self.read_timeout_s,
                                    write=given.write, pool=given.pool)  # fmt: skip
        return http.build_request(self.method, self.path, params=self.params or None,
                                  json=self.body, headers=self.headers, timeout=timeout)  # fmt: skip

    def outcome(self, response: httpx.Response, *, now: float) -> T:
        """The call's result from its answer; the error the answer means otherwise."""
        if response.status_code not in self.ok:
            raise error_for(self.operation, response.status_code, response.headers,
                            response.content, now=now)  # fmt: skip
        try:
            return self.read(response)
        except (ValidationError, ValueError, KeyError, TypeError) as exc:
            raise UnexpectedAnswer(f"{self.operation}: the answer is not the API's",
                                   status=response.status_code) from exc  # fmt: skip


def _model(model: type[M]) -> Callable[[httpx.Response], M]:
    return lambda response: model.model_validate_json(response.content)


def _nothing(response: httpx.Response) -> None:
    return None


# --- the calls -----------------------------------------------------------------------------


def _keyed(message: Outgoing, keyed: bool) -> tuple[dict[str, Any], str | None]:
    key = None
    if keyed:
        key = check_idempotency_key(message.idempotency_key or str(uuid.uuid4()))
    return message.body(), key


def send(message: Outgoing, *, keyed: bool, read_timeout_s: float | None = None) -> Call[uuid.UUID]:
    """``POST /v1/messages``. ``keyed``: with an idempotency key (the given one, or a new
    one), which makes the call repeatable."""
    body, key = _keyed(message, keyed)
    headers = {IDEMPOTENCY_HEADER: key} if key else {}
    if message.traceparent is not None:
        headers[TRACEPARENT_HEADER] = message.traceparent
    return Call("send", "POST", "/v1/messages", lambda r: Accepted.model_validate_json(r.content).message_id,
                ok=frozenset({202}), body=body, headers=headers,
                repeatable=keyed, read_timeout_s=read_timeout_s)  # fmt: skip


def send_batch(
    messages: Sequence[Outgoing], *, keyed: bool, read_timeout_s: float | None = None
) -> Call[list[SendOutcome]]:
    """``POST /v1/messages:batch``: each item keyed (``idempotency_key``) like a send."""
    items = []
    for message in messages:
        body, key = _keyed(message, keyed)
        if message.traceparent is not None:
            body = {**body, TRACEPARENT_HEADER: message.traceparent}
        items.append({**body, "idempotency_key": key} if key else body)

    def read(response: httpx.Response) -> list[SendOutcome]:
        answers = BatchAnswer.model_validate_json(response.content).items
        if len(answers) != len(items):
            raise ValueError("one answer per item")
        return [
            a.message_id if a.status == 202 and a.message_id is not None
            else error_of("send", a.status, a.reason, a.detail)
            for a in answers
        ]  # fmt: skip

    return Call("send batch", "POST", "/v1/messages:batch", read, body={"items": items},
                repeatable=keyed, read_timeout_s=read_timeout_s)  # fmt: skip


def status(message_id: uuid.UUID) -> Call[MessageStatus]:
    return Call("status", "GET", f"/v1/messages/{message_id}", _model(MessageStatus))


def overdue() -> Call[list[uuid.UUID]]:
    read = _model(Overdue)
    return Call("overdue", "GET", "/v1/messages", lambda r: read(r).overdue,
                params={"overdue": "true"})  # fmt: skip


def inbox(limit: int, wait_s: float, *, read_timeout_s: float | None) -> Call[list[InboxEntry]]:
    """``GET /v1/inbox``; with ``wait_s`` a long-poll, whose read timeout outlasts the wait."""
    if not 1 <= limit <= MAX_INBOX_PAGE:
        raise LocalError(f"limit is 1 to {MAX_INBOX_PAGE}", reason="BAD_LIMIT")
    if not 0 <= wait_s <= MAX_WAIT_S:
        raise LocalError(f"wait_s is 0 to {MAX_WAIT_S:g}", reason="BAD_WAIT")
    params: dict[str, str | int | float] = {"limit": limit}
    if wait_s:
        params["wait"] = wait_s
        read_timeout_s = max(read_timeout_s or 0.0, wait_s + WAIT_MARGIN_S)
    read = _model(Inbox)
    return Call("inbox", "GET", "/v1/inbox", lambda r: read(r).items, params=params,
                read_timeout_s=read_timeout_s)  # fmt: skip


def ack(message_id: uuid.UUID, sender: str | None) -> Call[None]:
    """``POST /v1/inbox/{id}/ack``: repeatable, as the gateway takes a second one too."""
    return Call("ack", "POST", f"/v1/inbox/{message_id}/ack", _nothing, ok=frozenset({204}),
                params={"sender": sender} if sender else {})  # fmt: skip


def health() -> Call[Health]:
    return Call("health", "GET", "/healthz", _model(Health), retry=False)


def ready() -> Call[Readiness]:
    return Call("ready", "GET", "/readyz", _model(Readiness), retry=False)
