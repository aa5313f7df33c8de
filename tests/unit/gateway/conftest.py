"""The gateway unit tests' network: gateways on the embedded log, in a temporary folder."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.crypto_net import Net
from tests.embedded_gateways import EmbeddedNetwork


@pytest.fixture
async def lvv(tmp_path: Path) -> AsyncIterator[EmbeddedNetwork]:
    network = EmbeddedNetwork(tmp_path, Net())
    try:
        yield network
    finally:
        await network.aclose()
