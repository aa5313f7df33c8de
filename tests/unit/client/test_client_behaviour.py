"""How the client behaves around the calls: it retries what is retriable — after the
gateway's Retry-After, else with back-off — and nothing else; a send whose answer never
came is retried only with its idempotency key; timeouts are the client's and the call's;
the token comes from the argument, a file or the environment; TLS is verified (mutual when
the gateway asks). Against real gateways, a silent socket and a closed port."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn

from broker.client import (
    TOKEN_ENV,
    TOKEN_FILE_ENV,
    CallRecord,
    GatewayClient,
    NotReached,
    OutcomeUnknown,
    RetryPolicy,
    Tls,
)
from broker.crypto import Pki
from broker.errors import LocalError
from broker.gateway import utc_now
from broker.gateway.api import create_app
from demo.examples import example
from tests.support import eventually
from tests.unit.client.conftest import IND, MUNI, TOKEN, Flavour, log_away, log_back
from tests.unit.gateway.test_api import Stack, _Server

DOSSIER = example("DossierDelivered")
QUICK = RetryPolicy(attempts=3, first_backoff_s=0.01, max_backoff_s=0.02)


def tries(calls: list[CallRecord]) -> list[tuple[int, int | None, str | None]]:
    return [(c.attempt, c.status, c.error.reason if c.error else None) for c in calls]


async def test_a_send_in_an_outage_is_sent_once_the_gateway_is_back_after_its_retry_after(
    flavour: Flavour,
) -> None:
    ind = await flavour.started(IND, run=True)
    await flavour.started(MUNI, run=True)
    calls: list[CallRecord] = []
    api = await flavour.connect(ind, on_call=calls.append)
    log_away(ind)
    asyncio.get_running_loop().call_later(1.0, log_back, ind)  # back in a second
    started = time.monotonic()

    message_id = await api.send(DOSSIER, [MUNI])

    assert time.monotonic() - started >= 5.0  # the gateway's Retry-After, not our back-off
    assert tries(calls) == [(1, 503, "TRANSPORT_UNAVAILABLE"), (2, 202, None)]
    assert calls[0].wait_s == 5.0
    assert (await api.status(message_id)).recipients == [MUNI]


async def test_a_gateway_not_listening_is_retried_with_back_off_then_not_reached() -> None:
    calls: list[CallRecord] = []
    with closed_port() as port:
        client = GatewayClient(f"http://127.0.0.1:{port}", token=TOKEN, retry=QUICK,
                               on_call=calls.append)  # fmt: skip
        with client, pytest.raises(NotReached) as unreached:
            await asyncio.to_thread(client.send, DOSSIER, [MUNI])
    assert unreached.value.retriable and not unreached.value.outcome_unknown
    assert tries(calls) == [(n, None, "NOT_REACHED") for n in (1, 2, 3)]
    assert [c.wait_s is not None for c in calls] == [True, True, False]
    assert all(0.01 <= (c.wait_s or 0.01) <= 0.022 for c in calls)


@pytest.mark.parametrize("keyed", [True, False], ids=["with-key", "without-key"])
async def test_a_send_without_an_answer_is_retried_only_with_its_idempotency_key(
    keyed: bool,
) -> None:
    calls: list[CallRecord] = []
    async with silent_server() as (port, seen):
        client = GatewayClient(f"http://127.0.0.1:{port}", token=TOKEN, timeout_s=0.2,
                               retry=QUICK, idempotency_keys=keyed, on_call=calls.append)  # fmt: skip
        with client, pytest.raises(OutcomeUnknown) as unknown:
            await asyncio.to_thread(client.send, DOSSIER, [MUNI])
    assert unknown.value.outcome_unknown and unknown.value.retriable
    assert unknown.value.reason == "TIMEOUT"
    assert [c.attempt for c in calls] == ([1, 2, 3] if keyed else [1])
    keys = {header_of(request, b"idempotency-key") for request in seen} - {None}
    assert len(keys) == (1 if keyed else 0)  # every retry carries the first try's key


async def test_a_call_may_have_a_longer_timeout_than_the_client() -> None:
    async with silent_server() as (port, _):
        client = GatewayClient(f"http://127.0.0.1:{port}", token=TOKEN, timeout_s=0.1,
                               retry=RetryPolicy.never())  # fmt: skip
        started = time.monotonic()
        with client, pytest.raises(OutcomeUnknown):
            await asyncio.to_thread(client.send, DOSSIER, [MUNI], timeout_s=0.6)
    assert time.monotonic() - started >= 0.6


async def test_a_bad_idempotency_key_is_refused_unsent_and_an_own_key_is_taken(
    flavour: Flavour,
) -> None:
    ind = await flavour.started(IND)
    calls: list[CallRecord] = []
    api = await flavour.connect(ind, on_call=calls.append, retry=QUICK)
    with pytest.raises(LocalError) as bad_key:
        await api.send(DOSSIER, [MUNI], idempotency_key="no\nnewlines")
    assert bad_key.value.reason == "INVALID_IDEMPOTENCY_KEY" and calls == []
    message_id = await api.send(DOSSIER, [MUNI], idempotency_key="back-office-42")
    assert tries(calls) == [(1, 202, None)]
    assert (await api.status(message_id)).status == "SENT"


# --- the token --------------------------------------------------------------------------------


async def test_the_token_comes_from_a_file_or_the_environment(
    flavour: Flavour, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ind = await flavour.started(IND)
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    monkeypatch.delenv(TOKEN_ENV, raising=False)
    monkeypatch.delenv(TOKEN_FILE_ENV, raising=False)

    assert (await (await flavour.connect(ind, token=None, token_file=token_file)).overdue()) == []
    monkeypatch.setenv(TOKEN_FILE_ENV, str(token_file))
    assert (await (await flavour.connect(ind, token=None)).overdue()) == []
    monkeypatch.setenv(TOKEN_ENV, TOKEN)
    monkeypatch.setenv(TOKEN_FILE_ENV, str(tmp_path / "nowhere"))  # the token goes first
    assert (await (await flavour.connect(ind, token=None)).overdue()) == []


def test_no_token_or_an_unreadable_file_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(TOKEN_ENV, raising=False)
    monkeypatch.delenv(TOKEN_FILE_ENV, raising=False)
    for options in ({}, {"token_file": tmp_path / "nowhere"}, {"token": ""}):
        with pytest.raises(LocalError) as refused:
            GatewayClient("http://127.0.0.1:1", **options)
        assert refused.value.reason == "NO_TOKEN"


# --- TLS --------------------------------------------------------------------------------------


async def test_tls_is_verified_and_mutual_when_the_gateway_asks(
    stack: Stack, tmp_path: Path
) -> None:
    pki = Pki(tmp_path / "pki")
    pki.init([IND, MUNI], now=utc_now())
    server, back_office = pki.files("broker"), pki.files(IND)  # the broker's has 127.0.0.1
    ind = await stack.started(IND)
    url = await tls_server(stack, create_app(ind, token=TOKEN), server.certificate, server.key,
                           server.ca)  # fmt: skip

    mutual = Tls(ca_file=back_office.ca, cert_file=back_office.certificate,
                 key_file=back_office.key)  # fmt: skip
    with GatewayClient(url, token=TOKEN, tls=mutual) as client:
        assert (await asyncio.to_thread(client.health)).party == IND
    with GatewayClient(url, token=TOKEN, retry=QUICK) as untrusting:  # the system's CAs
        with pytest.raises(NotReached) as refused:
            await asyncio.to_thread(untrusting.health)
        assert (refused.value.reason, refused.value.retriable) == ("TLS_REFUSED", False)
    with pytest.raises(LocalError) as half:
        GatewayClient(url, token=TOKEN, tls=Tls(cert_file=back_office.certificate))
    assert half.value.reason == "TLS_CONFIG"


# --- helpers ----------------------------------------------------------------------------------


def header_of(request: bytes, name: bytes) -> bytes | None:
    """The value of header ``name`` (lower case) in a request's head, or None."""
    for line in request.split(b"\r\n")[1:]:
        key, _, value = line.partition(b":")
        if key.strip().lower() == name:
            return value.strip()
    return None


@contextlib.contextmanager
def closed_port() -> Iterator[int]:
    """A loopback port nobody listens on (bound, not listening, so no one else takes it)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        yield s.getsockname()[1]


@contextlib.asynccontextmanager
async def silent_server() -> Any:
    """A server that takes every request and never answers; yields its port and the
    requests' first bytes (method, path, headers)."""
    seen: list[bytes] = []
    held: list[asyncio.StreamWriter] = []

    async def take(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)
        with contextlib.suppress(Exception):
            seen.append(await reader.readuntil(b"\r\n\r\n"))

    server = await asyncio.start_server(take, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1], seen
    finally:
        for writer in held:
            writer.close()
        server.close()
        await server.wait_closed()


async def tls_server(stack: Stack, app: Any, cert: Path, key: Path, ca: Path) -> str:
    """``app`` on a free loopback port over TLS, asking for a client certificate of ``ca``."""
    import ssl

    config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="critical", lifespan="off",
                            ssl_certfile=cert, ssl_keyfile=key, ssl_ca_certs=str(ca),
                            ssl_cert_reqs=ssl.CERT_REQUIRED)  # fmt: skip
    server = _Server(config)
    task = asyncio.create_task(server.serve())
    stack.servers.append((server, task))
    await eventually(lambda: server.started or task.done(), "uvicorn to start")
    return f"https://127.0.0.1:{server.servers[0].sockets[0].getsockname()[1]}"
