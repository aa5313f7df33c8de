"""Crash safety of idempotent sends on real Kafka (issue 16 §2): the sender's `lvvx gateway
run` dies (`LVVX_CRASH_AT=after_send`) after Kafka took the message but before the HTTP
answer; the back office retries with the same Idempotency-Key once the gateway is back and
gets the first message's id — and the recipient's back office has that message once."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from broker.gateway import crashpoints as crash
from tests.conftest import KAFKA_BOOTSTRAP
from tests.gateway_processes import (
    RECIPIENT,
    SENDER,
    GatewayRun,
    delivered_once,
    dossier_body,
    two_parties,
)

pytestmark = pytest.mark.kafka


async def test_a_retry_after_a_kill_between_the_kafka_commit_and_the_answer_delivers_once(
    tmp_path: Path,
) -> None:
    net = two_parties(tmp_path, kafka=KAFKA_BOOTSTRAP)
    sender, recipient = GatewayRun(net, SENDER), GatewayRun(net, RECIPIENT)
    body, key = dossier_body(), {"Idempotency-Key": "retry-after-sigkill-1"}
    try:
        async with httpx.AsyncClient(timeout=30) as client:
            recipient.start()
            sender.start(**{crash.ENV_VAR: "after_send"})
            await recipient.wait_ready(client)
            await sender.wait_ready(client)
            url = f"{sender.url}/v1/messages"

            with pytest.raises(httpx.TransportError):  # the process died before answering
                await client.post(url, json=body, headers={**sender.headers, **key})
            assert await sender.wait_exit(30) == crash.EXIT_CODE, sender.log()[-3000:]
            assert "crash point after_send #1 reached" in sender.log()

            sender.start()  # again, without the crash point
            await sender.wait_ready(client)
            retry = await client.post(url, json=body, headers={**sender.headers, **key})
            assert retry.status_code == 202, retry.text
            message_id = retry.json()["message_id"]
            again = await client.post(url, json=body, headers={**sender.headers, **key})
            assert again.status_code == 202 and again.json()["message_id"] == message_id

            inbox = await delivered_once(recipient, client, {message_id}, kafka=KAFKA_BOOTSTRAP)
            assert inbox == [message_id]  # exactly once: the retry sent nothing new
            assert await sender.stop() == 0, sender.log()[-3000:]
            assert await recipient.stop() == 0, recipient.log()[-3000:]
    finally:
        sender.kill()
        recipient.kill()
