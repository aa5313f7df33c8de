"""The client SDK against `lvvx gateway run` processes on real Kafka: every route, through
the async client and the blocking one — health and readiness, a send and a batch from the
sender's gateway receipted by the recipient's, the overdue list, the recipient's inbox read
and acknowledged, and the errors (an unknown id, a wrong token, a refused batch item)."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from broker.client import (
    AsyncGatewayClient,
    GatewayClient,
    NotFound,
    Outgoing,
    RequestRefused,
    Unauthorized,
)
from tests.conftest import KAFKA_BOOTSTRAP
from tests.gateway_processes import RECIPIENT, SENDER, GatewayRun, dossier_body, two_parties
from tests.support import eventually

pytestmark = pytest.mark.kafka


def dossier() -> dict[str, Any]:
    return dict(dossier_body()["message"])


async def receipted(client: AsyncGatewayClient, message_id: uuid.UUID) -> None:
    async def done() -> bool:
        return (await client.status(message_id)).status == "RECEIPTED"

    await eventually(done, f"{message_id} receipted", timeout_s=60.0, every_s=0.2)


@contextlib.asynccontextmanager
async def running(*gateways: GatewayRun) -> AsyncIterator[tuple[GatewayRun, ...]]:
    """``gateways`` started and ready; on the way out each must stop cleanly on SIGTERM."""
    try:
        for gateway in gateways:
            gateway.start()
        async with httpx.AsyncClient() as probe:
            for gateway in gateways:
                await gateway.wait_ready(probe)
        yield gateways
    finally:
        for gateway in gateways:
            try:
                assert await gateway.stop() == 0, gateway.log()[-3000:]
            finally:
                gateway.kill()


async def test_every_route_through_the_client_against_gateway_processes(tmp_path: Path) -> None:
    net = two_parties(tmp_path, kafka=KAFKA_BOOTSTRAP)
    async with running(GatewayRun(net, SENDER), GatewayRun(net, RECIPIENT)) as (sender, recipient):
        async with (
            AsyncGatewayClient(sender.url, token=sender.token) as batcher,
            AsyncGatewayClient(sender.url, token=sender.token) as out,
            AsyncGatewayClient(recipient.url, token=recipient.token) as back_office,
        ):
            assert (await out.health()).party == SENDER
            assert (await back_office.ready()).status == "ready"

            one = await out.send(dossier(), [RECIPIENT], message_type="DossierDelivered")
            good, bad = await batcher.send_batch([
                Outgoing.of(dossier(), [RECIPIENT], message_type="DossierDelivered"),
                Outgoing.of(dossier(), ["gemeente-atlantis"], message_type="DossierDelivered"),
            ])  # fmt: skip
            assert isinstance(good, uuid.UUID)
            assert isinstance(bad, RequestRefused) and bad.reason == "UNKNOWN_RECIPIENT"
            for message_id in (one, good):
                await receipted(out, message_id)
            assert await out.overdue() == []

            entries = await back_office.inbox(limit=10, wait_s=5)
            assert {e.message_id for e in entries} == {one, good}
            assert all(e.sender == SENDER and e.model().avro_name.endswith("Delivered")
                       for e in entries)  # fmt: skip
            for entry in entries:
                await back_office.ack(entry.message_id, sender=entry.sender)
            assert await back_office.inbox() == []

            with pytest.raises(NotFound):
                await out.status(uuid.uuid4())
            with pytest.raises(NotFound):
                await back_office.ack(uuid.uuid4())

        with GatewayClient(sender.url, token="not-the-token") as wrong:
            with pytest.raises(Unauthorized):
                await asyncio.to_thread(wrong.overdue)
            assert (await asyncio.to_thread(wrong.health)).party == SENDER
        with GatewayClient(sender.url, token=sender.token) as blocking:
            assert (await asyncio.to_thread(blocking.status, one)).status == "RECEIPTED"


async def test_a_send_repeated_after_a_gateway_restart_gets_its_first_answer(
    tmp_path: Path,
) -> None:
    net = two_parties(tmp_path, kafka=KAFKA_BOOTSTRAP)
    message = dossier()
    item = Outgoing.of(message, [RECIPIENT], message_type="DossierDelivered",
                       idempotency_key="case-1-dossier-batch")  # fmt: skip
    answers = []
    for name in ("first", "again"):  # the same sends, to the restarted gateway
        async with (
            # the recipient runs too: its gateway makes its inbox topic
            running(
                GatewayRun(net, SENDER, name=f"sender-{name}"),
                GatewayRun(net, RECIPIENT, name=f"recipient-{name}"),
            ) as (sender, _),
            AsyncGatewayClient(sender.url, token=sender.token) as out,
        ):
            one = await out.send(message, [RECIPIENT], message_type="DossierDelivered",
                                 idempotency_key="case-1-dossier")  # fmt: skip
            answers.append((one, *(await out.send_batch([item]))))
    assert answers[0] == answers[1]
    assert all(isinstance(a, uuid.UUID) for a in answers[0])
