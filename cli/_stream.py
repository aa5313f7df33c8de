"""The options and reading shared by `lvvx audit` and `lvvx cases`: the audit topic of a
network — by default the one `lvvx demo` left in `--data` (its run.json says which transport
and topic prefix) — checked against the signed key directory."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from broker.errors import LocalError
from cli._common import FILE, FOLDER, quiet_kafka_logs, read_directory, utc_now


def stream_options(f: Any) -> Any:
    f = click.option("--data", type=FOLDER, default=".lvvx", show_default=True,
                     help="A network folder (`lvvx demo` leaves one): its run.json, log and directory.")(f)  # fmt: skip
    f = click.option("--kafka", metavar="HOST:PORT", help="Read the audit topic from this Kafka.")(
        f
    )
    f = click.option("--prefix", help="Topic prefix [default: from run.json, else lvv.v1].")(f)
    f = click.option(
        "--directory",
        "directory_file",
        type=FILE,
        help="Signed directory [default: DATA/directory.bin].",
    )(f)
    f = click.option(
        "--anchor",
        "anchor_folder",
        type=FOLDER,
        help="Folder with anchor.public.json [default: DATA/keys].",
    )(f)
    f = click.option("--tls", "pki_folder", type=FOLDER,
                     help="On a secured Kafka: the PKI folder [default: from run.json].")(f)  # fmt: skip
    f = click.option("--as", "identity", default="dtv", show_default=True,
                     help="Whose certificate reads the audit topics (DT&V's may, and admin's).")(f)  # fmt: skip
    return f


def run_info(data: Path, kafka: str | None, prefix: str | None,
              pki_folder: Path | None) -> tuple[str | None, str, Path | None]:  # fmt: skip
    """Transport, prefix and PKI: as given, else as the demo's run.json says."""
    run = json.loads((data / "run.json").read_text()) if (data / "run.json").exists() else {}
    tls = pki_folder or (Path(run["tls"]) if run.get("tls") else None)
    return kafka or run.get("kafka"), prefix or run.get("prefix") or "lvv.v1", tls


def stream_directory(data: Path, directory_file: Path | None, anchor_folder: Path | None) -> Any:
    """The signed directory the stream is checked against: DATA's unless given."""
    return read_directory(directory_file or data / "directory.bin", anchor_folder or data / "keys")


async def live_directory(transport: Any, data: Path, directory_file: Path | None,
                         anchor_folder: Path | None, prefix: str) -> Any:  # fmt: skip
    """The directory file's, or a newer one of its network published to the directory topic
    (`lvvx directory publish`): keys rotated since the file still verify their events."""
    from broker.crypto import AnchorKey, KeyStore
    from broker.directory_feed import newest_directory

    current = stream_directory(data, directory_file, anchor_folder)
    anchor = AnchorKey.from_record(KeyStore(anchor_folder or data / "keys").anchor_public())
    return await newest_directory(
        transport, anchor=anchor, current=current, now=utc_now(), prefix=prefix
    )


async def followed_directory(transport: Any, data: Path, directory_file: Path | None,
                             anchor_folder: Path | None, prefix: str, *, anchor: Any,
                             stop: asyncio.Event, party: str) -> tuple[Callable[[], Any], asyncio.Task[None]]:  # fmt: skip
    """The directory to verify with, kept current from the directory topic until ``stop``: a
    key rotated or a party added while `audit follow` or the console runs is verified too.
    Returns what gives the directory in use, and the task that follows the topic."""
    from broker.directory_feed import DirectoryFeed
    from broker.topics import directory as directory_topic

    in_use = [await live_directory(transport, data, directory_file, anchor_folder, prefix)]

    async def take(newer: Any) -> None:
        in_use[0] = newer

    feed = DirectoryFeed(transport=transport, topic=directory_topic(prefix), anchor=anchor,
                         network=in_use[0].document.network, in_use=lambda: in_use[0], take=take,
                         refused=lambda reason: None, clock=utc_now, party=party)  # fmt: skip
    return (lambda: in_use[0]), asyncio.create_task(feed.run(stop))


async def read_stream(data: Path, kafka: str | None, prefix: str | None, directory_file: Path | None,
                       anchor_folder: Path | None, pki_folder: Path | None,
                       identity: str) -> tuple[list[Any], Any, str]:  # fmt: skip
    from broker.audit import read_audit
    from broker.transport import open_transport

    kafka, prefix, tls = run_info(data, kafka, prefix, pki_folder)
    if not kafka and not (data / "log.db").exists():
        raise LocalError(
            f"no embedded log in {data}/ (run `lvvx demo` first, or give --kafka)", reason="NO_LOG"
        )
    stream_directory(data, directory_file, anchor_folder)  # a bad file fails before any I/O
    quiet_kafka_logs()
    transport = open_transport(kafka, data, tls=tls, identity=identity)
    try:
        directory = await live_directory(transport, data, directory_file, anchor_folder, prefix)
        records = await read_audit(transport, directory, prefix)
    finally:
        await transport.close()
    return records, directory, prefix
