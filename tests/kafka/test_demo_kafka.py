"""The demo — the whole network, every case through the flow — on a real Kafka broker."""

from __future__ import annotations

import secrets
from pathlib import Path

import pytest

from broker.errors import TransportError
from broker.transport.kafka import KafkaOptions, KafkaTransport
from demo.casebook import NETWORK
from demo.run import run_demo

pytestmark = pytest.mark.kafka


async def test_demo_on_kafka_delivers_and_receipts_everything_once(
    kafka_transport: KafkaTransport, tmp_path: Path
) -> None:
    prefix = f"lvv.test-{secrets.token_hex(4)}.v1"
    result = await run_demo(kafka_transport, tmp_path, cases=8, prefix=prefix)
    assert result.sent > 0
    assert result.delivered == result.receipted == result.sent
    assert (result.lost, result.duplicates, result.stuck_cases) == (0, 0, 0)
    assert result.wrong_outcomes == []
    assert sum(result.outcomes.values()) == 8
    assert result.hostile_refused and len(result.hostile) == 4
    assert result.ok


async def test_a_gateway_that_cannot_reach_kafka_leaves_no_client_of_the_demo_open(
    kafka_transport: KafkaTransport, kafka_options: KafkaOptions, tmp_path: Path
) -> None:
    """The last gateway to start finds no broker: every gateway started before it, and every
    party's own transport, is closed on the way out (`_no_unclosed_clients` checks)."""
    last = NETWORK[-1].party_id
    nowhere = KafkaOptions(bootstrap_servers="127.0.0.1:1", request_timeout_ms=2_000)

    def transport_for(party: str) -> KafkaTransport:
        return KafkaTransport(nowhere if party == last else kafka_options)

    with pytest.raises(TransportError):
        await run_demo(kafka_transport, tmp_path, cases=1, prefix=f"lvv.test-{secrets.token_hex(4)}.v1",
                       transport_for=transport_for)  # fmt: skip
