"""What the soak samples from one gateway process: its memory from /proc and a few series
from its Prometheus /metrics.

VmRSS is the resident set now; VmHWM is its high-water mark since the process started (the
kernel's own peak, so a spike between two samples is not missed).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

KIB = 1024
MIB = 1024 * 1024

SCRAPED = {
    "lvv_consumer_lag": "consumer_lag",
    "lvv_dlq_depth": "dlq_depth",
    "lvv_receipts_outstanding": "receipts_outstanding",
    "lvv_inbox_unacked": "inbox_unacked",
    "lvv_messages_rejected": "rejected",
}
"""Metric family → field of `Scrape`; each summed over its labels."""


CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True, slots=True)
class Memory:
    rss_bytes: int
    hwm_bytes: int


@dataclass(frozen=True, slots=True)
class Scrape:
    consumer_lag: float = 0.0
    dlq_depth: float = 0.0
    receipts_outstanding: float = 0.0
    inbox_unacked: float = 0.0
    rejected: float = 0.0
    seconds: float = 0.0
    """How long /metrics took to answer: it counts rows of the gateway's store."""


def read_memory(pid: int) -> Memory | None:
    """VmRSS and VmHWM of ``pid``; None once the process is gone."""
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    fields = dict(line.split(":", 1) for line in text.splitlines() if ":" in line)
    return Memory(_kib(fields["VmRSS"]) * KIB, _kib(fields["VmHWM"]) * KIB)


def read_cpu_seconds(pid: int) -> float | None:
    """User plus system CPU time ``pid`` used so far; None once it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    # fields after the command name, which is in parentheses and may hold spaces
    fields = stat.rsplit(")", 1)[1].split()
    utime, stime = int(fields[11]), int(fields[12])  # fields 14 and 15 of proc(5)
    return (utime + stime) / CLOCK_TICKS


def _kib(value: str) -> int:
    number, unit = value.split()
    if unit != "kB":
        raise ValueError(f"unexpected unit in /proc status: {value!r}")
    return int(number)


def parse_metrics(text: str) -> dict[str, float]:
    """The families of `SCRAPED` in a Prometheus exposition, each summed over its labels."""
    sums = dict.fromkeys(SCRAPED.values(), 0.0)
    for family in text_string_to_metric_families(text):
        field = SCRAPED.get(family.name)
        if field is None:
            continue
        for sample in family.samples:
            if sample.name in (family.name, family.name + "_total"):
                sums[field] += sample.value
    return sums


async def scrape(client: httpx.AsyncClient, base_url: str) -> Scrape | None:
    """One scrape of ``base_url``/metrics; None if the gateway did not answer."""
    started = time.perf_counter()
    try:
        response = await client.get(f"{base_url}/metrics")
        response.raise_for_status()
    except httpx.HTTPError:
        return None
    return Scrape(**parse_metrics(response.text), seconds=time.perf_counter() - started)


@dataclass(frozen=True, slots=True)
class GatewaySample:
    """One gateway at one moment: its process, its metrics, and the soak's own counts."""

    alive: bool
    rss_mib: float | None
    hwm_mib: float | None
    cpu_s: float | None
    """CPU seconds (user + system) the process used since it started."""
    consumer_lag: float | None
    dlq_depth: float | None
    receipts_outstanding: float | None
    inbox_unacked: float | None
    rejected: float | None
    scrape_ms: float | None
    sent: int
    delivered: int
    acked: int
    errors: int


def gateway_sample(
    alive: bool, memory: Memory | None, cpu_s: float | None, metrics: Scrape | None, *,
    sent: int, delivered: int, acked: int, errors: int,
) -> GatewaySample:  # fmt: skip
    m = metrics
    return GatewaySample(
        alive=alive,
        rss_mib=memory.rss_bytes / MIB if memory else None,
        hwm_mib=memory.hwm_bytes / MIB if memory else None,
        cpu_s=cpu_s,
        consumer_lag=m.consumer_lag if m else None,
        dlq_depth=m.dlq_depth if m else None,
        receipts_outstanding=m.receipts_outstanding if m else None,
        inbox_unacked=m.inbox_unacked if m else None,
        rejected=m.rejected if m else None,
        scrape_ms=m.seconds * 1000 if m else None,
        sent=sent, delivered=delivered, acked=acked, errors=errors,
    )  # fmt: skip
