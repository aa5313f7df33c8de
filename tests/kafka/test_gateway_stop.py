"""A stop always ends: SIGTERM ends a Kafka gateway process within 10 s in every state —
while Kafka is away, after a send failed there (its transaction left unfinished), with a
send in flight, in the middle of a batch — and a second signal ends it at once. Nothing
acknowledged is lost by that: after the restore and a restart, every message acknowledged
before the outage is in the recipient's inbox exactly once, and each audit chain is a line.

Kafka runs on throughout; the outage is a TCP proxy in front of it that swallows the
traffic (`tests.faults.proxy`, ``drop``: as behind a dead router)."""

from __future__ import annotations

import asyncio
import signal
import time
from pathlib import Path

import httpx
import pytest

from broker.errors import TransportError
from broker.topics import audit
from broker.transport import OutgoingRecord, TopicSpec
from broker.transport.kafka import KafkaOptions, KafkaTransport
from demo.network import LocalNetwork
from tests.faults.proxy import TcpProxy
from tests.gateway_processes import (
    RECIPIENT,
    SENDER,
    GatewayRun,
    delivered_once,
    dossier_body,
    topic_prefix,
    two_parties,
)
from tests.proxied_kafka import DIRECT, PROXIED
from tests.support import eventually

pytestmark = pytest.mark.kafka

STOP_WITHIN_S = 10.0
"""What an orchestrator grants between SIGTERM and SIGKILL (Docker's default)."""

SEND_TIMEOUT_MS = 6_000
"""The sender's send timeout here (30 s by default): a send in the outage fails sooner."""

SHORT = {"LVVX_GATEWAY_KAFKA__SEND_TIMEOUT_MS": str(SEND_TIMEOUT_MS)}

BACKLOG = 40
"""Messages waiting when the recipient starts: one batch, cut while it is being handled."""


async def _stop(gateway: GatewayRun, within_s: float = STOP_WITHIN_S) -> tuple[int | None, float]:
    """SIGTERM; the exit code (None: still running) and how long it took."""
    started = time.monotonic()
    gateway.signal()
    code = await gateway.wait_exit(within_s)
    return code, time.monotonic() - started


async def _restored(
    net: LocalNetwork, proxy: TcpProxy, client: httpx.AsyncClient
) -> tuple[GatewayRun, GatewayRun]:
    """The network back, and both gateways started again and ready."""
    await proxy.restore()
    again = (
        GatewayRun(net, SENDER, name="sender-again"),
        GatewayRun(net, RECIPIENT, name="recipient-again"),
    )
    for gateway in again:
        gateway.start()
    for gateway in again:
        await gateway.wait_ready(client)
    return again


async def _nothing_lost_after_a_restart(
    net: LocalNetwork, proxy: TcpProxy, client: httpx.AsyncClient, acknowledged: list[str],
    running: list[GatewayRun],
) -> list[str]:  # fmt: skip
    """The network back and both gateways started again (added to ``running``, which the
    test kills on the way out): every acknowledged message is delivered exactly once, both stop
    cleanly, and each audit chain is a line. The ids delivered."""
    again = await _restored(net, proxy, client)
    running.extend(again)
    delivered = await delivered_once(again[1], client, set(acknowledged), kafka=DIRECT)
    assert len(delivered) == len(set(delivered)), "delivered twice"
    assert set(acknowledged) <= set(delivered), "acknowledged but lost"
    for gateway in again:
        code, _ = await _stop(gateway)
        assert code == 0, gateway.log()[-3000:]
    await _chains_are_lines(topic_prefix(net))
    return delivered


async def _chains_are_lines(prefix: str) -> None:
    direct = KafkaTransport(KafkaOptions(bootstrap_servers=DIRECT))
    try:
        for party in (SENDER, RECIPIENT):
            records = await direct.read_topic(audit(party, prefix))
            seqs = [int(dict(r.headers)["lvv-audit-seq"]) for r in records]
            assert seqs == list(range(len(seqs))), f"{party}'s audit chain forked or has a gap"
    finally:
        await direct.close()


@pytest.mark.parametrize("state", ["after_a_failed_send", "with_a_send_in_flight", "mid_batch"])
async def test_sigterm_ends_a_gateway_in_an_outage_within_10_s_and_loses_nothing(
    tmp_path: Path, proxy: TcpProxy, state: str
) -> None:
    net = two_parties(tmp_path, kafka=PROXIED)
    sender, recipient = GatewayRun(net, SENDER), GatewayRun(net, RECIPIENT)
    running = [sender, recipient]
    async with httpx.AsyncClient(timeout=60) as client:
        try:
            sender.start(**SHORT)
            recipient.start()
            await recipient.wait_ready(client)
            await sender.wait_ready(client)
            if state == "mid_batch":  # a backlog for the recipient, which is away meanwhile
                assert (await _stop(recipient))[0] == 0, recipient.log()[-3000:]
            acknowledged = []
            for _ in range(BACKLOG if state == "mid_batch" else 1):
                answer = await sender.send(client, dossier_body())
                assert answer.status_code == 202, answer.text
                acknowledged.append(answer.json()["message_id"])
            if state == "mid_batch":  # cut as soon as the recipient takes the backlog in
                recipient = GatewayRun(net, RECIPIENT, name="recipient-back")
                recipient.start()
                await recipient.wait_ready(client)
                await proxy.cut("drop")
                stopping = [recipient, sender]
            else:
                await until_in(recipient, client, acknowledged)
                await proxy.cut("drop")
                pending = asyncio.create_task(sender.send(client, dossier_body()))
                if state == "after_a_failed_send":
                    failed = await pending
                    assert failed.status_code == 503, failed.text
                else:  # the scenario: the send waits for its transaction a while (the
                    # gateway shows nothing of a send in flight to wait for instead)
                    await asyncio.sleep(1.0)
                stopping = [sender, recipient]
            for gateway in stopping:
                code, took = await _stop(gateway)
                print(f"\n{state}: {gateway.name} stopped in {took:.1f} s (exit {code})")
                assert code == 0, (
                    f"{gateway.name} did not stop within {STOP_WITHIN_S} s:\n{gateway.log()[-3000:]}"
                )
            if state == "with_a_send_in_flight":
                answered = await asyncio.wait_for(pending, 5)  # answered, not left hanging
                assert answered.status_code == 503, answered.text
                # given up in flight (outcome unknown), not refused for arriving at the stop
                assert answered.json()["reason"] == "TRANSPORT_TIMEOUT", answered.text

            delivered = await _nothing_lost_after_a_restart(
                net, proxy, client, acknowledged, running
            )
            assert len(delivered) <= len(acknowledged) + 1  # + the refused send, if it landed
        finally:
            for gateway in (sender, recipient, *running):
                gateway.kill()


async def test_sigterm_ends_a_gateway_still_starting_while_kafka_is_away(
    tmp_path: Path, proxy: TcpProxy
) -> None:
    net = two_parties(tmp_path, kafka=PROXIED)
    await proxy.cut("drop")  # it connects, and no answer ever comes
    sender = GatewayRun(net, SENDER)
    try:
        sender.start()
        # imports and keys done: it connects to Kafka (through the proxy, which swallows all)
        await eventually(lambda: proxy.connections > 0, "a connection to Kafka", timeout_s=60)
        assert sender.alive(), sender.log()[-3000:]
        code, took = await _stop(sender)
        print(f"\nstarting: stopped in {took:.1f} s (exit {code})")
        assert code == 0, f"did not stop within {STOP_WITHIN_S} s:\n{sender.log()[-3000:]}"
    finally:
        sender.kill()


async def test_a_second_signal_ends_a_stopping_gateway_at_once(
    tmp_path: Path, proxy: TcpProxy
) -> None:
    net = two_parties(tmp_path, kafka=PROXIED)
    sender, recipient = GatewayRun(net, SENDER), GatewayRun(net, RECIPIENT)
    running = [sender, recipient]
    async with httpx.AsyncClient(timeout=60) as client:
        try:
            sender.start(**SHORT)
            recipient.start()
            await sender.wait_ready(client)
            await recipient.wait_ready(client)
            answer = await sender.send(client, dossier_body())
            assert answer.status_code == 202, answer.text
            acknowledged = [answer.json()["message_id"]]
            await until_in(recipient, client, acknowledged)
            await proxy.cut("drop")
            pending = asyncio.create_task(sender.send(client, dossier_body()))
            # the scenario: that send waits a while, so a graceful stop waits seconds for it
            await asyncio.sleep(1.0)
            sender.signal(signal.SIGTERM)
            await eventually(lambda: "a second signal ends it at once" in sender.log(),
                             "the gateway to take the signal", timeout_s=STOP_WITHIN_S)  # fmt: skip
            started = time.monotonic()
            sender.signal(signal.SIGINT)
            code = await sender.wait_exit(2.0)
            took = time.monotonic() - started
            print(f"\nsecond signal: exit {code} {took * 1000:.0f} ms after it")
            assert code == 128 + signal.SIGINT, sender.log()[-3000:]
            assert took < 1.0
            assert "a second signal (SIGINT); exiting now [STOPPED_HARD]" in sender.log()
            pending.cancel()
            recipient.signal()
            assert await recipient.wait_exit(STOP_WITHIN_S) == 0, recipient.log()[-3000:]

            await _nothing_lost_after_a_restart(net, proxy, client, acknowledged, running)
        finally:
            for gateway in (sender, recipient, *running):
                gateway.kill()


async def test_closing_clients_in_an_outage_with_a_transaction_pending_is_bounded(
    proxy: TcpProxy, topic: str
) -> None:
    """The transport alone: a producer whose transaction the outage left unfinished, and a
    group member, close within a few seconds (aiokafka's own stop waits for ever)."""
    direct = KafkaTransport(KafkaOptions(bootstrap_servers=DIRECT))
    await direct.ensure_topics([TopicSpec(topic)])
    await direct.close()
    options = KafkaOptions(bootstrap_servers=PROXIED, send_timeout_ms=2_000,
                           request_timeout_ms=5_000, session_timeout_ms=6_000,
                           heartbeat_interval_ms=1_000)  # fmt: skip
    transport = KafkaTransport(options)
    producer = transport.producer(transactional_id=f"{topic}.tx")
    consumer = transport.consumer(f"{topic}.group", [topic])
    try:
        await producer.start()
        await consumer.start()
        await producer.send_atomic([OutgoingRecord(topic, b"before")])
        await proxy.cut("drop")
        with pytest.raises(TransportError):
            await producer.send_atomic([OutgoingRecord(topic, b"in the outage")])
        started = time.monotonic()
        async with asyncio.timeout(STOP_WITHIN_S):
            await asyncio.gather(producer.close(), consumer.close())
            await transport.close()
        took = time.monotonic() - started
        print(f"\nclosed in {took:.1f} s")
        assert took < 5.0
    finally:
        await proxy.restore()
        await asyncio.gather(producer.close(), consumer.close(), transport.close())


async def until_in(recipient: GatewayRun, client: httpx.AsyncClient, ids: list[str]) -> None:
    async def delivered() -> bool:
        return set(ids) <= set(await recipient.inbox_ids(client))

    await eventually(delivered, f"{ids} delivered", timeout_s=60, every_s=0.2)
