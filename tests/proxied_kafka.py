"""A broker that clients reach only through a TCP proxy (`tests.faults.proxy`), for tests
that cut the network (the network cut, the stop, the outage): started once per test session
(`proxied_kafka` in conftest, and `proxy`, the proxy itself, per test), or the one already
listening on `PORT` is used (and left running).

Why a broker of its own. A Kafka client uses its bootstrap address only for the first
Metadata request; after that it connects to the address the broker *advertises*
(``advertised.listeners``). In front of an ordinary broker a proxy would be bypassed at once:
the clients would go straight to the broker's own port, and cutting the proxy would cut
nothing. So this broker (`deploy/kafka/kafka.sh` with ``KAFKA_LISTENERS`` and
``KAFKA_ADVERTISED_LISTENERS``) has two client listeners:

- ``PLAINTEXT`` on `PORT`, advertised as itself (`DIRECT`): for kafka.sh's readiness probe
  (which must not need the proxy) and for a test's own checks around the cut;
- ``PROXIED`` on `BEHIND_PORT`, advertised as 127.0.0.1:`PROXY_PORT` (`PROXIED`), where a
  test's proxy listens and forwards to `BEHIND_PORT`.

Kafka answers Metadata with the addresses of the listener the request came in on, so a client
bootstrapped at the proxy keeps talking through the proxy — to the group coordinator and the
transaction coordinator too — and only through it. The ports and the data folder can be set
with the ``LVVX_KAFKA_PROXIED_*`` variables below.
"""

from __future__ import annotations

import os
import socket
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PORT = int(os.environ.get("LVVX_KAFKA_PROXIED_PORT", "19794"))
CONTROLLER_PORT = int(os.environ.get("LVVX_KAFKA_PROXIED_CONTROLLER_PORT", "19795"))
BEHIND_PORT = int(os.environ.get("LVVX_KAFKA_PROXIED_BEHIND_PORT", "19796"))
PROXY_PORT = int(os.environ.get("LVVX_KAFKA_PROXIED_PROXY_PORT", "19797"))
DATA_DIR = Path(os.environ.get("LVVX_KAFKA_PROXIED_DIR", REPO / ".kafka" / "proxied"))

DIRECT = f"127.0.0.1:{PORT}"
"""The bootstrap address that bypasses the proxy."""
PROXIED = f"127.0.0.1:{PROXY_PORT}"
"""The bootstrap address through the proxy (a test's `TcpProxy` on `PROXY_PORT`)."""


def listening(port: int = PORT) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def kafka_sh(command: str) -> str | None:
    """Run deploy/kafka/kafka.sh ``command`` for this broker; None, or why it failed."""
    env = {
        **os.environ,
        "LVVX_KAFKA_PORT": str(PORT),
        "KAFKA_CONTROLLER_PORT": str(CONTROLLER_PORT),
        "KAFKA_DATA_DIR": str(DATA_DIR),
        "KAFKA_HEAP_OPTS": "-Xms128m -Xmx512m",
        "KAFKA_START_TIMEOUT": "300",
        "KAFKA_LISTENERS": f"PLAINTEXT://127.0.0.1:{PORT},PROXIED://127.0.0.1:{BEHIND_PORT},"
        f"CONTROLLER://127.0.0.1:{CONTROLLER_PORT}",
        "KAFKA_ADVERTISED_LISTENERS": f"PLAINTEXT://127.0.0.1:{PORT},PROXIED://127.0.0.1:{PROXY_PORT}",
        "KAFKA_PROTOCOL_MAP": "PLAINTEXT:PLAINTEXT,PROXIED:PLAINTEXT,CONTROLLER:PLAINTEXT",
    }
    done = subprocess.run([str(REPO / "deploy" / "kafka" / "kafka.sh"), command], env=env,
                          capture_output=True, text=True, timeout=400, check=False)  # fmt: skip
    return (
        None
        if done.returncode == 0
        else f"kafka.sh {command} failed:\n{done.stdout}\n{done.stderr}"
    )
