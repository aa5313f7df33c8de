"""The back office of the soak and the fault suite (bench/_backoffice.py) against a scripted
gateway API: what counts as a delivery, what gets acknowledged, what is an error."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Callable
from typing import Any

import httpx

from bench._backoffice import read_inbox
from bench._soak_traffic import api_client
from broker.client import InboxEntry, RetryPolicy

IDS = {name: uuid.uuid4() for name in "abc"}
NAMES = {str(i): name for name, i in IDS.items()}


def entry(name: str) -> dict[str, Any]:
    return {"message_id": str(IDS[name]), "type": "DossierDelivered", "sender": "dtv",
            "case_id": str(uuid.uuid4()), "created_at": "2026-12-02T10:00:00Z",
            "received_at": "2026-12-02T10:00:01Z", "message": {}}  # fmt: skip


class Watcher:
    def __init__(self) -> None:
        self.shown: list[str] = []
        self.acks = 0
        self.reads = 0
        self.errors: list[str] = []

    def delivered(self, party: str, entry: InboxEntry) -> None:
        assert party == "ind"
        self.shown.append(NAMES[str(entry.message_id)])

    def acked(self, party: str, seconds: float) -> None:
        assert seconds >= 0
        self.acks += 1

    def inbox_read(self, party: str, seconds: float) -> None:
        self.reads += 1

    def error(self, party: str, kind: str) -> None:
        self.errors.append(kind)


def read_all(gateway: Callable[[httpx.Request], httpx.Response], watcher: Watcher) -> None:
    """One back office over ``gateway`` until its inbox reads empty."""

    async def run() -> None:
        stop = asyncio.Event()
        stop.set()
        transport = httpx.MockTransport(gateway)
        client = api_client("http://gw", "token", retry=RetryPolicy.never(), transport=transport)
        async with client:
            await read_inbox("ind", client, watcher, stop)

    asyncio.run(run())


def test_a_message_shown_until_its_ack_goes_through_is_one_delivery_twice_on_a_page_two() -> None:
    pages = [["a", "b"], ["b", "c", "c"], []]
    refuse_once = {"b"}
    acks: list[str] = []

    def gateway(request: httpx.Request) -> httpx.Response:
        if request.method == "GET":
            assert request.url.params["limit"] == "500"
            ids = pages.pop(0) if pages else []
            return httpx.Response(200, json={"items": [entry(i) for i in ids]})
        message_id = NAMES[request.url.path.split("/")[3]]
        if message_id in refuse_once:
            refuse_once.remove(message_id)
            return httpx.Response(503, json={"reason": "TRANSPORT_TIMEOUT"})
        acks.append(message_id)
        return httpx.Response(204)

    watcher = Watcher()
    read_all(gateway, watcher)
    assert watcher.shown == ["a", "b", "c", "c"]
    assert sorted(acks) == ["a", "b", "c"]
    assert watcher.acks == 3
    assert watcher.errors == ["ack HTTP 503 TRANSPORT_TIMEOUT"]
    assert watcher.reads == 3


def test_a_failed_read_is_an_error_and_nothing_delivered() -> None:
    calls = iter([httpx.Response(503, content=json.dumps({"reason": "NOT_READY"}).encode())])

    def gateway(request: httpx.Request) -> httpx.Response:
        return next(calls, httpx.Response(200, json={"items": []}))

    watcher = Watcher()
    read_all(gateway, watcher)
    assert watcher.errors == ["inbox HTTP 503 NOT_READY"]
    assert watcher.shown == []
