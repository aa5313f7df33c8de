"""The SDK's webhook verifier against the gateway's own signer: what a real `WebhookPusher`
POSTs verifies and reads as its message; a changed body, another secret, an old or future
timestamp and a malformed header are refused with their reasons; any header at all gets a
verdict, never another error."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from broker.api_contract import webhook_signature
from broker.client import (
    SIGNATURE_HEADER,
    WEBHOOK_TOLERANCE_S,
    WebhookSignatureInvalid,
    verify_webhook,
    verify_webhook_at,
)
from broker.gateway._webhook import WebhookPusher, _body
from tests.unit.gateway.test_webhook import SECRET, Inbox, Receiver, item

T = 1_790_000_000
BODY = _body(item())


async def test_what_the_gateway_pushes_verifies_and_reads_as_its_message() -> None:
    pushed = item()
    with Receiver() as receiver:
        pusher = WebhookPusher(Inbox([pushed]), receiver.url, SECRET)
        try:
            assert await pusher.push_due() == 1
        finally:
            await pusher.aclose()
    ((headers, body),) = receiver.requests

    message = verify_webhook(SECRET, headers[SIGNATURE_HEADER.lower()], body)

    assert (message.message_id, message.type, message.sender, message.case_id) == (
        pushed.message_id, pushed.message_type, pushed.sender, pushed.case_id,
    )  # fmt: skip
    assert (message.created_at, message.message) == (pushed.created_at, pushed.message)


def test_a_fresh_request_verifies_within_the_tolerance_either_way() -> None:
    header = webhook_signature(SECRET, BODY, T)
    for now in (T, T + WEBHOOK_TOLERANCE_S, T - WEBHOOK_TOLERANCE_S):
        assert verify_webhook_at(SECRET, header, BODY, now).sender == "ind"
    assert verify_webhook_at(SECRET.encode(), header, BODY, T).sender == "ind"
    rotating = f"{header},v1={'0' * 64},v0=older-scheme"  # the old secret's and another scheme
    assert verify_webhook_at(SECRET, rotating, BODY, T).sender == "ind"
    assert verify_webhook_at(SECRET, header, BODY, T + 600, tolerance_s=600).sender == "ind"


REFUSED: dict[str, tuple[Callable[[], str], bytes, float, str]] = {
    "old": (lambda: webhook_signature(SECRET, BODY, T), BODY, T + WEBHOOK_TOLERANCE_S + 1, "EXPIRED"),
    "future": (lambda: webhook_signature(SECRET, BODY, T), BODY, T - WEBHOOK_TOLERANCE_S - 1,
               "FROM_FUTURE"),
    "changed-body": (lambda: webhook_signature(SECRET, BODY, T), BODY.replace(b"ind", b"dtv"), T,
                     "BAD_SIGNATURE"),
    "other-secret": (lambda: webhook_signature("another-secret", BODY, T), BODY, T, "BAD_SIGNATURE"),
    "other-time": (lambda: webhook_signature(SECRET, BODY, T).replace(f"t={T}", f"t={T + 1}"),
                   BODY, T, "BAD_SIGNATURE"),
    "no-signature": (lambda: f"t={T}", BODY, T, "MALFORMED"),
    "no-time": (lambda: webhook_signature(SECRET, BODY, T).split(",", 1)[1], BODY, T, "MALFORMED"),
    "two-times": (lambda: f"t={T},{webhook_signature(SECRET, BODY, T)}", BODY, T, "MALFORMED"),
    "not-key-value": (lambda: "garbage", BODY, T, "MALFORMED"),
    "huge": (lambda: webhook_signature(SECRET, BODY, T) + ",x=" + "0" * 2000, BODY, T, "MALFORMED"),
    "signed-but-not-a-message": (lambda: webhook_signature(SECRET, b"{}", T), b"{}", T, "MALFORMED"),
}  # fmt: skip


@pytest.mark.parametrize("case", REFUSED, ids=list(REFUSED))
def test_a_request_not_the_gateways_or_no_longer_is_refused_with_its_reason(case: str) -> None:
    header, body, now, reason = REFUSED[case]
    with pytest.raises(WebhookSignatureInvalid) as refused:
        verify_webhook_at(SECRET, header(), body, now)
    assert refused.value.reason == reason


def test_a_missing_header_is_malformed_and_the_clock_is_this_machines() -> None:
    with pytest.raises(WebhookSignatureInvalid) as missing:
        verify_webhook(SECRET, None, BODY)
    assert missing.value.reason == "MALFORMED"
    fresh = webhook_signature(SECRET, BODY, int(time.time()))
    assert verify_webhook(SECRET, fresh, BODY).sender == "ind"
    with pytest.raises(WebhookSignatureInvalid) as stale:
        verify_webhook(SECRET, webhook_signature(SECRET, BODY, T), BODY)
    assert stale.value.reason == "EXPIRED"


GENUINE = webhook_signature(SECRET, BODY, T).split(",")[1]


@given(st.one_of(
    st.text(max_size=200),
    st.lists(st.sampled_from(["t=1790000000", "t=12", "t=", "v1=", "v1=ab", "x=1", "t=-3", "=",
                              GENUINE]), max_size=5).map(",".join),
))  # fmt: skip
def test_any_header_gets_a_verdict_and_only_the_genuine_signature_passes(header: str) -> None:
    try:
        verify_webhook_at(SECRET, header, BODY, T)
    except WebhookSignatureInvalid as refused:
        assert refused.reason in {"MALFORMED", "BAD_SIGNATURE", "EXPIRED", "FROM_FUTURE"}
        return
    parts = [p.strip() for p in header.split(",")]
    assert GENUINE in parts and parts.count(f"t={T}") == 1
