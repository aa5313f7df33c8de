"""The demo's case flow on a real Kafka broker."""

from __future__ import annotations

import pytest

from broker.casebook import CaseWriter
from broker.demo import run_demo
from broker.transport._kafka import KafkaTransport

pytestmark = pytest.mark.kafka


async def test_demo_flow_on_kafka_delivers_every_message_once_in_order(
    kafka_transport: KafkaTransport,
) -> None:
    records = sum(len(s.recipients) for c in CaseWriter().cases(6) for s in c.steps)
    result = await run_demo(kafka_transport, cases=6)
    assert result.sent == result.delivered == records
    assert (result.lost, result.duplicates, result.out_of_order, result.mismatched) == (0, 0, 0, 0)
    assert sum(result.outcomes.values()) == 6
    assert result.parties["dtv"].delivered > 0
