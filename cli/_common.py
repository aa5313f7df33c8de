"""What the command groups share: the console, path types, JSON output, reading a signed
directory."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click
from rich.console import Console

from broker.crypto import (
    AnchorKey,
    Directory,
    KeyStore,
    load_directory,
)
from broker.errors import LocalError

console = Console(stderr=False)
errors = Console(stderr=True)

FOLDER = click.Path(file_okay=False, path_type=Path)
FILE = click.Path(dir_okay=False, path_type=Path)


def utc_now() -> datetime:
    return datetime.now(UTC)


def json_default(value: object) -> str:
    return value.isoformat() if isinstance(value, datetime) else str(value)


def dump(value: Any) -> None:
    click.echo(json.dumps(value, indent=2, ensure_ascii=False, default=json_default))


def read_directory(path: Path, anchor_folder: Path) -> Directory:
    anchor = AnchorKey.from_record(KeyStore(anchor_folder).anchor_public())
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise LocalError(f"cannot read directory {path}: {exc.strerror}", reason="NO_FILE") from exc
    return load_directory(data, anchor=anchor, now=utc_now())
