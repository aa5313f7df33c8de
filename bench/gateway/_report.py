"""The results document (plain dicts, as written to JSON) as Markdown: the issue's targets,
where each case saturates, and per phase its rates, latencies and costs per message."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from bench._tables import num, table, verdict

Doc = dict[str, Any]
Row = list[str]

TARGET_CASE = {"transport": "kafka", "recipients": 1}
TARGET_RATE = 200.0
TARGET_SUSTAINED_PER_S = 500.0
TARGET_E2E_P99_MS = 100.0
TARGET_CPU_US = 1500.0


def _who(c: Doc) -> Row:
    return [c["case"]["transport"], str(c["case"]["recipients"])]


def _receivers(c: Doc, phase: Doc, key: str) -> float | None:
    """The mean of ``key`` over the case's receiving gateways."""
    values = [phase["gateways"][p][key] for p in c["case"]["receivers"]]
    known = [v for v in values if v is not None]
    return sum(known) / len(known) if known else None


def _ms(figures: Doc, key: str) -> str:
    return num(figures.get(key), 1)


def _kept(phase: Doc) -> str:
    return {True: "yes", False: "**no**", None: ""}[phase["kept_up"]]


def _drain(phase: Doc) -> str:
    """How long the last messages took after the load; a drain cut short leaves a backlog to
    the next phase, and latencies without the copies still missing."""
    took = num(phase["drain_s"], 1)
    if phase["drained"]:
        return took
    return f"{took}, not drained ({num(phase['copies_missing'])} copies of the window missing)"


def rates(doc: Doc) -> str:
    headers = ["transport", "rcpt", "load", "sent msg/s", "delivered msg/s", "acked msg/s",
               "API p50 ms", "API p99 ms", "e2e p50 ms", "e2e p99 ms", "kept up",
               "not offered", "errors", "drain s", "load avg"]  # fmt: skip
    rows = []
    for c in doc["cases"]:
        for p in c["phases"]:
            api, e2e = p["api_latency_ms"], p["e2e_latency_ms"]
            rows.append([*_who(c), p["load"], num(p["sent_per_s"]), num(p["delivered_per_s"]),
                         num(p["acked_per_s"]), _ms(api, "p50"), _ms(api, "p99"), _ms(e2e, "p50"),
                         _ms(e2e, "p99"), _kept(p), num(p["not_offered"]),
                         num(sum(p["errors"].values())), _drain(p), num(p["load_avg"], 1)])  # fmt: skip
    return table(headers, rows)


def costs(doc: Doc) -> str:
    headers = ["transport", "rcpt", "load", "sender CPU µs/msg", "receiver CPU µs/msg",
               "sender fsyncs/msg", "receiver fsyncs/msg", "sender disk KiB/msg",
               "receiver disk KiB/msg", "driver CPU µs/msg"]  # fmt: skip
    rows = []
    for c in doc["cases"]:
        sender = c["case"]["sender"]
        for p in c["phases"]:
            s = p["gateways"][sender]
            kib = s["storage_bytes_per_msg"]
            rkib = _receivers(c, p, "storage_bytes_per_msg")
            rows.append([*_who(c), p["load"], num(s["cpu_us_per_msg"]),
                         num(_receivers(c, p, "cpu_us_per_msg")), num(s["fsyncs_per_msg"], 2),
                         num(_receivers(c, p, "fsyncs_per_msg"), 2),
                         num(None if kib is None else kib / 1024, 1),
                         num(None if rkib is None else rkib / 1024, 1),
                         num(p["driver_cpu_us_per_msg"])])  # fmt: skip
    return table(headers, rows)


def saturations(doc: Doc) -> str:
    headers = ["transport", "rcpt", "kept up with, up to msg/s", "falls behind at msg/s",
               "most sustained msg/s (in)"]  # fmt: skip
    rows = []
    for c in doc["cases"]:
        s = c["saturation"]
        behind = s["falls_behind_at_per_s"]
        rows.append([*_who(c), num(s["kept_up_to_per_s"]) or "none",
                     num(behind) if behind is not None else "not within the rates offered",
                     f"{num(s['sustained_per_s'])} ({s['sustained_in']})"])  # fmt: skip
    return table(headers, rows)


def _target_case(doc: Doc) -> Doc | None:
    cases: list[Doc] = doc["cases"]
    return next((c for c in cases if all(c["case"][k] == v for k, v in TARGET_CASE.items())), None)


def _at_rate(c: Doc, rate: float) -> Doc | None:
    phases: list[Doc] = c["phases"]
    return next((p for p in phases if p["offered_per_s"] == rate), None)


def targets(doc: Doc) -> str:
    c = _target_case(doc)
    if c is None:
        return "No case of the targets (Kafka, 1 recipient) in this run."
    rows = []
    sustained = c["saturation"]["sustained_per_s"]
    rows.append(["sustained msg/s through the pair (delivered and acknowledged)",
                 f"{num(sustained)} ({c['saturation']['sustained_in']})",
                 f"≥ {num(TARGET_SUSTAINED_PER_S)}",
                 verdict(sustained is not None and sustained >= TARGET_SUSTAINED_PER_S)])  # fmt: skip
    paced = _at_rate(c, TARGET_RATE)
    if paced is None:
        rows.append([f"(no phase at {num(TARGET_RATE)} msg/s in this run)", "", "", "not measured"])
        return _targets_table(rows)
    p99 = paced["e2e_latency_ms"].get("p99")
    rows.append([f"end-to-end p99 at {num(TARGET_RATE)} msg/s offered (acked msg/s)",
                 f"{num(p99, 1)} ms ({num(paced['acked_per_s'])})", f"≤ {num(TARGET_E2E_P99_MS)} ms",
                 verdict(p99 is not None and p99 <= TARGET_E2E_P99_MS and bool(paced["kept_up"]))])  # fmt: skip
    for role, party in (("sending", c["case"]["sender"]), ("receiving", c["case"]["receivers"][0])):
        cpu = paced["gateways"][party]["cpu_us_per_msg"]
        rows.append([f"CPU per message, {role} gateway ({party}), at {num(TARGET_RATE)} msg/s"
                     " offered (acked msg/s)", f"{num(cpu)} µs ({num(paced['acked_per_s'])})",
                     f"≤ {num(TARGET_CPU_US)} µs",
                     verdict(cpu is not None and cpu <= TARGET_CPU_US)])  # fmt: skip
    return _targets_table(rows)


def _targets_table(rows: Sequence[Row]) -> str:
    return table(["target (Kafka, one broker, 4 KiB, 1 recipient)", "measured", "required",
                  "result"], rows)  # fmt: skip


def _header(doc: Doc) -> str:
    m, s = doc["machine"], doc["settings"]
    git = m["git"]
    commit = (git["commit"] or "unknown")[:10] + (" (modified)" if git["modified"] else "")
    before, after = m["load_average"], doc["load_average_after"]
    return (
        f"{m['cpus']} CPUs ({m['cpu_model']}); load average (1, 5, 15 min) {before} before,"
        f" {after} after, up to {doc['max_phase_load']} at the end of a phase; Python"
        f" {m['python']}, aiokafka {m['aiokafka']}; commit {commit}; {m['date']}; took"
        f" {doc['duration_s']:.0f} s.\n"
        f"Kafka: {doc['broker']}. Nothing pinned: broker, gateways and driver share the CPUs.\n"
        f"Each phase: {s['warmup_s']} s warm-up, then {s['seconds']} s measured, then a drain."
        f" A `DossierDelivered` of {s['payload_bytes']} B (Avro) per POST, each with its own"
        f" case id; {s['connections']} keep-alive connections; flat out: {s['flat_out_senders']}"
        f" senders, at most {s['flat_out_window']} messages in flight. Back office: GET"
        f" /v1/inbox?limit=500, an ack per message, {s['poll_idle_ms']} ms pause after an empty"
        f" read (polling, not the long-poll: comparable with earlier runs).\n"
        f"Latencies from each message's due time; end to end = until its back office first"
        f" sees it. At a rate the pair cannot take, at most {s['max_waiting']} POSTs wait for a"
        f" connection and later ones are skipped (not offered): latencies there are those of"
        f" that full queue. CPU: /proc/PID/stat utime+stime over the window ÷ the process's messages"
        f" (the sender's: POSTs answered; a receiver's: copies it delivered). fsyncs:"
        f" {doc['fsyncs_measured_by']}. Disk: /proc/PID/io write_bytes. Receiver columns are"
        f" the mean over the case's receiving gateways."
    )


SECTIONS: tuple[tuple[str, Callable[[Doc], str]], ...] = (
    ("Targets", targets),
    ("Where the pair saturates", saturations),
    ("Rates and latencies per phase", rates),
    ("Cost per message per phase", costs),
)


def markdown(doc: Doc) -> str:
    parts = ["# `make bench-gateway`: the user's path through gateway processes", _header(doc)]
    for title, render in SECTIONS:
        parts += [f"## {title}", render(doc)]
    return "\n\n".join(parts) + "\n"
