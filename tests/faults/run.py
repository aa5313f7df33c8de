"""`make test-faults` (`python -m tests.faults`): the fault scenarios on a three-broker secured
cluster of the suite's own, with a network of `lvvx gateway run` processes, steady traffic
through their HTTP APIs, and a history of every operation checked at the end. Exits 1 when
anything was lost, duplicated, reordered or let through, when the audit verifier is not
clean, or when a gateway process died.

Settings (environment):

    FAULTS_MESSAGES   messages over the whole run, split evenly over the scenarios (20000)
    FAULTS_RATE       messages per second offered (50)
    FAULTS_ROUNDS     leader crashes per leader scenario (5)
    FAULTS_SCENARIOS  comma-separated subset of leader-sigkill,leader-sigterm,quorum-loss,pause
    FAULTS_KEEP       1: leave the cluster running afterwards (for a look at its logs)
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import shutil
import subprocess
import time
import uuid
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from bench._soak_infra import (
    PARTIES,
    GatewayProcess,
    make_network,
    start_gateway,
    stop_gateways,
    wait_ready,
)
from broker.provision import Layout, apply, desired_topics
from broker.topics import dlq, inbox
from broker.transport.kafka import KafkaTransport
from demo.network import LocalNetwork
from tests.faults import cluster, report
from tests.faults.history import History, Outcome, check
from tests.faults.scenarios import FaultLog, Target, scenarios
from tests.faults.traffic import Traffic

FIRST_HTTP_PORT = 27481
"""Where the search for the gateways' API ports starts: clear of the soak's 18481, and below
the ephemeral range (32768-60999), where a client connection may hold a port at bind time."""

READY_TIMEOUT_S = 240.0
"""Gateway processes starting together on a busy 2-core machine next to three brokers."""

DRAIN_TIMEOUT_S = 300.0
"""After a scenario: how long every acknowledged message may take to reach its inboxes."""

DRAIN_STALL_S = 90.0
"""...but the drain gives up earlier when nothing more arrived for this long: a message
still missing then is lost, and waiting on would only lengthen the run."""

SETTLE_S = 5.0
"""Reading on after the drain, so a late duplicate still shows."""

PROGRESS_EVERY_S = 15.0

AUDIT_TIMEOUT_S = 600.0
"""`lvvx audit verify` over the run's chains: reading and checking every signed event of a
full run's chains (well over 100,000) takes minutes on a busy machine."""

INTERNAL_TOPICS = ("__consumer_offsets", "__transaction_state")
"""Kafka's own: offsets commits and transactions need them in sync too."""


@dataclass(frozen=True)
class Settings:
    messages: int
    rate: float
    rounds: int
    scenarios: tuple[str, ...]
    keep: bool

    @classmethod
    def from_env(cls) -> Settings:
        known = tuple(scenarios(1))
        chosen = tuple(
            s.strip() for s in os.environ.get("FAULTS_SCENARIOS", ",".join(known)).split(",")
        )
        unknown = [s for s in chosen if s not in known]
        if unknown:
            raise SystemExit(f"unknown FAULTS_SCENARIOS {unknown}; known: {', '.join(known)}")
        return cls(
            messages=int(os.environ.get("FAULTS_MESSAGES", "20000")),
            rate=float(os.environ.get("FAULTS_RATE", "50")),
            rounds=int(os.environ.get("FAULTS_ROUNDS", "5")),
            scenarios=chosen,
            keep=os.environ.get("FAULTS_KEEP", "0") == "1",
        )


def undelivered(history: History) -> int:
    """(acknowledged message, recipient) pairs not yet seen in that recipient's inbox."""
    seen = {(d.party, d.message_id) for d in history.deliveries}
    return sum(
        (r, s.message_id) not in seen
        for s in history.sends
        if s.outcome is Outcome.OK
        for r in s.recipients
    )


class Run:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.history = History()
        self.prefix = f"lvv.faults-{secrets.token_hex(3)}.v1"
        self.admin = KafkaTransport(cluster.options("admin", request_timeout_ms=30_000))
        self.gateways: list[GatewayProcess] = []
        self.gateway_exits: list[str] = []
        self.errors: list[str] = []
        self.logs: list[FaultLog] = []

    def network(self) -> tuple[LocalNetwork, dict[str, int]]:
        folder = cluster.BASE / "run"
        shutil.rmtree(folder, ignore_errors=True)
        return make_network(folder, kafka=cluster.BOOTSTRAP, prefix=self.prefix,
                            tls=cluster.PKI_DIR, ports_from=FIRST_HTTP_PORT)  # fmt: skip

    async def main(self) -> dict[str, Any]:
        started = time.monotonic()
        net, ports = self.network()
        await apply(self.admin, net.directory, Layout(self.prefix, partitions=3))
        self.gateways = [start_gateway(net, party, port) for party, port in ports.items()]
        await asyncio.to_thread(wait_ready, self.gateways, READY_TIMEOUT_S)
        print(f"faults: {len(self.gateways)} gateways ready, prefix {self.prefix}", flush=True)
        traffic = Traffic({g.party: (g.base_url, g.token) for g in self.gateways}, self.history)
        reading = asyncio.Event()
        readers = [asyncio.create_task(traffic.read(p, reading)) for p in ports]
        progress = asyncio.create_task(self._progress())
        try:
            target = Target(
                inbox(PARTIES[0].party_id, self.prefix), 0,
                [*(t.name for t in desired_topics(net.directory, Layout(self.prefix))), *INTERNAL_TOPICS],
            )  # fmt: skip
            for name in self.settings.scenarios:
                if not await self._scenario(net, traffic, name, target):
                    break
        finally:
            reading.set()
            await asyncio.gather(*readers)
            progress.cancel()
            await traffic.close()
        if self.errors:  # a scenario left the cluster broken: every node up for the final read
            try:
                await asyncio.to_thread(cluster.cluster_sh, "up")
            except cluster.ClusterError as exc:
                self.errors.append(f"bringing the cluster back for the final read: {exc}")
        try:
            await self._dead_letters(net)
        except Exception as exc:  # the run fails, but the report is still written
            self.errors.append(f"reading the DLQs: {type(exc).__name__}: {exc}")
        audit = await self._audit(net)
        stop_gateways(self.gateways)
        verdict = check(self.history)
        report.dump_history(self.history, cluster.BASE / "run" / "history.jsonl")
        s = report.summary(
            self.history, verdict, self.logs, audit=audit, gateway_exits=self.gateway_exits,
            traffic_errors=traffic.errors, settings=asdict(self.settings),
            runtime_s=time.monotonic() - started,
        )  # fmt: skip
        s["history_file"] = str(cluster.BASE / "run" / "history.jsonl")
        s["errors"] = self.errors
        s["ok"] = s["ok"] and not self.errors
        return s

    async def _scenario(self, net: LocalNetwork, traffic: Traffic, name: str,
                        target: Target) -> bool:  # fmt: skip
        """One scenario: traffic, the fault, the drain. False if the cluster broke."""
        print(f"faults: scenario {name}", flush=True)
        self.history.scenario = name
        log = FaultLog(name)
        self.logs.append(log)
        fault_over = asyncio.Event()
        quota = self.settings.messages // len(self.settings.scenarios)
        sending = asyncio.create_task(traffic.send(self.settings.rate, quota, fault_over))
        healthy = True
        try:
            await scenarios(self.settings.rounds)[name](log, target)
        except cluster.ClusterError as exc:
            self.errors.append(f"{name}: {exc}")
            healthy = False
        except asyncio.CancelledError:  # Ctrl-C: the traffic stops too, not at its quota
            sending.cancel()
            raise
        finally:
            fault_over.set()
            await sending
        log.ended = time.monotonic()
        await self._drain(name)
        await self._check_gateways(net)
        return healthy

    async def _drain(self, name: str) -> None:
        deadline = time.monotonic() + DRAIN_TIMEOUT_S
        last, progress_at = -1, time.monotonic()
        while (missing := undelivered(self.history)) and time.monotonic() < deadline:
            if missing != last:
                last, progress_at = missing, time.monotonic()
            elif time.monotonic() - progress_at > DRAIN_STALL_S:
                break
            await asyncio.sleep(1.0)
        if missing:
            print(f"faults: {name}: {missing} acknowledged copies still undelivered", flush=True)
        await asyncio.sleep(SETTLE_S)

    async def _check_gateways(self, net: LocalNetwork) -> None:
        """A gateway process that died is a failure of the run; it is restarted so the
        scenarios after it still have a network."""
        for i, gw in enumerate(self.gateways):
            if not gw.alive:
                self.gateway_exits.append(
                    f"{gw.party} exited {gw.process.returncode}: {gw.log_tail(5)}"
                )
                self.gateways[i] = start_gateway(net, gw.party, gw.port)
                await asyncio.to_thread(wait_ready, [self.gateways[i]], READY_TIMEOUT_S)

    async def _progress(self) -> None:
        while True:
            await asyncio.sleep(PROGRESS_EVERY_S)
            by = {o: 0 for o in Outcome}
            for s in self.history.sends:
                by[s.outcome] += 1
            print(f"  [{self.history.scenario}] sends ok {by[Outcome.OK]} failed {by[Outcome.FAILED]} "
                  f"unknown {by[Outcome.UNKNOWN]}; deliveries {len(self.history.deliveries)}; "
                  f"undelivered {undelivered(self.history)}", flush=True)  # fmt: skip

    async def _dead_letters(self, net: LocalNetwork) -> None:
        """Every DLQ entry of the run, read as the admin after the traffic stopped (with a
        client of its own: the run's admin client may still know a node that went away)."""
        reader = KafkaTransport(cluster.options("admin", request_timeout_ms=30_000))
        try:
            records = {
                p: await reader.read_topic(dlq(p, self.prefix)) for p in net.directory.parties
            }
        finally:
            await reader.close()
        for party, found in sorted(records.items()):
            for record in found:
                headers = dict(record.headers)
                key = record.key or b""
                message_id = uuid.UUID(bytes=key) if len(key) == 16 else None
                reason = headers.get("lvv-reason", b"?").decode()
                self.history.dead_lettered(party, message_id, reason)

    async def _audit(self, net: LocalNetwork) -> dict[str, Any]:
        """DT&V's audit verifier (`lvvx audit verify`, as DT&V reads the chains) over every
        gateway's chain, in a process of its own so a slow verification can be cut off."""
        command = [
            str(cluster.REPO / ".venv" / "bin" / "lvvx"), "audit", "verify", "--json",
            "--data", str(net.folder), "--kafka", cluster.BOOTSTRAP, "--prefix", self.prefix,
            "--tls", str(cluster.PKI_DIR), "--as", "dtv",
        ]  # fmt: skip
        env = os.environ | {"LVVX_KEY_PASSPHRASE_FILE": str(net.folder / "secrets" / "passphrase")}
        try:
            done = await asyncio.to_thread(subprocess.run, command, env=env, capture_output=True,
                                           text=True, timeout=AUDIT_TIMEOUT_S)  # fmt: skip
        except subprocess.TimeoutExpired:
            return {"clean": False, "error": f"lvvx audit verify took over {AUDIT_TIMEOUT_S:.0f} s"}
        try:
            result: dict[str, Any] = json.loads(done.stdout)
        except ValueError:
            return {"clean": False, "error": f"exit {done.returncode}: {done.stderr[-2000:]}"}
        result["findings"] = result.get("findings", [])[:20]
        return result


def main(argv: Sequence[str] | None = None) -> int:
    del argv
    settings = Settings.from_env()
    print(f"faults: {settings}", flush=True)
    with cluster.running_cluster(keep=settings.keep):
        run = Run(settings)

        async def go() -> dict[str, Any]:
            try:
                return await run.main()
            finally:
                stop_gateways(run.gateways)
                await run.admin.close()

        s = asyncio.run(go())
    path = report.write(s)
    print(path.read_text(), flush=True)
    print(f"faults: {'PASS' if s['ok'] else 'FAIL'} (details in {path})", flush=True)
    return 0 if s["ok"] else 1
