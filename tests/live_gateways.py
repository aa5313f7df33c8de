"""In-process gateways on real Kafka for the fault tests (network cut, rebalance storm): each
with a transport of its own, its receive loop running, all stopped and closed on the way out.
And what those tests share: the per-case order check, and `caught_up`."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Hashable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from broker.gateway import Gateway, GatewayStore
from broker.topics import gateway_group, inbox
from broker.transport import TopicPartition, Transport
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


async def caught_up(log: Transport, party: str, prefix: str) -> bool:
    """Whether ``party``'s gateway has committed past every record of its inbox topic:
    nothing is left there that it could still deliver — a second time, or late. (End offsets
    cannot tell: on Kafka each transaction's commit marker takes an offset too.)"""
    topic = inbox(party, prefix)
    ends: dict[TopicPartition, int] = {}
    for record in await log.read_topic(topic):  # committed ones: aborted ones are skipped
        ends[record.topic_partition] = record.offset + 1
    committed = await log.committed(gateway_group(party, prefix), [topic])
    return all(committed.get(tp, 0) >= end for tp, end in ends.items())


def per_case(items: Iterable[tuple[M, C]]) -> dict[C, list[M]]:
    """Message ids by case id, in the order of ``items`` ((message id, case id) pairs)."""
    cases: dict[C, list[M]] = {}
    for message_id, case_id in items:
        cases.setdefault(case_id, []).append(message_id)
    return cases
