"""`lvvx keys`: a party's key folder and the network's trust anchor. Passphrases come from the
environment (``LVVX_KEY_PASSPHRASE`` or ``LVVX_KEY_PASSPHRASE_FILE``), never from arguments."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import click

from broker.crypto import (
    KeyStore,
    passphrase_from_env,
)
from broker.errors import LocalError
from broker.models import KeyAlgorithm, PartyRole
from cli._common import FOLDER, Group, dump, utc_now

_KEM_CHOICES = {"x25519": KeyAlgorithm.X25519, "hybrid": KeyAlgorithm.MLKEM768_X25519}


@click.group(cls=Group)
def keys() -> None:
    """Make a party's or the trust anchor's key pairs (encrypted PKCS#8)."""


@keys.command("init")
@click.option("--party", required=True, help="Party id, e.g. gemeente-utrecht.")
@click.option(
    "--role", required=True, type=click.Choice([r.value for r in PartyRole if r.value != "UNKNOWN"])
)
@click.option("--out", "folder", required=True, type=FOLDER, help="Key folder.")
@click.option("--name", "display_name", help="Display name for the directory.")
@click.option("--kem", type=click.Choice(sorted(_KEM_CHOICES)), default="x25519", show_default=True,
              help="HPKE key: X25519, or the post-quantum hybrid ML-KEM-768+X25519.")  # fmt: skip
@click.option("--valid-days", default=365, show_default=True, type=click.IntRange(1, 3650))
def keys_init(
    party: str, role: str, folder: Path, display_name: str | None, kem: str, valid_days: int
) -> None:
    """Write PARTY's signing and encryption keys and its public record into a folder."""
    import re

    from broker.models import PARTY_ID_PATTERN

    if not re.fullmatch(PARTY_ID_PATTERN, party):
        raise LocalError(f"party id {party!r} must match {PARTY_ID_PATTERN}", reason="BAD_PARTY_ID")
    entry = KeyStore(folder).init_party(
        party,
        PartyRole(role),
        passphrase=passphrase_from_env(),
        now=utc_now(),
        display_name=display_name,
        kem=_KEM_CHOICES[kem],
        validity=timedelta(days=valid_days),
    )
    dump({
        "party_id": entry.party_id,
        "role": entry.role.value,
        "signing_key_id": entry.signing_keys[0].key_id,
        "encryption_key_id": entry.encryption_keys[0].key_id,
        "kem": entry.encryption_keys[0].algorithm.value,
        "public_record": str(folder / f"{party}.public.json"),
    })  # fmt: skip


@keys.command("anchor")
@click.option("--out", "folder", required=True, type=FOLDER, help="Folder for the anchor's key.")
def keys_anchor(folder: Path) -> None:
    """Make the trust anchor's key pair (the programme office signs directories with it)."""
    public = KeyStore(folder).init_anchor(passphrase=passphrase_from_env(), now=utc_now())
    dump({"anchor_key_id": public.key_id, "public_key": str(folder / "anchor.public.json")})
