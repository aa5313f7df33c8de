"""`lvvx adapter run` processes for the tests: a configuration per party next to its
gateway's (`tests.gateway_processes`), a handle to start one, read its status file, stop it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

from demo.network import DEMO_NETWORK, LocalNetwork
from tests.gateway_processes import GatewayRun

POLL_WAIT_S = 2.0
"""The adapters' long-poll in the tests: short, so a stop is never held up by one."""


class AdapterRun:
    """One `lvvx adapter run` of ``gateway``'s party, on that gateway's API."""

    def __init__(self, gateway: GatewayRun, *, system: list[dict[str, Any]] | None = None,
                 auto_deliver: bool = False) -> None:  # fmt: skip
        net: LocalNetwork = gateway.net
        self.party = gateway.party
        self.folder = net.folder / "adapters"
        self.folder.mkdir(exist_ok=True)
        self.status_file = self.folder / f"{self.party}.status.json"
        self.stderr = self.folder / f"{self.party}.err"
        lines = [
            f'party = "{self.party}"', f'token_file = "../secrets/{self.party}.token"',
            'directory_file = "../directory.bin"', 'anchor_file = "../keys/anchor.public.json"',
            f'network = "{DEMO_NETWORK}"', f'status_file = "{self.status_file.name}"',
            f"poll_wait_s = {POLL_WAIT_S}", f"auto_deliver = {str(auto_deliver).lower()}",
        ]  # fmt: skip
        if system is not None:
            (self.folder / f"{self.party}.system.json").write_text(json.dumps(system))
            lines.append(f'system_file = "{self.party}.system.json"')
        self.config = self.folder / f"{self.party}.toml"
        self.config.write_text("\n".join(lines) + "\n")
        self.gateway_url = gateway.url
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        """The gateway's URL on the command line, the rest from the file."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("LVVX_ADAPTER_")}
        with self.stderr.open("ab") as err:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "cli.main", "adapter", "run", "--config", str(self.config),
                 "--gateway", self.gateway_url],
                env=env, stdout=subprocess.DEVNULL, stderr=err,
            )  # fmt: skip

    def log(self) -> str:
        return self.stderr.read_text(errors="replace") if self.stderr.exists() else ""

    def status(self) -> dict[str, Any] | None:
        if not self.status_file.exists():
            return None
        return dict(json.loads(self.status_file.read_text()))

    def stop(self, timeout_s: float) -> int | None:
        """SIGTERM, and the exit code (None: still running after ``timeout_s``)."""
        assert self.proc is not None
        self.proc.terminate()
        try:
            return self.proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            return None

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
