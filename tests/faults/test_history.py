"""The fault suite's history checker (tests/faults/history.py), without Kafka: each anomaly
kind is found, and a clean or merely uncertain history passes."""

from __future__ import annotations

import uuid

import pytest

from tests.faults.history import AnomalyKind, History, Outcome, check

A, B, C = "gemeente-amsterdam", "ind", "dtv"
CASE, OTHER_CASE = uuid.uuid4(), uuid.uuid4()


def ids(n: int) -> list[uuid.UUID]:
    return [uuid.uuid4() for _ in range(n)]


def sent_ok(h: History, message_id: uuid.UUID, seq: int, *, case: uuid.UUID = CASE,
            to: tuple[str, ...] = (B,), kind: str = "T") -> None:  # fmt: skip
    h.send(A, to, case, kind, seq, Outcome.OK, message_id)


def delivered(h: History, party: str, message_id: uuid.UUID, *, case: uuid.UUID = CASE,
              sender: str = A, kind: str = "T") -> None:  # fmt: skip
    h.delivered(party, message_id, sender, case, kind)


def kinds(h: History) -> dict[str, int]:
    return {k: n for k, n in check(h).counts.items() if n}


def test_a_clean_history_passes() -> None:
    h = History()
    m = ids(3)
    for seq, message_id in enumerate(m):
        sent_ok(h, message_id, seq, to=(B, C))
    for party in (B, C):
        for message_id in m:
            delivered(h, party, message_id)
    verdict = check(h)
    assert verdict.ok
    assert verdict.anomalies == []
    assert verdict.sends == {"ok": 3}
    assert verdict.deliveries == 6


def test_an_acknowledged_send_missing_at_one_recipient_is_lost_and_unaccounted() -> None:
    h = History()
    [m] = ids(1)
    sent_ok(h, m, 0, to=(B, C))
    delivered(h, B, m)
    verdict = check(h)
    assert not verdict.ok
    assert kinds(h) == {"lost": 1, "unaccounted": 1}
    lost = next(a for a in verdict.anomalies if a.kind is AnomalyKind.LOST)
    assert (lost.party, lost.message_id, lost.case_id) == (C, m, CASE)


def test_a_dead_lettered_message_is_lost_but_accounted_for() -> None:
    h = History()
    [m] = ids(1)
    sent_ok(h, m, 0)
    h.dead_lettered(B, m, "EXPIRED")
    assert kinds(h) == {"lost": 1}
    assert check(h).dead_letters == {"EXPIRED": 1}


def test_a_second_delivery_to_the_same_back_office_is_a_duplicate() -> None:
    h = History()
    [m] = ids(1)
    sent_ok(h, m, 0, to=(B, C))
    delivered(h, B, m)
    delivered(h, C, m)  # the same message at another recipient is no duplicate
    delivered(h, B, m)
    verdict = check(h)
    assert kinds(h) == {"duplicate": 1}
    [dup] = verdict.anomalies
    assert (dup.party, dup.message_id) == (B, m)


def test_a_retried_send_that_created_a_second_message_is_a_duplicate() -> None:
    h = History()
    acknowledged, second = ids(2)
    sent_ok(h, acknowledged, 0, to=(B, C))  # one send, acknowledged after a retry
    for party in (B, C):
        delivered(h, party, acknowledged)
        delivered(h, party, second)  # the try whose answer was lost wrote it too
    verdict = check(h)
    assert kinds(h) == {"duplicate": 2}
    assert {(a.party, a.message_id) for a in verdict.anomalies} == {(B, second), (C, second)}
    assert "second message of an acknowledged send" in verdict.anomalies[0].detail


def test_a_send_of_unknown_outcome_may_arrive_or_not_but_not_twice() -> None:
    arrived, never = History(), History()
    for h in (arrived, never):
        h.send(A, (B,), CASE, "T", 0, Outcome.UNKNOWN, detail="ReadTimeout")
    late = uuid.uuid4()
    delivered(arrived, B, late)
    assert check(arrived).ok and check(arrived).unknown_delivered == 1
    assert check(never).ok and check(never).unknown_delivered == 0
    delivered(arrived, B, late)
    assert kinds(arrived) == {"duplicate": 1}


def test_one_unknown_send_explains_one_delivered_message_not_two() -> None:
    h = History()
    h.send(A, (B,), CASE, "T", 0, Outcome.UNKNOWN)
    first, second = ids(2)
    delivered(h, B, first)
    delivered(h, B, second)  # another id for the same (sender, case, type): a second write
    verdict = check(h)
    assert kinds(h) == {"phantom": 1}
    assert verdict.unknown_delivered == 1


def test_a_send_of_unknown_outcome_reaches_all_its_recipients_or_none() -> None:
    every, none, some = History(), History(), History()
    for h in (every, none, some):
        h.send(A, (B, C), CASE, "T", 0, Outcome.UNKNOWN, detail="ReadTimeout")
    [m] = ids(1)
    delivered(every, B, m)
    delivered(every, C, m)
    delivered(some, C, m)
    assert check(every).ok and check(none).ok
    verdict = check(some)
    assert kinds(some) == {"partial": 1}
    [partial] = verdict.anomalies
    assert (partial.party, partial.case_id) == (B, CASE)
    assert partial.detail == "T from gemeente-amsterdam reached dtv only"


def test_unknown_sends_that_cannot_be_told_apart_are_not_judged_partial() -> None:
    h = History()
    h.send(A, (B, C), CASE, "T", 0, Outcome.UNKNOWN)
    h.send(A, (B, C), CASE, "T", 1, Outcome.FAILED)  # same sender, case and type
    delivered(h, C, uuid.uuid4())
    assert "partial" not in kinds(h)


def test_a_failed_send_that_arrives_anyway_is_reported() -> None:
    h = History()
    h.send(A, (B,), CASE, "T", 0, Outcome.FAILED, detail="HTTP 503 TRANSPORT_UNAVAILABLE")
    delivered(h, B, uuid.uuid4())
    assert kinds(h) == {"failed_delivered": 1}


def test_a_delivery_nothing_explains_is_a_phantom() -> None:
    h = History()
    delivered(h, B, uuid.uuid4(), case=OTHER_CASE)
    assert kinds(h) == {"phantom": 1}


def test_a_message_at_a_party_that_is_not_a_recipient_is_misdelivered() -> None:
    h = History()
    [m] = ids(1)
    sent_ok(h, m, 0, to=(B,))
    delivered(h, B, m)
    delivered(h, C, m)
    verdict = check(h)
    assert kinds(h) == {"misdelivered": 1}
    assert verdict.anomalies[0].party == C


def test_deliveries_out_of_send_order_within_a_case_are_order_violations() -> None:
    h = History()
    m = ids(3)
    for seq, message_id in enumerate(m):
        sent_ok(h, message_id, seq)
    for message_id in (m[0], m[2], m[1]):
        delivered(h, B, message_id)
    verdict = check(h)
    assert kinds(h) == {"order": 1}
    [violation] = verdict.anomalies
    assert violation.message_id == m[1]
    assert "send 1" in violation.detail and "after send 2" in violation.detail


def test_order_is_per_case_sender_and_recipient() -> None:
    h = History()
    x, y, z = ids(3)
    sent_ok(h, x, 1, case=CASE)
    sent_ok(h, y, 0, case=OTHER_CASE)  # another case: its own order
    h.send(C, (B,), CASE, "T", 0, Outcome.OK, z)  # another sender in the same case
    delivered(h, B, x, case=CASE)
    delivered(h, B, y, case=OTHER_CASE)
    delivered(h, B, z, case=CASE, sender=C)
    assert check(h).ok


def test_gaps_from_unknown_sends_do_not_break_order() -> None:
    h = History()
    first, third = ids(2)
    sent_ok(h, first, 0)
    h.send(A, (B,), CASE, "T", 1, Outcome.UNKNOWN)
    sent_ok(h, third, 2)
    delivered(h, B, first)
    delivered(h, B, third)
    assert check(h).ok


def test_anomalies_carry_the_scenario_of_their_send() -> None:
    h = History()
    h.scenario = "pause"
    [m] = ids(1)
    sent_ok(h, m, 0)
    h.scenario = "after"
    verdict = check(h)
    assert [a.scenario for a in verdict.anomalies] == ["pause", "pause"]
    report = verdict.as_json()
    assert report["ok"] is False
    assert report["anomalies"]["lost"] == 1
    assert report["examples"][0]["message_id"] == str(m)


def test_an_acknowledged_send_needs_its_message_id() -> None:
    with pytest.raises(ValueError, match="message id"):
        History().send(A, (B,), CASE, "T", 0, Outcome.OK)
