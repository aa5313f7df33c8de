"""A rebalance storm on real Kafka: while a recipient gateway consumes a steady stream, plain
aiokafka consumers keep joining its consumer group (`broker.topics.gateway_group`, the group
id the gateway's transport consumes with), take partitions of its inbox, read from them,
never commit, and leave again. Every join and every leave is a rebalance that moves
partitions away from the gateway and back, so it re-reads from its last commit what it had
already handled. Pass: every message reaches the back office exactly once, in order per
case, and is receipted; nothing is dead-lettered. The number of rebalances is reported."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import uuid
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka.abc import ConsumerRebalanceListener

from broker.gateway import Gateway
from broker.models import PartyRole
from broker.topics import dlq, gateway_group, inbox
from broker.transport import TopicSpec
from broker.transport.kafka import KafkaOptions, KafkaTransport
from demo.examples import example
from tests.conftest import KAFKA_BOOTSTRAP
from tests.crypto_net import A, Net
from tests.live_gateways import per_case, running_gateways
from tests.support import eventually

pytestmark = pytest.mark.kafka

NET = Net()
SENDER, RECIPIENT = A[PartyRole.IND], A[PartyRole.MUNICIPALITY]

INBOX_PARTITIONS = 6
"""More partitions than members ever in the group, so every rebalance moves some."""

CASES, PER_CASE = 20, 10
SEND_GAP_S = 0.08
"""Pause between sends: a steady stream of roughly 20 s, outlasting several joins."""

JOIN_EVERY_S, STAY_S = 2.5, 1.5
"""A storm member joins this often and stays this long (polling) before it leaves."""

OPTIONS = KafkaOptions(bootstrap_servers=KAFKA_BOOTSTRAP, client_id="rebalance-storm",
                       session_timeout_ms=6_000, heartbeat_interval_ms=1_000)  # fmt: skip


class Storm(ConsumerRebalanceListener):  # type: ignore[misc]  # aiokafka is untyped: its base is Any
    """Counts the rebalances the storm members took part in and what they were given."""

    def __init__(self) -> None:
        self.joins = 0
        self.rebalances = 0
        self.partitions_taken = 0

    async def on_partitions_revoked(self, revoked: Any) -> None:
        return None

    async def on_partitions_assigned(self, assigned: Any) -> None:
        self.rebalances += 1
        self.partitions_taken += len(assigned)

    async def member(self, group: str, topic: str) -> None:
        """Join, take what the group gives, read without committing, leave."""
        consumer = AIOKafkaConsumer(
            bootstrap_servers=KAFKA_BOOTSTRAP, group_id=group, client_id="storm",
            enable_auto_commit=False, auto_offset_reset="earliest", isolation_level="read_committed",
            session_timeout_ms=6_000, heartbeat_interval_ms=1_000,
        )  # fmt: skip
        consumer.subscribe([topic], listener=self)
        await consumer.start()
        self.joins += 1
        try:
            loop = asyncio.get_running_loop()
            leave_at = loop.time() + STAY_S
            while loop.time() < leave_at:
                await consumer.getmany(timeout_ms=200)  # read, and drop on the floor
        finally:
            await consumer.stop()  # leaves the group; nothing was ever committed

    async def blow(self, group: str, topic: str, until: asyncio.Event) -> None:
        while not until.is_set():
            await self.member(group, topic)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(until.wait(), JOIN_EVERY_S - STAY_S)


async def test_a_rebalance_storm_loses_and_duplicates_nothing(tmp_path: Path) -> None:
    prefix = f"lvv.storm-{uuid.uuid4().hex[:8]}.v1"
    topic = inbox(RECIPIENT, prefix)
    admin = KafkaTransport(OPTIONS)
    await admin.ensure_topics([
        TopicSpec(topic, partitions=INBOX_PARTITIONS), TopicSpec(inbox(SENDER, prefix)),
        TopicSpec(dlq(RECIPIENT, prefix)), TopicSpec(dlq(SENDER, prefix)),
    ])  # fmt: skip
    storm, calm = Storm(), asyncio.Event()
    async with running_gateways(NET, (SENDER, RECIPIENT), options=OPTIONS, prefix=prefix,
                                state=tmp_path) as live:  # fmt: skip
        sender, recipient = live.gateways
        blowing = asyncio.create_task(storm.blow(gateway_group(RECIPIENT, prefix), topic, calm))
        assignments: list[frozenset[object]] = []
        watching = asyncio.create_task(_watch_assignment(recipient, assignments, calm))
        cases = [uuid.uuid4() for _ in range(CASES)]
        sent: list[tuple[uuid.UUID, uuid.UUID]] = []
        try:
            dossier = example("DossierDelivered")
            for n in range(CASES * PER_CASE):
                case = cases[n % CASES]
                message = dossier.model_copy(update={"case_id": case})
                sent.append((await sender.send(message, [RECIPIENT]), case))
                await asyncio.sleep(SEND_GAP_S)  # the load's pacing (SEND_GAP_S)
            calm.set()
            await blowing
            await eventually(
                lambda: len(recipient.store.inbox(limit=1000, include_acked=True)) >= len(sent)
                and sender.store.counts()["awaiting_receipt"] == 0,
                "every message delivered and receipted", timeout_s=120, every_s=0.5,
            )  # fmt: skip
            delivered = recipient.store.inbox(limit=1000, include_acked=True)
            changes = sum(a != b for a, b in itertools.pairwise(assignments))
            print(f"\n{len(sent)} messages; {storm.joins} storm members joined and left; "
                  f"{storm.rebalances} rebalances they took part in, {storm.partitions_taken} "
                  f"partitions they were given; the gateway's assignment changed {changes} times")  # fmt: skip
            assert storm.partitions_taken > 0, "the storm never took a partition"
            ids = [i.message_id for i in delivered]
            assert len(ids) == len(set(ids)), "delivered twice"
            assert set(ids) == {m for m, _ in sent}, "lost"
            assert per_case((i.message_id, i.case_id) for i in delivered) == per_case(sent), (
                "out of order within a case"
            )
            assert sender.store.counts()["receipted"] == len(sent)
            assert sender.store.receipted_records() == len(sent)
            assert sum((await admin.end_offsets([dlq(RECIPIENT, prefix)])).values()) == 0
            assert recipient.store.rejection_reasons() == []
        finally:
            calm.set()
            await asyncio.gather(blowing, watching, return_exceptions=True)
            await admin.close()


async def _watch_assignment(
    gateway: Gateway, seen: list[frozenset[object]], until: asyncio.Event
) -> None:
    """The gateway's own view: its partitions, sampled."""
    while not until.is_set():
        consumer = gateway._consumer
        if consumer is not None:
            now = frozenset(consumer.assignment())
            if not seen or seen[-1] != now:
                seen.append(now)
        await asyncio.sleep(0.05)  # the sampling's resolution: a look every 50 ms
