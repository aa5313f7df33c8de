"""`lvvx gateway run` processes for the tests of the service edge (the data-folder lock, the
stop, an outage): a two-party network in a folder, and a handle per process to start it,
ask it over HTTP, signal it and see how it ended."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import httpx

from broker.gateway import utc_now
from demo.casebook import IND, MUNICIPALITIES
from demo.examples import example
from demo.network import LocalNetwork, create_network, write_gateway_configs

SENDER, RECIPIENT = IND.party_id, MUNICIPALITIES[0].party_id
"""IND sends a dossier to a municipality: a send the policy allows."""

READY_TIMEOUT_S = 60.0
"""A gateway process serves /readyz within this: imports, key loading, topics, group join."""


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
        environment = {
            **{k: v for k, v in os.environ.items() if not k.startswith("LVVX_GATEWAY_")},
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
        deadline = time.monotonic() + READY_TIMEOUT_S
        while time.monotonic() < deadline:
            assert self.alive(), f"{self.name} exited:\n{self.log()[-3000:]}"
            try:
                if (await client.get(f"{self.url}/readyz")).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.2)
        raise AssertionError(f"{self.name} not ready:\n{self.log()[-3000:]}")

    async def wait_exit(self, timeout_s: float) -> int | None:
        """The exit code, or None if the process still runs after ``timeout_s``."""
        assert self.proc is not None
        deadline = time.monotonic() + timeout_s
        while (code := self.proc.poll()) is None and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        return code

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
        response = await client.get(
            f"{self.url}/v1/inbox", params={"limit": 500}, headers=self.headers
        )
        response.raise_for_status()
        return [item["message_id"] for item in response.json()["items"]]
