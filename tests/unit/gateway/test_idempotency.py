"""Idempotent sends through the HTTP API on the embedded log (issue 16 §2): the same
``Idempotency-Key`` with the same body answers as the first time and sends nothing, also
after a restart; another body is 409 IDEMPOTENCY_CONFLICT; a key in flight 409
IDEMPOTENCY_IN_PROGRESS with Retry-After; keys expire; batch items carry their own; a send
left without a known outcome by a crash is settled from the audit topic on restart."""

from __future__ import annotations

import contextlib
import sqlite3
import uuid
from datetime import timedelta
from pathlib import Path

import pytest

from broker.gateway import GatewayStore
from broker.gateway import _idempotency as idem
from broker.gateway import _store_idempotency as key_table
from broker.gateway._store import SentRow
from tests.crypto_net import CONTENT_KEY, NOW
from tests.support import eventually
from tests.unit.gateway import test_api
from tests.unit.gateway.test_api import AUTH, IND, MUNI, Stack, send_body

stack = test_api.stack
"""The API tests' fixture: an embedded log, gateways and their HTTP APIs."""

KEY = "8e03978e-40d5-43e8-bc93-6894a57f9324"


def keyed(key: str = KEY) -> dict[str, str]:
    return {**AUTH, idem.HEADER: key}


async def test_the_same_key_and_body_answers_as_the_first_time_and_sends_nothing(
    stack: Stack,
) -> None:
    api = await stack.serve(await stack.started(IND))
    first = await api.post("/v1/messages", json=send_body(), headers=keyed())
    assert first.status_code == 202, first.text
    log = stack.produced()

    again = await api.post("/v1/messages", json=send_body(), headers=keyed())
    quoted = await api.post("/v1/messages", json=send_body(), headers=keyed(f'"{KEY}"'))

    assert again.status_code == quoted.status_code == 202
    assert again.json() == quoted.json() == first.json()
    assert stack.produced() == log  # no record, no audit event
    other = await api.post("/v1/messages", json=send_body(), headers=keyed("another-key"))
    assert other.status_code == 202 and other.json() != first.json()


async def test_the_same_key_with_another_body_is_a_conflict(stack: Stack) -> None:
    api = await stack.serve(await stack.started(IND))
    assert (await api.post("/v1/messages", json=send_body(), headers=keyed())).status_code == 202
    log = stack.produced()

    response = await api.post("/v1/messages", json=send_body(recipients=[MUNI]), headers=keyed())

    assert response.status_code == 409
    assert response.json()["reason"] == "IDEMPOTENCY_CONFLICT"
    assert stack.produced() == log


@pytest.mark.parametrize("key", ["", "x" * 256, "caf\u00e9", "tab\there", '""'])
async def test_a_key_that_is_not_1_to_255_printable_ascii_is_refused(
    stack: Stack, key: str
) -> None:
    api = await stack.serve(await stack.started(IND))
    log = stack.produced()
    response = await api.post(
        "/v1/messages",
        json=send_body(),
        headers=[(n.encode(), v.encode()) for n, v in {**AUTH, idem.HEADER: key}.items()],
    )  # bytes: sent as they are (UTF-8 é is two bytes above 0x7E)
    assert response.status_code == 400, response.text
    assert response.json()["reason"] == "INVALID_IDEMPOTENCY_KEY"
    assert stack.produced() == log
    assert (
        await api.post("/v1/messages", json=send_body(), headers=keyed("x" * 255))
    ).status_code == 202


async def test_a_key_whose_first_request_is_in_flight_is_in_progress(stack: Stack) -> None:
    gw = await stack.started(IND)
    api = await stack.serve(gw)
    body = (await api.post("/v1/messages", json=send_body(), headers=AUTH)).json()
    assert body["status"] == "SENT"
    from broker.gateway.api import _SEND_REQUEST

    request = _SEND_REQUEST.validate_python(send_body())
    claim = idem.claim(KEY, request.model_dump(mode="json"))
    assert await gw.idempotent.begin(claim, uuid.uuid4()) is None  # in flight from now on

    response = await api.post("/v1/messages", json=send_body(), headers=keyed())

    assert response.status_code == 409
    assert response.json()["reason"] == "IDEMPOTENCY_IN_PROGRESS"
    assert response.headers["Retry-After"] == str(idem.IN_PROGRESS_RETRY_AFTER_S)
    gw.idempotent.failed(claim)  # nothing was sent: the key is free again
    assert (await api.post("/v1/messages", json=send_body(), headers=keyed())).status_code == 202


async def restart(stack: Stack, party: str) -> None:
    """Stop and close every gateway of ``party`` (and its store): as a process restart."""
    for gw in [g for g in stack.gateways if g.party_id == party]:
        gw.stop()
        await gw.close()
        gw.store.close()
        stack.gateways.remove(gw)


async def test_the_first_answer_survives_a_restart(stack: Stack) -> None:
    api = await stack.serve(await stack.started(IND))
    first = (await api.post("/v1/messages", json=send_body(), headers=keyed())).json()
    await restart(stack, IND)
    log = stack.produced()

    api = await stack.serve(await stack.started(IND))
    again = await api.post("/v1/messages", json=send_body(), headers=keyed())
    conflict = await api.post("/v1/messages", json=send_body(recipients=[MUNI]), headers=keyed())

    assert again.status_code == 202 and again.json() == first
    assert conflict.status_code == 409 and conflict.json()["reason"] == "IDEMPOTENCY_CONFLICT"
    assert stack.produced() == log


async def test_a_send_taken_by_the_log_but_not_confirmed_is_settled_as_sent(
    stack: Stack, tmp_path: Path
) -> None:
    """A crash after the log took the message but before its key was confirmed: the restart
    finds its SENT event in the audit topic and answers the retry with it."""
    api = await stack.serve(await stack.started(IND))
    first = (await api.post("/v1/messages", json=send_body(), headers=keyed())).json()
    await restart(stack, IND)
    with contextlib.closing(sqlite3.connect(tmp_path / f"{IND}.db")) as db, db:
        db.execute("UPDATE idempotency SET confirmed = 0")  # the confirmation was lost
    log = stack.produced()

    gw = await stack.started(IND)
    assert gw.store.unconfirmed_sends() == []  # settled at start
    again = await (await stack.serve(gw)).post("/v1/messages", json=send_body(), headers=keyed())

    assert again.status_code == 202 and again.json() == first
    assert stack.produced() == log


async def test_a_send_noted_but_never_written_is_forgotten_and_sent_on_retry(
    stack: Stack, tmp_path: Path
) -> None:
    """A crash after the send (and its key) was noted but before the log took it: the
    restart finds no SENT event, forgets both, and the retry sends the message."""
    from broker.gateway.api import _SEND_REQUEST

    request = _SEND_REQUEST.validate_python(send_body())
    lost = uuid.uuid4()
    store = GatewayStore(tmp_path / f"{IND}.db", content_key=CONTENT_KEY)
    claim = idem.claim(KEY, request.model_dump(mode="json"))
    store.record_sent_many([SentRow(lost, "nl.lvv.v1.DossierDelivered", uuid.uuid4(), (MUNI,), NOW,
                                    None, claim)])  # fmt: skip
    store.close()
    log = stack.produced()

    gw = await stack.started(IND)
    assert gw.store.sent_status(lost) is None and gw.store.unconfirmed_sends() == []
    response = await (await stack.serve(gw)).post("/v1/messages", json=send_body(), headers=keyed())

    assert response.status_code == 202
    assert response.json()["message_id"] != str(lost)
    assert stack.produced() != log


async def test_an_expired_key_is_free_again_and_purged(stack: Stack) -> None:
    now = [NOW]
    gw = await stack.started(IND, clock=lambda: now[0])
    api = await stack.serve(gw)
    first = (await api.post("/v1/messages", json=send_body(), headers=keyed())).json()
    now[0] = NOW + idem.KEEP_KEYS_FOR - timedelta(seconds=1)
    assert (await api.post("/v1/messages", json=send_body(), headers=keyed())).json() == first

    now[0] = NOW + idem.KEEP_KEYS_FOR + timedelta(seconds=1)
    later = await api.post("/v1/messages", json=send_body(), headers=keyed())

    assert later.status_code == 202 and later.json() != first
    with gw.store._tx() as db:  # the purge `record_sent_many` runs every PURGE_EVERY_KEYS keys
        key_table.purge(db, int(now[0].timestamp() * 1000))
    rows = gw.store._read("SELECT message_id FROM idempotency")
    assert rows == [(later.json()["message_id"],)]


async def test_batch_items_carry_their_own_keys(stack: Stack) -> None:
    api = await stack.serve(await stack.started(IND))
    items = [{**send_body(), "idempotency_key": "item-1"}, {**send_body(), "idempotency_key": "item-2"},
             send_body()]  # fmt: skip
    first = (await api.post("/v1/messages:batch", json={"items": items}, headers=AUTH)).json()[
        "items"
    ]
    assert [i["status"] for i in first] == [202, 202, 202]
    log = stack.produced()

    again = await api.post("/v1/messages:batch", json={"items": [
        *items[:2],
        {**send_body(recipients=[MUNI]), "idempotency_key": "item-1"},
        {**send_body(), "idempotency_key": 7},
    ]}, headers=AUTH)  # fmt: skip

    answers = again.json()["items"]
    assert answers[:2] == first[:2]
    assert (answers[2]["status"], answers[2]["reason"]) == (409, "IDEMPOTENCY_CONFLICT")
    assert (answers[3]["status"], answers[3]["reason"]) == (400, "INVALID_IDEMPOTENCY_KEY")
    assert stack.produced() == log
    # one mechanism: a batch item's key is the header's key
    single = await api.post("/v1/messages", json=send_body(), headers=keyed("item-2"))
    assert single.json()["message_id"] == first[1]["message_id"]


def test_the_key_table_holds_digests_only(tmp_path: Path) -> None:
    store = GatewayStore(tmp_path / "g.db", content_key=CONTENT_KEY)
    body = send_body()
    store.record_sent_many([SentRow(uuid.uuid4(), "t", uuid.uuid4(), (MUNI,), NOW, None,
                                    idem.claim("V-1234567890", body))])  # fmt: skip
    store.close()
    raw = b"".join(p.read_bytes() for p in tmp_path.glob("g.db*"))
    assert b"V-1234567890" not in raw
    assert idem.claim("V-1234567890", body).key_sha256 in raw


async def test_confirmations_of_sends_at_a_low_rate_share_their_writes(stack: Stack) -> None:
    """Keyed sends one after another (a back office waiting for each answer) had each its
    own confirmation write, a second fsync per message; gathered, a handful share one."""
    gw = await stack.started(IND)
    api = await stack.serve(gw)
    sends = 8
    for n in range(sends):
        answer = await api.post("/v1/messages", json=send_body(), headers=keyed(f"slow-{n}"))
        assert answer.status_code == 202, answer.text
    await eventually(
        lambda: (
            gw.store._read("SELECT COUNT(*) FROM idempotency WHERE confirmed = 1") == [(sends,)]
        ),
        "every key confirmed",
    )
    assert gw.idempotent._confirms.writes <= sends // 2, gw.idempotent._confirms.writes
