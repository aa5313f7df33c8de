"""`lvvx directory build|verify|show`: the signed key directory of the network."""

from __future__ import annotations

import time
from datetime import timedelta
from pathlib import Path

import click
from rich.markup import escape

from broker.crypto import (
    KeyStore,
    build_directory,
    passphrase_from_env,
    sign_directory,
)
from cli._common import FILE, FOLDER, Group, dump, read_directory, table, utc_now


@click.group(cls=Group)
def directory() -> None:
    """Build, sign, verify and show the key directory."""


@directory.command("build")
@click.option("--keys", "keys_folder", required=True, type=FOLDER, help="Folder of public records.")
@click.option(
    "--anchor", "anchor_folder", required=True, type=FOLDER, help="The anchor's key folder."
)
@click.option("--out", required=True, type=FILE)
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
    now = utc_now()
    store = KeyStore(anchor_folder)
    document = build_directory(
        KeyStore(keys_folder).public_entries(),
        serial=serial if serial is not None else int(time.time()),
        network=network,
        now=now,
        validity=timedelta(days=valid_days),
    )
    out.write_bytes(sign_directory(document, store.anchor_private(passphrase_from_env())))
    dump(
        {
            "serial": document.serial,
            "parties": len(document.parties),
            "expires_at": document.expires_at,
            "out": str(out),
        }
    )


@directory.command("verify")
@click.argument("path", type=FILE)
@click.option("--anchor", "anchor_folder", required=True, type=FOLDER)
def directory_verify(path: Path, anchor_folder: Path) -> None:
    """Check the directory's signature against the pinned anchor, its expiry and its keys."""
    d = read_directory(path, anchor_folder)
    dump(
        {
            "valid": True,
            "serial": d.serial,
            "network": d.document.network,
            "parties": len(d.parties),
            "expires_at": d.expires_at,
        }
    )


@directory.command("show")
@click.argument("path", type=FILE)
@click.option("--anchor", "anchor_folder", required=True, type=FOLDER)
@click.option("--json", "as_json", is_flag=True)
def directory_show(path: Path, anchor_folder: Path, as_json: bool) -> None:
    """List the parties of a (verified) directory with their keys."""
    d = read_directory(path, anchor_folder)
    if as_json:
        click.echo(d.document.model_dump_json(indent=2))
        return
    rows = []
    for entry in d.parties.values():
        s, e = entry.signing_keys[-1], entry.encryption_keys[-1]
        rows.append([entry.party_id, entry.role.value, escape(entry.display_name), s.key_id,
                     f"{e.key_id} ({e.algorithm.value})", e.valid_until.date().isoformat()])  # fmt: skip
    table(f"{d.document.network} directory, serial {d.serial}",
          ("party", "role", "name", "signing key", "encryption key", "valid until"), rows)  # fmt: skip
