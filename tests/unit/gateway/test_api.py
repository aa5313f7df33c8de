"""The gateway's HTTP API through a real uvicorn server on loopback, with gateways on the
embedded log: a send goes SENT → RECEIPTED, every class of bad input gets its status and
reason and produces nothing, the inbox lists and acknowledges, the bearer token guards every
/v1 route, and /healthz, /readyz, /metrics and /openapi.json answer the platform.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sqlite3
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from prometheus_client.parser import text_string_to_metric_families

from broker import tracecontext as tc
from broker.errors import TransportUnavailable
from broker.gateway import Gateway, GatewayStore
from broker.gateway.api import create_app
from broker.gateway.metrics import PrometheusObserver
from broker.models import CASE_MESSAGES, PartyRole
from broker.topics import inbox
from broker.transport import TopicSpec
from broker.transport.embedded import EmbeddedTransport
from demo.examples import example
from tests.crypto_net import CONTENT_KEY, NOW, A, Net
from tests.stores import delivery_followup
from tests.support import eventually

NET = Net()
IND, MUNI, NGO, COA = (A[PartyRole[r]] for r in ("IND", "MUNICIPALITY", "NGO", "COA"))
TOKEN = "back-office-token-0123456789abcdef"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
MAX_BODY = 64 * 1024  # small, so an oversized body is cheap to send
WAIT_S = 10.0


def dossier_json() -> dict[str, Any]:
    message: dict[str, Any] = json.loads(example("DossierDelivered").model_dump_json())
    return message


def send_body(recipients: list[str] | None = None, **changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "type": "DossierDelivered",
        "recipients": [MUNI, NGO] if recipients is None else recipients,
        "message": dossier_json(),
    }
    return {**body, **changes}


class _Server(uvicorn.Server):
    """uvicorn without its signal handlers: the test runner keeps its own."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class Stack:
    """An embedded log with every party's inbox provisioned, gateways and their HTTP APIs."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.log_path = folder / "log.db"
        self.log = EmbeddedTransport(self.log_path)
        self.gateways: list[Gateway] = []
        self.runs: list[asyncio.Task[None]] = []
        self.servers: list[tuple[_Server, asyncio.Task[None]]] = []
        self.clients: list[httpx.AsyncClient] = []

    async def provision(self) -> None:
        # every party's inbox exists, so a refused send is refused by the API, not the log
        await self.log.ensure_topics([TopicSpec(inbox(p)) for p in NET.directory.parties])

    def gateway(
        self, party: str, *, clock: Callable[[], datetime] = lambda: NOW, observer: Any = None,
        envelope_format: int = 3,
    ) -> Gateway:  # fmt: skip
        gw = Gateway(
            keys=NET.keys(party), directory=NET.directory, transport=self.log,
            store=GatewayStore(self.folder / f"{party}.db", content_key=CONTENT_KEY), clock=clock, observer=observer,
            envelope_format=envelope_format,
        )  # fmt: skip
        self.gateways.append(gw)
        return gw

    async def started(self, party: str, *, run: bool = False, **kwargs: Any) -> Gateway:
        gw = self.gateway(party, **kwargs)
        await gw.start()
        if run:
            self.run(gw)
        return gw

    def run(self, gw: Gateway) -> None:
        self.runs.append(asyncio.create_task(gw.run()))

    async def serve(self, gw: Gateway, **app_options: Any) -> httpx.AsyncClient:
        """``gw``'s API on a free loopback port, and a client for it (no token by default)."""
        app = create_app(gw, token=TOKEN, **{"max_body_bytes": MAX_BODY, **app_options})
        config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="off")
        server = _Server(config)
        task = asyncio.create_task(server.serve())
        self.servers.append((server, task))
        await eventually(lambda: server.started or task.done(), "uvicorn to start")
        assert server.started, f"uvicorn did not start: {task.exception()}"
        port = server.servers[0].sockets[0].getsockname()[1]
        client = httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=WAIT_S)
        self.clients.append(client)
        return client

    def produced(self) -> dict[str, int]:
        """Records per topic, read straight from the embedded log's file."""
        with contextlib.closing(sqlite3.connect(self.log_path)) as db:
            rows = db.execute("SELECT topic, COUNT(*) FROM records GROUP BY topic").fetchall()
        return dict(rows)

    async def aclose(self) -> None:
        for client in self.clients:
            await client.aclose()
        for server, _ in self.servers:
            server.should_exit = True
        await asyncio.gather(*(task for _, task in self.servers))
        for gw in self.gateways:
            gw.stop()
        await asyncio.gather(*self.runs)
        for gw in self.gateways:
            await gw.close()
            gw.store.close()
        await self.log.close()


@pytest.fixture
async def stack(tmp_path: Path) -> AsyncIterator[Stack]:
    s = Stack(tmp_path)
    await s.provision()
    try:
        yield s
    finally:
        await s.aclose()


async def until_status(client: httpx.AsyncClient, message_id: str, status: str) -> dict[str, Any]:
    seen: list[str] = []

    async def reached() -> dict[str, Any] | None:
        response = await client.get(f"/v1/messages/{message_id}", headers=AUTH)
        assert response.status_code == 200, response.text
        seen.append(response.json()["status"])
        return dict(response.json()) if seen[-1] == status else None

    return await eventually(
        reached, lambda: f"message {message_id} to be {status}, not {seen[-1]}", every_s=0.02
    )


# --- sending ---------------------------------------------------------------------------------


async def test_post_message_is_accepted_then_receipted_by_every_recipient(stack: Stack) -> None:
    ind = await stack.started(IND, run=True)
    api = await stack.serve(ind)
    muni, ngo = await stack.started(MUNI), await stack.started(NGO)

    response = await api.post("/v1/messages", json=send_body(), headers=AUTH)

    assert response.status_code == 202, response.text
    message_id = response.json()["message_id"]
    assert response.json() == {"message_id": message_id, "status": "SENT"}
    first = (await api.get(f"/v1/messages/{message_id}", headers=AUTH)).json()
    assert first == {
        "message_id": message_id,
        "type": "nl.lvv.v1.DossierDelivered",
        "case_id": dossier_json()["case_id"],
        "recipients": [MUNI, NGO],
        "sent_at": first["sent_at"],
        "status": "SENT",
        "overdue": False,
        "receipts": {},
    }
    assert datetime.fromisoformat(first["sent_at"].replace("Z", "+00:00")) == NOW

    stack.run(muni)
    stack.run(ngo)
    final = await until_status(api, message_id, "RECEIPTED")
    assert {p: r["outcome"] for p, r in final["receipts"].items()} == {
        MUNI: "ACCEPTED",
        NGO: "ACCEPTED",
    }
    for gw in (muni, ngo):
        (item,) = gw.store.inbox(limit=10)
        assert str(item.message_id) == message_id
        assert item.message == dossier_json()


async def test_post_accepts_the_full_type_name_that_get_answers(stack: Stack) -> None:
    ind = await stack.started(IND, run=True)
    api = await stack.serve(ind)
    muni = await stack.started(MUNI, run=True)

    response = await api.post(
        "/v1/messages", json=send_body([MUNI], type="nl.lvv.v1.DossierDelivered"), headers=AUTH
    )

    assert response.status_code == 202, response.text
    message_id = response.json()["message_id"]
    status = await until_status(api, message_id, "RECEIPTED")
    assert status["type"] == "nl.lvv.v1.DossierDelivered"
    (item,) = muni.store.inbox(limit=10)
    assert str(item.message_id) == message_id and item.message == dossier_json()


def _without(field: str) -> dict[str, Any]:
    message = dossier_json()
    del message[field]
    return send_body(message=message)


def _with(**fields: Any) -> dict[str, Any]:
    return send_body(message={**dossier_json(), **fields})


BAD_REQUESTS: dict[str, tuple[Callable[[], dict[str, Any]], int, str]] = {
    "field-of-wrong-type": (lambda: _with(delivered_at="last tuesday"), 422, "SCHEMA_VIOLATION"),
    "nested-field-of-wrong-type": (lambda: _with(person="Fatmata"), 422, "SCHEMA_VIOLATION"),
    "missing-required-field": (lambda: _without("case_id"), 422, "SCHEMA_VIOLATION"),
    "missing-recipients": (
        lambda: {k: v for k, v in send_body().items() if k != "recipients"},
        422,
        "SCHEMA_VIOLATION",
    ),
    "no-recipients": (lambda: send_body([]), 422, "SCHEMA_VIOLATION"),
    "party-id-breaking-the-pattern": (
        lambda: send_body(["Gemeente Amsterdam"]),
        422,
        "SCHEMA_VIOLATION",
    ),
    "unknown-top-level-field": (lambda: send_body(priority="high"), 422, "SCHEMA_VIOLATION"),
    "message-of-another-type": (
        lambda: send_body(type="IntakeRegistered"),
        422,
        "SCHEMA_VIOLATION",
    ),
    "unknown-type": (lambda: send_body(type="Nonsense"), 422, "UNKNOWN_TYPE"),
    "unknown-full-type": (lambda: send_body(type="nl.lvv.v1.Nonsense"), 422, "UNKNOWN_TYPE"),
    "type-of-another-namespace": (
        lambda: send_body(type="org.example.DossierDelivered"),
        422,
        "UNKNOWN_TYPE",
    ),
    "receipt-from-the-back-office": (
        lambda: send_body(type="DeliveryReceipt"),
        422,
        "UNKNOWN_TYPE",
    ),
    "unknown-recipient": (lambda: send_body([MUNI, "gemeente-atlantis"]), 422, "UNKNOWN_RECIPIENT"),
    "recipient-not-allowed": (lambda: send_body([COA]), 403, "POLICY_DENIED"),
    "one-recipient-not-allowed": (lambda: send_body([MUNI, COA]), 403, "POLICY_DENIED"),
    "sender-not-allowed": (
        lambda: {
            "type": "IntakeRegistered",
            "recipients": [A[PartyRole.DTV]],
            "message": json.loads(example("IntakeRegistered").model_dump_json()),
        },
        403,
        "POLICY_DENIED",
    ),
    "payload-naming-another-sender": (lambda: _with(delivered_by="DTV"), 403, "POLICY_DENIED"),
    "oversized-body": (
        lambda: _with(notes="x" * (MAX_BODY + 1)),
        413,
        "TOO_LARGE",
    ),
}


@pytest.mark.parametrize("case", BAD_REQUESTS, ids=list(BAD_REQUESTS))
async def test_bad_request_is_refused_with_its_reason_and_nothing_is_sent(
    stack: Stack, case: str
) -> None:
    ind = await stack.started(IND)
    api = await stack.serve(ind)
    make, status, reason = BAD_REQUESTS[case]
    before = stack.produced()

    response = await api.post("/v1/messages", json=make(), headers=AUTH)

    assert (response.status_code, response.json()["reason"]) == (status, reason), response.text
    assert stack.produced() == before
    assert ind.store.counts()["sent"] == 0


async def test_a_batch_answers_each_item_as_a_single_send_would_and_sends_the_good_ones(
    stack: Stack,
) -> None:
    ind = await stack.started(IND, run=True)
    api = await stack.serve(ind, max_body_bytes=1024 * 1024)
    await stack.started(MUNI, run=True)
    await stack.started(NGO, run=True)
    bad = {case: v for case, v in BAD_REQUESTS.items() if case != "oversized-body"}
    items = [send_body(), *(make() for make, _, _ in bad.values()), send_body([MUNI])]
    before = stack.produced()

    response = await api.post("/v1/messages:batch", json={"items": items}, headers=AUTH)

    assert response.status_code == 200, response.text
    answers = response.json()["items"]
    assert len(answers) == len(items)
    first, *refused, last = answers
    for answer in (first, last):
        assert answer["status"] == 202 and answer["reason"] is None, answer
    for (case, (_, status, reason)), answer in zip(bad.items(), refused, strict=True):
        assert (answer["status"], answer["reason"], answer["message_id"]) == (
            status,
            reason,
            None,
        ), case
    for answer in (first, last):
        await until_status(api, answer["message_id"], "RECEIPTED")
    assert ind.store.counts()["sent"] == 2
    after = stack.produced()
    assert after[inbox(MUNI)] - before.get(inbox(MUNI), 0) >= 2  # (and the receipts to IND)
    assert after[inbox(NGO)] - before.get(inbox(NGO), 0) == 1


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ({"items": []}, "SCHEMA_VIOLATION"),
        ({"items": [send_body()] * 101}, "SCHEMA_VIOLATION"),
        ({"items": send_body()}, "SCHEMA_VIOLATION"),
        ([send_body()], "SCHEMA_VIOLATION"),
        ({"items": [send_body()], "atomic": True}, "SCHEMA_VIOLATION"),
    ],
    ids=["empty", "over-the-limit", "not-a-list", "bare-list", "unknown-field"],
)
async def test_a_batch_outside_its_bounds_is_refused_whole_and_nothing_is_sent(
    stack: Stack, body: Any, reason: str
) -> None:
    ind = await stack.started(IND)
    api = await stack.serve(ind, max_body_bytes=1024 * 1024)
    before = stack.produced()

    response = await api.post("/v1/messages:batch", json=body, headers=AUTH)

    assert (response.status_code, response.json()["reason"]) == (422, reason), response.text
    assert stack.produced() == before
    assert ind.store.counts()["sent"] == 0


async def test_a_batch_over_the_body_limit_is_refused_before_it_is_read(stack: Stack) -> None:
    ind = await stack.started(IND)
    api = await stack.serve(ind)  # MAX_BODY: 64 KiB
    body = {"items": [send_body(message={**dossier_json(), "notes": "x" * 4096})] * 20}

    response = await api.post("/v1/messages:batch", json=body, headers=AUTH)

    assert (response.status_code, response.json()["reason"]) == (413, "TOO_LARGE")
    assert ind.store.counts()["sent"] == 0


@pytest.mark.parametrize(
    "content", [b"{not json", b"", b"\xff\xfe"], ids=["broken-json", "empty-body", "not-utf8"]
)
async def test_body_that_is_not_json_is_refused(stack: Stack, content: bytes) -> None:
    ind = await stack.started(IND)
    api = await stack.serve(ind)
    before = stack.produced()

    response = await api.post(
        "/v1/messages", content=content, headers={**AUTH, "Content-Type": "application/json"}
    )

    assert response.status_code == 422, response.text
    assert "reason" in response.json()
    assert stack.produced() == before


def chunked(data: bytes, size: int = 8192) -> AsyncIterator[bytes]:
    """A body without Content-Length (Transfer-Encoding: chunked)."""

    async def chunks() -> AsyncIterator[bytes]:
        for i in range(0, len(data), size):
            yield data[i : i + size]

    return chunks()


async def test_chunked_body_is_held_to_the_same_limit(stack: Stack) -> None:
    ind = await stack.started(IND)
    api = await stack.serve(ind)
    before = stack.produced()
    json_type = {"Content-Type": "application/json"}
    oversized = json.dumps(_with(notes="x" * (MAX_BODY + 1))).encode()

    refused = await api.post("/v1/messages", content=chunked(oversized), headers=AUTH | json_type)
    assert (refused.status_code, refused.json()["reason"]) == (413, "TOO_LARGE")
    anonymous = await api.post("/v1/messages", content=chunked(oversized), headers=json_type)
    assert (anonymous.status_code, anonymous.json()["reason"]) == (401, "UNAUTHORIZED")
    assert stack.produced() == before

    # a chunked body within the limit reaches the route whole
    fits = json.dumps(_with(notes="x" * (MAX_BODY // 2))).encode()
    accepted = await api.post("/v1/messages", content=chunked(fits, 1000), headers=AUTH | json_type)
    assert accepted.status_code == 202, accepted.text
    assert ind.store.counts()["sent"] == 1


# --- the bearer token ------------------------------------------------------------------------

V1_ROUTES = [
    ("POST", "/v1/messages"),
    ("POST", "/v1/messages:batch"),
    ("GET", f"/v1/messages/{uuid.uuid4()}"),
    ("GET", "/v1/messages?overdue=true"),
    ("GET", "/v1/inbox"),
    ("POST", f"/v1/inbox/{uuid.uuid4()}/ack"),
]
BAD_CREDENTIALS = {
    "missing": {},
    "wrong-token": {"Authorization": "Bearer not-the-token"},
    "token-prefix": {"Authorization": f"Bearer {TOKEN[:-1]}"},
    "no-token": {"Authorization": "Bearer"},
    "other-scheme": {"Authorization": f"Basic {TOKEN}"},
}


@pytest.mark.parametrize("credentials", BAD_CREDENTIALS, ids=list(BAD_CREDENTIALS))
async def test_every_v1_route_needs_the_bearer_token(stack: Stack, credentials: str) -> None:
    ind = await stack.started(IND)
    api = await stack.serve(ind)
    before = stack.produced()

    for method, path in V1_ROUTES:
        body = (
            {
                "/v1/messages": send_body(),
                "/v1/messages:batch": {"items": [send_body()]},
            }.get(path.split("?")[0])
            if method == "POST"
            else None
        )
        response = await api.request(method, path, json=body, headers=BAD_CREDENTIALS[credentials])
        assert response.status_code == 401, (method, path, response.text)
        assert response.json()["reason"] == "UNAUTHORIZED"
        assert response.headers["www-authenticate"] == "Bearer"

    assert stack.produced() == before  # the valid message without a valid token was not sent
    assert ind.store.counts()["sent"] == 0


async def test_the_token_is_needed_behind_a_proxy_prefix_too(stack: Stack) -> None:
    """Behind a root_path the router matches /v1 routes under the prefix: so does the one
    token check, the gatekeeper's (the routes do not check again)."""
    app = create_app(await stack.started(IND), token=TOKEN)
    transport = httpx.ASGITransport(app=app, root_path="/api")
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as api:
        anonymous = await api.get("/api/v1/inbox")
        authorised = await api.get("/api/v1/inbox", headers=AUTH)
    assert (anonymous.status_code, anonymous.json()["reason"]) == (401, "UNAUTHORIZED")
    assert authorised.status_code == 200, authorised.text


async def test_unauthenticated_bad_body_learns_nothing_about_the_schema(stack: Stack) -> None:
    api = await stack.serve(await stack.started(IND))
    response = await api.post("/v1/messages", json={"type": "Nonsense"})
    assert (response.status_code, response.json()["reason"]) == (401, "UNAUTHORIZED")


async def test_unauthenticated_broken_body_is_refused_as_unauthorised(stack: Stack) -> None:
    api = await stack.serve(await stack.started(IND))
    response = await api.post(
        "/v1/messages", content=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert (response.status_code, response.json()["reason"]) == (401, "UNAUTHORIZED")


# --- status and overdue ----------------------------------------------------------------------


async def test_status_of_an_unknown_message_is_404(stack: Stack) -> None:
    api = await stack.serve(await stack.started(IND))
    response = await api.get(f"/v1/messages/{uuid.uuid4()}", headers=AUTH)
    assert (response.status_code, response.json()["reason"]) == (404, "NOT_FOUND")
    assert (await api.get("/v1/messages/not-a-uuid", headers=AUTH)).status_code == 422


async def test_message_without_receipt_becomes_overdue(stack: Stack) -> None:
    now = [NOW]
    ind = await stack.started(IND, clock=lambda: now[0])
    api = await stack.serve(ind, receipt_timeout=timedelta(minutes=5))
    sent = await api.post("/v1/messages", json=send_body([MUNI]), headers=AUTH)
    message_id = sent.json()["message_id"]

    status = await api.get(f"/v1/messages/{message_id}", headers=AUTH)
    assert (status.json()["status"], status.json()["overdue"]) == ("SENT", False)
    assert (await api.get("/v1/messages?overdue=true", headers=AUTH)).json() == {"overdue": []}

    now[0] = NOW + timedelta(minutes=6)  # the municipality's gateway never ran
    status = await api.get(f"/v1/messages/{message_id}", headers=AUTH)
    assert (status.json()["status"], status.json()["overdue"]) == ("SENT", True)
    overdue = await api.get("/v1/messages?overdue=true", headers=AUTH)
    assert overdue.json() == {"overdue": [message_id]}


# --- the inbox -------------------------------------------------------------------------------


async def test_inbox_lists_a_delivered_message_until_it_is_acknowledged(stack: Stack) -> None:
    ind = await stack.started(IND)
    muni = await stack.started(MUNI, run=True)
    api = await stack.serve(muni)
    message_id = str(await ind.send(example("DossierDelivered"), [MUNI]))

    async def listed() -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = (await api.get("/v1/inbox", headers=AUTH)).json()["items"]
        return items

    (entry,) = await eventually(listed, "the delivery", every_s=0.02)
    assert entry == {
        "message_id": message_id,
        "type": "nl.lvv.v1.DossierDelivered",
        "sender": IND,
        "case_id": dossier_json()["case_id"],
        "created_at": entry["created_at"],
        "received_at": entry["received_at"],
        "message": dossier_json(),
        "traceparent": entry["traceparent"],
    }
    assert tc.is_canonical(entry["traceparent"])  # the receiving gateway's span

    refused = await api.post(f"/v1/inbox/{message_id}/ack")  # no token: not acknowledged
    assert refused.status_code == 401
    assert len((await api.get("/v1/inbox", headers=AUTH)).json()["items"]) == 1

    acked = await api.post(f"/v1/inbox/{message_id}/ack", headers=AUTH)
    assert (acked.status_code, acked.content) == (204, b"")
    assert (await api.get("/v1/inbox", headers=AUTH)).json() == {"items": []}
    again = await api.post(f"/v1/inbox/{message_id}/ack", headers=AUTH)
    assert again.status_code == 204  # acknowledging twice is harmless (a retried request)

    unknown = await api.post(f"/v1/inbox/{uuid.uuid4()}/ack", headers=AUTH)
    assert (unknown.status_code, unknown.json()["reason"]) == (404, "NOT_FOUND")
    assert (await api.post("/v1/inbox/not-a-uuid/ack", headers=AUTH)).status_code == 422


# --- platform endpoints ----------------------------------------------------------------------


async def test_healthz_and_readyz_follow_the_gateway(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    ind = stack.gateway(IND)
    api = await stack.serve(ind)

    health = await api.get("/healthz")
    assert (health.status_code, health.json()) == (200, {"status": "ok", "party": IND})
    not_yet = await api.get("/readyz")
    assert (not_yet.status_code, not_yet.json()["reason"]) == (503, "NOT_READY")

    await ind.start()
    ready = await api.get("/readyz")
    assert (ready.status_code, ready.json()) == (200, {"status": "ready"})

    async def silent() -> None:
        raise TransportUnavailable("the log does not answer")

    monkeypatch.setattr(ind.transport, "ping", silent)
    assert (await api.get("/readyz")).status_code == 503
    monkeypatch.undo()
    assert (await api.get("/readyz")).status_code == 200

    await ind.close()
    assert (await api.get("/readyz")).status_code == 503
    assert (await api.get("/healthz")).status_code == 200


async def test_metrics_show_what_was_sent_without_ids(stack: Stack) -> None:
    observer = PrometheusObserver(IND)
    ind = await stack.started(IND, observer=observer)
    api = await stack.serve(ind, metrics=observer.page)
    sent = await api.post("/v1/messages", json=send_body(), headers=AUTH)
    assert sent.status_code == 202

    response = await api.get("/metrics")  # no token: scraped by the platform

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(response.text)
        for s in family.samples
    }
    key = ("lvv_messages_sent_total", (("party", IND), ("type", "DossierDelivered")))
    assert samples[key] == 2  # one per recipient
    assert sent.json()["message_id"] not in response.text
    assert dossier_json()["case_id"] not in response.text


async def test_openapi_describes_one_request_schema_per_message_type(stack: Stack) -> None:
    api = await stack.serve(stack.gateway(IND))

    spec = (await api.get("/openapi.json")).json()

    post = spec["paths"]["/v1/messages"]["post"]
    schema = post["requestBody"]["content"]["application/json"]["schema"]
    names = {model.avro_name.rsplit(".", 1)[1] for model in CASE_MESSAGES}
    assert set(schema["discriminator"]["mapping"]) == names
    assert schema["discriminator"]["propertyName"] == "type"
    assert len(schema["oneOf"]) == len(CASE_MESSAGES)
    components = spec["components"]["schemas"]
    for name, ref in schema["discriminator"]["mapping"].items():
        request = components[ref.rsplit("/", 1)[1]]
        assert request["properties"]["type"]["const"] == name
        assert {"type", "recipients", "message"} <= set(request["required"])
    assert {"202", "401", "403", "413", "422"} <= set(post["responses"])
    assert any(s.get("scheme") == "bearer" for s in spec["components"]["securitySchemes"].values())
    assert "/metrics" not in spec["paths"]


async def test_an_id_two_senders_used_is_acknowledged_by_naming_the_sender(stack: Stack) -> None:
    """Ids are each sender's own: two messages of one id from two senders are both in the
    inbox; acknowledging by id alone is ambiguous (409), naming the sender takes the one."""
    muni = await stack.started(A[PartyRole.MUNICIPALITY])
    api = await stack.serve(muni)
    message_id, now = uuid.uuid4(), NOW
    for n, sender in enumerate((A[PartyRole.IND], A[PartyRole.NGO])):
        muni.store.record_delivery(
            source=f"inbox/0/{n}", claims=muni.store.staged_claims(), envelope_sha256=bytes([n]) * 32,
            message_id=message_id, message_type="nl.lvv.v1.DossierDelivered", sender=sender,
            case_id=uuid.uuid4(), created_at=now, message_json="{}", now=now,
            followup=delivery_followup(sender, message_id),
        )  # fmt: skip
        muni.store.followups_done([f"inbox/0/{n}"])

    ambiguous = await api.post(f"/v1/inbox/{message_id}/ack", headers=AUTH)
    assert (ambiguous.status_code, ambiguous.json()["reason"]) == (409, "AMBIGUOUS_MESSAGE_ID")
    taken = await api.post(
        f"/v1/inbox/{message_id}/ack", params={"sender": A[PartyRole.NGO]}, headers=AUTH
    )
    assert taken.status_code == 204
    left = (await api.get("/v1/inbox", headers=AUTH)).json()["items"]
    assert [(i["message_id"], i["sender"]) for i in left] == [(str(message_id), A[PartyRole.IND])]
    assert (await api.post(f"/v1/inbox/{message_id}/ack", headers=AUTH)).status_code == 204


# --- trace context (W3C traceparent; docs/OPERATING.md § Trace context) ------------------------

BACK_OFFICE_TRACE = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


async def _audit_events(stack: Stack, party: str) -> list[Any]:
    from broker.audit import decode_event
    from broker.topics import audit

    return [decode_event(r.value) for r in await stack.log.read_topic(audit(party))]


async def test_the_traceparent_travels_from_the_sending_request_to_the_receiving_back_office(
    stack: Stack,
) -> None:
    from broker.models import AuditAction

    ind = await stack.started(IND, run=True)
    muni = await stack.started(MUNI, run=True)
    sender_api, recipient_api = await stack.serve(ind), await stack.serve(muni)
    headers = {**AUTH, "traceparent": BACK_OFFICE_TRACE}
    response = await sender_api.post("/v1/messages", json=send_body([MUNI]), headers=headers)
    assert response.status_code == 202, response.text
    message_id = response.json()["message_id"]
    await until_status(sender_api, message_id, "RECEIPTED")

    (entry,) = (await recipient_api.get("/v1/inbox", headers=AUTH)).json()["items"]
    delivered = tc.parse(entry["traceparent"])
    back_office = tc.parse(BACK_OFFICE_TRACE)
    assert delivered.trace_id == back_office.trace_id and delivered.span_id != back_office.span_id

    sent = [e for e in await _audit_events(stack, IND) if e.action is AuditAction.SENT]
    taken = {
        e.action: e
        for e in await _audit_events(stack, MUNI)
        if e.action is not AuditAction.CHECKPOINT
    }
    receipted = [
        e for e in await _audit_events(stack, IND) if e.action is AuditAction.RECEIPT_RECEIVED
    ]
    (send,), (receipt_in,) = sent, receipted
    send_span = tc.parse(send.traceparent)
    assert send_span.trace_id == back_office.trace_id and send.parent_span_id == back_office.span_id
    deliver = taken[AuditAction.DELIVERED]
    assert deliver.traceparent == entry["traceparent"]
    assert deliver.parent_span_id == send_span.span_id  # the envelope carried the sender's span
    receipt_out = taken[AuditAction.RECEIPT_SENT]
    assert tc.parse(receipt_out.traceparent).trace_id == back_office.trace_id
    assert receipt_out.parent_span_id == delivered.span_id
    assert receipt_in.parent_span_id == tc.parse(receipt_out.traceparent).span_id  # back again
    assert tc.parse(receipt_in.traceparent).trace_id == back_office.trace_id


async def test_without_a_traceparent_the_gateway_starts_a_trace(stack: Stack) -> None:
    from broker.models import AuditAction

    ind = await stack.started(IND, run=True)
    api = await stack.serve(ind)
    await stack.started(MUNI)
    response = await api.post("/v1/messages", json=send_body([MUNI]), headers=AUTH)
    assert response.status_code == 202, response.text
    (send,) = [e for e in await _audit_events(stack, IND) if e.action is AuditAction.SENT]
    assert tc.is_canonical(send.traceparent) and send.parent_span_id is None


@pytest.mark.parametrize(
    "bad",
    [
        "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
        "ff-" + BACK_OFFICE_TRACE[3:],
        "garbage",
    ],
)
async def test_a_malformed_traceparent_is_refused_422_and_nothing_is_sent(
    stack: Stack, bad: str
) -> None:
    ind = await stack.started(IND)
    api = await stack.serve(ind)
    before = stack.produced()
    response = await api.post("/v1/messages", json=send_body([MUNI]),
                              headers={**AUTH, "traceparent": bad})  # fmt: skip
    assert response.status_code == 422, response.text
    assert response.json()["reason"] == "BAD_TRACEPARENT"
    batch = await api.post("/v1/messages:batch", json={"items": [{**send_body([MUNI]), "traceparent": bad}]},
                           headers=AUTH)  # fmt: skip
    assert batch.status_code == 200 and batch.json()["items"][0]["reason"] == "BAD_TRACEPARENT"
    assert stack.produced() == before


async def test_a_sender_still_on_format_2_keeps_the_trace_to_itself(stack: Stack) -> None:
    """The rollout setting (envelope_format = 2): the envelope has no traceparent, so the
    recipient starts a trace of its own for it; the sender's SENT still has the back office's."""
    from broker.models import AuditAction

    ind = await stack.started(IND, run=True, envelope_format=2)
    muni = await stack.started(MUNI, run=True)
    sender_api, recipient_api = await stack.serve(ind), await stack.serve(muni)
    headers = {**AUTH, "traceparent": BACK_OFFICE_TRACE}
    response = await sender_api.post("/v1/messages", json=send_body([MUNI]), headers=headers)
    assert response.status_code == 202, response.text
    await until_status(sender_api, response.json()["message_id"], "RECEIPTED")
    (send,) = [e for e in await _audit_events(stack, IND) if e.action is AuditAction.SENT]
    assert tc.parse(send.traceparent).trace_id == tc.parse(BACK_OFFICE_TRACE).trace_id
    (entry,) = (await recipient_api.get("/v1/inbox", headers=AUTH)).json()["items"]
    assert tc.is_canonical(entry["traceparent"])
    assert tc.parse(entry["traceparent"]).trace_id != tc.parse(BACK_OFFICE_TRACE).trace_id
    (deliver,) = [e for e in await _audit_events(stack, MUNI) if e.action is AuditAction.DELIVERED]
    assert deliver.traceparent == entry["traceparent"] and deliver.parent_span_id is None
