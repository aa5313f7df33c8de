"""Every route of the API through both clients, against real gateways on the embedded log:
a message sent as a model or as a dict goes SENT → RECEIPTED, a batch answers per item,
the overdue list, the inbox read and acknowledged, health and readiness — and every error
reason the API has is raised as its error class, by whose fault, with ``retriable``."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import httpx
import pytest

from adapters import GatewayClient as AdapterClient
from broker.client import (
    ApiError,
    AsyncGatewayClient,
    NotFound,
    Outgoing,
    RequestRefused,
    RetryPolicy,
    Unauthorized,
    Unavailable,
)
from broker.crypto import MAX_PAYLOAD_ITEMS
from broker.errors import LocalError, RemoteError
from broker.gateway.api import create_app
from broker.models import DossierDelivered
from demo.examples import example
from tests.support import eventually
from tests.unit.client.conftest import IND, MUNI, NGO, Api, Clock, Flavour, log_away
from tests.unit.crypto import test_sender_limits as limits
from tests.unit.gateway.test_api import BAD_REQUESTS, TOKEN, Stack, dossier_json

DOSSIER = DossierDelivered.model_validate(example("DossierDelivered").model_dump())


async def until_status(api: Api, message_id: uuid.UUID, wanted: str) -> Any:
    async def reached() -> Any:
        status = await api.status(message_id)
        return status if status.status == wanted else None

    return await eventually(reached, f"{message_id} to be {wanted}", every_s=0.02)


async def test_a_model_sent_is_receipted_read_from_the_inbox_and_acknowledged(
    flavour: Flavour,
) -> None:
    ind = await flavour.started(IND, run=True)
    muni = await flavour.started(MUNI, run=True)
    sender, recipient = await flavour.connect(ind), await flavour.connect(muni)

    message_id = await sender.send(DOSSIER, [MUNI], correlation_id=uuid.uuid4())

    first = await sender.status(message_id)
    assert (first.message_id, first.type, first.recipients) == (
        message_id, "nl.lvv.v1.DossierDelivered", [MUNI],
    )  # fmt: skip
    assert (first.case_id, first.overdue) == (DOSSIER.case_id, False)
    final = await until_status(sender, message_id, "RECEIPTED")
    assert final.receipts[MUNI]["outcome"] == "ACCEPTED"
    (entry,) = await recipient.inbox(limit=10)
    assert (entry.message_id, entry.sender, entry.case_id) == (message_id, IND, DOSSIER.case_id)
    assert entry.model() == DOSSIER
    await recipient.ack(entry.message_id)
    assert await recipient.inbox() == []
    await recipient.ack(entry.message_id)  # a retried acknowledgement is harmless
    await recipient.ack(entry.message_id, sender=IND)


TRACE = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


async def test_a_traceparent_given_reaches_the_recipient_in_its_trace(flavour: Flavour) -> None:
    ind = await flavour.started(IND, run=True)
    muni = await flavour.started(MUNI, run=True)
    sender, recipient = await flavour.connect(ind), await flavour.connect(muni)

    one = await sender.send(DOSSIER, [MUNI], traceparent=TRACE)
    (two,) = await sender.send_batch([Outgoing.of(DOSSIER, [MUNI], traceparent=TRACE)])
    assert isinstance(two, uuid.UUID)
    await until_status(sender, one, "RECEIPTED")
    await until_status(sender, two, "RECEIPTED")
    entries = await recipient.inbox(limit=10)
    assert {e.message_id for e in entries} == {one, two}
    for entry in entries:
        assert entry.traceparent is not None and entry.traceparent[3:35] == TRACE[3:35]
        assert entry.traceparent != TRACE  # the receiving gateway's own span
    with pytest.raises(RequestRefused) as bad:
        await sender.send(DOSSIER, [MUNI], traceparent="00-nonsense")
    assert (bad.value.status, bad.value.reason) == (422, "BAD_TRACEPARENT")


async def test_a_message_given_as_a_dict_needs_its_type(flavour: Flavour) -> None:
    ind = await flavour.started(IND, run=True)
    muni = await flavour.started(MUNI, run=True)
    sender = await flavour.connect(ind)

    for name in ("DossierDelivered", "nl.lvv.v1.DossierDelivered"):
        message_id = await sender.send(dossier_json(), [MUNI], message_type=name)
        await until_status(sender, message_id, "RECEIPTED")
    with pytest.raises(LocalError) as untyped:
        await sender.send(dossier_json(), [MUNI])
    assert untyped.value.reason == "NO_TYPE"
    assert len(muni.store.inbox(limit=10)) == 2


async def test_a_batch_answers_each_item_with_its_id_or_its_error(flavour: Flavour) -> None:
    ind = await flavour.started(IND, run=True)
    await flavour.started(MUNI, run=True)
    await flavour.started(NGO, run=True)
    sender = await flavour.connect(ind)
    items = [
        Outgoing.of(DOSSIER, [MUNI, NGO]),
        Outgoing.of(DOSSIER, ["gemeente-atlantis"]),
        Outgoing.of({**dossier_json(), "delivered_at": "last tuesday"}, [MUNI],
                    message_type="DossierDelivered"),
        Outgoing.of(example("IntakeRegistered"), [MUNI]),
        Outgoing.of(dossier_json(), [MUNI], message_type="Nonsense"),
    ]  # fmt: skip

    sent, *refused = await sender.send_batch(items)

    assert isinstance(sent, uuid.UUID)
    await until_status(sender, sent, "RECEIPTED")
    assert all(isinstance(r, RequestRefused) and not r.retriable for r in refused)
    assert [(r.status, r.reason) for r in refused] == [
        (422, "UNKNOWN_RECIPIENT"), (422, "SCHEMA_VIOLATION"), (403, "POLICY_DENIED"),
        (422, "UNKNOWN_TYPE"),
    ]  # fmt: skip
    assert ind.store.counts()["sent"] == 1


async def test_a_message_without_its_receipts_is_overdue(flavour: Flavour) -> None:
    clock = Clock()
    ind = await flavour.started(IND, clock=clock)
    sender = await flavour.connect(ind, app_receipt_timeout=timedelta(minutes=5))
    message_id = await sender.send(DOSSIER, [MUNI])
    assert await sender.overdue() == []

    clock.advance(timedelta(minutes=6))  # the municipality's gateway never ran

    assert await sender.overdue() == [message_id]
    assert (await sender.status(message_id)).overdue


async def test_health_and_readiness_follow_the_gateway(flavour: Flavour) -> None:
    ind = flavour.stack.gateway(IND)
    api = await flavour.connect(ind)
    assert (await api.health()).party == IND
    with pytest.raises(Unavailable) as not_ready:
        await api.ready()
    assert (not_ready.value.reason, not_ready.value.retry_after_s) == ("NOT_READY", 5.0)
    assert not_ready.value.retriable and isinstance(not_ready.value, RemoteError)

    await ind.start()

    assert (await api.ready()).status == "ready"


# --- every error reason ----------------------------------------------------------------------

REFUSALS = {  # the API's bad requests, as the client can make them
    case: BAD_REQUESTS[case]
    for case in ("field-of-wrong-type", "missing-required-field", "unknown-type",
                 "type-of-another-namespace", "receipt-from-the-back-office", "unknown-recipient",
                 "recipient-not-allowed", "sender-not-allowed", "payload-naming-another-sender",
                 "oversized-body")
}  # fmt: skip


@pytest.mark.parametrize("case", REFUSALS, ids=list(REFUSALS))
async def test_a_refused_send_raises_its_reason_as_the_callers_fault(
    flavour: Flavour, case: str
) -> None:
    ind = await flavour.started(IND)
    calls: list[Any] = []
    api = await flavour.connect(ind, on_call=calls.append)
    make, status, reason = REFUSALS[case]
    body = make()

    with pytest.raises(RequestRefused) as refused:
        await api.send(body["message"], body["recipients"], message_type=body["type"])

    assert (refused.value.status, refused.value.reason) == (status, reason)
    assert isinstance(refused.value, LocalError) and not refused.value.retriable
    assert [c.attempt for c in calls] == [1]  # not retried
    assert ind.store.counts()["sent"] == 0


async def test_a_message_with_more_items_than_a_recipient_takes_is_refused(
    flavour: Flavour,
) -> None:
    muni = await flavour.started(MUNI)
    api = await flavour.connect(muni, app_max_body_bytes=1024 * 1024)
    with pytest.raises(RequestRefused) as refused:
        await api.send(limits.intake(MAX_PAYLOAD_ITEMS + 1), [limits.DTV, NGO])
    assert (refused.value.status, refused.value.reason) == (422, "TOO_MANY_ITEMS")
    assert muni.store.sent_records() == 0


async def test_a_wrong_token_is_unauthorized_on_every_v1_route(flavour: Flavour) -> None:
    ind = await flavour.started(IND)
    api = await flavour.connect(ind, token="not-the-token")
    some_id = uuid.uuid4()
    for call in (api.send(DOSSIER, [MUNI]), api.send_batch([Outgoing.of(DOSSIER, [MUNI])]),
                 api.status(some_id), api.overdue(), api.inbox(), api.ack(some_id)):  # fmt: skip
        with pytest.raises(Unauthorized) as refused:
            await call
        assert (refused.value.status, refused.value.reason) == (401, "UNAUTHORIZED")
    assert (await api.health()).status == "ok"  # no token needed


async def test_an_unknown_message_is_not_found(flavour: Flavour) -> None:
    api = await flavour.connect(await flavour.started(IND))
    for call in (api.status(uuid.uuid4()), api.ack(uuid.uuid4())):
        with pytest.raises(NotFound) as missing:
            await call
        assert (missing.value.status, missing.value.reason) == (404, "NOT_FOUND")


async def test_a_send_during_an_outage_is_unavailable_with_retry_after(flavour: Flavour) -> None:
    ind = await flavour.started(IND)
    calls: list[Any] = []
    patient = RetryPolicy(max_retry_after_s=1)
    api = await flavour.connect(ind, on_call=calls.append, retry=patient)
    log_away(ind)

    with pytest.raises(Unavailable) as away:
        await api.send(DOSSIER, [MUNI])

    error = away.value
    assert (error.status, error.reason, error.retry_after_s) == (503, "TRANSPORT_UNAVAILABLE", 5.0)
    assert error.retriable and not error.outcome_unknown and isinstance(error, ApiError)
    assert [(c.attempt, c.wait_s) for c in calls] == [(1, None)]  # 5 s is over the limit here


async def test_the_async_client_is_what_an_adapter_sends_through(stack: Stack) -> None:
    ind = await stack.started(IND, run=True)
    await stack.started(MUNI, run=True)
    transport = httpx.ASGITransport(app=create_app(ind, token=TOKEN))
    async with AsyncGatewayClient("http://gateway", token=TOKEN, transport=transport) as api:
        client: AdapterClient = api  # that it fits the adapters' protocol, mypy checks
        message_id = await client.send(DOSSIER, [MUNI], causation_id=uuid.uuid4())
        assert (await until_status(Api(api), message_id, "RECEIPTED")).recipients == [MUNI]
