"""The fault suite's senders (tests/faults/traffic.py) against a scripted gateway API: a send
whose answer is lost is retried with its key until a definite answer, and recorded once with
the outcome the tries add up to."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable

import httpx
import pytest

from bench._soak_infra import PARTIES
from broker.client import (
    ApiError,
    CallRecord,
    GatewayFailed,
    NotReached,
    OutcomeUnknown,
    RequestRefused,
    RetryPolicy,
    Unavailable,
)
from demo.examples import example
from tests.faults.history import History, Outcome
from tests.faults.traffic import Traffic, outcome_of

SENDER, RECIPIENT = PARTIES[0].party_id, PARTIES[1].party_id
LOST = httpx.Response(503, json={"reason": "TRANSPORT_TIMEOUT"}, headers={"Retry-After": "0"})


def send_through(
    gateway: Callable[[httpx.Request], httpx.Response], *, deadline_s: float = 10.0
) -> tuple[Traffic, uuid.UUID | None]:
    """One send through ``gateway``; the traffic (its history, its errors) and the id."""
    traffic = Traffic(
        {p.party_id: ("http://gw", "token") for p in PARTIES}, History(), deadline_s=deadline_s,
        retry=RetryPolicy(attempts=10_000, first_backoff_s=0.0),
        transport=httpx.MockTransport(gateway),
    )  # fmt: skip

    async def run() -> uuid.UUID | None:
        try:
            return await traffic.send_message(SENDER, (RECIPIENT,), example("DossierDelivered"), 3)
        finally:
            await traffic.close()

    return traffic, asyncio.run(run())


def test_a_lost_answer_is_retried_with_the_same_key_until_the_gateway_acknowledges() -> None:
    accepted = uuid.uuid4()
    answers = [LOST, LOST, httpx.Response(202, json={"message_id": str(accepted)})]
    keys: list[str] = []

    def gateway(request: httpx.Request) -> httpx.Response:
        keys.append(request.headers["Idempotency-Key"])
        return answers.pop(0)

    traffic, message_id = send_through(gateway)
    assert message_id == accepted
    assert len(keys) == 3 and len(set(keys)) == 1
    [send] = traffic.history.sends
    assert (send.outcome, send.message_id, send.seq) == (Outcome.OK, accepted, 3)
    assert (send.sender, send.recipients, send.message_type) == (
        SENDER,
        (RECIPIENT,),
        "DossierDelivered",
    )
    assert send.detail == "acknowledged at try 3"
    assert traffic.errors == {"send retried after HTTP 503 TRANSPORT_TIMEOUT": 2}


def test_a_refusal_is_a_failed_send_and_not_retried() -> None:
    calls: list[httpx.Request] = []

    def gateway(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        return httpx.Response(422, json={"reason": "POLICY_VIOLATION"})

    traffic, message_id = send_through(gateway)
    assert message_id is None and len(calls) == 1
    [send] = traffic.history.sends
    assert (send.outcome, send.detail) == (Outcome.FAILED, "HTTP 422 POLICY_VIOLATION")


def test_no_definite_answer_by_the_deadline_leaves_the_outcome_unknown() -> None:
    traffic, message_id = send_through(lambda request: LOST, deadline_s=0.3)
    assert message_id is None
    [send] = traffic.history.sends
    assert (send.outcome, send.detail) == (Outcome.UNKNOWN, "no definite answer in 0.3 s")
    assert traffic.errors["send no definite answer in 0.3 s"] == 1


def record(error: ApiError) -> CallRecord:
    return CallRecord("send", 1, 0.01, error.status, error, 0.0)


@pytest.mark.parametrize(
    ("final", "earlier", "outcome"),
    [
        (None, [OutcomeUnknown("lost")], Outcome.OK),
        (RequestRefused("422", status=422), [], Outcome.FAILED),
        (Unavailable("503", status=503), [NotReached("down")], Outcome.FAILED),  # nothing done
        (RequestRefused("422", status=422), [OutcomeUnknown("lost")], Outcome.UNKNOWN),
        (GatewayFailed("500", status=500), [], Outcome.UNKNOWN),
    ],
)
def test_the_tries_add_up_to_the_outcome(
    final: ApiError | None, earlier: list[ApiError], outcome: Outcome
) -> None:
    tries = [record(e) for e in earlier] + ([record(final)] if final else [])
    assert outcome_of(final, tries) is outcome
