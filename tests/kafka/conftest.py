"""The Kafka tests' network of gateways (`tests.kafka_gateways`)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from broker.transport.kafka import KafkaOptions, KafkaTransport
from tests.kafka_gateways import KafkaNetwork


@pytest.fixture
async def lvv(
    tmp_path: Path, kafka_transport: KafkaTransport, kafka_options: KafkaOptions
) -> AsyncIterator[KafkaNetwork]:
    network = KafkaNetwork(tmp_path, kafka_options)
    try:
        yield network
    finally:
        await network.aclose()
