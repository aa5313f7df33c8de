"""The fault run's summary: printed, and written to tests/faults/results/ as JSON and
Markdown (``latest.*``, and a timestamped copy git ignores)."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tests.faults.history import AnomalyKind, History, Verdict
from tests.faults.scenarios import FaultLog

RESULTS = Path(__file__).resolve().parent / "results"


def summary(history: History, verdict: Verdict, logs: list[FaultLog], *, audit: dict[str, Any],
            gateway_exits: list[str], traffic_errors: Counter[str], settings: dict[str, Any],
            runtime_s: float) -> dict[str, Any]:  # fmt: skip
    """Everything a reader of the run needs, as one JSON-able dict."""
    per_scenario = []
    for log in logs:
        sends = Counter(s.outcome.value for s in history.sends if s.scenario == log.scenario)
        found = Counter(a.kind.value for a in verdict.anomalies if a.scenario == log.scenario)
        per_scenario.append({
            "scenario": log.scenario,
            "faults": [f.__dict__ for f in log.faults],
            "seconds": round(log.ended - log.started, 1) if log.ended else None,
            "sends": dict(sends),
            "messages": sum(sends.values()),
            "anomalies": {k.value: found.get(k.value, 0) for k in AnomalyKind},
        })  # fmt: skip
    counts = verdict.counts
    return {
        "ok": verdict.ok and audit.get("clean", False) and not gateway_exits,
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "runtime_s": round(runtime_s, 1),
        "settings": settings,
        "faults_injected": sum(len(log.faults) for log in logs),
        "messages": len(history.sends),
        "lost": counts.get(AnomalyKind.LOST.value, 0),
        "duplicated": counts.get(AnomalyKind.DUPLICATE.value, 0),
        "order_violations": counts.get(AnomalyKind.ORDER.value, 0),
        "history": verdict.as_json(),
        "audit": audit,
        "gateway_exits": gateway_exits,
        "traffic_errors": dict(traffic_errors.most_common(20)),
        "scenarios": per_scenario,
    }


def markdown(s: dict[str, Any]) -> str:
    h = s["history"]
    lines = [
        f"# Fault injection run — {'PASS' if s['ok'] else 'FAIL'}",
        "",
        f"{s['when']}, {s['runtime_s']} s; settings {json.dumps(s['settings'])}",
        "",
        f"- faults injected: {s['faults_injected']}",
        f"- messages sent: {s['messages']} (by outcome: {h['sends']}); deliveries {h['deliveries']}, "
        f"of unknown-outcome sends {h['unknown_delivered']}",
        f"- lost: {s['lost']}, duplicated: {s['duplicated']}, order violations: {s['order_violations']}",
        f"- all anomalies: {h['anomalies']}",
        f"- dead letters: {h['dead_letters'] or 'none'}",
        f"- audit verifier: {'clean' if s['audit'].get('clean') else 'NOT CLEAN'} "
        f"({s['audit'].get('messages', {})}, {len(s['audit'].get('findings', []))} findings)",
        f"- gateway processes that exited: {s['gateway_exits'] or 'none'}",
        "",
        "| scenario | faults | seconds | messages | sends by outcome | lost | duplicated | order |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for sc in s["scenarios"]:
        a = sc["anomalies"]
        lines.append(
            f"| {sc['scenario']} | {len(sc['faults'])} | {sc['seconds']} | {sc['messages']} | "
            f"{sc['sends']} | {a['lost']} | {a['duplicate']} | {a['order']} |"
        )
    lines += ["", "Faults:", ""]
    for sc in s["scenarios"]:
        lines += [f"- {sc['scenario']} +{f['at_s']} s: {f['action']} ({f['took_s']} s)"
                  for f in sc["faults"]]  # fmt: skip
    if h["examples"]:
        lines += ["", "Anomalies (examples):", ""]
        lines += [f"- {a['kind']} {a['scenario']} at {a['party']}: {a['message_id']} ({a['detail']})"
                  for a in h["examples"]]  # fmt: skip
    if s["traffic_errors"]:
        lines += ["", "Traffic errors (most frequent):", ""]
        lines += [f"- {k}: {n}" for k, n in s["traffic_errors"].items()]
    return "\n".join(lines) + "\n"


def dump_history(history: History, path: Path) -> None:
    """Every operation, one JSON object a line, to look into an anomaly after the run."""
    with path.open("w") as out:
        for kind, ops in (("send", history.sends), ("delivery", history.deliveries),
                          ("dead_letter", history.dead_letters)):  # fmt: skip
            for op in ops:
                out.write(json.dumps({"op": kind, **asdict(op)}, default=str) + "\n")


def write(s: dict[str, Any]) -> Path:
    """``latest.{json,md}`` and a timestamped JSON copy; the Markdown's path."""
    RESULTS.mkdir(exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    text = json.dumps(s, indent=2, default=str) + "\n"
    (RESULTS / f"{stamp}.json").write_text(text)
    (RESULTS / "latest.json").write_text(text)
    md = RESULTS / "latest.md"
    md.write_text(markdown(s))
    return md
