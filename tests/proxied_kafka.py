"""A broker that clients reach only through a TCP proxy (`tests.faults.proxy`), for tests
that cut the network: started once per test session (`proxied_kafka` in conftest), or the
one already listening on `PORT` is used (and left running).

Why two listeners: a Kafka client uses its bootstrap address only for the first Metadata
request and then the address the broker *advertises*; in front of an ordinary broker the
proxy would be bypassed. So the broker has ``PLAINTEXT`` on `PORT` (advertised as itself:
kafka.sh's readiness probe, a test's own checks) and ``PROXIED`` on `BEHIND_PORT`,
advertised as 127.0.0.1:`PROXY_PORT`, where a test's proxy listens and forwards to
`BEHIND_PORT` (tests/test_network_cut.py tells the same in full). The ports and folder are
those of test_network_cut.py and can be set with the same ``LVVX_KAFKA_PROXIED_*``
variables, so both use one broker.
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
