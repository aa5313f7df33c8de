"""The demo — the whole network, every case through the flow — on a real Kafka broker."""

from __future__ import annotations

import secrets
from pathlib import Path

import pytest

from broker.transport._kafka import KafkaTransport
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
