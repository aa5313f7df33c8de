"""Shared fixtures: transports for the contract suite, and the real Kafka brokers.

Tests marked ``kafka`` need real Apache Kafka brokers, as `make test` starts them
(tests/brokers.sh): a plaintext one at ``LVVX_KAFKA_BOOTSTRAP``, a secured one (mutual TLS,
ACLs) at ``LVVX_KAFKA_TLS_BOOTSTRAP`` with the PKI in ``LVVX_KAFKA_PKI``, and a secured
three-broker cluster at ``LVVX_KAFKA_CLUSTER_BOOTSTRAP`` (data in ``LVVX_KAFKA_CLUSTER_DIR``).
When one cannot be reached the tests that need it FAIL with the reason: a missing broker
must never turn into a green run.
"""

from __future__ import annotations

import asyncio
import gc
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from broker.transport import Transport
from broker.transport.embedded import EmbeddedTransport
from broker.transport.kafka import KafkaOptions, KafkaTransport
from tests import proxied_kafka as proxied
from tests.faults.proxy import TcpProxy

REPO = Path(__file__).resolve().parent.parent
KAFKA_BOOTSTRAP = os.environ.get("LVVX_KAFKA_BOOTSTRAP", "127.0.0.1:9092")
TLS_BOOTSTRAP = os.environ.get("LVVX_KAFKA_TLS_BOOTSTRAP", "127.0.0.1:9094")
PKI = Path(os.environ.get("LVVX_KAFKA_PKI", REPO / ".kafka" / "pki"))
CLUSTER_BOOTSTRAP = os.environ.get(
    "LVVX_KAFKA_CLUSTER_BOOTSTRAP", "127.0.0.1:29092,127.0.0.1:29093,127.0.0.1:29094"
)
CLUSTER_DIR = Path(os.environ.get("LVVX_KAFKA_CLUSTER_DIR", REPO / ".kafka" / "cluster"))

_checked: dict[str, str] = {}


async def require(options: KafkaOptions, how_to_start: str) -> None:
    """Fail (never skip) the test if the broker does not answer; checked once per run."""
    key = options.bootstrap_servers
    if _checked.get(key) == "ok":
        return
    if key in _checked:
        pytest.fail(_checked[key])
    transport = KafkaTransport(options.model_copy(update={"request_timeout_ms": 10_000}))
    try:
        await transport.ping()
        _checked[key] = "ok"
    except Exception as exc:
        _checked[key] = f"Kafka is not reachable at {key} ({exc}). {how_to_start}"
        pytest.fail(_checked[key])
    finally:
        await transport.close()


async def _require_kafka() -> None:
    await require(KafkaOptions(bootstrap_servers=KAFKA_BOOTSTRAP),
                  "Start it with `make kafka-up` or set LVVX_KAFKA_BOOTSTRAP; `make test` does both.")  # fmt: skip


def tls_options(bootstrap: str, identity: str, **more: object) -> KafkaOptions:
    """Options to connect as ``identity`` (a party id or ``admin``) with the test PKI."""
    settings = {"request_timeout_ms": 10_000, "send_timeout_ms": 15_000, "session_timeout_ms": 6_000,
                "heartbeat_interval_ms": 1_000, **more}  # fmt: skip
    return KafkaOptions.for_identity(bootstrap, PKI, identity, **settings)


@pytest.fixture
async def secured_admin() -> AsyncIterator[KafkaTransport]:
    """The secured single broker, as its admin (a super user)."""
    options = tls_options(TLS_BOOTSTRAP, "admin")
    await require(
        options,
        "Start it with `make kafka-secure-up` (LVVX_KAFKA_TLS_BOOTSTRAP, LVVX_KAFKA_PKI); `make test` does.",
    )
    transport = KafkaTransport(options)
    yield transport
    await transport.close()


@pytest.fixture
async def cluster_admin() -> AsyncIterator[KafkaTransport]:
    """The three-broker cluster, as its admin."""
    options = tls_options(CLUSTER_BOOTSTRAP, "admin")
    await require(
        options,
        "Start it with `make kafka-cluster-up` (LVVX_KAFKA_CLUSTER_BOOTSTRAP); `make test` does.",
    )
    transport = KafkaTransport(options)
    yield transport
    await transport.close()


@pytest.fixture
def kafka_options() -> KafkaOptions:
    return KafkaOptions(
        bootstrap_servers=KAFKA_BOOTSTRAP,
        client_id=f"test-{uuid.uuid4().hex[:8]}",
        session_timeout_ms=6_000,
        heartbeat_interval_ms=1_000,
        send_timeout_ms=20_000,
    )


@pytest.fixture
async def kafka_transport(kafka_options: KafkaOptions) -> AsyncIterator[KafkaTransport]:
    await _require_kafka()
    transport = KafkaTransport(kafka_options)
    yield transport
    await transport.close()


@pytest.fixture(params=["embedded", pytest.param("kafka", marks=pytest.mark.kafka)])
async def transport(
    request: pytest.FixtureRequest, tmp_path: object, kafka_options: KafkaOptions
) -> AsyncIterator[Transport]:
    """Each contract test runs once on the embedded log and once on real Kafka."""
    if request.param == "kafka":
        await _require_kafka()
        t: Transport = KafkaTransport(kafka_options)
    else:
        t = EmbeddedTransport(os.path.join(str(tmp_path), "log.db"), session_timeout_ms=2_000)
    yield t
    await t.close()


@pytest.fixture
def topic() -> str:
    """A fresh topic name, so tests never see each other's records."""
    return f"test.{uuid.uuid4().hex[:12]}"


@pytest.fixture
def fast_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    """A gateway's retry pauses cut to milliseconds."""
    from broker.gateway import _gateway as gateway_module

    monkeypatch.setattr(gateway_module, "RETRY_BACKOFF_S", (0.001, 0.001, 0.001, 0.005))


@pytest.fixture(scope="session")
def proxied_kafka() -> Iterator[None]:
    """The broker behind a cuttable proxy (`tests.proxied_kafka`): reused if it runs, else
    started once for the session and removed at its end."""
    if proxied.listening():
        yield
        return
    failed = proxied.kafka_sh("up")
    if failed:
        pytest.fail(failed)
    try:
        yield
    finally:
        proxied.kafka_sh("clean")


@pytest.fixture
async def proxy(proxied_kafka: None) -> AsyncIterator[TcpProxy]:
    """A cuttable TCP proxy (`tests.faults.proxy`) in front of that broker, on the port it
    advertises (`tests.proxied_kafka.PROXIED`): a client bootstrapped there talks only
    through it."""
    async with TcpProxy("127.0.0.1", proxied.BEHIND_PORT, listen_port=proxied.PROXY_PORT) as p:
        yield p


@pytest.fixture(scope="session", autouse=True)
def _frozen_heap() -> None:
    """What exists before the first test (modules, schemas, strategies) is left out of
    garbage collections: `_no_unclosed_clients` collects after each test, and scanning that
    heap each time would cost ~0.1 s a test."""
    gc.collect()
    gc.freeze()


@pytest.fixture(autouse=True)
def _no_unclosed_clients(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Fail a test that left a client unclosed. aiokafka reports an unclosed consumer,
    producer or connection when it is collected: a ResourceWarning (an error in tests, see
    filterwarnings in pyproject.toml) and the event loop's exception handler with the message
    "Unclosed ..." — caught here, since a warning raised in __del__ never reaches it."""
    from aiokafka.client import AIOKafkaClient

    unclosed: list[str] = []
    made: list[object] = []
    report = asyncio.BaseEventLoop.call_exception_handler
    make = AIOKafkaClient.__init__

    def noting(loop: asyncio.BaseEventLoop, context: dict[str, Any]) -> None:
        if str(context.get("message", "")).startswith("Unclosed"):
            unclosed.append(str(context["message"]))
        report(loop, context)

    def counting(client: AIOKafkaClient, *args: Any, **kwargs: Any) -> None:
        made.append(None)  # every consumer, producer and admin client makes one
        make(client, *args, **kwargs)

    monkeypatch.setattr(asyncio.BaseEventLoop, "call_exception_handler", noting)
    monkeypatch.setattr(AIOKafkaClient, "__init__", counting)
    yield
    if made:  # what the test left behind is collected now, not in a later test
        gc.collect()
    if unclosed:
        pytest.fail(f"left unclosed: {sorted(set(unclosed))}")
