"""`lvvx gateway run` processes for the tests of the service edge (the data-folder lock, the
stop, an outage, a crash): a two-party network in a folder, a handle per process to start
it, ask it over HTTP, signal it and see how it ended, and `rig`: a sender gateway in the
test's process with the recipient's `lvvx gateway run`, on real Kafka."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from broker.gateway import Gateway, GatewayStore, utc_now
from broker.gateway import crashpoints as crash
from broker.topics import dlq, inbox
from broker.transport import TopicSpec
from broker.transport.kafka import KafkaOptions, KafkaTransport
from demo.casebook import IND, MUNICIPALITIES
from demo.examples import example
from demo.network import LocalNetwork, create_network, write_gateway_configs
from tests.conftest import KAFKA_BOOTSTRAP
from tests.crypto_net import CONTENT_KEY
from tests.live_gateways import caught_up
from tests.support import eventually

SENDER, RECIPIENT = IND.party_id, MUNICIPALITIES[0].party_id
"""IND sends a dossier to a municipality: a send the policy allows."""

READY_TIMEOUT_S = 60.0
"""A gateway process serves /readyz within this: imports, key loading, topics, group join."""

STOP_TIMEOUT_S = 30.0
"""A gateway process ends within this after SIGTERM (a busy machine: it takes seconds)."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def two_parties(folder: Path, *, kafka: str | None, prefix: str | None = None) -> LocalNetwork:
    """Keys, directory and a configuration per party (`SENDER`, `RECIPIENT`) in ``folder``."""
    net = create_network(folder, now=utc_now(), parties=(IND, MUNICIPALITIES[0]))
    prefix = prefix or f"lvv.t-{uuid.uuid4().hex[:8]}.v1"
    # the configured ports are replaced by free ones when each process starts
    write_gateway_configs(net, kafka=kafka, prefix=prefix, first_port=free_port())
    return net


def topic_prefix(net: LocalNetwork) -> str:
    """The topic prefix `two_parties` wrote into the gateways' configurations."""
    config = (net.folder / "gateways" / f"{SENDER}.toml").read_text()
    return config.split('topic_prefix = "', 1)[1].split('"', 1)[0]


def dossier_body(case_id: uuid.UUID | None = None) -> dict[str, Any]:
    """A POST /v1/messages body: `SENDER`'s dossier to `RECIPIENT`."""
    message = example("DossierDelivered").model_copy(update={"case_id": case_id or uuid.uuid4()})
    return {"type": "DossierDelivered", "recipients": [RECIPIENT],
            "message": json.loads(message.model_dump_json())}  # fmt: skip


class GatewayRun:
    """One `lvvx gateway run` of ``party`` in ``net``: stdout and stderr each in a file."""

    def __init__(self, net: LocalNetwork, party: str, *, name: str | None = None) -> None:
        self.net, self.party = net, party
        self.name = name or party
        self.port = free_port()
        self.token = net.tokens[party]
        self.proc: subprocess.Popen[bytes] | None = None
        self.stdout = net.folder / f"{self.name}.out"
        self.stderr = net.folder / f"{self.name}.err"

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def start(self, **env: str) -> None:
        """Start the process: ``env`` and the test's environment, but none of its gateway
        settings or crash point (a restart after a crash point starts without it)."""
        inherited = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith("LVVX_GATEWAY_") and k != crash.ENV_VAR
        }
        environment = {
            **inherited,
            "LVVX_KEY_PASSPHRASE_FILE": str(self.net.folder / "secrets" / "passphrase"),
            "LVVX_GATEWAY_HTTP_PORT": str(self.port),
            **env,
        }
        config = self.net.folder / "gateways" / f"{self.party}.toml"
        with self.stdout.open("ab") as out, self.stderr.open("ab") as err:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "cli.main", "gateway", "run", "--config", str(config)],
                env=environment, stdout=out, stderr=err, cwd=self.net.folder,
            )  # fmt: skip

    def log(self) -> str:
        return self.stderr.read_text(errors="replace") if self.stderr.exists() else ""

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    async def wait_ready(self, client: httpx.AsyncClient) -> None:
        async def ready() -> bool:
            assert self.alive(), f"{self.name} exited:\n{self.log()[-3000:]}"
            with contextlib.suppress(httpx.HTTPError):
                return (await client.get(f"{self.url}/readyz")).status_code == 200
            return False

        await eventually(ready, lambda: f"{self.name} to be ready:\n{self.log()[-3000:]}",
                         timeout_s=READY_TIMEOUT_S, every_s=0.2)  # fmt: skip

    async def wait_exit(self, timeout_s: float) -> int | None:
        """The exit code, or None if the process still runs after ``timeout_s``."""
        assert self.proc is not None
        try:
            return await asyncio.to_thread(self.proc.wait, timeout_s)
        except subprocess.TimeoutExpired:
            return None

    async def stop(self, timeout_s: float = STOP_TIMEOUT_S) -> int | None:
        """SIGTERM, and the exit code (None: still running after ``timeout_s``)."""
        self.signal()
        return await self.wait_exit(timeout_s)

    def signal(self, sig: signal.Signals = signal.SIGTERM) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    def kill(self) -> None:
        """SIGKILL if still running (a test's last resort, so no process outlives it)."""
        if self.alive():
            assert self.proc is not None
            self.proc.kill()
            self.proc.wait(timeout=10)

    async def send(self, client: httpx.AsyncClient, body: dict[str, Any]) -> httpx.Response:
        return await client.post(f"{self.url}/v1/messages", json=body, headers=self.headers)

    async def inbox_ids(self, client: httpx.AsyncClient) -> list[str]:
        return [message_id for message_id, _ in await self.inbox_items(client)]

    async def inbox_items(self, client: httpx.AsyncClient) -> list[tuple[str, str]]:
        """(message id, case id) of every message in the back office's inbox, in its order."""
        response = await client.get(
            f"{self.url}/v1/inbox", params={"limit": 500}, headers=self.headers
        )
        response.raise_for_status()
        return [(item["message_id"], item["case_id"]) for item in response.json()["items"]]


async def delivered_once(
    recipient: GatewayRun, client: httpx.AsyncClient, wanted: set[str], *, kafka: str,
    timeout_s: float = 60.0,
) -> list[str]:  # fmt: skip
    """The recipient's inbox (ids) once it holds ``wanted`` and the recipient's gateway has
    committed past every record of its inbox topic (on the Kafka at ``kafka``): nothing is
    left there that could still be delivered — a second time, or one that was refused."""
    prefix = topic_prefix(recipient.net)
    log = KafkaTransport(KafkaOptions(bootstrap_servers=kafka))
    seen: list[str] = []

    async def settled() -> bool:
        seen[:] = await recipient.inbox_ids(client)
        return wanted <= set(seen) and await caught_up(log, recipient.party, prefix)

    try:
        await eventually(settled, lambda: f"{sorted(wanted)} delivered and every record handled; "
                         f"the inbox has {seen}", timeout_s=timeout_s, every_s=0.2)  # fmt: skip
    finally:
        await log.close()
    return await recipient.inbox_ids(client)


@dataclass
class Rig:
    """A sender gateway in this process (taking its receipts in) and the recipient's
    `lvvx gateway run`, on fresh topics of their own."""

    net: LocalNetwork
    prefix: str
    transport: KafkaTransport
    sender: Gateway
    recipient: GatewayRun


@contextlib.asynccontextmanager
async def rig(folder: Path, name: str) -> AsyncIterator[Rig]:
    """Yields a `Rig` on the Kafka at ``LVVX_KAFKA_BOOTSTRAP`` whose recipient is not started
    yet; on the way out the recipient must stop cleanly on SIGTERM, and nothing may have been
    dead-lettered or failed there."""
    prefix = f"lvv.{name}-{uuid.uuid4().hex[:8]}.v1"
    net = two_parties(folder, kafka=KAFKA_BOOTSTRAP, prefix=prefix)
    transport = KafkaTransport(KafkaOptions(bootstrap_servers=KAFKA_BOOTSTRAP))
    await transport.ensure_topics(
        [TopicSpec(t(p, prefix)) for p in (SENDER, RECIPIENT) for t in (inbox, dlq)]
    )
    sender = Gateway(keys=net.keys[SENDER], directory=net.directory, transport=transport,
                     store=GatewayStore(folder / "sender.db", content_key=CONTENT_KEY), prefix=prefix)  # fmt: skip
    await sender.start()
    sender_loop = asyncio.create_task(sender.run())  # takes the receipts in
    recipient = GatewayRun(net, RECIPIENT)
    try:
        yield Rig(net, prefix, transport, sender, recipient)
    finally:
        try:
            stopped = await recipient.stop()  # SIGTERM: a clean stop
        finally:
            recipient.kill()
            sender.stop()
            await sender_loop
            await sender.close()
            await transport.close()
            sender.store.close()
    assert stopped == 0, recipient.log()[-3000:]
    store = GatewayStore(net.state_dir(RECIPIENT) / "gateway.db", content_key=CONTENT_KEY)
    assert store.rejection_reasons() == []  # nothing dead-lettered, no PROCESSING_FAILED
    store.close()
