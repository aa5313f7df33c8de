"""The webhook: each delivered message is POSTed to the back office signed with the webhook's
own secret (HMAC-SHA256 over ``<timestamp>.<body>``, header ``LVVX-Signature``), never with
the API's bearer token; a real receiver on loopback checks it with the SDK's
`check_webhook_signature_at`, which refuses a changed body, another secret, a stale or
future timestamp and a malformed header, each with its reason. The settings refuse plain http to
anything but loopback unless explicitly allowed, and a webhook URL without a secret."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from broker.api_contract import SIGNATURE_HEADER, WEBHOOK_TOLERANCE_S, webhook_signature
from broker.client import WebhookSignatureInvalid, check_webhook_signature_at
from broker.errors import LocalError
from broker.gateway._webhook import BACKOFF_FIRST_S, WebhookPusher
from broker.gateway.settings import load_settings
from tests.support import eventually

SECRET = "webhook-secret-0123456789abcdef0123456789"
API_TOKEN = "back-office-token-0123456789abcdef"
T = 1_790_000_000
BODY = b'{"message_id": "x", "message": {"a": 1}}'


# --- a real receiver ----------------------------------------------------------------------------


class Receiver:
    """An HTTP server on 127.0.0.1 (a free port) that keeps what it was sent."""

    def __init__(self, status: int = 200) -> None:
        self.status = status
        self.requests: list[tuple[dict[str, str], bytes]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # http.server's naming
                body = self.rfile.read(int(self.headers["Content-Length"]))
                outer.requests.append(({k.lower(): v for k, v in self.headers.items()}, body))
                self.send_response(outer.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/lvv/inbox"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Receiver:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


@dataclass(frozen=True)
class Item:
    """What the pusher reads of an inbox item (`broker.gateway.InboxItem` has these)."""

    message_id: uuid.UUID
    message_type: str
    sender: str
    case_id: uuid.UUID
    created_at: datetime
    received_at: datetime
    message: dict[str, Any]
    traceparent: str | None = None


class Inbox:
    """The two store calls the pusher makes, in memory."""

    def __init__(self, items: list[Item]) -> None:
        self.items = {i.message_id: i for i in items}
        self.acked: list[uuid.UUID] = []

    def inbox(self, *, limit: int) -> list[Item]:
        return [i for i in self.items.values() if i.message_id not in self.acked][:limit]

    def ack(self, message_id: uuid.UUID, now: datetime, *, sender: str | None = None) -> bool:
        assert sender == self.items[message_id].sender  # ids are each sender's own
        self.acked.append(message_id)
        return True


def item() -> Item:
    at = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
    return Item(
        message_id=uuid.uuid4(), message_type="nl.lvv.v1.DossierDelivered", sender="ind",
        case_id=uuid.uuid4(), created_at=at, received_at=at,
        message={"notes": "Ëén dossier", "procedures": [1, 2]},
    )  # fmt: skip


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver() as r:
        yield r


async def test_a_push_is_signed_with_the_webhook_secret_and_verifies_at_the_back_office(
    receiver: Receiver,
) -> None:
    inbox = Inbox([item()])
    pusher = WebhookPusher(inbox, receiver.url, SECRET)
    try:
        assert await pusher.push_due() == 1
    finally:
        await pusher.aclose()

    ((headers, body),) = receiver.requests
    check_webhook_signature_at(SECRET, headers[SIGNATURE_HEADER.lower()], body,
                               datetime.now(UTC).timestamp())  # fmt: skip
    assert headers["content-type"] == "application/json"
    assert inbox.acked == list(inbox.items)


async def test_a_push_carries_the_deliverys_traceparent(receiver: Receiver) -> None:
    trace = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    pusher = WebhookPusher(Inbox([replace(item(), traceparent=trace)]), receiver.url, SECRET)
    try:
        assert await pusher.push_due() == 1
    finally:
        await pusher.aclose()
    ((headers, body),) = receiver.requests
    assert headers["traceparent"] == trace
    assert json.loads(body)["traceparent"] == trace


async def test_a_push_carries_no_bearer_token(receiver: Receiver) -> None:
    pusher = WebhookPusher(Inbox([item()]), receiver.url, SECRET)
    try:
        await pusher.push_due()
    finally:
        await pusher.aclose()
    ((headers, body),) = receiver.requests
    assert "authorization" not in headers
    assert API_TOKEN not in str(headers) and SECRET not in str(headers)
    assert SECRET.encode() not in body


async def test_a_refused_push_stays_in_the_inbox_and_is_signed_afresh_on_retry() -> None:
    with Receiver(status=503) as receiver:
        clock = [float(T)]
        inbox = Inbox([item()])
        pusher = WebhookPusher(inbox, receiver.url, SECRET, clock=lambda: clock[0])
        try:
            refused_at = time.monotonic()
            assert await pusher.push_due() == 0
            clock[0] += 60
            receiver.status = 200
            assert await pusher.push_due() == 0  # backing off: not tried again at once
            await eventually(pusher.push_due, "the retry", timeout_s=BACKOFF_FIRST_S * 10)
            assert time.monotonic() - refused_at >= BACKOFF_FIRST_S  # only after the back-off
        finally:
            await pusher.aclose()
    (first, _), (second, _) = receiver.requests  # one refused, one taken: nothing in between
    assert first[SIGNATURE_HEADER.lower()].startswith(f"t={T},")
    assert second[SIGNATURE_HEADER.lower()].startswith(f"t={T + 60},")


BAD_SIGNATURE_CASES = [
    "body-changed",
    "other-secret",
    "stale",
    "future",
    "other-timestamp",
    "empty",
    "no-timestamp",
    "no-signature",
    "bad-timestamp",
    "two-timestamps",
    "huge",
    "not-ascii",
]


# --- the signature scheme -----------------------------------------------------------------------


def test_the_signature_is_hmac_sha256_over_timestamp_dot_body() -> None:
    expected = hmac.new(SECRET.encode(), f"{T}.".encode() + BODY, hashlib.sha256).hexdigest()
    assert webhook_signature(SECRET, BODY, T) == f"t={T},v1={expected}"


def test_a_genuine_signature_verifies_within_the_window() -> None:
    header = webhook_signature(SECRET, BODY, T)
    check_webhook_signature_at(SECRET, header, BODY, T + WEBHOOK_TOLERANCE_S)
    check_webhook_signature_at(SECRET, header, BODY, T - WEBHOOK_TOLERANCE_S)


def test_any_of_several_v1_signatures_may_match() -> None:
    # a gateway rotating its secret may sign with both for a while (Stripe's scheme)
    good = webhook_signature(SECRET, BODY, T).split(",v1=")[1]
    check_webhook_signature_at(SECRET, f"t={T},v1={'0' * 64},v1={good}", BODY, T)


@pytest.mark.parametrize(
    ("header", "body", "secret", "now", "reason"),
    [
        (None, BODY + b" ", SECRET, T, "BAD_SIGNATURE"),
        (None, BODY, SECRET + "x", T, "BAD_SIGNATURE"),
        (None, BODY, SECRET, T + WEBHOOK_TOLERANCE_S + 1, "EXPIRED"),
        (None, BODY, SECRET, T - WEBHOOK_TOLERANCE_S - 1, "FROM_FUTURE"),
        (f"t={T + 1},v1=", BODY, SECRET, T, "BAD_SIGNATURE"),
        ("", BODY, SECRET, T, "MALFORMED"),
        ("v1=abc", BODY, SECRET, T, "MALFORMED"),
        (f"t={T}", BODY, SECRET, T, "MALFORMED"),
        ("t=soon,v1=abc", BODY, SECRET, T, "MALFORMED"),
        (f"t={T},t={T},v1=abc", BODY, SECRET, T, "MALFORMED"),
        ("t=1," + "v1=a," * 1000, BODY, SECRET, T, "MALFORMED"),
        (f"t={T},v1=\u00e9\ud800", BODY, SECRET, T, "BAD_SIGNATURE"),
    ],
    ids=BAD_SIGNATURE_CASES,
)
def test_a_bad_signature_is_refused_with_its_reason(
    header: str | None, body: bytes, secret: str, now: float, reason: str
) -> None:
    if header is None:
        header = webhook_signature(SECRET, BODY, T)
    elif header.endswith("v1="):
        header += webhook_signature(SECRET, BODY, T).split(",v1=")[1]  # signed at T, claims T+1
    with pytest.raises(WebhookSignatureInvalid) as caught:
        check_webhook_signature_at(secret, header, body, now)
    assert caught.value.reason == reason


# --- the settings ---------------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def _no_gateway_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("LVVX_GATEWAY_"):
            monkeypatch.delenv(name)


INSECURE = [
    "http://backoffice.utrecht.internal/lvv",
    "http://10.0.0.7:8080/lvv",
    "http://localhost.example.org/lvv",
    "http://[2001:db8::1]/lvv",
]
ACCEPTED = [
    "http://127.0.0.1:9000/lvv",
    "http://127.8.9.10/lvv",
    "http://localhost:9000/lvv",
    "http://LOCALHOST/lvv",
    "http://[::1]:9000/lvv",
    "https://backoffice.utrecht.internal/lvv",
]


def config(folder: Path, url: str, *lines: str, secret: bool = True) -> Path:
    if secret:
        (folder / "webhook.secret").write_text(SECRET + "\n")
        lines = (*lines, 'webhook_secret_file = "webhook.secret"')
    path = folder / "gateway.toml"
    path.write_text("\n".join((
        'party = "gemeente-utrecht"', 'keys_dir = "keys"', 'directory_file = "directory.bin"',
        'anchor_file = "keys/anchor.public.json"', 'network = "lvv"', 'data_dir = "state"',
        f'webhook_url = "{url}"', *lines,
    )) + "\n")  # fmt: skip
    return path


@pytest.mark.parametrize("url", INSECURE)
def test_plain_http_to_another_host_than_loopback_is_refused(tmp_path: Path, url: str) -> None:
    with pytest.raises(LocalError, match="webhook_allow_insecure_http") as caught:
        load_settings(config(tmp_path, url))
    assert caught.value.reason == "CONFIG"
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize("url", ACCEPTED)
def test_https_anywhere_and_plain_http_to_loopback_are_accepted(tmp_path: Path, url: str) -> None:
    settings = load_settings(config(tmp_path, url))
    assert settings.webhook_url is not None and settings.webhook_key() == SECRET


def test_plain_http_elsewhere_is_accepted_only_when_explicitly_allowed(tmp_path: Path) -> None:
    url = "http://backoffice.utrecht.internal/lvv"
    settings = load_settings(config(tmp_path, url, "webhook_allow_insecure_http = true"))
    assert str(settings.webhook_url) == url


def test_a_webhook_url_without_a_secret_is_refused(tmp_path: Path) -> None:
    with pytest.raises(LocalError, match="LVVX_GATEWAY_WEBHOOK_SECRET") as caught:
        load_settings(config(tmp_path, "https://backoffice.utrecht.internal/lvv", secret=False))
    assert caught.value.reason == "CONFIG"


def test_a_webhook_secret_file_that_is_empty_keeps_the_gateway_from_starting(
    tmp_path: Path,
) -> None:
    settings = load_settings(config(tmp_path, "https://backoffice.utrecht.internal/lvv"))
    (tmp_path / "webhook.secret").write_text("\n")
    with pytest.raises(LocalError) as caught:
        settings.webhook_key()
    assert caught.value.reason == "CONFIG"


def test_a_short_webhook_secret_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LVVX_GATEWAY_WEBHOOK_SECRET", "short")
    settings = load_settings(
        config(tmp_path, "https://backoffice.utrecht.internal/lvv", secret=False)
    )
    with pytest.raises(LocalError, match="at least") as caught:
        settings.webhook_key()
    assert caught.value.reason == "CONFIG"
