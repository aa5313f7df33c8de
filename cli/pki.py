"""`lvvx pki init`: the development PKI for mutual TLS at the Kafka brokers."""

from __future__ import annotations

from pathlib import Path

import click

from cli._common import FILE, FOLDER, Group, dump, read_directory, utc_now


@click.group(cls=Group)
def pki() -> None:
    """The development PKI for mutual TLS at the Kafka brokers."""


@pki.command("init")
@click.option(
    "--out", "folder", required=True, type=FOLDER, help="Folder for the CA and certificates."
)
@click.option(
    "--directory",
    "directory_file",
    type=FILE,
    help="Certify every party of this signed directory.",
)
@click.option(
    "--anchor",
    "anchor_folder",
    type=FOLDER,
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
    """Make a CA and the certificates of the broker, the admin and each party, in PEM.

    The broker's certificate is for localhost and 127.0.0.1. Keys are written 0600 and never
    printed."""
    from broker.crypto import Pki
    from demo.casebook import NETWORK

    names: list[str] = list(parties)
    if directory_file is not None:
        if anchor_folder is None:
            raise click.UsageError("--directory needs --anchor")
        names += list(read_directory(directory_file, anchor_folder).parties)
    if not names:
        names = [p.party_id for p in NETWORK]
    made = Pki(folder).init(dict.fromkeys(names), now=utc_now())
    dump({"folder": str(folder), "ca": str(folder / "ca.pem"), "certificates": made})
