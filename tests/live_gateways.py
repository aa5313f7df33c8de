"""In-process gateways on real Kafka for the fault tests (network cut, rebalance storm): each
with a transport of its own, its receive loop running, all stopped and closed on the way out.
And the per-case order check those tests share."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Hashable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from broker.gateway import Gateway, GatewayStore
from broker.transport.kafka import KafkaOptions, KafkaTransport
from tests.crypto_net import CONTENT_KEY, NOW, Net

M = TypeVar("M", bound=Hashable)
C = TypeVar("C", bound=Hashable)


@dataclass(frozen=True)
class Live:
    gateways: list[Gateway]
    loops: list[asyncio.Task[None]]
    """Each gateway's receive loop: done only if it ended before it was stopped."""


@contextlib.asynccontextmanager
async def running_gateways(
    net: Net, parties: Iterable[str], *, options: KafkaOptions, prefix: str, state: Path
) -> AsyncIterator[Live]:
    """One started gateway per party, in that order, its loop running; each party's store in
    ``state``. The clock stands at `NOW`, the moment the test network's keys are valid."""
    gateways = [
        Gateway(
            keys=net.keys(p),
            directory=net.directory,
            transport=KafkaTransport(options),
            store=GatewayStore(state / f"{p}.db", content_key=CONTENT_KEY),
            prefix=prefix,
            clock=lambda: NOW,
        )
        for p in parties
    ]
    for gw in gateways:
        await gw.start()
    loops = [asyncio.create_task(gw.run()) for gw in gateways]
    try:
        yield Live(gateways, loops)
    finally:
        for gw in gateways:
            gw.stop()
        await asyncio.gather(*loops, return_exceptions=True)
        for gw in gateways:
            await gw.close()
            await gw.transport.close()
            gw.store.close()


def per_case(items: Iterable[tuple[M, C]]) -> dict[C, list[M]]:
    """Message ids by case id, in the order of ``items`` ((message id, case id) pairs)."""
    cases: dict[C, list[M]] = {}
    for message_id, case_id in items:
        cases.setdefault(case_id, []).append(message_id)
    return cases
