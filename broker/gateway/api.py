"""The HTTP API a back office uses to talk to its gateway (FastAPI; OpenAPI at /openapi.json).

Every /v1 route needs ``Authorization: Bearer <token>``, the gateway's one back-office
token. /healthz, /readyz and /metrics are for the platform and need none. Errors are JSON
with a machine-readable ``reason`` and never echo message content into logs.

    POST /v1/messages               send a message   → 202 {"message_id": ...}
    POST /v1/messages:batch         send up to 100   → 200 {"items": [one answer per message]}
    GET  /v1/messages/{id}          its status: SENT, RECEIPTED or REJECTED (+ receipts)
    GET  /v1/messages?overdue=true  sent messages still without every receipt
    GET  /v1/inbox[?wait=S]         delivered messages not yet acknowledged (long poll: S ≤ 30)
    POST /v1/inbox/{id}/ack         acknowledge one → 204
"""

from __future__ import annotations

import asyncio
import hmac
import uuid
from collections.abc import Sequence
from datetime import timedelta
from typing import Annotated, Any, Literal, Union

from fastapi import Depends, FastAPI, Header, HTTPException, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.requests import HTTPConnection
from fastapi.responses import JSONResponse
from fastapi.security import HTTPBearer
from fastapi_offline import FastAPIOffline
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    TypeAdapter,
    ValidationError,
    create_model,
)
from starlette.exceptions import HTTPException as StarletteHTTPException

from broker import tracecontext as tc
from broker.api_contract import (
    MAX_IDEMPOTENCY_KEY_CHARS,
    Accepted,
    BatchAnswer,
    BatchItem,
    Inbox,
    InboxEntry,
    MessageStatus,
    Problem,
)
from broker.crypto import MAX_RECIPIENTS
from broker.errors import (
    LocalError,
    PolicyDenied,
    RecordTooLarge,
    TransportError,
    TransportTimeout,
    UnknownParty,
    UnknownSchema,
)
from broker.gateway import _idempotency as idem
from broker.gateway._gateway import Gateway
from broker.gateway._inbox_signal import MAX_INBOX_WAIT_S, InboxSignal
from broker.gateway._observer import MetricsPage, MetricsSource
from broker.gateway._store import AmbiguousMessageId
from broker.models import CASE_MESSAGES, AvroModel, PartyId, model_for

# --- request and response bodies -------------------------------------------------------------


def _send_request(model: type[AvroModel]) -> type[BaseModel]:
    name = model.avro_name.rsplit(".", 1)[1]
    tag: Any = Literal[name]  # a Literal made at run time, one per message type
    return create_model(
        f"Send{name}",
        __config__=ConfigDict(extra="forbid"),
        type=(tag, Field(description="The message type.")),
        recipients=(list[PartyId], Field(min_length=1, max_length=MAX_RECIPIENTS)),
        message=(model, Field(description=model.__doc__)),
        correlation_id=(uuid.UUID | None, None),
        causation_id=(uuid.UUID | None, None),
    )


def _short_type(body: Any) -> Any:
    """The body with ``type`` in the short form the request bodies are told apart by: it
    may name the type in full (``nl.lvv.v1.DossierDelivered``), as GET answers."""
    if isinstance(body, dict) and isinstance(body.get("type"), str):
        try:
            return {**body, "type": model_for(body["type"]).avro_name.rsplit(".", 1)[1]}
        except UnknownSchema:
            pass  # refused as UNKNOWN_TYPE by the discriminator
    return body


_REQUESTS = tuple(_send_request(model) for model in CASE_MESSAGES)
SendRequest: Any = Annotated[Union[_REQUESTS], Discriminator("type"), BeforeValidator(_short_type)]  # noqa: UP007
"""One request body per case message, told apart by ``type`` (documented in OpenAPI).
`Discriminator`, not ``Field(discriminator=)``: FastAPI takes a Field for the parameter's
own and drops the discriminator when a validator follows."""


_SEND_REQUEST: TypeAdapter[Any] = TypeAdapter(SendRequest)

MAX_BATCH_ITEMS = 100
"""Messages one ``POST /v1/messages:batch`` takes at most (the body limit applies too)."""


class BatchRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    items: list[dict[str, Any]] = Field(
        min_length=1, max_length=MAX_BATCH_ITEMS,
        description="Each a body of POST /v1/messages; each is validated and answered on its own."
                    f" An item may carry `{idem.BATCH_FIELD}`: its Idempotency-Key (same rules, per item).",
    )  # fmt: skip


def _error_list(errors: Sequence[Any]) -> list[dict[str, Any]]:
    """Validation errors as the API shows them: where, what, which kind — never the input."""
    return [{"loc": e.get("loc"), "msg": e.get("msg"), "type": e.get("type")} for e in errors]


def _unknown_type(errors: Sequence[Any]) -> bool:
    return any(e.get("type") in ("union_tag_invalid", "union_tag_not_found") for e in errors)


def _said(exc: Exception) -> str:
    """An error's message without its ``[REASON]`` prefix (the reason has a field of its own)."""
    return str(exc).split("] ", 1)[-1]


def _problem(status: int, reason: str, detail: Any = None) -> JSONResponse:
    return JSONResponse(Problem(reason=reason, detail=detail).model_dump(), status_code=status)


RETRY_AFTER_S = 5
"""Retry-After of a 503: trying sooner only meets the same outage, and the gateway notices
within a second or two that its log is back (`broker.gateway._health`)."""


def _unavailable(reason: str, detail: str) -> JSONResponse:
    """503 with Retry-After (RFC 9110 §10.2.3): the log is away; the caller may try later."""
    response = _problem(503, reason, detail)
    response.headers["Retry-After"] = str(RETRY_AFTER_S)
    return response


def _claim(key: str | None, body: BaseModel) -> idem.Claim | None:
    """The idempotency claim of a validated request with ``key`` (None without a key);
    `InvalidIdempotencyKey` if it is not one. The body is fingerprinted as validated, so
    the same request in another JSON layout (or with the type's full name) is the same."""
    if key is None:
        return None
    return idem.claim(idem.parse_key(key), body.model_dump(mode="json"))


_TRACEPARENT = (
    "W3C Trace Context (https://www.w3.org/TR/trace-context/) of the back office's request: the"
    " send becomes a span of its trace, carried in the envelope to every recipient and into the"
    " audit events; without one the gateway starts a trace. Malformed (not version-traceid-"
    "parentid-flags in lowercase hex, version ff, an all-zero id): 422 BAD_TRACEPARENT."
)

_IDEMPOTENCY_KEY = (
    "Makes the send idempotent (draft-ietf-httpapi-idempotency-key-header): 1 to"
    f" {MAX_IDEMPOTENCY_KEY_CHARS} printable ASCII characters, bare or as a quoted sf-string. The same"
    " key with the same body answers as the first time and sends nothing (also after a restart);"
    " with another body 409 IDEMPOTENCY_CONFLICT; while the first is in flight 409"
    f" IDEMPOTENCY_IN_PROGRESS with Retry-After. Kept {idem.KEEP_KEYS_FOR.days} days and more;"
    " a refused send keeps none. Invalid: 400 INVALID_IDEMPOTENCY_KEY."
)

_WAIT = (
    f"Long poll: with the inbox empty, wait up to this many seconds (at most {MAX_INBOX_WAIT_S:g};"
    " more is 400 INVALID_WAIT) for a delivery, then answer — at once when one is visible, an"
    " empty page when the time is up or the gateway stops."
)


_ACK_SENDER = "The sender, as the inbox shows it: needed only for an id that two senders used."


class _BearerScheme(HTTPBearer):
    """The bearer scheme as OpenAPI declares it on every /v1 route; it checks nothing.
    `_Gatekeeper` checks the token, once per request and before any body is read: a second
    check here cost a worker-thread hop per request (a sync dependency) for an answer known."""

    async def __call__(self, request: HTTPConnection) -> None:
        return None


_BEARER = _BearerScheme(scheme_name="HTTPBearer", auto_error=False)  # the name it had

_ERRORS: dict[int | str, dict[str, Any]] = {401: {"model": Problem}, 422: {"model": Problem}}
_SEND_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": Problem, "description": "INVALID_IDEMPOTENCY_KEY"},
    403: {"model": Problem}, 409: {"model": Problem, "description": "IDEMPOTENCY_CONFLICT, IDEMPOTENCY_IN_PROGRESS (with Retry-After)"},
    413: {"model": Problem}, 503: {"model": Problem},
}  # fmt: skip
"""What every /v1 route may answer: a missing or wrong token, a request that breaks its schema."""


class _Gatekeeper:
    """Before any body is read: a /v1 request without the right token gets 401, and a body
    over the limit 413 — whether it declares its length or streams it in chunks."""

    def __init__(self, app: Any, *, token: str, max_body_bytes: int) -> None:
        self.app, self.token, self.limit = app, token.encode(), max_body_bytes

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        # the path as the router matches it: behind a root_path (a proxy's prefix) as well
        path, root = scope["path"], scope.get("root_path", "")
        if root and path.startswith(root):
            path = path[len(root) :]
        if path.startswith("/v1/"):  # the one token check: the routes do not check again
            given = headers.get(b"authorization", b"")
            scheme, _, credential = given.partition(b" ")
            # the scheme is case-insensitive (RFC 7235 §2.1); the token is compared in constant time
            if scheme.lower() != b"bearer" or not hmac.compare_digest(credential, self.token):
                problem = _problem(401, "UNAUTHORIZED", "missing or wrong bearer token")
                problem.headers["WWW-Authenticate"] = "Bearer"
                await problem(scope, receive, send)
                return
        length = headers.get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.limit):
            too_large = _problem(413, "TOO_LARGE", f"bodies are limited to {self.limit} bytes")
            await too_large(scope, receive, send)
            return
        # read the whole body first (it is at most the limit), then hand it on
        chunks, seen, more = [], 0, True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                await self.app(scope, receive, send)  # a disconnect: let the app see it
                return
            chunks.append(message.get("body", b""))
            seen += len(chunks[-1])
            more = message.get("more_body", False)
            if seen > self.limit:
                too_large = _problem(413, "TOO_LARGE", f"bodies are limited to {self.limit} bytes")
                await too_large(scope, receive, send)
                return
        body = b"".join(chunks)
        delivered = False

        async def replay() -> Any:
            nonlocal delivered
            if delivered:
                return await receive()
            delivered = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)


# --- the app ---------------------------------------------------------------------------------


def create_app(
    gateway: Gateway,
    *,
    token: str,
    metrics: MetricsSource | None = None,
    receipt_timeout: timedelta = timedelta(minutes=5),
    max_body_bytes: int = 1024 * 1024,
) -> FastAPI:
    # /docs (Swagger UI) loads its script, style and icon from the package, under
    # /static-offline-docs, not from a CDN: gateways run in closed networks (issue 17 §5).
    # Swagger UI's validator badge would fetch an image from validator.swagger.io: off. No
    # /redoc: ReDoc's bundle fetches its logo from cdn.redoc.ly whatever it is told.
    app = FastAPIOffline(
        title=f"LVV Exchange gateway — {gateway.party_id}",
        version="1",
        description=__doc__,
        redoc_url=None,
        swagger_ui_parameters={"validatorUrl": None},
    )

    app.add_middleware(_Gatekeeper, token=token, max_body_bytes=max_body_bytes)

    # Starlette's class, not FastAPI's subclass: the router's own errors (an unknown path, a
    # wrong method, a body it cannot decode) get a reason too, not a bare {"detail": ...}
    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 400:  # a body FastAPI could not decode at all (not UTF-8 JSON)
            return _problem(422, "SCHEMA_VIOLATION", "the body is not valid JSON")
        reason = {404: "NOT_FOUND", 405: "METHOD_NOT_ALLOWED"}.get(exc.status_code, "ERROR")
        response = _problem(exc.status_code, reason, exc.detail)
        for k, v in (exc.headers or {}).items():
            response.headers[k] = v
        return response

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = _error_list(exc.errors())
        reason = "UNKNOWN_TYPE" if _unknown_type(errors) else "SCHEMA_VIOLATION"
        return _problem(422, reason, errors)

    v1 = [Depends(_BEARER)]  # declares the scheme; `_Gatekeeper` has checked the token

    async def send_one(body: Any, key: str | None,
                       traceparent: str | None = None) -> tuple[int, Accepted | Problem]:  # fmt: skip
        """Send one validated request, idempotently with ``key``, in the trace of the
        request's ``traceparent`` (W3C; a new trace without one): the HTTP status and the
        answer. A malformed traceparent is a 422 BAD_TRACEPARENT, and nothing is sent."""
        try:
            trace = tc.parse(traceparent) if traceparent is not None else None
            message_id = await gateway.send(
                body.message, body.recipients,
                correlation_id=body.correlation_id, causation_id=body.causation_id,
                idempotency=_claim(key, body), traceparent=trace,
            )  # fmt: skip
        except idem.InvalidIdempotencyKey as exc:
            return 400, Problem(reason=exc.reason, detail=_said(exc))
        except (idem.IdempotencyConflict, idem.IdempotencyInProgress) as exc:
            return 409, Problem(reason=exc.reason, detail=_said(exc))
        except PolicyDenied as exc:
            return 403, Problem(reason=exc.reason, detail=_said(exc))
        except UnknownParty as exc:
            return 422, Problem(reason="UNKNOWN_RECIPIENT", detail=_said(exc))
        except RecordTooLarge:
            return 413, Problem(reason="TOO_LARGE")
        except LocalError as exc:
            return 422, Problem(reason=exc.reason, detail=_said(exc))
        except TransportTimeout as exc:  # the write may still land: the outcome is unknown
            detail = "the message log did not answer in time; the outcome is unknown"
            return 503, Problem(reason=exc.reason, detail=detail)
        except TransportError as exc:  # during a known outage: at once, before any work
            detail = "the message log is not reachable; nothing was sent"
            return 503, Problem(reason=exc.reason, detail=detail)
        return 202, Accepted(message_id=message_id)

    @app.post("/v1/messages", status_code=202, dependencies=v1, response_model=Accepted,
              responses={**_ERRORS, **_SEND_ERRORS})  # fmt: skip
    async def send(
        request: SendRequest,
        idempotency_key: Annotated[
            str | None, Header(alias=idem.HEADER, description=_IDEMPOTENCY_KEY)
        ] = None,
        traceparent: Annotated[
            str | None, Header(alias=tc.TRACEPARENT_HEADER, description=_TRACEPARENT)
        ] = None,
    ) -> Any:
        """Seal the message and put it in each recipient's inbox (all or none)."""
        status, answer = await send_one(request, idempotency_key, traceparent)
        if isinstance(answer, Problem):
            if status == 503:  # the log is away: Retry-After
                return _unavailable(answer.reason, answer.detail)
            problem = _problem(status, answer.reason, answer.detail)
            if answer.reason == idem.IdempotencyInProgress.reason:
                problem.headers["Retry-After"] = str(idem.IN_PROGRESS_RETRY_AFTER_S)
            return problem
        return answer

    @app.post("/v1/messages:batch", dependencies=v1, response_model=BatchAnswer,
              responses={**_ERRORS, 413: {"model": Problem}})  # fmt: skip
    async def send_batch(
        request: BatchRequest,
        traceparent: Annotated[
            str | None, Header(alias=tc.TRACEPARENT_HEADER, description=_TRACEPARENT)
        ] = None,
    ) -> Any:
        """Send up to `MAX_BATCH_ITEMS` messages, each as ``POST /v1/messages`` would, and
        answer each separately, in order: its status (202, or the error status a single
        send would get) with its message id or its problem. One item's refusal does not
        keep the others from being sent; each is all or none on its own. Sent together,
        they share the gateway's batch signature, store transaction and Kafka transaction.
        An item's ``idempotency_key`` is its Idempotency-Key, with the same rules."""

        async def item(raw: dict[str, Any]) -> BatchItem:
            key = raw.pop(idem.BATCH_FIELD, None)
            if key is not None and not isinstance(key, str):
                return BatchItem(status=400, reason=idem.InvalidIdempotencyKey.reason,
                                 detail=f"{idem.BATCH_FIELD} is a string")  # fmt: skip
            trace = raw.pop(tc.TRACEPARENT_HEADER, traceparent)  # an item's own, or the request's
            if trace is not None and not isinstance(trace, str):
                return BatchItem(status=422, reason=tc.BadTraceparent.reason,
                                 detail="traceparent is a string")  # fmt: skip
            try:
                body = _SEND_REQUEST.validate_python(raw)
            except ValidationError as exc:
                reason = "UNKNOWN_TYPE" if _unknown_type(exc.errors()) else "SCHEMA_VIOLATION"
                return BatchItem(status=422, reason=reason, detail=_error_list(exc.errors()))
            status, answer = await send_one(body, key, trace)
            if isinstance(answer, Problem):
                return BatchItem(status=status, reason=answer.reason, detail=answer.detail)
            return BatchItem(status=status, message_id=answer.message_id)

        return BatchAnswer(items=list(await asyncio.gather(*(item(i) for i in request.items))))

    @app.get("/v1/messages/{message_id}", dependencies=v1, response_model=MessageStatus,
             responses={**_ERRORS, 404: {"model": Problem}})  # fmt: skip
    async def status(message_id: uuid.UUID) -> Any:
        """Status of a message this gateway sent, with the receipts received so far."""
        found = gateway.store.sent_status(message_id)
        if found is None:
            raise HTTPException(404, detail="no message with that id was sent from here")
        overdue = found.status == "SENT" and found.sent_at < gateway.clock() - receipt_timeout
        return MessageStatus(
            message_id=found.message_id, type=found.message_type, case_id=found.case_id,
            recipients=list(found.recipients), sent_at=found.sent_at, status=found.status,
            overdue=overdue, receipts=found.receipts,
        )  # fmt: skip

    @app.get("/v1/messages", dependencies=v1, responses=_ERRORS)
    async def overdue(overdue: bool = Query(True)) -> dict[str, list[uuid.UUID]]:
        """Sent messages still waiting for a receipt after the receipt timeout."""
        del overdue
        return {"overdue": gateway.store.overdue(gateway.clock(), receipt_timeout)}

    @app.get("/v1/inbox", dependencies=v1, response_model=Inbox,
             responses={**_ERRORS, 400: {"model": Problem, "description": "INVALID_WAIT"}})  # fmt: skip
    async def inbox(
        limit: int = Query(50, ge=1, le=500),
        wait: Annotated[float, Query(description=_WAIT)] = 0.0,
    ) -> Any:
        """Delivered messages not yet acknowledged, oldest first; with ``wait``, a long
        poll woken by the gateway's delivery (`broker.gateway._inbox_signal`): the store is
        read once at first and once per delivery, never polled."""
        if not 0 <= wait <= MAX_INBOX_WAIT_S:
            return _problem(400, "INVALID_WAIT", f"wait is 0 to {MAX_INBOX_WAIT_S:g} seconds")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait
        while True:
            generation = gateway.inbox_signal.generation()  # before the read: none missed
            items = gateway.store.inbox(limit=limit)
            left = deadline - loop.time()
            if items or left <= 0 or gateway.inbox_signal.closed:
                break
            await InboxSignal.wait(generation, left)
        return Inbox(items=[
            InboxEntry(message_id=i.message_id, type=i.message_type, sender=i.sender, case_id=i.case_id,
                       created_at=i.created_at, received_at=i.received_at, message=i.message,
                       traceparent=i.traceparent)
            for i in items
        ])  # fmt: skip

    @app.post("/v1/inbox/{message_id}/ack", status_code=204, dependencies=v1,
              responses={**_ERRORS, 404: {"model": Problem}, 409: {"model": Problem}})  # fmt: skip
    async def ack(
        message_id: uuid.UUID,
        sender: Annotated[PartyId | None, Query(description=_ACK_SENDER)] = None,
    ) -> Response:
        """The back office has taken the message; it leaves the inbox. Message ids are each
        sender's own, so an id that two senders used is acknowledged with its ``sender``."""
        try:
            acked = await gateway.ack(message_id, sender=sender)
        except AmbiguousMessageId as exc:
            return _problem(409, exc.reason, _said(exc))
        if not acked:
            raise HTTPException(404, detail="no delivered message with that id")
        return Response(status_code=204)

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok", "party": gateway.party_id}

    @app.get("/readyz", responses={503: {"model": Problem}})
    async def readyz() -> Any:
        """Ready while the gateway reaches its log: after a bounded probe, whose answer
        the gateway takes in too (an outage known or ended by it); during a known outage
        the probe waits a second at most."""
        if gateway.outage is None and not gateway.ready:  # not started, or its loop failing
            return _unavailable("NOT_READY", "the message log is not reachable")
        if not await gateway.check_log() or not gateway.ready:
            return _unavailable("NOT_READY", "the message log is not reachable")
        return {"status": "ready"}

    @app.get("/metrics", include_in_schema=False)
    async def metrics_page() -> Response:
        page = metrics() if metrics else MetricsPage(b"", "text/plain; version=0.0.4")
        return Response(page.body, media_type=page.content_type)

    return app
