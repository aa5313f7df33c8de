"""A phase's figures from its readings and the ledger, as plain dicts for the results.

Counts are of the measured window: messages whose POST was answered in it (the sender's
messages), copies first seen in an inbox in it (each receiver's), acknowledgements made
in it. Latencies are of the messages due in the window, wherever they ended up — also
those that only arrived during the drain, so a backlog shows. Per-message costs divide a
process's counters over the window by its own messages.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Sequence
from typing import Any

from bench._soak_traffic import percentiles_ms
from bench.gateway._ledger import Ledger, Sent
from bench.gateway._phase import PhaseRun, Reading
from bench.gateway._syscalls import count_between

Doc = dict[str, Any]

KEPT_UP_SHARE = 0.95
"""An offered rate is kept up with when at least this share of it is acknowledged..."""

GROWTH_FACTOR, GROWTH_MIN_MS = 2.0, 250.0
"""...and end-to-end latency does not grow: the median of the window's last quarter is not
both twice that of its first quarter and this much above it."""


def _in(times: Sequence[float], start: float, end: float) -> int:
    return sum(start <= t < end for t in times)


def _per(value: float | None, messages: int, scale: float = 1.0, digits: int = 1) -> float | None:
    return None if value is None or messages == 0 else round(value * scale / messages, digits)


def _process(start: Reading, end: Reading, messages: int, fsyncs: int | None) -> Doc:
    cpu = None if start.cpu_s is None or end.cpu_s is None else end.cpu_s - start.cpu_s
    io = start.io and end.io and (end.io.write_calls - start.io.write_calls,
                                   end.io.storage_bytes - start.io.storage_bytes)  # fmt: skip
    return {
        "messages": messages,
        "cpu_us_per_msg": _per(cpu, messages, 1e6, 0),
        "fsyncs": fsyncs,
        "fsyncs_per_msg": _per(fsyncs, messages, digits=2),
        "write_calls_per_msg": _per(io[0], messages, digits=2) if io else None,
        "storage_bytes_per_msg": _per(io[1], messages, digits=0) if io else None,
    }


def _e2e(ledger: Ledger, sends: Sequence[Sent]) -> list[float]:
    out = []
    for s in sends:
        copies = ledger.seen.get(s.message_id, {})
        out += [copies[p] - s.due for p in ledger.recipients if p in copies]
    return out


def _growth(ledger: Ledger, sends: Sequence[Sent]) -> tuple[float | None, float | None]:
    """Median end-to-end ms of the first and the last quarter of ``sends`` (by due time)."""
    quarter = len(sends) // 4
    if quarter == 0:
        return None, None
    first = percentiles_ms(_e2e(ledger, sends[:quarter])).get("p50")
    last = percentiles_ms(_e2e(ledger, sends[-quarter:])).get("p50")
    return first, last


def _kept_up(
    run: PhaseRun, acked_per_s: float, growth: tuple[float | None, float | None]
) -> bool | None:
    if run.load.rate is None:
        return None
    first, last = growth
    growing = (
        first is not None
        and last is not None
        and (last > GROWTH_FACTOR * first and last - first > GROWTH_MIN_MS)
    )
    return acked_per_s >= KEPT_UP_SHARE * run.load.rate and run.not_offered == 0 and not growing


def phase_figures(
    run: PhaseRun, ledger: Ledger, sender: str, fsync_times: dict[str, list[float]] | None
) -> Doc:
    """``fsync_times``: each gateway's traced calls (strace), None when not measured."""
    w0, w1 = run.start.perf, run.end.perf
    seconds = w1 - w0
    recipients = ledger.recipients
    answered = sorted(s.answered for s in ledger.sent)
    sent = bisect_left(answered, w1) - bisect_left(answered, w0)
    sends = sorted((s for s in ledger.sent if s.phase == run.index and w0 <= s.due < w1),
                   key=lambda s: s.due)  # fmt: skip
    seen = {p: _in(ledger.seen_at[p], w0, w1) for p in recipients}
    acked = {p: _in(ledger.acked_at[p], w0, w1) for p in recipients}
    e2e = _e2e(ledger, sends)
    growth = _growth(ledger, sends)
    acked_per_s = sum(acked.values()) / len(recipients) / seconds
    messages = {sender: sent, **seen}

    def fsyncs(party: str) -> int | None:
        if fsync_times is None:
            return None
        return count_between(fsync_times[party], run.start.wall, run.end.wall)

    driver_cpu = run.end.driver_cpu_s - run.start.driver_cpu_s
    return {
        "load": run.load.name,
        "offered_per_s": run.load.rate,
        "seconds": round(seconds, 2),
        "sent_per_s": round(sent / seconds, 1),
        "delivered_per_s": round(sum(seen.values()) / len(recipients) / seconds, 1),
        "acked_per_s": round(acked_per_s, 1),
        "not_offered": run.not_offered,
        "api_latency_ms": percentiles_ms([s.answered - s.due for s in sends]),
        "e2e_latency_ms": percentiles_ms(e2e),
        "e2e_p50_first_last_quarter_ms": list(growth),
        "copies_missing": len(sends) * len(recipients) - len(e2e),
        "kept_up": _kept_up(run, acked_per_s, growth),
        "drain_s": round(run.drain_s, 2),
        "drained": run.drained,
        "errors": dict(ledger.errors.get(run.index, {})),
        "load_avg": round(run.load_avg, 2),
        "driver_cpu_us_per_msg": _per(driver_cpu, sent, 1e6, 0),
        "gateways": {
            party: _process(run.start.gateways[party], run.end.gateways[party], n, fsyncs(party))
            for party, n in messages.items()
        },
    }


def saturation(phases: Sequence[Doc]) -> Doc:
    """Where a case's pair stops keeping up, and the most it sustained."""
    paced = [p for p in phases if p["offered_per_s"] is not None]
    kept = [p["offered_per_s"] for p in paced if p["kept_up"]]
    behind = [p["offered_per_s"] for p in paced if not p["kept_up"]]
    best = max(phases, key=lambda p: p["acked_per_s"], default=None)
    return {
        "kept_up_to_per_s": max(kept, default=None),
        "falls_behind_at_per_s": min(behind, default=None),
        "sustained_per_s": best["acked_per_s"] if best else None,
        "sustained_in": best["load"] if best else None,
    }
