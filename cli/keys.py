"""`lvvx keys`: a party's key folder and the network's trust anchor. Passphrases come from the
environment (``LVVX_KEY_PASSPHRASE`` or ``LVVX_KEY_PASSPHRASE_FILE``; for `upgrade` a new one
from ``LVVX_NEW_KEY_PASSPHRASE`` or ``LVVX_NEW_KEY_PASSPHRASE_FILE``), never from arguments."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import click

from broker.crypto import (
    DEFAULT_ROTATION_LEAD,
    DEMO_KEY_FILE_KDF,
    KEY_FILE_KDF,
    KeyStore,
    new_passphrase_from_env,
    passphrase_from_env,
    pending_keys,
    reschedule_rotation,
    rotate_keys,
)
from broker.errors import LocalError
from broker.models import KeyAlgorithm, PartyRole
from cli._common import FOLDER, Group, dump, utc_now

_KEM_CHOICES = {"x25519": KeyAlgorithm.X25519, "hybrid": KeyAlgorithm.MLKEM768_X25519}

_INSECURE_DEMO_KDF = click.option(
    "--insecure-demo-kdf", "demo_kdf", is_flag=True,
    help="Encrypt the key files with the demo's cheap scrypt setting (N=2^10) instead of "
         "N=2^17: for throwaway demo and test keys only, never for a real party.",
)  # fmt: skip


def _store(folder: Path, demo_kdf: bool) -> KeyStore:
    return KeyStore(folder, kdf=DEMO_KEY_FILE_KDF if demo_kdf else KEY_FILE_KDF)


@click.group(cls=Group)
def keys() -> None:
    """Make a party's or the trust anchor's key pairs (scrypt and AES-256-GCM encrypted files);
    rotate a party's keys; upgrade old-format key files."""


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
@_INSECURE_DEMO_KDF
def keys_init(
    party: str,
    role: str,
    folder: Path,
    display_name: str | None,
    kem: str,
    valid_days: int,
    demo_kdf: bool,
) -> None:
    """Write PARTY's signing and encryption keys and its public record into a folder."""
    import re

    from broker.models import PARTY_ID_PATTERN

    if not re.fullmatch(PARTY_ID_PATTERN, party):
        raise LocalError(f"party id {party!r} must match {PARTY_ID_PATTERN}", reason="BAD_PARTY_ID")
    entry = _store(folder, demo_kdf).init_party(
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
@_INSECURE_DEMO_KDF
def keys_anchor(folder: Path, demo_kdf: bool) -> None:
    """Make the trust anchor's key pair (the programme office signs directories with it)."""
    public = _store(folder, demo_kdf).init_anchor(passphrase=passphrase_from_env(), now=utc_now())
    dump({"anchor_key_id": public.key_id, "public_key": str(folder / "anchor.public.json")})


@keys.command("upgrade")
@click.option(
    "--keys", "folder", required=True, type=FOLDER, help="Key folder (a party's or the anchor's)."
)
@click.option("--dry-run", is_flag=True, help="Say which files would be rewritten; change nothing.")
def keys_upgrade(folder: Path, dry_run: bool) -> None:
    """Rewrite old-format key files (PKCS#8 with 2,048 PBKDF2 iterations) in the current format.

    Each file is decrypted first, then replaced atomically by an owner-only file holding the
    same keys; files already current are left alone, so running it again changes nothing.
    The passphrase must have at least 12 characters: set LVVX_NEW_KEY_PASSPHRASE_FILE (or
    LVVX_NEW_KEY_PASSPHRASE) to rewrite every file under a new, longer one."""
    new_passphrase = new_passphrase_from_env()
    changes = KeyStore(folder).upgrade(
        passphrase_from_env(), new_passphrase=new_passphrase, dry_run=dry_run
    )
    changing = new_passphrase is not None
    dump({
        "dry_run": dry_run,
        "new_passphrase": changing,
        "files": [
            {
                "file": str(change.path),
                "action": "rewritten" if change.rewritten
                else "would rewrite" if dry_run and (change.needed or changing) else "unchanged",
                "was": change.was,
                "now": change.now,
            }
            for change in changes
        ],
    })  # fmt: skip


@keys.command("rotate")
@click.option("--party", required=True, help="The party whose keys to rotate.")
@click.option("--keys", "folder", required=True, type=FOLDER,
              help="The party's key folder (its gateway's keys_dir).")  # fmt: skip
@click.option("--activate-in", "lead_s", type=click.IntRange(0, 30 * 86400),
              default=int(DEFAULT_ROTATION_LEAD.total_seconds()), show_default=True,
              help="Seconds from now to the activation: publish the next directory before it.")  # fmt: skip
@click.option("--valid-days", default=365, show_default=True, type=click.IntRange(1, 3650),
              help="The new keys' validity from the activation.")  # fmt: skip
@click.option("--kem", type=click.Choice(sorted(_KEM_CHOICES)),
              help="The new encryption key's KEM [default: the current key's].")  # fmt: skip
@click.option("--reschedule", is_flag=True,
              help="Make no keys: move the last rotation's activation to --activate-in from "
                   "now (its directory was not published in time).")  # fmt: skip
@click.option("--dry-run", is_flag=True, help="Say what would change; write nothing.")
@_INSECURE_DEMO_KDF
def keys_rotate(party: str, folder: Path, lead_s: int, valid_days: int, kem: str | None,
                reschedule: bool, dry_run: bool, demo_kdf: bool) -> None:  # fmt: skip
    """Make PARTY's new signing and encryption keys, valid from the activation on, and end
    the current keys' windows there; the public record lists old and new.

    Then build and publish the next directory before the activation (`lvvx directory
    build`, `lvvx directory publish`): every gateway takes it at once, and at the
    activation the party's gateway signs with its new key and senders seal to its new
    encryption key — no restart. Envelopes sealed to the old key still open: its private
    file stays until no envelope sealed to it can be valid (30 days and 2 minutes after the
    activation); a later rotation removes it. Running the command again before the
    activation changes nothing."""
    now = utc_now()
    if reschedule:
        before, after = reschedule_rotation(KeyStore(folder), party, now=now,
                                            lead=timedelta(seconds=lead_s), dry_run=dry_run)  # fmt: skip
        dump({"party_id": party, "action": "would reschedule" if dry_run else "rescheduled",
              "activation_was": before, "activation": after,
              "next": "lvvx directory build, then lvvx directory publish, before the activation"})  # fmt: skip
        return
    done = rotate_keys(
        _store(folder, demo_kdf), party, passphrase=passphrase_from_env(), now=now,
        lead=timedelta(seconds=lead_s), validity=timedelta(days=valid_days),
        kem=_KEM_CHOICES[kem] if kem else None, dry_run=dry_run,
    )  # fmt: skip
    if done.plan is None:
        pending = pending_keys(KeyStore(folder).public_entry(party), now)
        dump({"party_id": party, "action": "unchanged: a rotation is pending",
              "activation": min(k.valid_from for k in pending),
              "pending_keys": [k.key_id for k in pending]})  # fmt: skip
        return
    plan = done.plan
    dump({
        "party_id": party,
        "action": "would rotate" if dry_run else "rotated",
        "activation": plan.activation,
        "new_signing_key_id": plan.new_signing.key_id,
        "new_encryption_key_id": plan.new_encryption.key_id,
        "kem": plan.new_encryption.algorithm.value,
        "ending_at_activation": [k.key_id for k in plan.ended],
        "retired": [k.key_id for k in plan.retired],
        "files_written": [str(p) for p in done.written],
        "files_removed": [str(p) for p in done.removed],
        "files_rewritten_in_current_format": [str(c.path) for c in done.rewrapped],
        "next": "lvvx directory build, then lvvx directory publish, before the activation",
    })  # fmt: skip
