"""The arithmetic of `make bench-gateway` (bench/gateway/): what strace logs count as an
fsync, and what a phase's window counts — on made-up readings, nothing timed."""

from __future__ import annotations

from pathlib import Path

from bench.gateway._figures import phase_figures, saturation
from bench.gateway._ledger import Ledger, Sent
from bench.gateway._phase import Load, PhaseRun, Reading, Snapshot
from bench.gateway._syscalls import Io, call_times, count_between


def test_an_fsync_is_counted_once_also_when_another_thread_cuts_it_in_two(tmp_path: Path) -> None:
    log = tmp_path / "gw.strace"
    log.write_text(
        "101  1000.100000 fdatasync(7)    = 0\n"
        "102  1000.200000 fsync(9 <unfinished ...>\n"
        "101  1000.250000 fdatasync(7)    = 0\n"
        "102  1000.300000 <... fsync resumed>) = 0\n"
        "103  1000.400000 +++ exited with 0 +++\n"
    )
    times = call_times(log)
    assert times == [1000.1, 1000.2, 1000.25]
    assert count_between(times, 1000.15, 1000.25) == 1  # the window's end is not in it


def _snapshot(perf: float, cpu: dict[str, float], fsync_wall: float) -> Snapshot:
    readings = {p: Reading(c, Io(write_calls=int(c * 100), storage_bytes=int(c * 4096)))
                for p, c in cpu.items()}  # fmt: skip
    return Snapshot(perf=perf, wall=fsync_wall, driver_cpu_s=perf / 10, gateways=readings)


def test_a_window_counts_its_own_messages_and_divides_each_process_by_them() -> None:
    ledger = Ledger(("gm",))
    # due every 0.1 s from 10.0 on; each answered 0.05 s later, seen 0.2 s after it was due
    for i in range(20):
        due = 10.0 + i / 10
        ledger.sent.append(Sent(0, due, due + 0.05, f"m{i}"))
        ledger.seen[f"m{i}"] = {"gm": due + 0.2}
        ledger.seen_at["gm"].append(due + 0.2)
        ledger.acked_at["gm"].append(due + 0.25)
    start = _snapshot(10.0, {"ind": 1.0, "gm": 2.0}, fsync_wall=500.0)
    end = _snapshot(12.0, {"ind": 1.1, "gm": 2.05}, fsync_wall=502.0)
    run = PhaseRun(0, Load("10/s", 10.0), 2.0, start, end, not_offered=0, drain_s=0.3,
                   drained=True, load_avg=1.0)  # fmt: skip
    fsyncs = {"ind": [500.5, 501.0, 503.0], "gm": [499.0, 501.5]}
    f = phase_figures(run, ledger, "ind", fsyncs)
    assert f["sent_per_s"] == 10.0  # 20 answered in [10, 12)
    assert f["delivered_per_s"] == 9.0  # seen from 10.2 on: 18 in the window
    assert f["api_latency_ms"]["p50"] == 50.0
    assert f["e2e_latency_ms"]["p99"] == 200.0
    assert f["gateways"]["ind"]["cpu_us_per_msg"] == 5000  # 0.1 s over 20 messages
    assert f["gateways"]["gm"]["cpu_us_per_msg"] == 2778  # 0.05 s over 18
    assert f["gateways"]["ind"]["fsyncs_per_msg"] == 0.1  # 2 of 3 calls in [500, 502)
    assert f["kept_up"] is False  # 9 acked/s of 10 offered: under 95 %
    assert saturation([f])["falls_behind_at_per_s"] == 10.0
