"""`lvvx seal`, `lvvx open` and `lvvx envelope inspect`: one envelope by hand."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from broker.crypto import (
    KeyStore,
    open_envelope,
    passphrase_from_env,
    seal,
)
from broker.errors import EnvelopeRejected, LocalError
from broker.models import model_for
from broker.replay import MemoryReplayGuard, ReplayGuard, SqliteReplayGuard
from cli._common import FILE, FOLDER, Group, dump, read_directory, utc_now

EXIT_REJECTED = 3
"""`lvvx open` exits with this code when the envelope is refused."""


@click.command("seal")
@click.option("--from", "sender", required=True, help="Sending party (its keys must be in --keys).")
@click.option("--to", "recipients", required=True, help="Recipient parties, comma-separated.")
@click.option("--type", "type_name", required=True, help="Message type, e.g. DossierDelivered.")
@click.option(
    "--payload", required=True, type=FILE, help="The message as JSON (see `lvvx schemas example`)."
)
@click.option("--keys", "keys_folder", required=True, type=FOLDER)
@click.option("--directory", "directory_file", required=True, type=FILE)
@click.option(
    "--anchor",
    "anchor_folder",
    type=FOLDER,
    help="Folder with anchor.public.json [default: --keys].",
)
@click.option("--out", required=True, type=FILE)
def seal_command(sender: str, recipients: str, type_name: str, payload: Path, keys_folder: Path,
                 directory_file: Path, anchor_folder: Path | None, out: Path) -> None:  # fmt: skip
    """Sign a message as --from and encrypt it to each of --to."""
    d = read_directory(directory_file, anchor_folder or keys_folder)
    model = model_for(type_name)
    try:
        message = model.model_validate_json(payload.read_bytes())
    except ValueError as exc:
        raise LocalError(
            f"payload is not a valid {model.avro_name}: {exc}", reason="PAYLOAD_INVALID"
        ) from exc
    me = KeyStore(keys_folder).load_party(sender, passphrase_from_env())
    envelope = seal(
        message,
        sender=me,
        recipients=[r.strip() for r in recipients.split(",")],
        directory=d,
        now=utc_now(),
    )
    out.write_bytes(envelope)
    dump({"out": str(out), "bytes": len(envelope)})


@click.command("open")
@click.argument("envelope_file", metavar="ENV", type=FILE)
@click.option("--as", "party", required=True, help="The receiving party.")
@click.option("--keys", "keys_folder", required=True, type=FOLDER)
@click.option("--directory", "directory_file", required=True, type=FILE)
@click.option(
    "--anchor",
    "anchor_folder",
    type=FOLDER,
    help="Folder with anchor.public.json [default: --keys].",
)
@click.option("--replay-db", type=FILE, help="Remember opened message ids in this SQLite file.")
def open_command(envelope_file: Path, party: str, keys_folder: Path, directory_file: Path,
                 anchor_folder: Path | None, replay_db: Path | None) -> None:  # fmt: skip
    """Verify and decrypt an envelope; print its header and message, or {"rejected": REASON}."""
    d = read_directory(directory_file, anchor_folder or keys_folder)
    me = KeyStore(keys_folder).load_party(party, passphrase_from_env())
    guard: ReplayGuard = SqliteReplayGuard(replay_db) if replay_db else MemoryReplayGuard()
    try:
        opened = open_envelope(
            envelope_file.read_bytes(), me=me, directory=d, replay_guard=guard, now=utc_now()
        )
    except EnvelopeRejected as exc:
        click.echo(json.dumps({"rejected": exc.reject_reason.value}))
        sys.exit(EXIT_REJECTED)
    click.echo(json.dumps({
        "header": opened.header.model_dump(mode="json"),
        "message": opened.message.model_dump(mode="json"),
        "envelope_sha256": opened.envelope_sha256.hex(),
    }, indent=2, ensure_ascii=False))  # fmt: skip


@click.group(cls=Group)
def envelope() -> None:
    """Look at envelopes without decrypting them."""


@envelope.command("inspect")
@click.argument("envelope_file", metavar="ENV", type=FILE)
@click.option(
    "--directory", "directory_file", type=FILE, help="Check the signature with this directory."
)
@click.option("--anchor", "anchor_folder", type=FOLDER, help="Folder with anchor.public.json.")
def envelope_inspect(
    envelope_file: Path, directory_file: Path | None, anchor_folder: Path | None
) -> None:
    """The header, the wrapped keys and the signature status (no decryption)."""
    from broker.crypto import inspect_envelope

    d = None
    if directory_file is not None:
        if anchor_folder is None:
            raise click.UsageError("--directory needs --anchor")
        d = read_directory(directory_file, anchor_folder)
    dump(inspect_envelope(envelope_file.read_bytes(), d))
