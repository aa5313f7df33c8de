"""`lvvx keys`, `lvvx directory`, `lvvx seal`, `lvvx open`, `lvvx envelope`: the operator
commands of the security core. Keys and directories are files; passphrases come from the
environment (``LVVX_KEY_PASSPHRASE`` or ``LVVX_KEY_PASSPHRASE_FILE``), never from arguments."""

from __future__ import annotations

import json
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from broker._errors import EnvelopeRejected, LocalError
from broker.crypto import (
    AnchorKey,
    Directory,
    KeyStore,
    build_directory,
    load_directory,
    open_envelope,
    passphrase_from_env,
    seal,
    sign_directory,
)
from broker.models import KeyAlgorithm, PartyRole, model_for
from broker.replay import MemoryReplayGuard, ReplayGuard, SqliteReplayGuard

console = Console()

EXIT_REJECTED = 3
"""`lvvx open` exits with this code when the envelope is refused."""

_KEM_CHOICES = {"x25519": KeyAlgorithm.X25519, "hybrid": KeyAlgorithm.MLKEM768_X25519}
_FOLDER = click.Path(file_okay=False, path_type=Path)
_FILE = click.Path(dir_okay=False, path_type=Path)


def _now() -> datetime:
    return datetime.now(UTC)


def _json_default(value: object) -> str:
    return value.isoformat() if isinstance(value, datetime) else str(value)


def _dump(value: Any) -> None:
    click.echo(json.dumps(value, indent=2, ensure_ascii=False, default=_json_default))


def _directory(path: Path, anchor_folder: Path) -> Directory:
    anchor = AnchorKey.from_record(KeyStore(anchor_folder).anchor_public())
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise LocalError(f"cannot read directory {path}: {exc.strerror}", reason="NO_FILE") from exc
    return load_directory(data, anchor=anchor, now=_now())


# --- keys ------------------------------------------------------------------------------------


@click.group()
def keys() -> None:
    """Make a party's or the trust anchor's key pairs (encrypted PKCS#8)."""


@keys.command("init")
@click.option("--party", required=True, help="Party id, e.g. gemeente-utrecht.")
@click.option(
    "--role", required=True, type=click.Choice([r.value for r in PartyRole if r.value != "UNKNOWN"])
)
@click.option("--out", "folder", required=True, type=_FOLDER, help="Key folder.")
@click.option("--name", "display_name", help="Display name for the directory.")
@click.option("--kem", type=click.Choice(sorted(_KEM_CHOICES)), default="x25519", show_default=True,
              help="HPKE key: X25519, or the post-quantum hybrid ML-KEM-768+X25519.")  # fmt: skip
@click.option("--valid-days", default=365, show_default=True, type=click.IntRange(1, 3650))
def keys_init(
    party: str, role: str, folder: Path, display_name: str | None, kem: str, valid_days: int
) -> None:
    """Write PARTY's signing and encryption keys and its public record into a folder."""
    import re

    from broker.models._base import PARTY_ID_PATTERN

    if not re.fullmatch(PARTY_ID_PATTERN, party):
        raise LocalError(f"party id {party!r} must match {PARTY_ID_PATTERN}", reason="BAD_PARTY_ID")
    entry = KeyStore(folder).init_party(
        party,
        PartyRole(role),
        passphrase=passphrase_from_env(),
        now=_now(),
        display_name=display_name,
        kem=_KEM_CHOICES[kem],
        validity=timedelta(days=valid_days),
    )
    _dump({
        "party_id": entry.party_id,
        "role": entry.role.value,
        "signing_key_id": entry.signing_keys[0].key_id,
        "encryption_key_id": entry.encryption_keys[0].key_id,
        "kem": entry.encryption_keys[0].algorithm.value,
        "public_record": str(folder / f"{party}.public.json"),
    })  # fmt: skip


@keys.command("anchor")
@click.option("--out", "folder", required=True, type=_FOLDER, help="Folder for the anchor's key.")
def keys_anchor(folder: Path) -> None:
    """Make the trust anchor's key pair (the programme office signs directories with it)."""
    public = KeyStore(folder).init_anchor(passphrase=passphrase_from_env(), now=_now())
    _dump({"anchor_key_id": public.key_id, "public_key": str(folder / "anchor.public.json")})


# --- directory -------------------------------------------------------------------------------


@click.group()
def directory() -> None:
    """Build, sign, verify and show the key directory."""


@directory.command("build")
@click.option(
    "--keys", "keys_folder", required=True, type=_FOLDER, help="Folder of public records."
)
@click.option(
    "--anchor", "anchor_folder", required=True, type=_FOLDER, help="The anchor's key folder."
)
@click.option("--out", required=True, type=_FILE)
@click.option(
    "--network", default="lvv", show_default=True, help="Network name bound into the directory."
)
@click.option(
    "--serial", type=int, help="Serial number [default: seconds since 1970, so it grows]."
)
@click.option("--valid-days", default=30, show_default=True, type=click.IntRange(1, 366))
def directory_build(
    keys_folder: Path,
    anchor_folder: Path,
    out: Path,
    network: str,
    serial: int | None,
    valid_days: int,
) -> None:
    """Sign a directory of every party whose public record is in the keys folder."""
    now = _now()
    store = KeyStore(anchor_folder)
    document = build_directory(
        KeyStore(keys_folder).public_entries(),
        serial=serial if serial is not None else int(time.time()),
        network=network,
        now=now,
        validity=timedelta(days=valid_days),
    )
    out.write_bytes(sign_directory(document, store.anchor_private(passphrase_from_env())))
    _dump(
        {
            "serial": document.serial,
            "parties": len(document.parties),
            "expires_at": document.expires_at,
            "out": str(out),
        }
    )


@directory.command("verify")
@click.argument("path", type=_FILE)
@click.option("--anchor", "anchor_folder", required=True, type=_FOLDER)
def directory_verify(path: Path, anchor_folder: Path) -> None:
    """Check the directory's signature against the pinned anchor, its expiry and its keys."""
    d = _directory(path, anchor_folder)
    _dump(
        {
            "valid": True,
            "serial": d.serial,
            "network": d.document.network,
            "parties": len(d.parties),
            "expires_at": d.expires_at,
        }
    )


@directory.command("show")
@click.argument("path", type=_FILE)
@click.option("--anchor", "anchor_folder", required=True, type=_FOLDER)
@click.option("--json", "as_json", is_flag=True)
def directory_show(path: Path, anchor_folder: Path, as_json: bool) -> None:
    """List the parties of a (verified) directory with their keys."""
    d = _directory(path, anchor_folder)
    if as_json:
        click.echo(d.document.model_dump_json(indent=2))
        return
    table = Table("party", "role", "name", "signing key", "encryption key", "valid until",
                  title=f"{d.document.network} directory, serial {d.serial}")  # fmt: skip
    for entry in d.parties.values():
        s, e = entry.signing_keys[-1], entry.encryption_keys[-1]
        table.add_row(entry.party_id, entry.role.value, entry.display_name, s.key_id,
                      f"{e.key_id} ({e.algorithm.value})", e.valid_until.date().isoformat())  # fmt: skip
    console.print(table)


# --- seal, open, inspect ---------------------------------------------------------------------


@click.command("seal")
@click.option("--from", "sender", required=True, help="Sending party (its keys must be in --keys).")
@click.option("--to", "recipients", required=True, help="Recipient parties, comma-separated.")
@click.option("--type", "type_name", required=True, help="Message type, e.g. DossierDelivered.")
@click.option(
    "--payload", required=True, type=_FILE, help="The message as JSON (see `lvvx schemas example`)."
)
@click.option("--keys", "keys_folder", required=True, type=_FOLDER)
@click.option("--directory", "directory_file", required=True, type=_FILE)
@click.option(
    "--anchor",
    "anchor_folder",
    type=_FOLDER,
    help="Folder with anchor.public.json [default: --keys].",
)
@click.option("--out", required=True, type=_FILE)
def seal_command(sender: str, recipients: str, type_name: str, payload: Path, keys_folder: Path,
                 directory_file: Path, anchor_folder: Path | None, out: Path) -> None:  # fmt: skip
    """Sign a message as --from and encrypt it to each of --to."""
    d = _directory(directory_file, anchor_folder or keys_folder)
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
        now=_now(),
    )
    out.write_bytes(envelope)
    _dump({"out": str(out), "bytes": len(envelope)})


@click.command("open")
@click.argument("envelope_file", metavar="ENV", type=_FILE)
@click.option("--as", "party", required=True, help="The receiving party.")
@click.option("--keys", "keys_folder", required=True, type=_FOLDER)
@click.option("--directory", "directory_file", required=True, type=_FILE)
@click.option(
    "--anchor",
    "anchor_folder",
    type=_FOLDER,
    help="Folder with anchor.public.json [default: --keys].",
)
@click.option("--replay-db", type=_FILE, help="Remember opened message ids in this SQLite file.")
def open_command(envelope_file: Path, party: str, keys_folder: Path, directory_file: Path,
                 anchor_folder: Path | None, replay_db: Path | None) -> None:  # fmt: skip
    """Verify and decrypt an envelope; print its header and message, or {"rejected": REASON}."""
    d = _directory(directory_file, anchor_folder or keys_folder)
    me = KeyStore(keys_folder).load_party(party, passphrase_from_env())
    guard: ReplayGuard = SqliteReplayGuard(replay_db) if replay_db else MemoryReplayGuard()
    try:
        opened = open_envelope(
            envelope_file.read_bytes(), me=me, directory=d, replay_guard=guard, now=_now()
        )
    except EnvelopeRejected as exc:
        click.echo(json.dumps({"rejected": exc.reject_reason.value}))
        sys.exit(EXIT_REJECTED)
    click.echo(json.dumps({
        "header": opened.header.model_dump(mode="json"),
        "message": opened.message.model_dump(mode="json"),
        "envelope_sha256": opened.envelope_sha256.hex(),
    }, indent=2, ensure_ascii=False))  # fmt: skip


@click.group()
def envelope() -> None:
    """Look at envelopes without decrypting them."""


@envelope.command("inspect")
@click.argument("envelope_file", metavar="ENV", type=_FILE)
@click.option(
    "--directory", "directory_file", type=_FILE, help="Check the signature with this directory."
)
@click.option("--anchor", "anchor_folder", type=_FOLDER, help="Folder with anchor.public.json.")
def envelope_inspect(
    envelope_file: Path, directory_file: Path | None, anchor_folder: Path | None
) -> None:
    """The header, the wrapped keys and the signature status (no decryption)."""
    from broker.crypto._inspect import inspect_envelope

    d = None
    if directory_file is not None:
        if anchor_folder is None:
            raise click.UsageError("--directory needs --anchor")
        d = _directory(directory_file, anchor_folder)
    _dump(inspect_envelope(envelope_file.read_bytes(), d))


# --- pki -------------------------------------------------------------------------------------


@click.group()
def pki() -> None:
    """The development PKI for mutual TLS at the Kafka brokers."""


@pki.command("init")
@click.option(
    "--out", "folder", required=True, type=_FOLDER, help="Folder for the CA and certificates."
)
@click.option(
    "--directory",
    "directory_file",
    type=_FILE,
    help="Certify every party of this signed directory.",
)
@click.option(
    "--anchor",
    "anchor_folder",
    type=_FOLDER,
    help="Folder with anchor.public.json (with --directory).",
)
@click.option(
    "--party",
    "parties",
    multiple=True,
    help="Certify this party (repeatable) [default: the pilot network].",
)
def pki_init(
    folder: Path, directory_file: Path | None, anchor_folder: Path | None, parties: tuple[str, ...]
) -> None:
    """A CA, a broker certificate (SAN localhost, 127.0.0.1), an admin certificate and one
    client certificate per party, in PEM. Keys are written 0600 and never printed."""
    from broker.casebook import NETWORK
    from broker.crypto._pki import Pki

    names: list[str] = list(parties)
    if directory_file is not None:
        if anchor_folder is None:
            raise click.UsageError("--directory needs --anchor")
        names += list(_directory(directory_file, anchor_folder).parties)
    if not names:
        names = [p.party_id for p in NETWORK]
    made = Pki(folder).init(dict.fromkeys(names), now=_now())
    _dump({"folder": str(folder), "ca": str(folder / "ca.pem"), "certificates": made})
