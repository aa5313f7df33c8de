"""`lvvx cases`: the case monitor, from the audit stream's metadata."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from pathlib import Path

import click
from rich.table import Table

from cli._common import console
from cli._stream import read_stream, stream_options


@click.command("cases")
@stream_options
@click.option("--json", "as_json", is_flag=True)
def cases(data: Path, kafka: str | None, prefix: str | None, directory_file: Path | None,
          anchor_folder: Path | None, pki_folder: Path | None, identity: str, as_json: bool) -> None:  # fmt: skip
    """The case monitor: each case's step, rest period and escalations, from audit metadata."""
    from broker.audit import case_views, summary, verify_stream

    records, directory, _ = asyncio.run(
        read_stream(data, kafka, prefix, directory_file, anchor_folder, pki_folder, identity)
    )
    now = datetime.now(UTC)
    views = case_views(verify_stream(records, directory, now=now))
    if as_json:
        click.echo(
            json.dumps(
                {"summary": summary(views, now), "cases": [v.as_json(now) for v in views]}, indent=2
            )
        )
        return
    table = Table(
        "case",
        "step",
        "since",
        "rest period ends",
        "overdue",
        "escalation",
        "messages",
        title="Cases",
    )
    for v in views:
        s = v.state
        table.add_row(
            str(v.case_id)[:8], s.step.value.lower(), s.entered_step_at.strftime("%Y-%m-%d %H:%M:%S") if s.entered_step_at else "",
            s.rest_period_ends.strftime("%Y-%m-%d") if s.rest_period_ends else "",
            "yes" if s.rest_period_overdue(now) else "", "open" if s.open_escalation else "", str(v.messages),
        )  # fmt: skip
    console.print(table)
    console.print(summary(views, now))
