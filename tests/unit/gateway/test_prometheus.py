"""Monitoring under deploy/: Prometheus's own tools accept the scrape config and the alert
rules, and the rules' unit tests (deploy/prometheus/alerts_test.yml) show every alert firing
on synthetic series and none on a healthy network. A real Prometheus loaded with the config
scrapes exactly the demo's gateway ports and the verifier, and accepts every query of the
Grafana dashboard. End to end, a real Prometheus scrapes a real gateway's /metrics over HTTP
and answers with what the gateway counted.

Needs Debian's `prometheus` package (/usr/bin/prometheus, /usr/bin/promtool). Without it the
tests FAIL with that reason: missing tooling must never turn into a green run.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import shutil
import socket
import subprocess
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from prometheus_client import CollectorRegistry

from broker.audit.metrics import FollowMetrics
from broker.gateway import Gateway, GatewayStore
from broker.gateway.api import create_app
from broker.gateway.metrics import PrometheusObserver
from broker.models import PartyRole
from broker.topics import inbox
from broker.transport import TopicSpec
from broker.transport.embedded import EmbeddedTransport
from demo.examples import example
from demo.network import create_network, write_gateway_configs
from tests.crypto_net import CONTENT_KEY, NOW, A, Net
from tests.support import eventually

ROOT = Path(__file__).resolve().parents[3]
PROMETHEUS_DIR = ROOT / "deploy" / "prometheus"
CONFIG = PROMETHEUS_DIR / "prometheus.yml"
ALERTS = PROMETHEUS_DIR / "alerts.yml"
ALERTS_TEST = PROMETHEUS_DIR / "alerts_test.yml"
GRAFANA_DIR = ROOT / "deploy" / "grafana"
DASHBOARD = GRAFANA_DIR / "dashboards" / "lvv-network.json"
DATASOURCE = GRAFANA_DIR / "provisioning" / "datasources" / "prometheus.yml"
DASHBOARD_PROVIDER = GRAFANA_DIR / "provisioning" / "dashboards" / "lvv.yml"

VERIFIER_TARGET = "127.0.0.1:9108"  # `lvvx audit follow --metrics-port 9108`, `lvvx demo --serve`
IND, MUNI, NGO = (A[PartyRole[r]] for r in ("IND", "MUNICIPALITY", "NGO"))
TOKEN = "back-office-token-0123456789abcdef"
START_S = 20.0  # for Prometheus to become ready
SCRAPED_S = 30.0  # for the first scrape to be queryable

# What Grafana puts in for its variables before the query reaches Prometheus.
GRAFANA_VARIABLES = {
    "$__rate_interval": "20s",
    "$__interval": "5s",
    "$__range": "30m",
    "${party}": ".*",
    "$party": ".*",
}


def _tool(name: str) -> str:
    path = shutil.which(name) or (f"/usr/bin/{name}" if Path(f"/usr/bin/{name}").exists() else None)
    if path is None:
        pytest.fail(
            f"{name} not found: install Debian's prometheus package "
            "(apt-get install prometheus); make test does it."
        )
    return path


def _promtool(*args: str) -> None:
    result = subprocess.run(
        [_tool("promtool"), *args], capture_output=True, text=True, timeout=60, cwd=ROOT
    )
    assert result.returncode == 0, (
        f"promtool {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}"
    )


def _free_port() -> int:
    with contextlib.closing(socket.socket()) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _alert_names(text: str) -> list[str]:
    return re.findall(r"^\s*- alert: (\w+)\s*$", text, flags=re.MULTILINE)


class Prometheus:
    """A real /usr/bin/prometheus on a free loopback port, storing in ``folder``."""

    def __init__(self, config: Path, folder: Path) -> None:
        self.port = _free_port()
        self.log_path = folder / "prometheus.log"
        binary = _tool("prometheus")
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                [
                    binary,
                    f"--config.file={config}",
                    f"--storage.tsdb.path={folder / 'tsdb'}",
                    f"--web.listen-address=127.0.0.1:{self.port}",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=folder,
            )
        self.http = httpx.AsyncClient(base_url=f"http://127.0.0.1:{self.port}", timeout=5.0)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-3000:]

    async def ready(self) -> None:
        async def answers() -> bool:
            if self.process.poll() is not None:
                pytest.fail(f"prometheus exited with {self.process.returncode}:\n{self.log()}")
            with contextlib.suppress(httpx.HTTPError):
                return (await self.http.get("/-/ready")).status_code == 200
            return False

        await eventually(answers, lambda: f"prometheus to be ready:\n{self.log()}",
                         timeout_s=START_S, every_s=0.1)  # fmt: skip

    async def api(self, path: str, **params: str) -> Any:
        """``data`` of a successful API answer; fails the test with Prometheus's error."""
        response = await self.http.get(f"/api/v1/{path}", params=params)
        body = response.json()
        assert response.status_code == 200 and body["status"] == "success", (
            f"{path} {params}: {response.status_code} {body.get('error')}"
        )
        return body["data"]

    async def targets(self, count: int) -> list[dict[str, Any]]:
        """The active targets, once service discovery has handed over ``count`` of them (it
        does so a few seconds after start)."""

        async def handed_over() -> list[dict[str, Any]]:
            targets: list[dict[str, Any]] = (await self.api("targets"))["activeTargets"]
            return targets if len(targets) >= count else []

        return await eventually(handed_over, f"{count} targets", timeout_s=START_S, every_s=0.2)

    async def aclose(self) -> None:
        await self.http.aclose()
        if self.process.poll() is None:
            self.process.terminate()
            try:
                await asyncio.to_thread(self.process.wait, 10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                await asyncio.to_thread(self.process.wait, 10)


@contextlib.asynccontextmanager
async def prometheus(config: Path, folder: Path) -> AsyncIterator[Prometheus]:
    server = Prometheus(config, folder)
    try:
        await server.ready()
        yield server
    finally:
        await server.aclose()


# --- promtool ---------------------------------------------------------------------------------


def test_promtool_accepts_the_config_and_the_alert_rules() -> None:
    _promtool("check", "config", str(CONFIG))
    _promtool("check", "rules", str(ALERTS))


def test_alert_rule_unit_tests_pass_and_cover_every_alert() -> None:
    _promtool("test", "rules", str(ALERTS_TEST))

    alerts = _alert_names(ALERTS.read_text())
    tested = set(re.findall(r"alertname: (\w+)", ALERTS_TEST.read_text()))
    assert len(alerts) == len(set(alerts)), f"duplicate alert names: {alerts}"
    assert set(alerts) - tested == set(), "alerts without a unit test in alerts_test.yml"
    assert tested - set(alerts) == set(), "alerts_test.yml tests alerts that do not exist"


# --- metric names -----------------------------------------------------------------------------


def _exported_metrics(folder: Path) -> set[str]:
    """Metric families the gateway and the verifier register (without _total, _bucket...)."""
    observer = PrometheusObserver("ind")
    store = GatewayStore(folder / "store.db", content_key=CONTENT_KEY)
    try:
        observer.watch_store(store, lambda: 0)
        observer.watch_directory(lambda: Net().directory, lambda: NOW)
        families = {f.name for f in observer.registry.collect()}
    finally:
        store.close()
    registry = CollectorRegistry()
    FollowMetrics(registry)
    return families | {f.name for f in registry.collect()}


def _base_name(name: str) -> str:
    return re.sub(r"_(total|bucket|sum|count)$", "", name)


def test_alerts_and_dashboard_use_only_metrics_the_code_exports_and_show_them_all(
    tmp_path: Path,
) -> None:
    exported = _exported_metrics(tmp_path)
    dashboard = DASHBOARD.read_text()
    for source, text in (("alerts.yml", ALERTS.read_text()), ("dashboard", dashboard)):
        used = {_base_name(m) for m in re.findall(r"\blvv_[a-z_]+", text)}
        assert used - exported == set(), f"{source} names metrics nobody exports"
    shown = {_base_name(m) for m in re.findall(r"\blvv_[a-z_]+", dashboard)}
    assert exported - shown == set(), "metrics exported but on no dashboard panel"


# --- the config and the dashboard against a real Prometheus ----------------------------------


def _queries(dashboard: dict[str, Any]) -> Iterator[tuple[str, str]]:
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            yield panel["title"], target["expr"]
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":
            # label_values(metric, label) is Grafana's; Prometheus gets the series selector
            definition = variable["definition"]
            match = re.fullmatch(r"label_values\((\w+), *\w+\)", definition)
            assert match, f"variable {variable['name']}: unexpected query {definition}"
            yield f"variable {variable['name']}", match.group(1)


def _grafana_to_promql(expr: str) -> str:
    for variable, value in GRAFANA_VARIABLES.items():
        expr = expr.replace(variable, value)
    assert "$" not in expr, f"a Grafana variable this test does not know: {expr}"
    return expr


def _check_dashboard_shape(dashboard: dict[str, Any]) -> None:
    assert dashboard["schemaVersion"] >= 36
    assert dashboard["uid"] == "lvv-network"
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    taken: set[tuple[int, int]] = set()
    ids = set()
    for panel in dashboard["panels"]:
        assert panel["id"] not in ids, f"panel id {panel['id']} twice"
        ids.add(panel["id"])
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24, f"{panel['title']} is wider than the dashboard"
        cells = {
            (x, y)
            for x in range(grid["x"], grid["x"] + grid["w"])
            for y in range(grid["y"], grid["y"] + grid["h"])
        }
        assert not cells & taken, f"{panel['title']} overlaps another panel"
        taken |= cells
        if panel["type"] == "row":
            continue
        assert panel["targets"], f"{panel['title']} has no query"
        for where in (panel, *panel["targets"]):
            assert where["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, (
                f"{panel['title']}: data source not taken from the dashboard variable"
            )


async def test_prometheus_loads_the_config_scrapes_the_demo_and_accepts_the_dashboard(
    tmp_path: Path,
) -> None:
    net = create_network(tmp_path / "net", now=NOW)
    ports = write_gateway_configs(net, kafka=None, prefix="lvv.v1")
    dashboard = json.loads(DASHBOARD.read_text())
    _check_dashboard_shape(dashboard)
    datasource_uid = re.search(r"^\s*uid:\s*(\S+)\s*$", DATASOURCE.read_text(), re.MULTILINE)
    assert datasource_uid and datasource_uid.group(1) == "prometheus"
    provider = DASHBOARD_PROVIDER.read_text()
    assert "type: file" in provider and "/var/lib/grafana/dashboards/lvv" in provider

    async with prometheus(CONFIG, tmp_path) as server:
        targets = await server.targets(count=len(ports) + 1)
        gateways = {
            t["labels"]["party"]: t["labels"]["instance"]
            for t in targets
            if t["labels"]["job"] == "lvv-gateway"
        }
        assert gateways == {party: f"127.0.0.1:{port}" for party, port in ports.items()}
        assert all(
            t["scrapeUrl"] == f"http://{t['labels']['instance']}/metrics" for t in targets
        ), "every target is scraped at /metrics"
        verifiers = [
            t["labels"]["instance"] for t in targets if t["labels"]["job"] == "lvv-verifier"
        ]
        assert verifiers == [VERIFIER_TARGET]

        groups = (await server.api("rules", type="alert"))["groups"]
        loaded = {rule["name"] for group in groups for rule in group["rules"]}
        assert loaded == set(_alert_names(ALERTS.read_text()))

        refused = []
        for title, expr in _queries(dashboard):
            response = await server.http.get(
                "/api/v1/query", params={"query": _grafana_to_promql(expr)}
            )
            if response.json()["status"] != "success":
                refused.append(f"{title}: {expr}: {response.json().get('error')}")
        assert refused == [], "dashboard queries Prometheus refuses:\n" + "\n".join(refused)


# --- end to end: a real Prometheus scrapes a real gateway -------------------------------------


class _Server(uvicorn.Server):
    """uvicorn without its signal handlers: the test runner keeps its own."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


@contextlib.asynccontextmanager
async def gateway_api(folder: Path) -> AsyncIterator[tuple[Gateway, int]]:
    """IND's gateway on the embedded log, its HTTP API with its metrics on a free port."""
    net = Net()
    log = EmbeddedTransport(folder / "log.db")
    await log.ensure_topics([TopicSpec(inbox(p)) for p in net.directory.parties])
    observer = PrometheusObserver(IND)
    gateway = Gateway(
        keys=net.keys(IND), directory=net.directory, transport=log,
        store=GatewayStore(folder / "ind.db", content_key=CONTENT_KEY), clock=lambda: NOW, observer=observer,
    )  # fmt: skip
    app = create_app(gateway, token=TOKEN, metrics=observer.page)
    server = _Server(
        uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="off")
    )
    task: asyncio.Task[None] | None = None
    try:
        await gateway.start()
        task = asyncio.create_task(server.serve())
        await eventually(
            lambda: server.started or task.done(), "uvicorn to start", timeout_s=START_S
        )
        assert server.started, f"uvicorn did not start: {task.exception()}"
        yield gateway, server.servers[0].sockets[0].getsockname()[1]
    finally:
        server.should_exit = True
        if task is not None:
            await task
        await gateway.close()
        gateway.store.close()
        await log.close()


def _scraping(config_text: str, party: str, port: int) -> str:
    """The deploy config, with ``party``'s target at ``port`` and a 1 s scrape interval."""
    text, n = re.subn(
        rf'targets: \["127\.0\.0\.1:\d+"\](\s+labels: \{{party: {re.escape(party)}\}})',
        rf'targets: ["127.0.0.1:{port}"]\1',
        config_text,
    )
    assert n == 1, f"prometheus.yml: no single static target for {party}"
    for key, value in (("scrape_interval", "1s"), ("scrape_timeout", "1s")):
        text, n = re.subn(rf"^(\s*{key}:) \S+", rf"\1 {value}", text, flags=re.MULTILINE)
        assert n == 1, f"prometheus.yml: no single global {key}"
    return text


async def test_a_real_prometheus_scrapes_what_a_real_gateway_counted(tmp_path: Path) -> None:
    async with gateway_api(tmp_path) as (_, port):
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as api:
            sent = await api.post(
                "/v1/messages",
                json={
                    "type": "DossierDelivered",
                    "recipients": [MUNI, NGO],
                    "message": json.loads(example("DossierDelivered").model_dump_json()),
                },
                headers={"Authorization": f"Bearer {TOKEN}"},
            )
            assert sent.status_code == 202, sent.text

        config = tmp_path / "prometheus.yml"
        config.write_text(_scraping(CONFIG.read_text(), IND, port))
        shutil.copy(ALERTS, tmp_path / "alerts.yml")
        async with prometheus(config, tmp_path) as server:
            query = f'lvv_messages_sent_total{{job="lvv-gateway", instance="127.0.0.1:{port}"}}'
            targets: list[object] = []  # what Prometheus scrapes, while it has not scraped it

            async def scraped() -> list[dict[str, Any]]:
                found: list[dict[str, Any]] = (await server.api("query", query=query))["result"]
                targets[:] = [] if found else [await server.api("targets")]
                return found

            result = await eventually(scraped, lambda: f"{query}; targets: {targets}",
                                      timeout_s=SCRAPED_S, every_s=0.2)  # fmt: skip
            up = (await server.api("query", query=f'up{{instance="127.0.0.1:{port}"}}'))["result"]

    (sample,) = result
    assert sample["metric"] == {
        "__name__": "lvv_messages_sent_total",
        "job": "lvv-gateway",
        "instance": f"127.0.0.1:{port}",
        "party": IND,  # the gateway's own label, kept (honor_labels), no exported_party
        "type": "DossierDelivered",
    }
    assert float(sample["value"][1]) == 2  # one per recipient
    (target,) = up
    assert target["metric"]["party"] == IND  # the target label names the party on `up`
    assert target["value"][1] == "1"
