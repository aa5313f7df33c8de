"""`lvvx audit verify|follow|prove|check-proof|export`: DT&V's oversight tools.

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
from rich.markup import escape

from broker.crypto import AnchorKey, KeyStore
from broker.errors import LocalError
from cli._common import (
    FILE,
    FOLDER,
    Group,
    console,
    quiet_kafka_logs,
    read_directory,
    table,
)
from cli._stream import (
    followed_directory,
    read_stream,
    run_info,
    stream_directory,
    stream_options,
)


@click.group(cls=Group)
def audit() -> None:
    """Verify the audit stream, follow it live, prove a message's events."""


@audit.command("verify")
@stream_options
@click.option(
    "--grace", default=60.0, show_default=True, help="Seconds a message may take to arrive."
)
@click.option("--json", "as_json", is_flag=True)
def audit_verify(data: Path, kafka: str | None, prefix: str | None, directory_file: Path | None,
                 anchor_folder: Path | None, pki_folder: Path | None, identity: str, grace: float, as_json: bool) -> None:  # fmt: skip
    """Check every gateway's chain and that every message is accounted for; exit 0 only when clean."""
    from broker.audit import verify_stream

    records, directory, _ = asyncio.run(
        read_stream(data, kafka, prefix, directory_file, anchor_folder, pki_folder, identity)
    )
    report = verify_stream(
        records, directory, now=datetime.now(UTC), grace=timedelta(seconds=grace)
    )
    if as_json:
        click.echo(json.dumps(report.as_json(), indent=2))
    else:
        rows = [(gateway, str(len(chain.events)), str(chain.checkpoints),
                 "ok" if chain.ok else "[red]BROKEN[/red]") for gateway, chain in sorted(report.chains.items())]  # fmt: skip
        table("Audit chains", ("gateway", "events", "checkpoints", "chain"), rows)
        console.print(f"messages: {report.sent} sent, {report.accounted} accounted for at every recipient, "
                      f"{report.pending} still in flight")  # fmt: skip
        for issue in report.issues:
            console.print(_finding(issue), highlight=False)
        notices = len(report.issues) - len(report.errors)
        also = f" ({notices} notices)" if notices else ""
        console.print(
            f"[green]clean[/green]{also}"
            if report.clean
            else f"[red]{len(report.errors)} findings[/red]{also}"
        )
    sys.exit(0 if report.clean else 1)


@audit.command("follow")
@stream_options
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
    from broker.audit import audit_topics, follow
    from broker.audit.metrics import FollowMetrics, serve_follow_metrics
    from broker.transport import open_transport

    kafka, prefix, tls = run_info(data, kafka, prefix, pki_folder)
    stream_directory(data, directory_file, anchor_folder)  # a bad file fails before any I/O
    anchor = AnchorKey.from_record(KeyStore(anchor_folder or data / "keys").anchor_public())
    quiet_kafka_logs()
    metrics: FollowMetrics | None = None
    if metrics_port:
        metrics = serve_follow_metrics(metrics_port)
        console.print(f"metrics on http://0.0.0.0:{metrics_port}/metrics")

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        transport = open_transport(kafka, data, tls=tls, identity=identity)
        try:
            in_use, following = await followed_directory(transport, data, directory_file, anchor_folder,
                                                         prefix, anchor=anchor, stop=stop, party="verifier")  # fmt: skip
            console.print(
                f"following {len(in_use().parties)} audit topics; Ctrl-C stops", highlight=False
            )
            # the topics of each pass's directory: a party added while it runs is verified too
            await follow(transport, lambda d: audit_topics(d, prefix), in_use, stop=stop,
                         on_report=metrics.update if metrics else None, grace=timedelta(seconds=grace),
                         on_issue=lambda issue: console.print(_finding(issue), highlight=False),
                         on_resolved=lambda issue: console.print(_finding(issue, resolved=True), highlight=False))  # fmt: skip
            await _within(following, STOP_BUDGET_S)
        finally:
            await _within(asyncio.ensure_future(transport.close()), STOP_BUDGET_S)

    asyncio.run(main())


STOP_BUDGET_S = 0.3
"""What the directory feed and the transport get to close after the follower stopped (the
follower's own readers have `broker.audit._follow.CLOSE_BUDGET_S`): Ctrl-C stops it in 2 s."""


async def _within(task: asyncio.Future[Any], seconds: float) -> None:
    """``task`` done, or abandoned after ``seconds`` (a broker that does not say goodbye)."""
    done, _ = await asyncio.wait([task], timeout=seconds)
    if not done:
        task.cancel()
    elif not task.cancelled() and task.exception() is not None:
        raise task.exception()  # type: ignore[misc]


@audit.command("prove")
@click.argument("message_id", type=click.UUID)
@stream_options
@click.option("--out", type=FILE, help="Write the proof here instead of printing it.")
def audit_prove(message_id: uuid.UUID, data: Path, kafka: str | None, prefix: str | None,
                directory_file: Path | None, anchor_folder: Path | None, pki_folder: Path | None, identity: str, out: Path | None) -> None:  # fmt: skip
    """Inclusion proofs of MESSAGE_ID's events under signed checkpoints (JSON)."""
    from broker.audit import prove, verify_stream

    records, directory, _ = asyncio.run(
        read_stream(data, kafka, prefix, directory_file, anchor_folder, pki_folder, identity)
    )
    proof = prove(verify_stream(records, directory, now=datetime.now(UTC)), message_id)
    if not proof["proofs"] and not proof["not_yet_covered"]:
        raise LocalError(f"no audit event mentions message {message_id}", reason="NOT_FOUND")
    text = json.dumps(proof, indent=2)
    if out:
        out.write_text(text + "\n")
        console.print(f"{len(proof['proofs'])} proofs written to {escape(str(out))}")
    else:
        click.echo(text)


@audit.command("export")
@stream_options
@click.option("--format", "fmt", type=click.Choice(["ldv"]), default="ldv", show_default=True,
              help="ldv: Logboek Dataverwerkingen 1.0 records, one JSON object a line.")  # fmt: skip
@click.option("--register", "registers", multiple=True, metavar="PARTY=FILE",
              help="PARTY's register of processing activities (TOML); repeatable.")  # fmt: skip
@click.option("--registers", "registers_dir", type=FOLDER,
              help="A folder of registers, <party>.toml each [default: DATA/registers if there].")  # fmt: skip
@click.option("--party", "parties", multiple=True, help="Only this party's events; repeatable.")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path),
              help="Write the records here instead of printing them.")  # fmt: skip
def audit_export(data: Path, kafka: str | None, prefix: str | None, directory_file: Path | None,
                 anchor_folder: Path | None, pki_folder: Path | None, identity: str, fmt: str,
                 registers: tuple[str, ...], registers_dir: Path | None, parties: tuple[str, ...],
                 out: Path | None) -> None:  # fmt: skip
    """Each party's verified audit events as Logboek Dataverwerkingen records (JSON lines).

    A party's processing activities come from its register (--register, --registers), else
    from the default register shipped in the package. Only a stream that verifies is exported."""
    from broker.audit import Register, ldv_record, verify_stream

    del fmt  # one format so far
    records, directory, _ = asyncio.run(
        read_stream(data, kafka, prefix, directory_file, anchor_folder, pki_folder, identity)
    )
    report = verify_stream(records, directory, now=datetime.now(UTC))
    if report.errors:
        raise LocalError("the audit stream does not verify (see `lvvx audit verify`): "
                         "nothing exported", reason="AUDIT_INVALID")  # fmt: skip
    folder = registers_dir or (data / "registers" if (data / "registers").is_dir() else None)
    given = dict(_party_file(r) for r in registers)
    default = Register.load()
    lines = []
    for party in sorted(report.chains):
        if parties and party not in parties:
            continue
        path = given.get(party) or (folder / f"{party}.toml" if folder else None)
        register = Register.load(path) if path is not None and path.exists() else default
        for seq in sorted(report.chains[party].events):
            record = ldv_record(report.chains[party].events[seq][0], register)
            if record is not None:
                lines.append(json.dumps(record, ensure_ascii=False, separators=(",", ":")))
    text = "".join(line + "\n" for line in lines)
    if out:
        out.write_text(text, encoding="utf-8")
        console.print(f"{len(lines)} LDV records written to {escape(str(out))}")
    else:
        click.echo(text, nl=False)


def _party_file(option: str) -> tuple[str, Path]:
    party, sep, file = option.partition("=")
    if not sep or not party or not file:
        raise click.BadParameter(f"{option!r} is not PARTY=FILE", param_hint="--register")
    return party, Path(file)


@audit.command("check-proof")
@click.argument("proof_file", type=FILE)
@click.option("--directory", "directory_file", type=FILE, required=True)
@click.option("--anchor", "anchor_folder", type=FOLDER, required=True)
def audit_check_proof(proof_file: Path, directory_file: Path, anchor_folder: Path) -> None:
    """Check a proof with the gateways' public keys from a verified directory."""
    from broker.audit import check_proof
    from broker.crypto import signing_public_key
    from broker.merkle import ProofError

    directory = read_directory(directory_file, anchor_folder)
    document = _read_proof(proof_file)
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
                f"[red]INVALID[/red] {escape(str(proof.get('gateway')))} seq "
                f"{escape(str(proof.get('seq')))}: {escape(str(exc))}"
            )
    sys.exit(1 if failures or not document["proofs"] else 0)


def _finding(issue: Any, *, resolved: bool = False) -> str:
    """One finding of the verifier, as a line of rich markup: a finding about a message
    names its id and both its parties (sender → recipient); one about a chain, the gateway
    and the event."""
    colour = "green" if resolved else "yellow" if issue.notice else "red"
    if issue.peer is not None:  # the chain of the SENT (sender), or of the RECEIPT_SENT
        sender, recipient = (
            (issue.peer, issue.gateway) if issue.kind.value == "RECEIPT_LOST"
            else (issue.gateway, issue.peer)
        )  # fmt: skip
        where = f"message {issue.message_id} {sender} → {recipient} (seq {issue.seq} of {issue.gateway})"
    else:
        where = f"{issue.gateway or ''} seq {issue.seq} {issue.message_id or ''}"
    head = f"resolved: {issue.kind.value}" if resolved else issue.kind.value
    return f"[{colour}]{head}[/{colour}] {escape(where)}: {escape(str(issue.detail))}"


def _read_proof(path: Path) -> dict[str, Any]:
    """The proof document `lvvx audit prove` wrote: its message id and its list of proofs."""
    try:
        document = json.loads(path.read_text())
        uuid.UUID(document["message_id"])
        if isinstance(document["proofs"], list):
            return dict(document)
    except (ValueError, TypeError, KeyError):
        pass
    raise LocalError(f"{path} is not a proof of `lvvx audit prove`", reason="NOT_A_PROOF")
