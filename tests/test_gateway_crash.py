"""Crash safety on real Kafka: a recipient gateway PROCESS is killed with SIGKILL in the
middle of a stream — or dies at an exact step of its receive path (`LVVX_CRASH_AT`, see
`broker.gateway._crashpoints`) — and is started again; every message reaches its back
office exactly once, in order per case, and every one is receipted to the sender."""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from broker.gateway import Gateway, GatewayStore, utc_now
from broker.gateway import _crashpoints as crash
from broker.topics import dlq, inbox
from broker.transport import TopicSpec
from broker.transport.kafka import KafkaOptions, KafkaTransport
from demo.examples import example
from demo.network import LocalNetwork, create_network, write_gateway_configs
from tests.conftest import KAFKA_BOOTSTRAP
from tests.crypto_net import CONTENT_KEY

pytestmark = pytest.mark.kafka

MESSAGES = 240
SENDER, RECIPIENT = "ind", "gemeente-utrecht"
START_TIMEOUT_S = 60.0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class GatewayProcess:
    """`lvvx gateway run` for one party, as its operators would start it."""

    def __init__(self, folder: Path, party: str, port: int) -> None:
        self.folder, self.party, self.port = folder, party, port
        self.token = (folder / "secrets" / f"{party}.token").read_text().strip()
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = folder / f"{party}.log"

    def start(self, **extra_env: str) -> None:
        env = {
            **{k: v for k, v in os.environ.items() if k != crash.ENV_VAR},
            "LVVX_KEY_PASSPHRASE_FILE": str(self.folder / "secrets" / "passphrase"),
            **extra_env,
        }
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "cli.main", "gateway", "run",
                 "--config", str(self.folder / "gateways" / f"{self.party}.toml")],
                env=env, stdout=out, stderr=subprocess.STDOUT,
            )  # fmt: skip

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    async def wait_exit(self, timeout_s: float) -> int:
        """The exit code of a process that ends by itself (a crash point)."""
        assert self.proc is not None
        deadline = time.monotonic() + timeout_s
        while (code := self.proc.poll()) is None:
            assert time.monotonic() < deadline, f"still running:\n{self.log.read_text()[-3000:]}"
            await asyncio.sleep(0.1)
        return code

    def stop(self) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            return self.proc.wait(timeout=30)
        return self.proc.returncode

    async def inbox_ids(self, client: httpx.AsyncClient) -> list[str]:
        return [message_id for message_id, _ in await self.inbox_items(client)]

    async def inbox_items(self, client: httpx.AsyncClient) -> list[tuple[str, str]]:
        """(message id, case id) of every message in the back office's inbox, in its order."""
        response = await client.get(
            f"http://127.0.0.1:{self.port}/v1/inbox", params={"limit": 500},
            headers={"Authorization": f"Bearer {self.token}"},
        )  # fmt: skip
        response.raise_for_status()
        return [(item["message_id"], item["case_id"]) for item in response.json()["items"]]

    async def wait_ready(self, client: httpx.AsyncClient) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            assert self.proc is not None and self.proc.poll() is None, self.log.read_text()[-3000:]
            try:
                if (await client.get(f"http://127.0.0.1:{self.port}/readyz")).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.2)
        raise AssertionError(f"gateway not ready:\n{self.log.read_text()[-3000:]}")


@dataclass
class Rig:
    """A sender gateway in this process (taking its receipts in) and the recipient's
    `lvvx gateway run`, on fresh topics of their own."""

    net: LocalNetwork
    prefix: str
    transport: KafkaTransport
    sender: Gateway
    recipient: GatewayProcess


@contextlib.asynccontextmanager
async def rig(tmp_path: Path, name: str) -> AsyncIterator[Rig]:
    """Yields a `Rig` whose recipient is not started yet; on the way out the recipient must
    stop cleanly on SIGTERM, and nothing may have been dead-lettered or failed there."""
    net = create_network(tmp_path, now=utc_now())
    prefix = f"lvv.{name}-{secrets.token_hex(4)}.v1"
    port = write_gateway_configs(
        net, kafka=KAFKA_BOOTSTRAP, prefix=prefix, first_port=_free_port()
    )[RECIPIENT]
    transport = KafkaTransport(KafkaOptions(bootstrap_servers=KAFKA_BOOTSTRAP))
    await transport.ensure_topics(
        [TopicSpec(t(p, prefix)) for p in (SENDER, RECIPIENT) for t in (inbox, dlq)]
    )
    sender = Gateway(keys=net.keys[SENDER], directory=net.directory, transport=transport,
                     store=GatewayStore(tmp_path / "sender.db", content_key=CONTENT_KEY), prefix=prefix)  # fmt: skip
    await sender.start()
    sender_loop = asyncio.create_task(sender.run())  # takes the receipts in
    recipient = GatewayProcess(tmp_path, RECIPIENT, port)
    try:
        yield Rig(net, prefix, transport, sender, recipient)
    finally:
        assert recipient.stop() == 0, recipient.log.read_text()[-3000:]  # SIGTERM: a clean stop
        sender.stop()
        await sender_loop
        await sender.close()
        await transport.close()
        sender.store.close()
    store = GatewayStore(tmp_path / "state" / RECIPIENT / "gateway.db", content_key=CONTENT_KEY)
    assert store.rejection_reasons() == []  # nothing dead-lettered, no PROCESSING_FAILED
    store.close()


async def wait_delivered(r: Rig, client: httpx.AsyncClient, count: int) -> list[tuple[str, str]]:
    """The recipient's inbox once ``count`` messages are in it and the sender has every
    receipt — or after two minutes, for the caller's assertions to show what is missing."""
    deadline = time.monotonic() + 120
    while True:
        delivered = await r.recipient.inbox_items(client)
        done = len(delivered) >= count and r.sender.store.counts()["awaiting_receipt"] == 0
        if done or time.monotonic() > deadline:
            return delivered
        await asyncio.sleep(0.5)


async def test_a_killed_recipient_delivers_every_message_exactly_once(tmp_path: Path) -> None:
    sent: list[uuid.UUID] = []
    kills = 0
    async with rig(tmp_path, "crash") as r, httpx.AsyncClient(timeout=10) as client:
        r.recipient.start()
        await r.recipient.wait_ready(client)
        dossier = example("DossierDelivered")
        for n in range(MESSAGES):
            message = dossier.model_copy(update={"case_id": uuid.uuid4()})
            sent.append(await r.sender.send(message, [RECIPIENT]))
            if n in (MESSAGES // 3, 2 * MESSAGES // 3):  # kill mid-stream, twice
                await asyncio.sleep(0.3)  # let it be in the middle of handling records
                r.recipient.kill()
                kills += 1
                r.recipient.start()
                await r.recipient.wait_ready(client)
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


def per_case(items: list[tuple[str, str]]) -> dict[str, list[str]]:
    """Message ids by case id, in the order of ``items``."""
    cases: dict[str, list[str]] = {}
    for message_id, case_id in items:
        cases.setdefault(case_id, []).append(message_id)
    return cases


IN_MAKE_TEST = ("after_audit", "after_visible")
"""The crash points `make test` runs (the chain recovery, the redelivery of a visible but
uncommitted record); `make test-faults` runs every one — each costs a restart and a rejoin."""


@pytest.mark.parametrize(
    "point",
    [p if p in IN_MAKE_TEST else pytest.param(p, marks=pytest.mark.faults) for p in crash.POINTS],
)
async def test_a_recipient_dying_at_a_crash_point_delivers_every_message_exactly_once(
    tmp_path: Path, point: str
) -> None:
    assert set(CRASH_AT) == set(crash.POINTS)
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
                await asyncio.sleep(0.02)

        r.recipient.start(**FAST_REJOIN, **{crash.ENV_VAR: f"{point}:{CRASH_AT[point]}"})
        await r.recipient.wait_ready(client)
        sending = asyncio.create_task(send_all())
        code = await r.recipient.wait_exit(timeout_s=90)
        assert code == crash.EXIT_CODE, r.recipient.log.read_text()[-3000:]
        assert f"crash point {point} #{CRASH_AT[point]} reached" in r.recipient.log.read_text()
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
