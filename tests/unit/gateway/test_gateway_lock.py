"""One gateway process per party: a second `lvvx gateway run` on the same data folder would
fork the audit chain, so it refuses to start, names the process holding the folder and
exits 2 — and once that one stopped, the folder is free again."""

from __future__ import annotations

import stat
from pathlib import Path

import httpx
import pytest

from tests.gateway_processes import SENDER, GatewayRun, two_parties

REFUSAL_TIMEOUT_S = 30.0
"""The second process must give up within this (an interpreter start and the imports)."""


def test_a_second_lock_on_a_folder_is_refused_with_the_holders_pid(tmp_path: Path) -> None:
    from broker.gateway._lock import LOCK_FILE, AlreadyRunning, DataDirLock

    first = DataDirLock(tmp_path / "state")
    first.acquire()
    try:
        lock_file = tmp_path / "state" / LOCK_FILE
        assert stat.S_IMODE(lock_file.stat().st_mode) == 0o600
        assert lock_file.read_text().strip() == str(first.pid)
        with pytest.raises(AlreadyRunning, match=rf"pid {first.pid}\b") as refused:
            DataDirLock(tmp_path / "state").acquire()
        assert refused.value.reason == "ALREADY_RUNNING"
    finally:
        first.release()
    with DataDirLock(tmp_path / "state"):  # released: free again, the old file no matter
        pass


async def test_a_second_gateway_process_on_the_same_data_folder_refuses_to_start(
    tmp_path: Path,
) -> None:
    net = two_parties(tmp_path, kafka=None)
    first, second = GatewayRun(net, SENDER, name="first"), GatewayRun(net, SENDER, name="second")
    async with httpx.AsyncClient(timeout=5) as client:
        try:
            first.start()
            await first.wait_ready(client)
            second.start()
            code = await second.wait_exit(REFUSAL_TIMEOUT_S)
            assert code == 2, f"the second gateway did not refuse (exit {code}):\n{second.log()}"
            lines = [line for line in second.log().splitlines() if line.strip()]
            assert len(lines) == 1, lines
            assert "ALREADY_RUNNING" in lines[0] and f"pid {first.pid}" in lines[0], lines
            assert first.alive()
            assert (await client.get(f"{first.url}/readyz")).status_code == 200

            first.signal()
            assert await first.wait_exit(REFUSAL_TIMEOUT_S) == 0, first.log()[-3000:]
            third = GatewayRun(net, SENDER, name="third")  # the folder is free again
            third.start()
            try:
                await third.wait_ready(client)
                third.signal()
                assert await third.wait_exit(REFUSAL_TIMEOUT_S) == 0, third.log()[-3000:]
            finally:
                third.kill()
        finally:
            first.kill()
            second.kill()
