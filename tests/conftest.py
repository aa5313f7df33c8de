"""Shared fixtures: transports for the contract suite, and the real Kafka broker.

Tests marked ``kafka`` need a real Apache Kafka at ``LVVX_KAFKA_BOOTSTRAP`` (default
127.0.0.1:9092, as `make kafka-up` starts it). When it cannot be reached they FAIL with
the reason: a missing broker must never turn into a green run.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator

import pytest

from broker.transport import Transport
from broker.transport._embedded import EmbeddedTransport
from broker.transport._kafka import KafkaOptions, KafkaTransport

KAFKA_BOOTSTRAP = os.environ.get("LVVX_KAFKA_BOOTSTRAP", "127.0.0.1:9092")

_kafka_checked: str | None = None


async def _require_kafka() -> None:
    """Fail (never skip) the test if the broker does not answer; checked once per run."""
    global _kafka_checked
    if _kafka_checked == "ok":
        return
    if _kafka_checked is not None:
        pytest.fail(_kafka_checked)
    transport = KafkaTransport(
        KafkaOptions(bootstrap_servers=KAFKA_BOOTSTRAP, request_timeout_ms=10_000)
    )
    try:
        await transport.ping()
        _kafka_checked = "ok"
    except Exception as exc:
        _kafka_checked = (
            f"Kafka is not reachable at {KAFKA_BOOTSTRAP} ({exc}). Start it with "
            "`make kafka-up` or set LVVX_KAFKA_BOOTSTRAP; `make test` does both."
        )
        pytest.fail(_kafka_checked)
    finally:
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
