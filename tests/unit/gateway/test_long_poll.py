"""``GET /v1/inbox?wait=S`` on the embedded log (issue 16 §3): it answers as soon as a
delivery is visible, an empty page after S seconds, refuses a wait over the bound, answers
at once when the gateway stops, and reads the store only when woken — never in a loop."""

from __future__ import annotations

import asyncio
import time

import pytest

from broker.gateway._inbox_signal import MAX_INBOX_WAIT_S
from broker.gateway._store import InboxItem
from tests.unit.gateway import test_api
from tests.unit.gateway.test_api import AUTH, IND, MUNI, Stack, send_body

stack = test_api.stack
"""The API tests' fixture: an embedded log, gateways and their HTTP APIs."""


async def test_a_long_poll_answers_as_soon_as_a_delivery_is_visible(stack: Stack) -> None:
    ind = await stack.started(IND, run=True)
    muni = await stack.started(MUNI, run=True)
    sender, inbox = await stack.serve(ind), await stack.serve(muni)
    poll = asyncio.create_task(inbox.get("/v1/inbox", params={"wait": 8}, headers=AUTH))
    await asyncio.sleep(0.3)
    assert not poll.done()  # waiting: the inbox is empty

    sent = await sender.post("/v1/messages", json=send_body(recipients=[MUNI]), headers=AUTH)
    started = time.monotonic()
    response = await poll

    assert response.status_code == 200
    assert [i["message_id"] for i in response.json()["items"]] == [sent.json()["message_id"]]
    assert time.monotonic() - started < 4  # woken by the delivery, not by the time limit


async def test_a_long_poll_with_nothing_delivered_answers_empty_after_its_wait(
    stack: Stack,
) -> None:
    muni = await stack.started(MUNI, run=True)
    api = await stack.serve(muni)
    reads = 0
    read = muni.store.inbox

    def counted(*, limit: int, include_acked: bool = False) -> list[InboxItem]:
        nonlocal reads
        reads += 1
        return read(limit=limit, include_acked=include_acked)

    muni.store.inbox = counted  # type: ignore[method-assign]
    started = time.monotonic()
    response = await api.get("/v1/inbox", params={"wait": 2.0}, headers=AUTH)

    assert response.status_code == 200 and response.json() == {"items": []}
    assert time.monotonic() - started >= 2.0
    assert reads == 2  # idle: one read at first and one at the end, none per second between


@pytest.mark.parametrize("wait", [MAX_INBOX_WAIT_S + 0.5, -1])
async def test_a_wait_beyond_the_bound_is_refused(stack: Stack, wait: float) -> None:
    api = await stack.serve(await stack.started(MUNI))
    response = await api.get("/v1/inbox", params={"wait": wait}, headers=AUTH)
    assert response.status_code == 400
    assert response.json()["reason"] == "INVALID_WAIT"


async def test_a_stopping_gateway_answers_its_long_polls(stack: Stack) -> None:
    muni = await stack.started(MUNI, run=True)
    api = await stack.serve(muni)
    polls = [asyncio.create_task(api.get("/v1/inbox", params={"wait": MAX_INBOX_WAIT_S}, headers=AUTH))
             for _ in range(20)]  # fmt: skip
    await asyncio.sleep(0.3)
    assert not any(p.done() for p in polls)

    started = time.monotonic()
    muni.stop()
    answers = await asyncio.gather(*polls)

    assert [a.status_code for a in answers] == [200] * 20
    assert all(a.json() == {"items": []} for a in answers)
    assert time.monotonic() - started < 3
