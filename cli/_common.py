"""What the command groups share: the group class, the console, path types, JSON output,
reading a signed directory."""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from broker.crypto import (
    AnchorKey,
    Directory,
    KeyStore,
    load_directory,
)
from broker.errors import LocalError


class Group(click.Group):
    """A command group whose listing gives each command's whole first sentence, wrapped to
    the width: click would cut it to fit one line, ending in "...", mid-thought."""

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = []
        for name in self.list_commands(ctx):
            command = self.get_command(ctx, name)
            if command is not None and not command.hidden:
                rows.append((name, command.get_short_help_str(limit=sys.maxsize)))
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


# soft_wrap: a line of text is never broken at the width, however long (a table fits or
# turns into blocks, see `table`)
console = Console(stderr=False, soft_wrap=True)
errors = Console(stderr=True, soft_wrap=True)

FOLDER = click.Path(file_okay=False, path_type=Path)
FILE = click.Path(dir_okay=False, path_type=Path)


def table(title: str, headers: Sequence[str], rows: Iterable[Sequence[str]]) -> None:
    """A table if it fits the width (the terminal's, else COLUMNS, else 80), else one block
    of ``header: value`` lines per row (empty cells left out): a cell is never wrapped or
    cut. Cells are rich markup, as in any rich table: escape what comes from data."""
    rows = list(rows)
    grid = Table(*headers, title=title)
    for row in rows:
        grid.add_row(*row)
    unbounded = console.options.update_width(sys.maxsize)
    if console.measure(grid, options=unbounded).maximum <= console.width:
        console.print(grid, soft_wrap=False)  # it fits: nothing wraps, the title is centred
        return
    console.print(title)
    for row in rows:
        console.print()
        for header, value in zip(headers, row, strict=True):
            if value:
                console.print(f"{header}: {value}", highlight=False)


def utc_now() -> datetime:
    return datetime.now(UTC)


def json_default(value: object) -> str:
    return value.isoformat() if isinstance(value, datetime) else str(value)


def dump(value: Any) -> None:
    click.echo(json.dumps(value, indent=2, ensure_ascii=False, default=json_default))


def quiet_kafka_logs() -> None:
    """A command reports a Kafka failure as its one error line; aiokafka's own lines about
    it (each failed connect, fetch and goodbye) would only print around that line."""
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)


def read_directory(path: Path, anchor_folder: Path) -> Directory:
    anchor = AnchorKey.from_record(KeyStore(anchor_folder).anchor_public())
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise LocalError(f"cannot read directory {path}: {exc.strerror}", reason="NO_FILE") from exc
    return load_directory(data, anchor=anchor, now=utc_now())
