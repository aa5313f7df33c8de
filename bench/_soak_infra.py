"""What the soak runs on: a Kafka broker of its own (or none), a small LVV network in a
temporary folder, and one `lvvx gateway run` process per party."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx

from demo.casebook import DTV, IND, MUNICIPALITIES, NETWORK, NGOS, Party
from demo.network import LocalNetwork, create_network, write_gateway_configs

REPO = Path(__file__).resolve().parent.parent
KAFKA_SH = REPO / "deploy" / "kafka" / "kafka.sh"

KAFKA_PORT = 19492
KAFKA_CONTROLLER_PORT = 19493
"""Ports of the soak's own broker: clear of the development (9092) and test (19092-19095) ones."""

KAFKA_DATA_DIR = REPO / ".kafka" / "soak"

PARTIES: tuple[Party, ...] = (MUNICIPALITIES[0], NGOS[0], IND, DTV)
"""Amsterdam, its guiding NGO, IND and DT&V: every message of three of the casebook's paths
(onward migration, legalisation, exit) stays among them."""

NETWORKS: dict[str, tuple[Party, ...]] = {"demo": NETWORK, "four": PARTIES}
"""What a soak runs on: the demo's whole network (every party, every path), or the four."""

FIRST_HTTP_PORT = 18481
"""Where the search for free consecutive API ports starts (clear of the demo's 8081-8092)."""

READY_TIMEOUT_S = 90.0
"""A gateway process must serve /readyz within this: imports, key loading, topics, group join."""

STOP_TIMEOUT_S = 30.0
"""After SIGTERM a gateway finishes the record in hand and commits; then SIGKILL."""


class SoakSetupError(RuntimeError):
    """The soak could not get its broker or gateways running."""


# --- Kafka ---------------------------------------------------------------------------------


def _kafka_sh(command: str) -> subprocess.CompletedProcess[str]:
    env = os.environ | {
        "LVVX_KAFKA_PORT": str(KAFKA_PORT),
        "KAFKA_CONTROLLER_PORT": str(KAFKA_CONTROLLER_PORT),
        "KAFKA_DATA_DIR": str(KAFKA_DATA_DIR),
        "KAFKA_SECURITY": "plaintext",
    }
    return subprocess.run([str(KAFKA_SH), command], env=env, text=True, capture_output=True)


def _port_in_use(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


@contextlib.contextmanager
def own_kafka(say: Callable[[str], None] = print) -> Iterator[str]:
    """A fresh single plaintext broker on `KAFKA_PORT`, removed again on the way out (also
    after an error or Ctrl-C); yields its bootstrap address."""
    for step in ("fetch", "clean"):  # clean: a broker a crashed soak left behind is ours
        done = _kafka_sh(step)
        if done.returncode != 0:
            raise SoakSetupError(f"kafka.sh {step} failed:\n{done.stdout}{done.stderr}")
    for port in (KAFKA_PORT, KAFKA_CONTROLLER_PORT):
        if _port_in_use(port):
            raise SoakSetupError(f"port {port} is in use by something else; pass --bootstrap")
    say(f"starting a Kafka broker on 127.0.0.1:{KAFKA_PORT} (data {KAFKA_DATA_DIR})")
    try:
        up = _kafka_sh("up")
        if up.returncode != 0:
            raise SoakSetupError(f"kafka.sh up failed:\n{up.stdout}{up.stderr}")
        yield f"127.0.0.1:{KAFKA_PORT}"
    finally:
        cleaned = _kafka_sh("clean")
        if cleaned.returncode != 0:
            print(f"soak: kafka.sh clean failed:\n{cleaned.stderr}", file=sys.stderr)


# --- the network -----------------------------------------------------------------------------


def free_ports(count: int, start: int = FIRST_HTTP_PORT) -> int:
    """The first of ``count`` consecutive ports from ``start`` on that can be bound now (not
    merely without a listener: a client connection may hold a port too)."""
    for first in range(start, 65535 - count, count):
        try:
            with contextlib.ExitStack() as held:
                for port in range(first, first + count):
                    s = held.enter_context(socket.socket())
                    s.bind(("127.0.0.1", port))
            return first
        except OSError:
            continue
    raise SoakSetupError(f"no {count} free ports for the gateways' APIs from {start} on")


def make_network(
    folder: Path, *, kafka: str | None, prefix: str, parties: tuple[Party, ...] = PARTIES,
    tls: Path | None = None, ports_from: int = FIRST_HTTP_PORT,
) -> tuple[LocalNetwork, dict[str, int]]:  # fmt: skip
    """Keys, signed directory and a gateway configuration per party in ``folder``; each
    party's API port (the first free run from ``ports_from``). Without ``kafka`` the gateways
    share the embedded log ``log.db``; with ``tls`` (a PKI folder) they use mutual TLS."""
    net = create_network(folder, now=datetime.now(UTC), parties=parties)
    first = free_ports(len(parties), ports_from)
    ports = write_gateway_configs(net, kafka=kafka, prefix=prefix, first_port=first, tls=tls)
    return net, ports


# --- gateway processes -----------------------------------------------------------------------


@dataclass
class GatewayProcess:
    party: str
    port: int
    token: str
    process: subprocess.Popen[bytes]
    """The process started: the gateway, or the wrapper (strace) that runs it as its child."""
    log_file: Path
    gateway_pid: int | None = None
    """The gateway's own pid when ``process`` is a wrapper."""

    @property
    def pid(self) -> int:
        """The gateway process's pid (its /proc figures, its signals)."""
        return self.gateway_pid or self.process.pid

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def alive(self) -> bool:
        return self.process.poll() is None

    def log_tail(self, lines: int = 20) -> str:
        return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])


def _lvvx() -> str:
    """The `lvvx` of this interpreter's environment."""
    script = Path(sys.executable).with_name("lvvx")
    if not script.exists():
        raise SoakSetupError(f"no lvvx next to {sys.executable}; run `make install`")
    return str(script)


def _gateway_env(net: LocalNetwork) -> dict[str, str]:
    # the configuration file alone decides: no LVVX_GATEWAY_* of the caller's shell
    env = {k: v for k, v in os.environ.items() if not k.startswith("LVVX_")}
    env["LVVX_KEY_PASSPHRASE_FILE"] = str(net.folder / "secrets" / "passphrase")
    return env


def start_gateway(
    net: LocalNetwork, party: str, port: int, wrap: Sequence[str] = ()
) -> GatewayProcess:
    """`lvvx gateway run` of ``party``; with ``wrap`` (e.g. ``strace ... --``) that command
    runs it as its child."""
    config = net.folder / "gateways" / f"{party}.toml"
    log_file = net.folder / "logs" / f"{party}.log"
    log_file.parent.mkdir(exist_ok=True)
    with log_file.open("wb") as out:
        # own session: Ctrl-C reaches the soak, which then stops the gateways in order
        process = subprocess.Popen(
            [*wrap, _lvvx(), "gateway", "run", "--config", str(config)], cwd=net.folder,
            env=_gateway_env(net), stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    gateway = GatewayProcess(party, port, net.tokens[party], process, log_file)
    if wrap:
        gateway.gateway_pid = _child_of(process, wrap[0], config)
    return gateway


def _child_of(
    process: subprocess.Popen[bytes], wrapper: str, config: Path, timeout_s: float = 10.0
) -> int:
    """The pid of the gateway that ``process`` runs as its child: the child that names
    ``config`` once it has exec'd (strace forks short-lived probes of its own first, and a
    fork has its parent's command line until it execs)."""
    deadline = time.monotonic() + timeout_s
    first, wanted = wrapper.encode(), str(config).encode()
    while time.monotonic() < deadline and process.poll() is None:
        for stat in Path("/proc").glob("[0-9]*/stat"):
            with contextlib.suppress(OSError, IndexError, ValueError):
                ppid = int(stat.read_text().rsplit(")", 1)[1].split()[1])
                args = (stat.parent / "cmdline").read_bytes().split(b"\0")
                if ppid == process.pid and args[0] != first and wanted in args:
                    return int(stat.parent.name)
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)  # the wrapper and whatever it started
    process.wait()
    raise SoakSetupError(f"{wrapper} started no gateway process")


def wait_ready(gateways: list[GatewayProcess], timeout_s: float = READY_TIMEOUT_S) -> None:
    """Until every gateway answers /readyz with 200; raises if one dies or is too slow."""
    deadline = time.monotonic() + timeout_s
    waiting = list(gateways)
    with httpx.Client(timeout=2.0) as client:
        while waiting:
            for gw in list(waiting):
                if not gw.alive:
                    raise SoakSetupError(f"gateway {gw.party} exited:\n{gw.log_tail()}")
                with contextlib.suppress(httpx.HTTPError):
                    if client.get(f"{gw.base_url}/readyz").status_code == 200:
                        waiting.remove(gw)
            if waiting and time.monotonic() > deadline:
                names = ", ".join(gw.party for gw in waiting)
                raise SoakSetupError(f"not ready after {timeout_s:.0f} s: {names}")
            time.sleep(0.2)


def stop_gateways(gateways: list[GatewayProcess]) -> dict[str, int | None]:
    """SIGTERM every gateway still running, SIGKILL after `STOP_TIMEOUT_S`; each one's exit
    status (negative: killed by that signal)."""
    for gw in gateways:
        if gw.alive:  # the gateway itself: a wrapper ends when its child has
            with contextlib.suppress(ProcessLookupError):
                os.kill(gw.pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT_S
    for gw in gateways:
        try:
            gw.process.wait(timeout=max(deadline - time.monotonic(), 0.1))
        except subprocess.TimeoutExpired:
            # its own process group (start_new_session): the gateway and any wrapper
            with contextlib.suppress(ProcessLookupError):
                os.killpg(gw.process.pid, signal.SIGKILL)
            gw.process.wait()
    return {gw.party: gw.process.returncode for gw in gateways}


@contextlib.contextmanager
def running_gateways(
    net: LocalNetwork, ports: dict[str, int], wraps: Mapping[str, Sequence[str]] | None = None
) -> Iterator[list[GatewayProcess]]:
    """One `lvvx gateway run` process per party, ready; all stopped on the way out. A party
    in ``wraps`` runs under that command (`start_gateway`)."""
    gateways: list[GatewayProcess] = []
    try:
        for party, port in ports.items():
            gateways.append(start_gateway(net, party, port, (wraps or {}).get(party, ())))
        wait_ready(gateways)
        yield gateways
    finally:
        stop_gateways(gateways)
