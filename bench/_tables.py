"""The results document (plain dicts, as written to JSON) as Markdown: what is printed and
what `latest.md` holds are the same text."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

Doc = dict[str, Any]
Row = list[str]

KEM_NAMES = {"X25519": "X25519", "MLKEM768_X25519": "ML-KEM-768+X25519"}


def num(value: float | None, digits: int = 0) -> str:
    return "" if value is None else f"{value:,.{digits}f}"


def _size(n: int) -> str:
    return f"{n // 1024} KiB" if n % 1024 == 0 else f"{n} B"


def table(headers: Sequence[str], rows: Sequence[Row]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def _who(c: Doc) -> Row:
    case = c["case"]
    fmt = case["format_version"]
    return [
        case["transport"],
        case["kind"],
        KEM_NAMES.get(case["kem"], case["kem"]),
        str(case["recipients"]),
        _size(case["payload_bytes"]),
        "" if fmt is None else str(fmt),
        num(case["envelope_bytes"]),
    ]


WHO = ["transport", "kind", "KEM", "rcpt", "payload", "fmt", "record B"]


def _phase(c: Doc, name: str, *keys: str) -> Row:
    phase = c["phases"][name]
    out = []
    for key in keys:
        if key.startswith("p"):
            out.append(num((phase["latency_ms"] or {}).get(key), 1))
        else:
            out.append(num(phase[key], 1 if key == "mb_per_s" else 0))
    return out


def throughput(doc: Doc) -> str:
    headers = [*WHO, "produce msg/s", "MB/s", "CPU µs/msg", "consume msg/s", "MB/s",
               "CPU µs/msg", "sealed/raw produce", "sealed/raw consume"]  # fmt: skip
    rows = []
    for c in doc["cases"]:
        ratio = c.get("ratio") or {}
        rows.append(
            _who(c)
            + _phase(c, "produce", "msg_per_s", "mb_per_s", "cpu_us_per_msg")
            + _phase(c, "consume", "msg_per_s", "mb_per_s", "cpu_us_per_msg")
            + [num(ratio.get("produce"), 2), num(ratio.get("consume"), 2)]
        )
    return table(headers, rows)


def latency(doc: Doc) -> str:
    rate = num(doc["settings"]["paced_rate"])
    headers = [*WHO, "saturated msg/s", "p50 ms", "p95 ms", "p99 ms", "CPU µs/msg",
               f"@{rate}/s: msg/s", "p50 ms", "p95 ms", "p99 ms", "CPU µs/msg"]  # fmt: skip
    keys = ("msg_per_s", "p50", "p95", "p99", "cpu_us_per_msg")
    rows = [
        _who(c) + _phase(c, "saturation", *keys) + _phase(c, "paced", *keys) for c in doc["cases"]
    ]
    return table(headers, rows)


def _envelope_only(x: Doc) -> tuple[float, float]:
    """Seal and open without the payload's model ↔ Avro steps (timed on their own): what
    the envelope itself costs — header, keys, AEAD, signature or proof, checks."""
    return max(x["seal_us"] - x["encode_us"], 0.0), max(x["open_us"] - x["decode_us"], 0.0)


def cpu(doc: Doc) -> str:
    headers = [*WHO, "model→Avro", "seal (incl. →Avro)", "seal, envelope only",
               "Avro→model", "open (incl. →model)", "open, envelope only",
               "seal batch", "open batch"]  # fmt: skip
    rows = []
    for c in doc["cases"]:
        if (x := c.get("cpu")) is not None:
            seal_only, open_only = _envelope_only(x)
            figures = [x["encode_us"], x["seal_us"], seal_only, x["decode_us"], x["open_us"],
                       open_only]  # fmt: skip
            batches = [x["seal_batch"], x["open_batch"]]
            rows.append([*_who(c), *map(num, figures), *(num(b, 1) for b in batches)])
    return table(headers, rows)


TARGET_CASE = {"kem": "X25519", "recipients": 3, "payload_bytes": 4096}
"""The issue's targets are set at 4 KiB to three recipients (X25519)."""


def _target_cases(doc: Doc) -> list[Doc]:
    return [
        c
        for c in doc["cases"]
        if c["case"]["kind"] == "sealed"
        and c["case"]["transport"] == "kafka"
        and all(c["case"][k] == v for k, v in TARGET_CASE.items())
    ]


def verdict(ok: bool) -> str:
    return "met" if ok else "NOT MET"


def targets(doc: Doc) -> str:
    rate = doc["settings"]["paced_rate"]
    rows = []
    for c in _target_cases(doc):
        fmt = f"format {c['case']['format_version']}"
        ratio, x = c.get("ratio") or {}, c["cpu"]
        seal_only, open_only = _envelope_only(x)
        paced = c["phases"]["paced"]
        p99 = (paced["latency_ms"] or {}).get("p99")
        kept_up = paced["msg_per_s"] >= 0.95 * rate
        for direction in ("produce", "consume"):
            value = ratio.get(direction)
            rows.append([fmt, f"sealed/raw {direction} msg/s", num(value, 2), "≥ 0.80",
                         verdict(value is not None and value >= 0.8)])  # fmt: skip
        for step, whole, only in (("seal", x["seal_us"], seal_only),
                                  ("open", x["open_us"], open_only)):  # fmt: skip
            rows.append([fmt, f"{step} CPU µs/msg, amortised (envelope only)",
                         f"{num(whole)} ({num(only)})", "≤ 30",
                         verdict(whole <= 30)])  # fmt: skip
        rows.append([fmt, f"end-to-end p99 at {num(rate)} msg/s (achieved msg/s)",
                     f"{num(p99, 1)} ms ({num(paced['msg_per_s'])})", "≤ 20 ms",
                     verdict(p99 is not None and p99 <= 20 and kept_up)])  # fmt: skip
    if not rows:
        return "No case of the targets (4 KiB, 3 recipients, X25519, Kafka) in this run."
    return table(["envelope", "target (4 KiB, 3 recipients, X25519, Kafka)", "measured",
                   "required", "result"], rows)  # fmt: skip


def _header(doc: Doc) -> str:
    m, s = doc["machine"], doc["settings"]
    git = m["git"]
    commit = (git["commit"] or "unknown")[:10] + (" (modified)" if git["modified"] else "")
    return (
        f"{m['cpus']} CPUs ({m['cpu_model']}), load {m['load_average'][0]} at start; Python"
        f" {m['python']}, aiokafka {m['aiokafka']}, cryptography {m['cryptography']}, fastavro"
        f" {m['fastavro']}; commit {commit}; {m['date']}; took {doc['duration_s']:.0f} s.\n"
        f"Pinning: {doc['pinning']}. Kafka: {doc['broker']}.\n"
        f"One topic of {s['partitions']} partition per case; {s['seconds']} s per phase;"
        f" seal batches of up to {s['seal_batch_max']}; saturation window"
        f" {s['saturation_window']} messages; MB = 10⁶ bytes of record values."
    )


SECTIONS: tuple[tuple[str, Callable[[Doc], str]], ...] = (
    ("Targets", targets),
    ("Throughput: produce alone, then consume the backlog alone", throughput),
    (
        "End-to-end latency (arrival → delivered), at saturation and at a fixed offered rate",
        latency,
    ),
    (
        "Where the CPU goes, µs per message (sealed cases; seal/open amortised over their batches)",
        cpu,
    ),
)


def markdown(doc: Doc) -> str:
    parts = ["# `make bench`: sealed messaging against raw Kafka", _header(doc)]
    if doc["skipped"]:
        parts.append("Skipped: " + "; ".join(doc["skipped"]) + ".")
    for title, render in SECTIONS:
        parts += [f"## {title}", render(doc)]
    return "\n\n".join(parts) + "\n"
