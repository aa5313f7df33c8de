"""`lvvx demo --over-http` on the embedded log: the back offices read, handle and
acknowledge through their gateways' HTTP APIs, the case book sends through them, and the
run holds what the in-process demo holds (tests/kafka/test_demo_kafka.py)."""

from __future__ import annotations

from pathlib import Path

from broker.transport import open_transport
from demo.run import run_demo


async def test_the_demo_over_http_delivers_and_receipts_everything_once(tmp_path: Path) -> None:
    transport = open_transport(None, tmp_path)
    try:
        result = await run_demo(transport, tmp_path, cases=6, over_http=True)
    finally:
        await transport.close()
    assert result.sent > 0
    assert result.delivered == result.receipted == result.sent
    assert (result.lost, result.duplicates, result.stuck_cases, result.adapter_errors) == (
        0,
        0,
        0,
        0,
    )
    assert result.wrong_outcomes == []
    assert sum(result.outcomes.values()) == 6
    assert result.hostile_refused and len(result.hostile) == 4
    assert result.supervision["made_known"] == 6  # DT&V's adapter took every intake over HTTP
    assert result.ok
