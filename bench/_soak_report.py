"""The soak's results: the time series, a summary per gateway, and the files and table made
of them (bench/results/soak-latest.json and .md)."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bench._soak_probe import GatewaySample

RESULTS_DIR = Path(__file__).resolve().parent / "results"

ONE_MINUTE_S = 60.0


@dataclass(frozen=True, slots=True)
class Sample:
    t_s: float
    """Seconds since the load started."""
    phase: str
    """While sending: load; after it, while the last messages arrive: drain."""
    load_avg_1min: float
    """The machine's load average: other work on it slows the gateways too."""
    gateways: dict[str, GatewaySample]


@dataclass(frozen=True, slots=True)
class GatewaySummary:
    rss_1min_mib: float | None
    rss_end_mib: float | None
    peak_mib: float | None
    growth_mib_per_h: float | None
    """Slope of a least-squares line through RSS over the second half of the load."""
    cpu_pct: float | None
    """Mean CPU use of the gateway process during the load (100 = one core)."""
    max_lag: float | None
    dlq_depth: float | None
    receipts_outstanding: float | None
    max_scrape_ms: float | None
    sent: int
    delivered: int
    acked: int
    errors: dict[str, int]
    exit_code: int | None
    died: bool
    log_warnings: int
    log_errors: int
    """Lines of the gateway's own log at WARNING / ERROR or above (tracebacks included)."""


@dataclass(frozen=True, slots=True)
class RunSummary:
    transport: str
    parties: list[str]
    paths: list[str]
    rate_target: float
    minutes: float
    load_s: float
    drain_s: float
    sent: int
    copies: int
    delivered: int
    acked: int
    lost: int
    unpaired: int
    """Deliveries no accepted send explains: duplicates, or sends whose answer was lost."""
    send_errors: int
    latency_ms: dict[str, dict[str, float]]
    """Per API operation (send, inbox, ack): p50, p99 and max of the calls that succeeded."""
    driver_cpu_s: float
    """CPU the soak process itself used (HTTP clients, case generation)."""
    max_load_avg: float
    died: list[str]
    gateways: dict[str, GatewaySummary] = field(default_factory=dict)

    @property
    def achieved_rate(self) -> float:
        return self.sent / self.load_s if self.load_s else 0.0

    @property
    def ok(self) -> bool:
        return self.lost == 0 and self.unpaired == 0 and not self.died


def slope_per_hour(points: list[tuple[float, float]]) -> float | None:
    """Least-squares slope of (seconds, value) points, per hour; None with fewer than two."""
    if len(points) < 2:
        return None
    n = len(points)
    mean_t = sum(t for t, _ in points) / n
    mean_v = sum(v for _, v in points) / n
    var = sum((t - mean_t) ** 2 for t, _ in points)
    if var == 0:
        return None
    cov = sum((t - mean_t) * (v - mean_v) for t, v in points)
    return cov / var * 3600


def _values(samples: list[Sample], party: str, name: str) -> list[float]:
    found = (getattr(s.gateways[party], name) for s in samples)
    return [v for v in found if v is not None]


def summarise_gateway(samples: list[Sample], party: str, load_s: float) -> dict[str, Any]:
    """The series-derived figures of one gateway (the counts come from the ledger)."""
    load = [s for s in samples if s.phase == "load"]
    after_1min = [s for s in load if s.t_s >= ONE_MINUTE_S]
    second_half = [
        (s.t_s, rss) for s in load if s.t_s >= load_s / 2
        if (rss := s.gateways[party].rss_mib) is not None
    ]  # fmt: skip
    rss_load = _values(load, party, "rss_mib")
    lags, hwms = _values(samples, party, "consumer_lag"), _values(samples, party, "hwm_mib")
    scrapes = _values(samples, party, "scrape_ms")
    cpu = _values(load, party, "cpu_s")
    span = load[-1].t_s - load[0].t_s if len(load) > 1 else 0.0
    last = samples[-1].gateways[party] if samples else None
    return {
        "rss_1min_mib": after_1min[0].gateways[party].rss_mib if after_1min else None,
        "rss_end_mib": rss_load[-1] if rss_load else None,
        "peak_mib": max(hwms) if hwms else None,
        "growth_mib_per_h": slope_per_hour(second_half),
        "cpu_pct": (cpu[-1] - cpu[0]) / span * 100 if span and len(cpu) > 1 else None,
        "max_lag": max(lags) if lags else None,
        "dlq_depth": last.dlq_depth if last else None,
        "receipts_outstanding": last.receipts_outstanding if last else None,
        "max_scrape_ms": max(scrapes) if scrapes else None,
    }


# --- output ------------------------------------------------------------------------------


def _fmt(value: float | None, digits: int = 1) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def table(run: RunSummary) -> str:
    """The summary as a Markdown table, one row per gateway."""
    head = ("gateway", "RSS 1 min MiB", "RSS end MiB", "peak MiB", "growth MiB/h", "CPU %", "max lag",
            "DLQ", "receipts open", "sent", "delivered", "acked", "errors", "log warn/err", "exit")  # fmt: skip
    rows = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for party, g in run.gateways.items():
        errors = sum(g.errors.values())
        exit_code = "died" if g.died else str(g.exit_code)
        cells = (party, _fmt(g.rss_1min_mib), _fmt(g.rss_end_mib), _fmt(g.peak_mib),
                 _fmt(g.growth_mib_per_h), _fmt(g.cpu_pct, 0), _fmt(g.max_lag, 0), _fmt(g.dlq_depth, 0),
                 _fmt(g.receipts_outstanding, 0), str(g.sent), str(g.delivered), str(g.acked),
                 str(errors), f"{g.log_warnings}/{g.log_errors}", exit_code)  # fmt: skip
        rows.append("| " + " | ".join(cells) + " |")
    return "\n".join(rows)


def overview(run: RunSummary) -> list[str]:
    latency = "; ".join(
        f"{op} " + "/".join(f"{v:.0f}" for v in q.values()) for op, q in run.latency_ms.items() if q
    )
    verdict = "OK" if run.ok else "FAILED"
    lines = [
        f"{run.transport}, {len(run.parties)} gateways, {run.minutes:g} min at {run.rate_target:g} msg/s "
        f"(achieved {run.achieved_rate:.1f} msg/s over {run.load_s:.0f} s; paths {', '.join(run.paths)})",
        f"sent {run.sent} messages = {run.copies} inbox copies; delivered {run.delivered}, "
        f"acked {run.acked}; lost {run.lost}, unpaired {run.unpaired}, send errors {run.send_errors}; "
        f"drain {run.drain_s:.1f} s",
        f"API latency p50/p99/max ms: {latency or '–'}; soak driver CPU {run.driver_cpu_s:.0f} s; "
        f"machine load average up to {run.max_load_avg:.1f} on {os.cpu_count()} CPUs",
        f"verdict: {verdict}" + (f" (died: {', '.join(run.died)})" if run.died else ""),
    ]
    errors = {p: dict(g.errors) for p, g in run.gateways.items() if g.errors}
    if errors:
        lines.append(f"errors: {json.dumps(errors)}")
    return lines


def write_results(run: RunSummary, samples: list[Sample], config: dict[str, Any],
                  name: str = "soak-latest") -> tuple[Path, Path]:  # fmt: skip
    RESULTS_DIR.mkdir(exist_ok=True)
    document = {
        "config": config,
        "summary": asdict(run) | {"achieved_rate": run.achieved_rate, "ok": run.ok},
        "samples": [asdict(s) for s in samples],
    }
    json_path, md_path = RESULTS_DIR / f"{name}.json", RESULTS_DIR / f"{name}.md"
    json_path.write_text(json.dumps(document, indent=1) + "\n")
    bullets = "\n".join(f"- {line}" for line in overview(run))
    md_path.write_text(f"# Soak run\n\n{bullets}\n\n{table(run)}\n")
    return json_path, md_path
