"""The three-broker KRaft cluster (RF 3, min ISR 2, no unclean elections, TLS and ACLs): the
network runs on it unchanged, and a message stream survives the partition leader being
killed — every message reaches the back office exactly once."""

from __future__ import annotations

import asyncio
import os
import subprocess
import uuid
from pathlib import Path

import pytest

from broker.errors import TransportError
from broker.gateway import Gateway, GatewayStore
from broker.provision import Layout, apply
from broker.topics import inbox
from broker.transport.kafka import KafkaTransport
from demo.examples import example
from demo.network import LocalNetwork
from demo.run import run_demo
from tests.conftest import CLUSTER_BOOTSTRAP, CLUSTER_DIR, PKI, REPO, tls_options
from tests.crypto_net import CONTENT_KEY, NOW, Net
from tests.support import eventually

pytestmark = pytest.mark.kafka

NET = Net()
SENDER, RECIPIENT = "ind", "gemeente-amsterdam"
MESSAGES = 150


def cluster_sh(*args: str) -> str:
    env = {**os.environ, "KAFKA_CLUSTER_DIR": str(CLUSTER_DIR), "KAFKA_PKI_DIR": str(PKI)}
    done = subprocess.run([str(REPO / "deploy" / "kafka" / "cluster.sh"), *args], env=env, capture_output=True,
                          text=True, timeout=240, check=False)  # fmt: skip
    assert done.returncode == 0, (
        f"cluster.sh {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}"
    )
    return done.stdout


async def leader_of(admin: KafkaTransport, topic: str, partition: int) -> int:
    client = await admin._admin_client()
    [described] = await client.describe_topics([topic])
    return int(next(p["leader"] for p in described["partitions"] if p["partition"] == partition))


async def test_the_demo_runs_green_on_the_cluster(
    cluster_admin: KafkaTransport, tmp_path: Path
) -> None:
    prefix = f"lvv.clusterdemo-{uuid.uuid4().hex[:6]}.v1"

    async def provision(net: LocalNetwork) -> None:
        await apply(cluster_admin, net.directory, Layout(prefix, partitions=3))

    result = await run_demo(
        cluster_admin, tmp_path, cases=5, prefix=prefix, provision=provision,
        transport_for=lambda party: KafkaTransport(tls_options(CLUSTER_BOOTSTRAP, party)),
    )  # fmt: skip
    assert result.ok, result.summary()
    client = await cluster_admin._admin_client()
    [described] = await client.describe_topics([inbox("dtv", prefix)])
    assert all(len(p["replicas"]) == 3 for p in described["partitions"])  # replicated on all three


async def test_killing_the_partition_leader_loses_and_duplicates_nothing(cluster_admin: KafkaTransport,
                                                                        tmp_path: Path) -> None:  # fmt: skip
    prefix = f"lvv.failover-{uuid.uuid4().hex[:6]}.v1"
    await apply(cluster_admin, NET.directory, Layout(prefix, partitions=1))
    gateways = {
        party: Gateway(
            keys=NET.keys(party),
            directory=NET.directory,
            prefix=prefix,
            clock=lambda: NOW,
            transport=KafkaTransport(tls_options(CLUSTER_BOOTSTRAP, party, send_timeout_ms=60_000)),
            store=GatewayStore(tmp_path / f"{party}.db", content_key=CONTENT_KEY),
        )
        for party in (SENDER, RECIPIENT)
    }
    for gateway in gateways.values():
        await gateway.start()
    loops = [asyncio.create_task(g.run()) for g in gateways.values()]
    sender, recipient = gateways[SENDER], gateways[RECIPIENT]
    acknowledged: list[uuid.UUID] = []
    unknown = 0
    killed = None
    try:
        dossier = example("DossierDelivered")
        for n in range(MESSAGES):
            if n == MESSAGES // 3:
                killed = await leader_of(cluster_admin, inbox(RECIPIENT, prefix), 0)
                cluster_sh("kill", str(killed))  # SIGKILL, mid-stream
            if n == 2 * MESSAGES // 3 and killed is not None:
                cluster_sh("start", str(killed))
            try:
                acknowledged.append(
                    await sender.send(
                        dossier.model_copy(update={"case_id": uuid.uuid4()}), [RECIPIENT]
                    )
                )
            except TransportError:
                unknown += 1  # refused or timed out: the back office would be told, and retry

        def missing() -> set[uuid.UUID]:
            return set(acknowledged) - {i.message_id for i in recipient.store.inbox(limit=1000)}

        await eventually(lambda: not missing() and sender.store.counts()["awaiting_receipt"] == 0,
                         lambda: f"every acknowledged message delivered and receipted: "
                         f"{len(missing())} not delivered", timeout_s=120, every_s=0.5)  # fmt: skip
        delivered = [i.message_id for i in recipient.store.inbox(limit=1000)]
    finally:
        for gateway in gateways.values():
            gateway.stop()
        await asyncio.gather(*loops, return_exceptions=True)
        for gateway in gateways.values():
            await gateway.close()
            await gateway.transport.close()
    assert killed is not None
    assert len(delivered) == len(set(delivered)), "a message reached the back office twice"
    assert set(acknowledged) <= set(delivered), "an acknowledged message was lost"
    assert len(delivered) <= len(acknowledged) + unknown
    assert unknown == 0  # min ISR 2 with two brokers left: writes carried on
    assert sender.store.receipted_records() == len(delivered)
