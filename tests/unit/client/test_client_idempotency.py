"""What the client promises once the gateway keeps idempotency keys and long-polls (issue 16
§2, the gateway side): a send or a batch whose answer was lost is retried
with the same keys and sent once; a key reused for another body is a conflict, not retried;
a key still in flight is waited for; ``inbox(wait_s=…)`` answers as soon as a message is
there, else after the wait.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import httpx
import pytest

from broker.client import AsyncGatewayClient, CallRecord, Conflict, Outgoing
from broker.gateway import Gateway
from broker.gateway.api import create_app
from demo.examples import example
from tests.unit.client.conftest import IND, MUNI, NGO, TOKEN, Flavour
from tests.unit.gateway.test_api import Stack

DOSSIER = example("DossierDelivered")


class LosingTransport(httpx.AsyncBaseTransport):
    """The gateway's app in this process, whose first ``lose`` answers are lost on the way
    back: the request was carried out, the client hears nothing."""

    def __init__(self, gw: Gateway, lose: int = 1) -> None:
        self.app = httpx.ASGITransport(app=create_app(gw, token=TOKEN))
        self.lose = lose

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self.app.handle_async_request(request)
        if self.lose > 0:
            self.lose -= 1
            raise httpx.ReadError("the connection broke before the answer", request=request)
        return response


def client(gw: Gateway, calls: list[CallRecord], lose: int = 1) -> AsyncGatewayClient:
    return AsyncGatewayClient("http://gateway", token=TOKEN, on_call=calls.append,
                              transport=LosingTransport(gw, lose))  # fmt: skip


async def test_a_send_whose_answer_was_lost_is_sent_once(stack: Stack) -> None:
    ind = await stack.started(IND, run=True)
    calls: list[CallRecord] = []
    async with client(ind, calls) as api:
        message_id = await api.send(DOSSIER, [MUNI])
    assert [(c.attempt, c.status) for c in calls] == [(1, None), (2, 202)]
    assert ind.store.counts()["sent"] == 1
    assert ind.store.sent_status(message_id) is not None


async def test_a_batch_whose_answer_was_lost_is_sent_once(stack: Stack) -> None:
    ind = await stack.started(IND, run=True)
    calls: list[CallRecord] = []
    batch = [Outgoing.of(DOSSIER, [MUNI]), Outgoing.of(DOSSIER, [MUNI, NGO])]
    async with client(ind, calls) as api:
        first, second = await api.send_batch(batch)
    assert isinstance(first, uuid.UUID) and isinstance(second, uuid.UUID) and first != second
    assert ind.store.counts()["sent"] == 2


async def test_a_key_reused_for_another_message_is_a_conflict(stack: Stack) -> None:
    ind = await stack.started(IND, run=True)
    calls: list[CallRecord] = []
    async with client(ind, calls, lose=0) as api:
        await api.send(DOSSIER, [MUNI], idempotency_key="case-7-dossier")
        with pytest.raises(Conflict) as reused:
            await api.send(DOSSIER, [MUNI, NGO], idempotency_key="case-7-dossier")
    assert (reused.value.status, reused.value.reason) == (409, "IDEMPOTENCY_CONFLICT")
    assert not reused.value.retriable and calls[-1].attempt == 1


async def test_the_same_key_twice_at_once_sends_once(stack: Stack) -> None:
    ind = await stack.started(IND, run=True)
    calls: list[CallRecord] = []
    async with client(ind, calls, lose=0) as api:
        ids = await asyncio.gather(*(api.send(DOSSIER, [MUNI], idempotency_key="twice")
                                     for _ in range(2)))  # fmt: skip
    assert ids[0] == ids[1]
    assert ind.store.counts()["sent"] == 1


async def test_a_long_poll_answers_when_a_message_comes_or_after_the_wait(
    flavour: Flavour,
) -> None:
    ind = await flavour.started(IND, run=True)
    muni = await flavour.started(MUNI, run=True)
    api = await flavour.connect(muni)

    started = time.monotonic()
    assert await api.inbox(wait_s=1.0) == []
    assert time.monotonic() - started >= 1.0

    async def send_soon() -> Any:
        await asyncio.sleep(0.5)
        return await ind.send(DOSSIER, [MUNI])

    started = time.monotonic()
    sending = asyncio.create_task(send_soon())
    (entry,) = await api.inbox(wait_s=20.0)
    assert time.monotonic() - started < 10.0
    assert entry.message_id == await sending
