"""`lvvx audit verify|follow|prove|check-proof` and `lvvx cases`: DT&V's oversight tools.

They read the audit topic of a network — by default the one `lvvx demo` left in `--data`
(its run.json says which transport and topic prefix) — and check it against the signed key
directory, trusting nothing but the pinned anchor key.
"""

from __future__ import annotations

import asyncio
import json
import signal
import sys
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from broker._errors import LocalError

console = Console()
_FOLDER = click.Path(file_okay=False, path_type=Path)
_FILE = click.Path(dir_okay=False, path_type=Path)


def _stream_options(f: Any) -> Any:
    f = click.option("--data", type=_FOLDER, default=".lvvx", show_default=True,
                     help="A network folder (`lvvx demo` leaves one): its run.json, log and directory.")(f)  # fmt: skip
    f = click.option("--kafka", metavar="HOST:PORT", help="Read the audit topic from this Kafka.")(
        f
    )
    f = click.option("--prefix", help="Topic prefix [default: from run.json, else lvv.v1].")(f)
    f = click.option(
        "--directory",
        "directory_file",
        type=_FILE,
        help="Signed directory [default: DATA/directory.bin].",
    )(f)
    f = click.option(
        "--anchor",
        "anchor_folder",
        type=_FOLDER,
        help="Folder with anchor.public.json [default: DATA/keys].",
    )(f)
    f = click.option("--tls", "pki_folder", type=_FOLDER,
                     help="On a secured Kafka: the PKI folder [default: from run.json].")(f)  # fmt: skip
    f = click.option("--as", "identity", default="dtv", show_default=True,
                     help="Whose certificate reads the audit topics (DT&V's may, and admin's).")(f)  # fmt: skip
    return f


def _run_info(data: Path, kafka: str | None, prefix: str | None,
              pki_folder: Path | None) -> tuple[str | None, str, Path | None]:  # fmt: skip
    """Transport, prefix and PKI: as given, else as the demo's run.json says."""
    run = json.loads((data / "run.json").read_text()) if (data / "run.json").exists() else {}
    tls = pki_folder or (Path(run["tls"]) if run.get("tls") else None)
    return kafka or run.get("kafka"), prefix or run.get("prefix") or "lvv.v1", tls


async def _read_stream(data: Path, kafka: str | None, prefix: str | None, directory_file: Path | None,
                       anchor_folder: Path | None, pki_folder: Path | None,
                       identity: str) -> tuple[list[Any], Any, str]:  # fmt: skip
    from broker.audit import read_audit
    from broker.crypto import AnchorKey, KeyStore, load_directory
    from broker.transport import open_transport

    kafka, prefix, tls = _run_info(data, kafka, prefix, pki_folder)
    if not kafka and not (data / "log.db").exists():
        raise LocalError(
            f"no embedded log in {data}/ (run `lvvx demo` first, or give --kafka)", reason="NO_LOG"
        )
    anchor = AnchorKey.from_record(KeyStore(anchor_folder or data / "keys").anchor_public())
    directory = load_directory((directory_file or data / "directory.bin").read_bytes(), anchor=anchor,
                               now=datetime.now(UTC))  # fmt: skip
    transport = open_transport(kafka, data, tls=tls, identity=identity)
    try:
        records = await read_audit(transport, directory, prefix)
    finally:
        await transport.close()
    return records, directory, prefix


@click.group()
def audit() -> None:
    """Verify the audit stream, follow it live, prove a message's events."""


@audit.command("verify")
@_stream_options
@click.option(
    "--grace", default=60.0, show_default=True, help="Seconds a message may take to arrive."
)
@click.option("--json", "as_json", is_flag=True)
def audit_verify(data: Path, kafka: str | None, prefix: str | None, directory_file: Path | None,
                 anchor_folder: Path | None, pki_folder: Path | None, identity: str, grace: float, as_json: bool) -> None:  # fmt: skip
    """Check every gateway's chain and that every message is accounted for; exit 0 only when clean."""
    from broker.audit._verify import verify_stream

    records, directory, _ = asyncio.run(
        _read_stream(data, kafka, prefix, directory_file, anchor_folder, pki_folder, identity)
    )
    report = verify_stream(
        records, directory, now=datetime.now(UTC), grace=timedelta(seconds=grace)
    )
    if as_json:
        click.echo(json.dumps(report.as_json(), indent=2))
    else:
        table = Table("gateway", "events", "checkpoints", "chain", title="Audit chains")
        for gateway, chain in sorted(report.chains.items()):
            table.add_row(
                gateway,
                str(len(chain.events)),
                str(chain.checkpoints),
                "ok" if chain.ok else "[red]BROKEN[/red]",
            )
        console.print(table)
        console.print(f"messages: {report.sent} sent, {report.accounted} accounted for at every recipient, "
                      f"{report.pending} still in flight")  # fmt: skip
        for issue in report.issues:
            colour = "yellow" if issue.notice else "red"
            console.print(f"[{colour}]{issue.kind.value}[/{colour}] {issue.gateway or ''} seq {issue.seq} "
                          f"{issue.message_id or ''}: {issue.detail}", highlight=False)  # fmt: skip
        notices = len(report.issues) - len(report.errors)
        also = f" ({notices} notices)" if notices else ""
        console.print(
            f"[green]clean[/green]{also}"
            if report.clean
            else f"[red]{len(report.errors)} findings[/red]{also}"
        )
    sys.exit(0 if report.clean else 1)


@audit.command("follow")
@_stream_options
@click.option(
    "--metrics-port",
    type=int,
    default=9108,
    show_default=True,
    help="Prometheus metrics here (0: none).",
)
@click.option("--grace", default=60.0, show_default=True)
def audit_follow(data: Path, kafka: str | None, prefix: str | None, directory_file: Path | None,
                 anchor_folder: Path | None, pki_folder: Path | None, identity: str, metrics_port: int, grace: float) -> None:  # fmt: skip
    """Verify the stream as it grows; print each finding once; serve metrics. Ctrl-C stops."""
    from prometheus_client import CollectorRegistry, start_http_server

    from broker.audit import audit_topics
    from broker.audit._follow import FollowMetrics, follow
    from broker.crypto import AnchorKey, KeyStore, load_directory
    from broker.transport import open_transport

    kafka, prefix, tls = _run_info(data, kafka, prefix, pki_folder)
    anchor = AnchorKey.from_record(KeyStore(anchor_folder or data / "keys").anchor_public())
    directory = load_directory((directory_file or data / "directory.bin").read_bytes(), anchor=anchor,
                               now=datetime.now(UTC))  # fmt: skip
    registry = CollectorRegistry()
    metrics = FollowMetrics(registry)
    if metrics_port:
        start_http_server(metrics_port, registry=registry)
        console.print(f"metrics on http://0.0.0.0:{metrics_port}/metrics")

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        transport = open_transport(kafka, data, tls=tls, identity=identity)
        try:
            await follow(transport, audit_topics(directory, prefix), directory, stop=stop, metrics=metrics,
                         grace=timedelta(seconds=grace),
                         on_issue=lambda i: console.print(f"[red]{i.kind.value}[/red] {i.gateway} {i.seq} "
                                                          f"{i.message_id or ''}: {i.detail}", highlight=False))  # fmt: skip
        finally:
            await transport.close()

    asyncio.run(main())


@audit.command("prove")
@click.argument("message_id", type=click.UUID)
@_stream_options
@click.option("--out", type=_FILE, help="Write the proof here instead of printing it.")
def audit_prove(message_id: uuid.UUID, data: Path, kafka: str | None, prefix: str | None,
                directory_file: Path | None, anchor_folder: Path | None, pki_folder: Path | None, identity: str, out: Path | None) -> None:  # fmt: skip
    """Inclusion proofs of MESSAGE_ID's events under signed checkpoints (JSON)."""
    from broker.audit._prove import prove
    from broker.audit._verify import verify_stream

    records, directory, _ = asyncio.run(
        _read_stream(data, kafka, prefix, directory_file, anchor_folder, pki_folder, identity)
    )
    proof = prove(verify_stream(records, directory, now=datetime.now(UTC)), message_id)
    if not proof["proofs"] and not proof["not_yet_covered"]:
        raise LocalError(f"no audit event mentions message {message_id}", reason="NOT_FOUND")
    text = json.dumps(proof, indent=2)
    if out:
        out.write_text(text + "\n")
        console.print(f"{len(proof['proofs'])} proofs written to {out}")
    else:
        click.echo(text)


@audit.command("check-proof")
@click.argument("proof_file", type=_FILE)
@click.option("--directory", "directory_file", type=_FILE, required=True)
@click.option("--anchor", "anchor_folder", type=_FOLDER, required=True)
def audit_check_proof(proof_file: Path, directory_file: Path, anchor_folder: Path) -> None:
    """Check a proof with the gateways' public keys from a verified directory."""
    from broker._merkle import ProofError
    from broker.audit._prove import check_proof
    from broker.crypto import AnchorKey, KeyStore, load_directory
    from broker.crypto._keys import signing_public_key

    anchor = AnchorKey.from_record(KeyStore(anchor_folder).anchor_public())
    directory = load_directory(directory_file.read_bytes(), anchor=anchor, now=datetime.now(UTC))
    document = json.loads(proof_file.read_text())
    failures = 0
    for proof in document["proofs"]:
        party = directory.parties.get(proof.get("gateway", ""))
        keys = [signing_public_key(k.public_key) for k in party.signing_keys] if party else []
        try:
            check_proof(proof, keys, uuid.UUID(document["message_id"]))
            console.print(f"[green]valid[/green] {proof['gateway']} {proof['action']} seq {proof['seq']} "
                          f"under checkpoint of {proof['checkpoint']['tree_size']} events")  # fmt: skip
        except ProofError as exc:
            failures += 1
            console.print(
                f"[red]INVALID[/red] {proof.get('gateway')} seq {proof.get('seq')}: {exc}"
            )
    sys.exit(1 if failures or not document["proofs"] else 0)


@click.command("cases")
@_stream_options
@click.option("--json", "as_json", is_flag=True)
def cases(data: Path, kafka: str | None, prefix: str | None, directory_file: Path | None,
          anchor_folder: Path | None, pki_folder: Path | None, identity: str, as_json: bool) -> None:  # fmt: skip
    """The case monitor: each case's step, rest period and escalations, from audit metadata."""
    from broker.audit._cases import case_views, summary
    from broker.audit._verify import verify_stream

    records, directory, _ = asyncio.run(
        _read_stream(data, kafka, prefix, directory_file, anchor_folder, pki_folder, identity)
    )
    now = datetime.now(UTC)
    views = case_views(verify_stream(records, directory, now=now))
    if as_json:
        click.echo(
            json.dumps(
                {"summary": summary(views, now), "cases": [v.as_json(now) for v in views]}, indent=2
            )
        )
        return
    table = Table(
        "case",
        "step",
        "since",
        "rest period ends",
        "overdue",
        "escalation",
        "messages",
        title="Cases",
    )
    for v in views:
        s = v.state
        table.add_row(
            str(v.case_id)[:8], s.step.value.lower(), s.entered_step_at.strftime("%Y-%m-%d %H:%M:%S") if s.entered_step_at else "",
            s.rest_period_ends.strftime("%Y-%m-%d") if s.rest_period_ends else "",
            "yes" if s.rest_period_overdue(now) else "", "open" if s.open_escalation else "", str(v.messages),
        )  # fmt: skip
    console.print(table)
    console.print(summary(views, now))
