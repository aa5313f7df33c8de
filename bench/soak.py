"""Soak: does a gateway's memory stay flat, and does nothing get lost, under steady load?

    .venv/bin/python -m bench.soak [--minutes 10] [--rate 200] [--network demo|four]
                                   [--bootstrap HOST:PORT | --embedded]

Builds a network in a temporary folder — the demo's twelve parties, or with ``--network four``
Gemeente Amsterdam, an NGO, IND and DT&V — starts one `lvvx gateway run` process per party,
and drives casebook cases (every path whose parties are all there) through
their HTTP APIs at a fixed rate of messages per second (all gateways together); each
gateway's inbox is read and acknowledged as a back office would. Every 5 s it samples, per
gateway process, VmRSS and VmHWM (/proc/PID/status), consumer lag, DLQ depth and receipts
outstanding (/metrics), and the messages sent, delivered and acknowledged so far. After the
load it waits for the last deliveries and receipts (the drain), then writes
bench/results/soak-latest.{json,md} and prints the summary table.

Transport: Kafka at ``--bootstrap``; without it, a fresh broker of its own on 127.0.0.1:19492
(deploy/kafka/kafka.sh, removed afterwards, also on failure or Ctrl-C); or, with
``--embedded``, the embedded SQLite log that gateway processes on one machine can share.

Exit status 1 if a message was lost (sent, not delivered after the drain), delivered twice,
or a gateway process died; 2 if the soak could not set up.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import platform
import re
import secrets
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Any

import httpx

from bench._soak_infra import (
    NETWORKS,
    GatewayProcess,
    SoakSetupError,
    make_network,
    own_kafka,
    running_gateways,
    stop_gateways,
)
from bench._soak_probe import gateway_sample, read_cpu_seconds, read_memory, scrape
from bench._soak_report import (
    GatewaySummary,
    RunSummary,
    Sample,
    overview,
    summarise_gateway,
    table,
    write_results,
)
from bench._soak_traffic import (
    CaseSource,
    Ledger,
    Traffic,
    api_client,
    percentiles_ms,
)
from demo.casebook import Party

SAMPLE_EVERY_S = 5.0
DEFAULT_RATE = 200.0
DEFAULT_MINUTES = 10.0
DEFAULT_DRAIN_S = 120.0
"""After the load: how long the last messages and receipts may take before they count as lost."""

SCRAPE_TIMEOUT_S = 10.0

_LOG_LEVEL = re.compile(r"^(?:\S+ \S+ (WARNING|ERROR|CRITICAL) |(WARNING|ERROR|CRITICAL):)")
"""A level in a gateway log line: the service's own format, or uvicorn's."""


def say(text: str) -> None:
    print(f"soak: {text}", flush=True)


# --- one run -----------------------------------------------------------------------------


class Soak:
    """Load, sampling and drain against gateways that are already running."""

    def __init__(self, gateways: list[GatewayProcess], *, parties: tuple[Party, ...],
                 rate: float, minutes: float, drain_s: float,
                 sample_every_s: float) -> None:  # fmt: skip
        self.gateways = gateways
        self.rate, self.load_s, self.drain_s = rate, minutes * 60, drain_s
        self.sample_every_s = sample_every_s
        self.source = CaseSource(parties)
        self.ledger = Ledger([gw.party for gw in gateways])
        self.samples: list[Sample] = []
        self.phase = "load"
        self.t0 = 0.0
        self.load_took_s = 0.0
        self.drain_took_s = 0.0

    def _now(self) -> float:
        return asyncio.get_running_loop().time() - self.t0

    async def run(self) -> None:
        senders = {gw.party: api_client(gw.base_url, gw.token) for gw in self.gateways}
        readers = {gw.party: api_client(gw.base_url, gw.token) for gw in self.gateways}
        metrics_client = httpx.AsyncClient(timeout=SCRAPE_TIMEOUT_S)
        traffic = Traffic(senders, readers, self.source, self.ledger)
        stop_reading = asyncio.Event()
        reading = [asyncio.create_task(traffic.read_inbox(p, stop_reading)) for p in readers]
        self.t0 = asyncio.get_running_loop().time()
        sampler = asyncio.create_task(self._sample_every(metrics_client))
        try:
            await self._load(traffic)
            await self._drain(metrics_client)
            stop_reading.set()
            await asyncio.gather(*reading)
            self.samples.append(await self._sample(metrics_client))
        finally:
            for task in (sampler, *reading):
                task.cancel()
            await asyncio.gather(sampler, *reading, return_exceptions=True)
            for client in (*senders.values(), *readers.values()):
                await client.aclose()
            await metrics_client.aclose()

    async def _load(self, traffic: Traffic) -> None:
        say(f"load: {self.rate:g} msg/s for {self.load_s / 60:g} min")
        sending = asyncio.create_task(traffic.send_steadily(self.rate, self.load_s))
        death = asyncio.create_task(self._until_one_dies())
        await asyncio.wait([sending, death], return_when=asyncio.FIRST_COMPLETED)
        for task in (sending, death):
            task.cancel()
        await asyncio.gather(sending, death, return_exceptions=True)
        self.load_took_s = self._now()
        self.phase = "drain"

    async def _until_one_dies(self) -> None:
        while all(gw.alive for gw in self.gateways):
            await asyncio.sleep(0.5)
        say(f"gateway died: {', '.join(gw.party for gw in self.gateways if not gw.alive)}")

    async def _drain(self, metrics_client: httpx.AsyncClient) -> None:
        """Until every accepted message arrived and every receipt came back, or the drain
        time is up, or a gateway is gone."""
        say(f"drain: {len(self.ledger.pending)} messages in flight")
        started = self._now()
        while self._now() - started < self.drain_s and all(gw.alive for gw in self.gateways):
            if not self.ledger.pending and await self._receipts_settled(metrics_client):
                break
            await asyncio.sleep(1.0)
        self.drain_took_s = self._now() - started

    async def _receipts_settled(self, client: httpx.AsyncClient) -> bool:
        scrapes = await asyncio.gather(*(scrape(client, gw.base_url) for gw in self.gateways))
        return all(s is not None and s.receipts_outstanding == 0 for s in scrapes)

    async def _sample_every(self, client: httpx.AsyncClient) -> None:
        while True:
            self.samples.append(await self._sample(client))
            self._progress(self.samples[-1])
            next_at = len(self.samples) * self.sample_every_s
            await asyncio.sleep(max(next_at - self._now(), 0.0))

    async def _sample(self, client: httpx.AsyncClient) -> Sample:
        t, phase = self._now(), self.phase
        scrapes = await asyncio.gather(*(scrape(client, gw.base_url) for gw in self.gateways))
        taken = {}
        for gw, metrics in zip(self.gateways, scrapes, strict=True):
            tally = self.ledger.tally[gw.party]
            taken[gw.party] = gateway_sample(
                gw.alive, read_memory(gw.pid), read_cpu_seconds(gw.pid), metrics, sent=tally.sent,
                delivered=tally.delivered, acked=tally.acked, errors=sum(tally.errors.values()),
            )  # fmt: skip
        return Sample(round(t, 2), phase, os.getloadavg()[0], taken)

    def _progress(self, sample: Sample) -> None:
        if len(self.samples) % 6 != 1:  # every 30 s
            return
        total = self.ledger.totals()
        rss = " ".join(
            f"{party.split('-')[0]}={g.rss_mib:.0f}" for party, g in sample.gateways.items()
            if g.rss_mib is not None
        )  # fmt: skip
        lag = sum(g.consumer_lag or 0 for g in sample.gateways.values())
        say(f"t={sample.t_s:5.0f}s {sample.phase}: sent {total.sent}, delivered {total.delivered}, "
            f"in flight {len(self.ledger.pending)}, lag {lag:.0f}, RSS MiB {rss}")  # fmt: skip

    # --- the result ------------------------------------------------------------------------

    def summary(self, transport: str, exit_codes: dict[str, int | None],
                logs: dict[str, tuple[int, int]], died_before_stop: list[str]) -> RunSummary:  # fmt: skip
        """Call after the gateways were stopped: ``died_before_stop`` are those found gone
        before that (the samples may have seen others go, too)."""
        total = self.ledger.totals()
        seen_gone = {p for s in self.samples for p, g in s.gateways.items() if not g.alive}
        died = [gw.party for gw in self.gateways if gw.party in {*seen_gone, *died_before_stop}]
        gateways = {}
        for gw in self.gateways:
            tally = self.ledger.tally[gw.party]
            gateways[gw.party] = GatewaySummary(
                **summarise_gateway(self.samples, gw.party, self.load_took_s),
                sent=tally.sent, delivered=tally.delivered, acked=tally.acked,
                errors=dict(tally.errors), exit_code=exit_codes.get(gw.party),
                died=gw.party in died, log_warnings=logs[gw.party][0], log_errors=logs[gw.party][1],
            )  # fmt: skip
        return RunSummary(
            transport=transport, parties=[gw.party for gw in self.gateways],
            paths=[p.value for p in self.source.paths], rate_target=self.rate,
            minutes=self.load_s / 60, load_s=self.load_took_s, drain_s=self.drain_took_s,
            sent=total.sent, copies=total.copies, delivered=total.delivered, acked=total.acked,
            lost=len(self.ledger.pending), unpaired=len(self.ledger.unpaired),
            send_errors=sum(n for k, n in total.errors.items() if k.startswith("send")),
            latency_ms={op: percentiles_ms(v) for op, v in self.ledger.latencies.items()},
            driver_cpu_s=time.process_time(),
            max_load_avg=max((s.load_avg_1min for s in self.samples), default=0.0),
            died=died, gateways=gateways,
        )  # fmt: skip


def count_log_levels(log_file: Path, offset: int = 0) -> tuple[int, int]:
    """(warnings, errors) among a gateway log's lines from byte ``offset`` on."""
    warnings = errors = 0
    with log_file.open("rb") as f:
        f.seek(offset)
        text = f.read().decode(errors="replace")
    for line in text.splitlines():
        if match := _LOG_LEVEL.match(line):
            level = match.group(1) or match.group(2)
            warnings += level == "WARNING"
            errors += level != "WARNING"
    return warnings, errors


# --- setup and teardown --------------------------------------------------------------------


@contextlib.contextmanager
def kafka_for(args: argparse.Namespace) -> Iterator[str | None]:
    """The bootstrap address to use; None for the embedded log."""
    if args.embedded:
        yield None
    elif args.bootstrap:
        yield args.bootstrap
    else:
        with own_kafka(say) as bootstrap:
            yield bootstrap


@contextlib.contextmanager
def work_folder(
    keep: bool, prefix: str = "lvvx-soak-", tell: Callable[[str], None] = say
) -> Iterator[Path]:
    """A temporary folder for the run's networks, removed afterwards unless ``keep`` or the
    run failed (then ``tell`` says where it is)."""
    folder = Path(tempfile.mkdtemp(prefix=prefix))
    failed = True
    try:
        yield folder
        failed = False
    finally:
        if keep or failed:
            tell(f"network, gateway configs and logs kept in {folder}")
        else:
            shutil.rmtree(folder, ignore_errors=True)


def _terminate(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt  # the same orderly way out as Ctrl-C: gateways, then Kafka


def run(args: argparse.Namespace) -> int:
    started_at = datetime.now(UTC).isoformat(timespec="seconds")
    transport = "embedded" if args.embedded else "kafka"
    with work_folder(args.keep) as folder, kafka_for(args) as bootstrap:
        prefix = f"lvv.soak-{secrets.token_hex(4)}.v1" if bootstrap else "lvv.v1"
        parties = NETWORKS[args.network]
        net, ports = make_network(folder, kafka=bootstrap, prefix=prefix, parties=parties)
        say(f"{len(ports)} gateways over {bootstrap or 'the embedded log'}, network in {folder}")
        with running_gateways(net, ports) as gateways:
            # what the gateways log while starting (a fresh broker's coordinator moving) is not counted
            marks = {gw.party: gw.log_file.stat().st_size for gw in gateways}
            soak = Soak(gateways, parties=parties, rate=args.rate, minutes=args.minutes,
                        drain_s=args.drain_seconds, sample_every_s=args.sample_seconds)  # fmt: skip
            asyncio.run(soak.run())
            died_before_stop = [gw.party for gw in gateways if not gw.alive]
            exit_codes = stop_gateways(gateways)
            logs = {gw.party: count_log_levels(gw.log_file, marks[gw.party]) for gw in gateways}
            for party in died_before_stop:
                say(
                    f"{party} died; its log ends:\n{next(g for g in gateways if g.party == party).log_tail()}"
                )
        result = soak.summary(transport, exit_codes, logs, died_before_stop)
        config: dict[str, Any] = {
            "transport": transport, "bootstrap": bootstrap, "network": args.network,
            "rate": args.rate,
            "minutes": args.minutes, "drain_seconds": args.drain_seconds,
            "sample_seconds": args.sample_seconds, "started_at": started_at,
            "python": platform.python_version(), "cpus": os.cpu_count(),
        }  # fmt: skip
        json_path, md_path = write_results(result, soak.samples, config)
        print("\n".join(overview(result)) + "\n\n" + table(result))
        say(f"wrote {json_path} and {md_path}")
        if not result.ok:
            raise _Failed
    return 0


class _Failed(Exception):
    """The soak ran and found a loss, a duplicate or a dead gateway (keeps the folder)."""


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.soak", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument(
        "--minutes", type=float, default=DEFAULT_MINUTES, help="load duration (default 10)"
    )
    parser.add_argument(
        "--rate",
        type=float,
        default=DEFAULT_RATE,
        help="messages/s, all gateways together (default 200)",
    )
    parser.add_argument(
        "--network",
        choices=sorted(NETWORKS),
        default="demo",
        help="demo: a gateway for each of the demo's parties (default); four: four of them",
    )
    where = parser.add_mutually_exclusive_group()
    where.add_argument(
        "--bootstrap", metavar="HOST:PORT", help="a running plaintext Kafka (default: start one)"
    )
    where.add_argument(
        "--embedded", action="store_true", help="the embedded SQLite log instead of Kafka"
    )
    parser.add_argument(
        "--drain-seconds",
        type=float,
        default=DEFAULT_DRAIN_S,
        help="wait for the last deliveries (default 120)",
    )
    parser.add_argument(
        "--sample-seconds", type=float, default=SAMPLE_EVERY_S, help=argparse.SUPPRESS
    )
    parser.add_argument("--keep", action="store_true", help="keep the network folder and gateway logs")  # fmt: skip
    args = parser.parse_args(argv)
    if args.rate <= 0 or args.minutes <= 0:
        parser.error("--rate and --minutes must be positive")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _terminate)
    started = time.monotonic()
    try:
        return run(args)
    except _Failed:
        return 1
    except SoakSetupError as exc:
        print(f"soak: setup failed: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"soak: interrupted after {time.monotonic() - started:.0f} s", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
