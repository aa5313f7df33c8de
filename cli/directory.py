"""`lvvx directory build|verify|show|publish|revoke`: the signed key directory of the network."""

from __future__ import annotations

import asyncio
import re
import time
from datetime import datetime, timedelta
from pathlib import Path

import click
from rich.markup import escape

from broker.crypto import (
    AnchorKey,
    KeyStore,
    RevocationAction,
    build_directory,
    passphrase_from_env,
    revoke_key,
    sign_directory,
)
from broker.errors import LocalError, UnknownParty
from broker.models import PARTY_ID_PATTERN, RevocationReason
from cli._common import FILE, FOLDER, Group, dump, quiet_kafka_logs, read_directory, table, utc_now
from cli._stream import run_info


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


@directory.command("publish")
@click.argument("path", type=FILE)
@click.option("--anchor", "anchor_folder", required=True, type=FOLDER,
              help="Folder with anchor.public.json: the directory is checked against it first.")  # fmt: skip
@click.option("--data", type=FOLDER, default=".lvvx", show_default=True,
              help="A network folder: its embedded log (and run.json) unless --kafka is given.")  # fmt: skip
@click.option("--kafka", metavar="HOST:PORT[,HOST:PORT]", help="Publish to this Kafka.")
@click.option("--tls", "pki_folder", type=FOLDER, help="On a secured Kafka: the PKI folder.")
@click.option("--as", "identity", default="admin", show_default=True,
              help="Whose certificate writes the directory topic.")  # fmt: skip
@click.option("--prefix", help="Topic prefix [default: from run.json, else lvv.v1].")
@click.option(
    "--dry-run", is_flag=True, help="Check and print what would be published; write nothing."
)
def directory_publish(path: Path, anchor_folder: Path, data: Path, kafka: str | None, pki_folder: Path | None,
                      identity: str, prefix: str | None, dry_run: bool) -> None:  # fmt: skip
    """Publish a signed directory to the network's directory topic, where every gateway
    takes it live; the same serial again changes nothing, a lower one is refused."""
    from broker.directory_feed import PublishAction, publish_directory
    from broker.transport import open_transport

    anchor = AnchorKey.from_record(KeyStore(anchor_folder).anchor_public())
    try:
        signed = path.read_bytes()
    except OSError as exc:
        raise LocalError(f"cannot read directory {path}: {exc.strerror}", reason="NO_FILE") from exc
    kafka, prefix, tls = run_info(data, kafka, prefix, pki_folder)
    if not kafka and not (data / "log.db").exists():
        raise LocalError(f"no embedded log in {data}/ (give --kafka, or --data of a network)",
                         reason="NO_LOG")  # fmt: skip
    quiet_kafka_logs()
    transport = open_transport(kafka, data, tls=tls, identity=identity)

    async def main() -> object:
        try:
            return await publish_directory(transport, signed, anchor=anchor, now=utc_now(), prefix=prefix,
                                           dry_run=dry_run)  # fmt: skip
        finally:
            await transport.close()

    done = asyncio.run(main())
    from broker.directory_feed import Publication

    assert isinstance(done, Publication)
    d = done.directory
    if done.action is PublishAction.UNCHANGED:
        action = "unchanged: this serial is the newest on the topic already"
    else:
        action = "would publish" if dry_run else "published"
    dump(
        {
            "action": action,
            "topic": done.topic,
            "network": d.document.network,
            "serial": d.serial,
            "newest_on_topic": done.newest_on_topic,
            "issued_at": d.document.issued_at,
            "expires_at": d.expires_at,
            "parties": sorted(d.parties),
        }
    )


_REASONS = [r.value for r in RevocationReason if r is not RevocationReason.UNKNOWN]


def _moment(_ctx: click.Context, _param: click.Parameter, value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        at = datetime.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not an ISO 8601 moment") from None
    if at.tzinfo is None:
        raise click.BadParameter(f"{value!r} has no time zone (e.g. +01:00 or Z)")
    return at


@directory.command("revoke")
@click.option("--party", required=True, help="The party whose key is revoked.")
@click.option("--key", "key", required=True, metavar="KEY_ID",
              help="Key id of the signing or encryption key (`lvvx directory show`).")  # fmt: skip
@click.option("--at", callback=_moment, metavar="TIME",
              help="ISO 8601 with a zone: the leak, or the earliest suspected [default: now].")  # fmt: skip
@click.option("--reason", required=True, type=click.Choice(_REASONS),
              help="Why (RFC 5280 CRLReason): KEY_COMPROMISE after a leak.")  # fmt: skip
@click.option("--keys", "keys_folder", required=True, type=FOLDER,
              help="Folder of public records (what `lvvx directory build --keys` reads).")  # fmt: skip
@click.option("--dry-run", is_flag=True, help="Print what would change; write nothing.")
def directory_revoke(party: str, key: str, at: datetime | None, reason: str, keys_folder: Path,
                     dry_run: bool) -> None:  # fmt: skip
    """Mark a key of a party revoked in its public record: envelopes it signs created at or
    after TIME are refused SENDER_KEY_INVALID, and nothing is sealed to it from then on.
    The same revocation again changes nothing; one never moves later. Next: `lvvx
    directory build` from this keys folder, then `lvvx directory publish` the result, and
    check that every gateway took its serial (docs/OPERATING.md, "Revocation after a key
    leak")."""
    store = KeyStore(keys_folder)
    if (
        not re.fullmatch(PARTY_ID_PATTERN, party)
        or not (keys_folder / f"{party}.public.json").is_file()
    ):
        raise UnknownParty(f"no public record for party {party!r} in {keys_folder}/")
    done = revoke_key(store.public_entry(party), key, at=at, now=utc_now(),
                      reason=RevocationReason(reason))  # fmt: skip
    if done.changed and not dry_run:
        store.write_public_entry(done.entry)
    if done.action is RevocationAction.UNCHANGED:
        since = done.key.revoked_at
        action = f"unchanged: revoked since {since.isoformat() if since else done.key.valid_from}"
    else:
        action = f"would be {done.action.value}" if dry_run else done.action.value
    dump(
        {
            "action": action,
            "party": party,
            "key": done.key.key_id,
            "kind": done.kind,
            "revoked_at": done.key.revoked_at,
            "reason": done.key.revocation_reason,
            "was": done.previous.model_dump(include={"status", "revoked_at", "revocation_reason"}),
            "record": str(keys_folder / f"{party}.public.json"),
            "next": "lvvx directory build, then lvvx directory publish" if done.changed else None,
        }
    )
