"""The gateway's HTTP API fuzzed from its own OpenAPI description (schemathesis): every
operation, with schema-valid and schema-breaking requests, against a real gateway on the
embedded log behind a real uvicorn server on loopback.

For every generated request: no 5xx, the answer is one the OpenAPI document describes
(status code, content type, body schema), schema-breaking data is refused, and a refused
request leaves nothing behind — no record in the log, no sent message in the store, no
inbox entry acknowledged. Bounded for CI: ``MAX_EXAMPLES`` per operation and mode.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import sqlite3
import threading
import time
from collections import Counter
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
import schemathesis
import uvicorn
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    negative_data_rejection,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from broker.audit import decode_event
from broker.contract import default_codec
from broker.gateway import Gateway, GatewayStore
from broker.gateway.api import create_app
from broker.models import AuditAction, AuditEvent, PartyRole
from broker.policy import POLICY, SENDER_FIELDS, SENDER_ROLE_FIELDS
from broker.topics import audit, inbox
from broker.transport import TopicSpec
from broker.transport.embedded import EmbeddedTransport
from demo.examples import example
from tests.crypto_net import CONTENT_KEY, NOW, A, Net
from tests.support import eventually

NET = Net()
IND, MUNI = A[PartyRole.IND], A[PartyRole.MUNICIPALITY]
TOKEN = "fuzz-back-office-token-0123456789abcdef"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
MAX_BODY = 64 * 1024
MAX_EXAMPLES = 25
"""Per operation and generation mode: enough to reach every branch of the API's input
handling, small enough for CI on a shared two-core machine (about a minute in all)."""
SLOW_EXAMPLES = 12
"""For schema-breaking send bodies: one request body per message type makes each costly to
generate (seconds apiece on a busy machine)."""
WAIT_S = 15.0
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    negative_data_rejection,
]

T = TypeVar("T")
Case = schemathesis.Case[Any]
"""A generated request, of any operation (its class has four type parameters of its own)."""


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def _is_checkpoint(audit_record: bytes) -> bool:
    event = default_codec().decode(AuditEvent.avro_name, audit_record)
    return bool(event["action"] == AuditAction.CHECKPOINT.value)


class ServedGateway:
    """A municipality's gateway with one delivered message in its inbox, and its API on a
    free loopback port — all on an event loop in a thread of its own, since schemathesis
    calls the API synchronously."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.log_path = folder / "log.db"
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.base_url = ""

    def call(self, coroutine: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(WAIT_S * 2)

    async def start(self) -> None:
        self.log = EmbeddedTransport(self.log_path)
        await self.log.ensure_topics([TopicSpec(inbox(p)) for p in NET.directory.parties])
        self.ind = self._gateway(IND)
        self.muni = self._gateway(MUNI)
        for gw in (self.ind, self.muni):
            await gw.start()
        # one message delivered to the municipality, so the inbox routes have something
        await self.ind.send(example("DossierDelivered"), [MUNI])
        # its receive loop runs on to the end (`Gateway.stop` is a stop of the whole gateway,
        # which then refuses sends); nothing else sends to it, so only the API changes state
        self.running = asyncio.create_task(self.muni.run())
        await eventually(
            lambda: self.muni.store.inbox(limit=1), "the setup message", timeout_s=WAIT_S
        )
        app = create_app(self.muni, token=TOKEN, max_body_bytes=MAX_BODY)
        config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="error", lifespan="off")
        self.server = _Server(config)
        self.serving = asyncio.create_task(self.server.serve())
        await eventually(
            lambda: self.server.started or self.serving.done(), "uvicorn to start", timeout_s=WAIT_S
        )
        assert self.server.started, f"uvicorn did not start: {self.serving.exception()}"
        port = self.server.servers[0].sockets[0].getsockname()[1]
        self.base_url = f"http://127.0.0.1:{port}"

    def _gateway(self, party: str) -> Gateway:
        return Gateway(
            keys=NET.keys(party), directory=NET.directory, transport=self.log,
            store=GatewayStore(self.folder / f"{party}.db", content_key=CONTENT_KEY), clock=lambda: NOW,
        )  # fmt: skip

    async def stop(self) -> None:
        self.server.should_exit = True
        await self.serving
        self.muni.stop()
        await self.running
        for gw in (self.ind, self.muni):
            await gw.close()
            gw.store.close()
        await self.log.close()

    def state(self) -> tuple[dict[str, int], dict[str, int]]:
        """Records per topic in the log, and the municipality's store totals. Not counted: the
        audit chains' checkpoints, which a running gateway writes on its own clock
        (`CHECKPOINT_EVERY_S` after its last events), whatever a request does meanwhile."""
        with contextlib.closing(sqlite3.connect(self.log_path)) as db:
            rows = db.execute("SELECT topic, value FROM records").fetchall()
        produced = Counter(
            topic for topic, value in rows if not (topic in AUDIT_TOPICS and _checkpoint(value))
        )
        return dict(produced), self.muni.store.counts()

    def settled(self) -> None:
        """Wait until the municipality's receive loop has handled every record of its inbox:
        a message it sent to itself is delivered in the background, and its DELIVERED event
        must not land during the next request (which would seem to have written it)."""
        topic = inbox(MUNI)

        def behind() -> bool:
            with contextlib.closing(sqlite3.connect(self.log_path)) as db:
                [(records,)] = db.execute("SELECT COUNT(*) FROM records WHERE topic = ?", (topic,))
            [(handled, pending)] = self.muni.store._read(
                "SELECT COUNT(*), COALESCE(SUM(pending), 0) FROM handled"
            )  # a record's follow-ups (its audit event among them) done: not pending
            return int(handled) < int(records) or int(pending) > 0

        deadline = time.monotonic() + WAIT_S
        while behind():
            assert time.monotonic() < deadline, "the municipality's loop did not catch up"
            time.sleep(0.01)

    def close(self) -> None:
        try:
            self.call(self.stop())
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(WAIT_S)
            self.loop.close()


AUDIT_TOPICS = {audit(p) for p in NET.directory.parties}


def _checkpoint(value: bytes) -> bool:
    return decode_event(value).action is AuditAction.CHECKPOINT


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServedGateway]:
    gateway = ServedGateway(tmp_path_factory.mktemp("api-fuzz"))
    try:
        gateway.call(gateway.start())
        yield gateway
    finally:
        gateway.close()


OPERATIONS = [
    ("POST", "/v1/messages"),
    ("POST", "/v1/messages:batch"),
    ("GET", "/v1/messages/{message_id}"),
    ("GET", "/v1/messages"),
    ("GET", "/v1/inbox"),
    ("POST", "/v1/inbox/{message_id}/ack"),
    ("GET", "/healthz"),
    ("GET", "/readyz"),
]


@pytest.fixture(scope="module")
def api_schema(served: ServedGateway) -> Any:
    loaded = schemathesis.openapi.from_url(f"{served.base_url}/openapi.json")
    loaded.config.update(base_url=served.base_url)
    loaded.config.generation.update(modes=list(GenerationMode), max_examples=MAX_EXAMPLES)
    return loaded


def call_and_check(served: ServedGateway, case: Case) -> int:
    """Send ``case`` (with the token it carries, if any); check the answer against the
    document and that a refused request changed nothing. Returns the status code."""
    before = served.state()

    response = case.call(base_url=served.base_url, timeout=WAIT_S)
    case.validate_response(response, checks=CHECKS)

    produced_before, store_before = before
    produced_after, store_after = served.state()
    if case.path == "/v1/messages:batch" and response.status_code == 200:  # each item its own
        sent = sum(item["status"] == 202 for item in response.json()["items"])
        assert store_after["sent"] == store_before["sent"] + sent
        assert (sum(produced_after.values()) > sum(produced_before.values())) == (sent > 0)
        served.settled()
        return response.status_code
    accepted = case.method.upper() == "POST" and response.status_code in (202, 204)
    if not accepted:  # refused (or only read): nothing written, nothing half applied
        assert (produced_after, store_after) == (produced_before, store_before), (
            response.status_code,
            response.text[:300],
        )
    elif case.path == "/v1/messages":  # one sent message: its envelopes and audit in the log
        assert store_after["sent"] == store_before["sent"] + 1
        assert sum(produced_after.values()) > sum(produced_before.values())
        served.settled()
    else:  # an acknowledgement changes the store, never the log
        assert produced_after == produced_before
    return response.status_code


PARTIES = sorted(NET.directory.parties)


def addressed(drawn: tuple[Case, random.Random]) -> Case:
    """A valid send to parties that exist — mostly ones the policy lets the type go to —
    naming this gateway where the payload names its sender: random party ids alone would
    stop every send at UNKNOWN_RECIPIENT, never reaching the policy or the log."""
    case, rnd = drawn
    body = case.body
    assert isinstance(body, dict)  # a positive send body is a JSON object
    message = body["message"]
    assert isinstance(message, dict)
    name = f"nl.lvv.v1.{body['type']}"
    allowed = [p for p in PARTIES if NET.directory.role(p) in POLICY[name].recipients]
    pool = allowed if allowed and rnd.random() < 0.8 else PARTIES
    body["recipients"] = rnd.sample(pool, rnd.randint(1, min(3, len(pool))))
    if name in SENDER_FIELDS:
        message[SENDER_FIELDS[name]] = MUNI
    if name in SENDER_ROLE_FIELDS:
        message[SENDER_ROLE_FIELDS[name]] = PartyRole.MUNICIPALITY.value
    return case


WITH_INPUT = [op for op in OPERATIONS if op[1].startswith("/v1/")]
"""Operations that take input a request can break (the platform's probes take none)."""

RUNS = [
    *((m, p, "positive") for m, p in OPERATIONS),
    *((m, p, "negative") for m, p in WITH_INPUT),
    *((m, p, "negative-auth") for m, p in WITH_INPUT),
]


@pytest.mark.parametrize("method, path, mode", RUNS, ids=[f"{m} {p} {g}" for m, p, g in RUNS])
def test_api_answers_generated_requests_as_documented(
    served: ServedGateway, api_schema: Any, method: str, path: str, mode: str
) -> None:
    """``positive``: schema-valid requests with the right token; ``negative``: requests
    breaking the schema, with the right token; ``negative-auth``: broken requests that may
    also break the token (the token check comes first)."""
    operation = api_schema[path][method]
    statuses: list[int] = []
    if mode == "negative-auth":
        strategy = operation.as_strategy(generation_mode=GenerationMode.NEGATIVE)
    else:
        strategy = operation.as_strategy(generation_mode=GenerationMode(mode), headers=AUTH)
    if (method, path, mode) == ("POST", "/v1/messages", "positive"):
        strategy = st.tuples(strategy, st.randoms(use_true_random=False)).map(addressed)

    examples = (
        SLOW_EXAMPLES
        if (method, path, mode) == ("POST", "/v1/messages", "negative")
        else MAX_EXAMPLES
    )

    @settings(max_examples=examples, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))  # fmt: skip
    @given(case=strategy)
    def fuzz(case: Case) -> None:
        statuses.append(call_and_check(served, case))

    fuzz()
    assert statuses, "no request was generated"
    if (method, path, mode) == ("POST", "/v1/messages", "positive"):
        assert 202 in statuses and 403 in statuses, statuses  # both branches were taken
    if mode != "negative-auth":  # the token went with every request and was taken
        assert 401 not in statuses, statuses
    if mode.startswith("negative"):  # something was refused, each with a documented answer
        assert any(400 <= s < 500 for s in statuses), statuses


@pytest.mark.parametrize("body", [b"\xff", b"\x12E\xff\xfe", b'{"type": "\xff"}'])
def test_a_body_that_does_not_decode_is_a_schema_violation_with_its_reason(
    served: ServedGateway, body: bytes
) -> None:
    """Found by the fuzz above: bytes FastAPI cannot decode as JSON at all came back as an
    undocumented 400 with no reason."""
    before = served.state()
    response = httpx.post(f"{served.base_url}/v1/messages", content=body, timeout=WAIT_S,
                          headers={**AUTH, "Content-Type": "application/json"})  # fmt: skip
    assert (response.status_code, response.json()["reason"]) == (422, "SCHEMA_VIOLATION")
    assert served.state() == before


@pytest.mark.parametrize(
    "method, path, status, reason",
    [("GET", "/v1/nothing", 404, "NOT_FOUND"), ("DELETE", "/v1/messages", 405, "METHOD_NOT_ALLOWED"),
     ("GET", "/nothing", 404, "NOT_FOUND")],
)  # fmt: skip
def test_the_routers_own_errors_carry_a_reason(
    served: ServedGateway, method: str, path: str, status: int, reason: str
) -> None:
    """An unknown path or method gets a Problem with a reason, like every other error."""
    response = httpx.request(method, f"{served.base_url}{path}", headers=AUTH, timeout=WAIT_S)
    assert (response.status_code, response.json()["reason"]) == (status, reason)


def test_the_fuzzed_document_covers_every_operation(api_schema: Any) -> None:
    """The fuzz above reaches every operation the API documents (a route left out of the
    OpenAPI document would be left out of the fuzz too)."""
    operations = {
        (result.ok().method.upper(), result.ok().path) for result in api_schema.get_all_operations()
    }
    assert operations == set(OPERATIONS)
