"""The sender applies the recipients' item limit: a payload with more array items in all than
`MAX_PAYLOAD_ITEMS` — which every recipient refuses as PAYLOAD_INVALID — is refused before
it is sealed (`TOO_MANY_ITEMS`), by `seal`, by the `Sealer` and by the HTTP API (422,
nothing sent), counted as the recipient's skimmer counts them."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from broker.contract import default_codec, skim
from broker.crypto import Sealer, SealRequest
from broker.crypto._envelope import MAX_PAYLOAD_ITEMS
from broker.crypto._items import zero_width_items
from broker.errors import DecodeError, LocalError
from broker.models import IntakeRegistered, PartyRole
from demo.examples import example
from tests.crypto_net import NOW, A, Net
from tests.unit.gateway import test_api
from tests.unit.gateway.test_api import AUTH, Stack

MUNI, DTV, NGO = A[PartyRole.MUNICIPALITY], A[PartyRole.DTV], A[PartyRole.NGO]
INTAKE = example("IntakeRegistered").model_copy(update={"municipality": MUNI})
NAME = IntakeRegistered.avro_name


def items_in(payload: bytes) -> int:
    """Array items and map entries of ``payload`` in all, as the recipient's skimmer counts."""
    skipper = default_codec().info(NAME).skipper
    low, high = 0, 1 << 20
    while low < high:  # the least limit the skimmer accepts
        mid = (low + high) // 2
        try:
            skim(skipper, payload, max_items=mid)
            high = mid
        except DecodeError:
            low = mid + 1
    return low


BASE_ITEMS = items_in(INTAKE.avro_bytes())  # the example's own arrays (nationalities, ...)


def intake(total_items: int) -> IntakeRegistered:
    """The example intake with household case ids making ``total_items`` items in all."""
    ids = tuple(uuid.UUID(int=n + 1) for n in range(total_items - BASE_ITEMS))
    message = IntakeRegistered.model_validate(INTAKE.model_dump() | {"household_case_ids": ids})
    assert items_in(message.avro_bytes()) == total_items
    return message


# --- seal and the Sealer -----------------------------------------------------------------------


@pytest.mark.parametrize("fmt", [1, 2])
def test_sealing_more_items_than_a_recipient_accepts_is_refused(fmt: int) -> None:
    net = Net(format_version=fmt)
    with pytest.raises(LocalError, match=f"more than {MAX_PAYLOAD_ITEMS}") as caught:
        net.seal(intake(MAX_PAYLOAD_ITEMS + 1), MUNI, [DTV])
    assert caught.value.reason == "TOO_MANY_ITEMS"


@pytest.mark.parametrize("fmt", [1, 2])
def test_a_payload_at_the_item_limit_seals_and_opens(fmt: int) -> None:
    net = Net(format_version=fmt)
    message = intake(MAX_PAYLOAD_ITEMS)
    opened = net.open(net.seal(message, MUNI, [DTV]), DTV)
    assert opened.message == message


def test_the_sealer_refuses_only_the_request_over_the_limit() -> None:
    net = Net()
    sealer = Sealer(net.keys(MUNI), net.directory, lambda: NOW)
    small, big = intake(BASE_ITEMS + 3), intake(MAX_PAYLOAD_ITEMS + 1)
    first, second = sealer.seal_each([SealRequest(small, (DTV,)), SealRequest(big, (DTV,))])
    assert isinstance(first, bytes) and net.open(first, DTV).message == small
    assert isinstance(second, LocalError) and second.reason == "TOO_MANY_ITEMS"


def test_every_message_schema_spends_a_byte_per_item() -> None:
    # what lets the sender skip the count for a payload of at most MAX_PAYLOAD_ITEMS bytes
    codec = default_codec()
    assert not [n for n in codec.names if zero_width_items(codec.info(n).schema)]


@pytest.mark.parametrize(
    ("items", "zero"),
    [
        ("null", True),
        ({"type": "record", "name": "E", "fields": []}, True),
        ({"type": "record", "name": "N", "fields": [{"name": "a", "type": "null"}]}, True),
        ({"type": "fixed", "name": "F", "size": 0}, True),
        ("string", False),
        (["null", "string"], False),  # the union's branch index is a byte
        ({"type": "record", "name": "S", "fields": [{"name": "a", "type": "long"}]}, False),
        ("Unknown", True),  # a name it cannot resolve: assume the worst
    ],
)
def test_zero_width_items_are_recognised(items: Any, zero: bool) -> None:
    schema = {"type": "record", "name": "R", "namespace": "t",
              "fields": [{"name": "xs", "type": {"type": "array", "items": items}}]}  # fmt: skip
    assert zero_width_items(schema) is zero


# --- the HTTP API ------------------------------------------------------------------------------


@pytest.fixture
async def stack(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Stack]:
    monkeypatch.setattr(test_api, "MAX_BODY", 1024 * 1024)  # room for 10,001 ids as JSON
    s = Stack(tmp_path)
    await s.provision()
    try:
        yield s
    finally:
        await s.aclose()


def send_body(message: IntakeRegistered) -> dict[str, Any]:
    return {"type": "IntakeRegistered", "recipients": [DTV, NGO],
            "message": json.loads(message.model_dump_json())}  # fmt: skip


async def test_the_api_refuses_a_message_over_the_item_limit_and_sends_nothing(
    stack: Stack,
) -> None:
    muni = await stack.started(MUNI)
    api = await stack.serve(muni)

    response = await api.post(
        "/v1/messages", json=send_body(intake(MAX_PAYLOAD_ITEMS + 1)), headers=AUTH
    )

    assert response.status_code == 422, response.text
    assert response.json()["reason"] == "TOO_MANY_ITEMS"
    assert str(MAX_PAYLOAD_ITEMS) in response.json()["detail"]
    assert stack.produced() == {}
    assert muni.store.sent_records() == 0
    # the same message within the limit goes
    within = await api.post("/v1/messages", json=send_body(intake(BASE_ITEMS + 2)), headers=AUTH)
    assert within.status_code == 202, within.text
