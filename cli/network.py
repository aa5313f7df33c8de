"""`lvvx network add-party`: bring a party into a running network in one command
(`broker.onboarding`), each step printed as planned, done or unchanged."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta
from pathlib import Path

import click

from broker.errors import LocalError
from broker.models import PartyRole
from cli._common import FOLDER, Group, quiet_kafka_logs, utc_now
from cli._stream import run_info
from cli.keys import _INSECURE_DEMO_KDF, _KEM_CHOICES

_ROLES = [r.value for r in PartyRole if r.value != "UNKNOWN"]


@click.group(cls=Group)
def network() -> None:
    """Change who is in a running network: onboard a party."""


@network.command("add-party")
@click.option("--party", required=True, help="The new party's id, e.g. gemeente-zwolle.")
@click.option("--role", required=True, type=click.Choice(_ROLES))
@click.option("--name", "display_name", help="Display name for the directory.")
@click.option("--kem", type=click.Choice(sorted(_KEM_CHOICES)), default="x25519", show_default=True,
              help="HPKE key: X25519, or the post-quantum hybrid ML-KEM-768+X25519.")  # fmt: skip
@click.option("--data", type=FOLDER, default=".lvvx", show_default=True,
              help="The network folder: keys/, directory.bin, gateways/, secrets/, run.json.")  # fmt: skip
@click.option("--kafka", metavar="HOST:PORT[,HOST:PORT]",
              help="The network's Kafka [default: from run.json, else the embedded log of --data].")  # fmt: skip
@click.option("--tls", "pki_folder", type=FOLDER,
              help="On a secured Kafka: the PKI folder with the CA [default: from run.json].")  # fmt: skip
@click.option("--prefix", help="Topic prefix [default: from run.json, else lvv.v1].")
@click.option("--partitions", default=3, show_default=True, type=click.IntRange(1, 1000))
@click.option("--replication-factor", type=click.IntRange(1, 10), help="[default: the cluster's]")
@click.option("--http-port", type=click.IntRange(1, 65535),
              help="The new gateway's API port [default: one above the other gateways'].")  # fmt: skip
@click.option("--valid-days", default=365, show_default=True, type=click.IntRange(1, 3650),
              help="Validity of the party's keys.")  # fmt: skip
@click.option("--directory-valid-days", default=30, show_default=True, type=click.IntRange(1, 366))
@_INSECURE_DEMO_KDF
@click.option("--dry-run", is_flag=True, help="Print what would change; change nothing.")
@click.option("--json", "as_json", is_flag=True, help="Print the steps as one JSON document.")
def add_party(party: str, role: str, display_name: str | None, kem: str, data: Path, kafka: str | None,
              pki_folder: Path | None, prefix: str | None, partitions: int, replication_factor: int | None,
              http_port: int | None, valid_days: int, directory_valid_days: int, demo_kdf: bool,
              dry_run: bool, as_json: bool) -> None:  # fmt: skip
    """Bring PARTY into the running network: its keys, its TLS certificate (secured network),
    a new signed directory, its topics and ACLs, the directory published (every gateway
    takes it live), and its gateway's configuration. Idempotent: what exists is left alone.

    The key passphrase (of the key files and the anchor) comes from LVVX_KEY_PASSPHRASE or
    LVVX_KEY_PASSPHRASE_FILE."""
    import re

    from broker.crypto import DEMO_KEY_FILE_KDF, KEY_FILE_KDF, passphrase_from_env
    from broker.models import PARTY_ID_PATTERN
    from broker.network_folder import NetworkFolder
    from broker.onboarding import Network, Newcomer, Step, add_party, start_command
    from broker.provision import Layout
    from broker.transport import Transport, open_transport
    from broker.transport.kafka import KafkaOptions, KafkaTransport

    if not re.fullmatch(PARTY_ID_PATTERN, party):
        raise LocalError(f"party id {party!r} must match {PARTY_ID_PATTERN}", reason="BAD_PARTY_ID")
    kafka, prefix, tls = run_info(data, kafka, prefix, pki_folder)
    if tls is not None and not kafka:
        raise click.UsageError("--tls needs a Kafka (--kafka, or run.json's)")
    newcomer = Newcomer(party, PartyRole(role), display_name, _KEM_CHOICES[kem],
                        timedelta(days=valid_days))  # fmt: skip
    quiet_kafka_logs()
    transport: Transport
    if kafka:  # the admin writes the directory topic and the ACLs on a secured cluster
        transport = KafkaTransport(KafkaOptions.for_identity(kafka, tls, "admin"))
    elif (data / "log.db").exists():
        transport = open_transport(None, data)
    else:
        raise LocalError(f"no embedded log in {data}/ (give --kafka, or --data of a network)",
                         reason="NO_LOG")  # fmt: skip
    folder = NetworkFolder(data)
    network_ = Network(
        folder, transport, admin=transport if tls and isinstance(transport, KafkaTransport) else None,
        pki=tls, kafka=kafka, layout=Layout(prefix, partitions, replication_factor),
        directory_validity=timedelta(days=directory_valid_days),
        kdf=DEMO_KEY_FILE_KDF if demo_kdf else KEY_FILE_KDF, http_port=http_port,
    )  # fmt: skip
    passphrase = None if dry_run else passphrase_from_env()

    def say(step: Step) -> None:
        if not as_json:
            click.echo(f"{step.status.value:<9}  {step.name:<11}  {step.detail}")
            for change in step.changes:
                click.echo(f"{'':<24}{'would ' if dry_run else ''}{change}")

    async def main() -> list[Step]:
        try:
            return await add_party(newcomer, network_, passphrase=passphrase, now=utc_now(),
                                   dry_run=dry_run, report=say)  # fmt: skip
        finally:
            await transport.close()

    steps = asyncio.run(main())
    command = start_command(folder, party)
    if as_json:
        click.echo(json.dumps({
            "party": party, "dry_run": dry_run, "start": command,
            "steps": [{"step": s.name, "status": s.status.value, "detail": s.detail,
                       "changes": list(s.changes)} for s in steps],
        }, indent=2))  # fmt: skip
        return
    changed = [s for s in steps if s.status.value != "unchanged"]
    summary = (f"{len(changed)} of {len(steps)} steps {'planned' if dry_run else 'done'}"
               if changed else "nothing to change")  # fmt: skip
    click.echo(f"{summary}; start {party}'s gateway with:\n  {command}")
