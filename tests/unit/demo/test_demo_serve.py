"""`lvvx demo --serve --port-base N` (issue 17 §2): the network served on the ports from N
— gateways on N+1…, the verifier's metrics on N+28 — with a table of which port is which
party printed at the start; it answers there, and SIGINT stops it within a few seconds."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx

from demo.casebook import NETWORK
from demo.serve import VERIFIER_OFFSET, port_table, ports_from

ROOT = Path(__file__).resolve().parents[3]
PORT_BASE = 18150
"""Within the block of ports this repository's tests may serve on (18100-18199)."""
START_WITHIN_S = 180.0
STOP_WITHIN_S = 10.0
ROW = re.compile(r"│\s*(\d+)\s*│\s*(\S+) \((gateway|audit verifier)")


def test_the_port_table_names_every_party_and_the_verifier() -> None:
    first, verifier = ports_from(PORT_BASE)
    assert (first, verifier) == (PORT_BASE + 1, PORT_BASE + VERIFIER_OFFSET)
    assert ports_from(None) == (8081, 9108)  # where deploy/prometheus/ scrapes
    ports = {p.party_id: first + n for n, p in enumerate(NETWORK)}
    rows = port_table(ports, verifier)
    assert rows[-1] == (str(verifier), "dtv (audit verifier: /metrics)")
    assert [r[0] for r in rows[:-1]] == [str(PORT_BASE + 1 + n) for n in range(len(NETWORK))]


def test_serve_on_a_port_base_prints_its_ports_answers_and_stops_on_sigint(tmp_path: Path) -> None:
    child = subprocess.Popen(
        [sys.executable, "-m", "cli.main", "demo", "--serve", "--cases", "1", "--no-hostile",
         "--port-base", str(PORT_BASE), "--data", str(tmp_path / "net")],
        cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "200"},
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    lines: list[str] = []
    ready = threading.Event()

    def read() -> None:
        assert child.stdout is not None
        for line in child.stdout:
            lines.append(line)
            if "Ctrl-C stops" in line:
                ready.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        assert ready.wait(START_WITHIN_S), "".join(lines)[-3000:]
        ports = [int(m.group(1)) for line in lines if (m := ROW.search(line))]
        assert ports == [PORT_BASE + 1 + n for n in range(len(NETWORK))] + [PORT_BASE + 28]
        parties = [m.group(2) for line in lines if (m := ROW.search(line))]
        assert sorted(parties[:-1]) == sorted(p.party_id for p in NETWORK)
        amsterdam = ports[parties.index("gemeente-amsterdam")]
        token = (tmp_path / "net" / "secrets" / "gemeente-amsterdam.token").read_text().strip()
        base = f"http://127.0.0.1:{amsterdam}"
        assert httpx.get(f"{base}/healthz", timeout=10).status_code == 200
        inbox = httpx.get(f"{base}/v1/inbox", params={"wait": 0},
                          headers={"Authorization": f"Bearer {token}"}, timeout=10)  # fmt: skip
        assert inbox.status_code == 200, inbox.text
        metrics = httpx.get(f"http://127.0.0.1:{PORT_BASE + 28}/metrics", timeout=10)
        assert metrics.status_code == 200 and "lvv_" in metrics.text
    finally:
        child.send_signal(signal.SIGINT)
        stopped = time.monotonic()
        try:
            code = child.wait(STOP_WITHIN_S)
        except subprocess.TimeoutExpired:
            child.kill()
            raise
    assert time.monotonic() - stopped < STOP_WITHIN_S
    assert code == 0, "".join(lines)[-3000:]
    reader.join(5)
    assert any("stopped after" in line for line in lines)
