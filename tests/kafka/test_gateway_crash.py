"""Crash safety on real Kafka: a recipient gateway PROCESS is killed with SIGKILL in the
middle of a stream — or dies at an exact step of its receive path (`LVVX_CRASH_AT`, see
`broker.gateway.crashpoints`) — and is started again; every message reaches its back
office exactly once, in order per case, and every one is receipted to the sender."""

from __future__ import annotations

import asyncio
import uuid
from functools import partial
from pathlib import Path

import httpx
import pytest

from broker.gateway import crashpoints as crash
from broker.topics import dlq
from demo.examples import example
from tests.gateway_processes import RECIPIENT, Rig, rig
from tests.live_gateways import per_case
from tests.support import eventually

pytestmark = pytest.mark.kafka

MESSAGES = 240


async def wait_delivered(r: Rig, client: httpx.AsyncClient, count: int) -> list[tuple[str, str]]:
    """The recipient's inbox once ``count`` messages are in it and the sender has every
    receipt (two minutes at most)."""
    seen: list[tuple[str, str]] = []

    async def done() -> bool:
        seen[:] = await r.recipient.inbox_items(client)
        return len(seen) >= count and r.sender.store.counts()["awaiting_receipt"] == 0

    await eventually(done, lambda: f"{count} delivered and receipted; {len(seen)} delivered, "
                     f"the sender's counts {r.sender.store.counts()}", timeout_s=120, every_s=0.5)  # fmt: skip
    return list(seen)


async def delivering(r: Rig, client: httpx.AsyncClient, than: int) -> bool:
    """The recipient's back office has more than ``than`` messages: it is taking the
    stream in."""
    return len(await r.recipient.inbox_ids(client)) > than


async def test_a_killed_recipient_delivers_every_message_exactly_once(tmp_path: Path) -> None:
    sent: list[uuid.UUID] = []
    kills = 0
    async with rig(tmp_path, "crash") as r, httpx.AsyncClient(timeout=10) as client:
        r.recipient.start()
        await r.recipient.wait_ready(client)
        had = 0  # in the back office when the recipient (re)started
        dossier = example("DossierDelivered")
        for n in range(MESSAGES):
            message = dossier.model_copy(update={"case_id": uuid.uuid4()})
            sent.append(await r.sender.send(message, [RECIPIENT]))
            if n in (MESSAGES // 3, 2 * MESSAGES // 3):  # kill mid-stream, twice
                await eventually(partial(delivering, r, client, had),
                                 "the recipient to take the stream in", timeout_s=60, every_s=0.05)  # fmt: skip
                assert r.recipient.alive()
                r.recipient.kill()
                kills += 1
                r.recipient.start()
                await r.recipient.wait_ready(client)
                had = len(await r.recipient.inbox_ids(client))
        delivered = [message_id for message_id, _ in await wait_delivered(r, client, MESSAGES)]
        assert kills == 2
        assert len(delivered) == len(set(delivered)) == MESSAGES, (
            "lost or duplicated at the back office"
        )
        assert set(delivered) == {str(i) for i in sent}
        assert r.sender.store.counts()["receipted"] == MESSAGES
        assert r.sender.store.receipted_records() == MESSAGES  # one receipt per message, no more


# --- dying at each crash point -----------------------------------------------------------------

CASES, PER_CASE = 6, 10
"""Messages per crash-point run: a few cases with several messages each, so order per case
is tested (one case's messages share a key, hence a partition)."""

CRASH_AT = {
    "after_open": 20, "after_deliver": 20,  # reached once per record
    "after_audit": 4, "after_receipt": 4, "after_visible": 4, "after_commit": 4,  # per batch
}  # fmt: skip
"""The how-many-th time each point is reached when the recipient dies: mid-stream."""

FAST_REJOIN = {"LVVX_GATEWAY_KAFKA__SESSION_TIMEOUT_MS": "6000",
               "LVVX_GATEWAY_KAFKA__HEARTBEAT_INTERVAL_MS": "1000"}  # fmt: skip
"""The broker's smallest session timeout: the group forgets the dead member sooner, so the
restarted gateway gets its partitions back sooner."""


IN_MAKE_TEST = ("after_audit", "after_visible")
"""The crash points `make test` runs (the chain recovery, the redelivery of a visible but
uncommitted record); `make test-faults` runs every one — each costs a restart and a rejoin."""


@pytest.mark.parametrize(
    "point",
    [
        p if p in IN_MAKE_TEST else pytest.param(p, marks=pytest.mark.faults)
        for p in crash.RECEIVE_POINTS
    ],
)
async def test_a_recipient_dying_at_a_crash_point_delivers_every_message_exactly_once(
    tmp_path: Path, point: str
) -> None:
    assert set(CRASH_AT) == set(crash.RECEIVE_POINTS)  # after_send: test_idempotent_send_crash
    dossier = example("DossierDelivered")
    cases = [uuid.uuid4() for _ in range(CASES)]
    sent: list[tuple[str, str]] = []
    async with rig(tmp_path, "crashpoint") as r, httpx.AsyncClient(timeout=10) as client:

        async def send_all() -> None:  # round robin over the cases, while the recipient dies
            for n in range(CASES * PER_CASE):
                case = cases[n % CASES]
                message_id = await r.sender.send(
                    dossier.model_copy(update={"case_id": case}), [RECIPIENT]
                )
                sent.append((str(message_id), str(case)))
                await asyncio.sleep(0.02)  # the load's pacing: sends go on while it dies

        r.recipient.start(**FAST_REJOIN, **{crash.ENV_VAR: f"{point}:{CRASH_AT[point]}"})
        await r.recipient.wait_ready(client)
        sending = asyncio.create_task(send_all())
        code = await r.recipient.wait_exit(timeout_s=90)
        assert code == crash.EXIT_CODE, r.recipient.log()[-3000:]
        assert f"crash point {point} #{CRASH_AT[point]} reached" in r.recipient.log()
        r.recipient.start(**FAST_REJOIN)  # as its operators would: without the crash
        await r.recipient.wait_ready(client)
        await sending
        delivered = await wait_delivered(r, client, len(sent))
        ids = [message_id for message_id, _ in delivered]
        assert len(ids) == len(set(ids)), "duplicated at the back office"
        assert set(ids) == {message_id for message_id, _ in sent}, "lost"
        assert per_case(delivered) == per_case(sent), "out of order within a case"
        assert r.sender.store.counts()["receipted"] == len(sent)
        assert r.sender.store.receipted_records() == len(sent)  # one receipt per message, no more
        assert sum((await r.transport.end_offsets([dlq(RECIPIENT, r.prefix)])).values()) == 0
