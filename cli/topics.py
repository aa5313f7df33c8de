"""`lvvx topics apply`: create the network's topics and ACLs on a Kafka cluster."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import click

from cli._common import FILE, FOLDER, Group, quiet_kafka_logs, read_directory


@click.group(cls=Group)
def topics() -> None:
    """The network's topics and broker ACLs (DESIGN §2), from the signed directory."""


@topics.command("apply")
@click.option(
    "--directory", "directory_file", type=FILE, required=True, help="The signed key directory."
)
@click.option(
    "--anchor", "anchor_folder", type=FOLDER, required=True, help="Folder with anchor.public.json."
)
@click.option("--kafka", required=True, metavar="HOST:PORT[,HOST:PORT]", help="Bootstrap servers.")
@click.option(
    "--tls", "pki_folder", type=FOLDER, help="PKI folder: connect with its admin certificate."
)
@click.option("--prefix", default="lvv.v1", show_default=True)
@click.option("--partitions", default=3, show_default=True, type=click.IntRange(1, 1000))
@click.option("--replication-factor", type=click.IntRange(1, 10), help="[default: the cluster's]")
@click.option(
    "--min-insync-replicas", type=click.IntRange(1, 10), help="Per topic (default: the broker's)."
)
@click.option("--dry-run", is_flag=True, help="Print the plan; change nothing.")
@click.option("--json", "as_json", is_flag=True)
def topics_apply(directory_file: Path, anchor_folder: Path, kafka: str, pki_folder: Path | None, prefix: str,
                 partitions: int, replication_factor: int | None, min_insync_replicas: int | None, dry_run: bool,
                 as_json: bool) -> None:  # fmt: skip
    """Create missing topics, add missing ACLs, remove ACLs of parties no longer listed."""
    from broker.provision import Layout, apply
    from broker.transport.kafka import KafkaOptions, KafkaTransport

    directory = read_directory(directory_file, anchor_folder)
    quiet_kafka_logs()
    layout = Layout(prefix, partitions, replication_factor, min_insync_replicas)
    transport = KafkaTransport(KafkaOptions.for_identity(kafka, pki_folder, "admin"))

    async def main() -> object:
        try:
            return await apply(transport, directory, layout, dry_run=dry_run)
        finally:
            await transport.close()

    plan = asyncio.run(main())
    from broker.provision import Plan

    assert isinstance(plan, Plan)
    if as_json:
        click.echo(json.dumps({"dry_run": dry_run, "changes": plan.lines()}, indent=2))
        return
    for line in plan.lines():
        click.echo(("would " if dry_run else "") + line)
    click.echo(
        "nothing to change"
        if plan.empty
        else f"{len(plan.lines())} changes{' planned' if dry_run else ''}"
    )
