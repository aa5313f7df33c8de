"""`lvvx cases`: the case monitor, from the audit stream's metadata."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click

from cli._common import console, table
from cli._stream import read_stream, stream_options

_IN_STEP = {"INTAKE": "in intake", "REST_PERIOD": "in rest period",
            "SCENARIO_SET": "with a scenario set", "ESCALATED": "escalated", "CLOSED": "closed"}  # fmt: skip
"""How the summary line says that a case is in a step."""


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
    headers = ("case", "step", "since", "rest period ends", "overdue", "escalation", "messages",
               "broken rules")  # fmt: skip
    table("Cases", headers, [_row(v, now) for v in views])
    console.print(summary_line(summary(views, now)), highlight=False)


def _row(view: Any, now: datetime) -> list[str]:
    s = view.state
    return [
        str(view.case_id)[:8], s.step.value.lower().replace("_", " "),
        s.entered_step_at.strftime("%Y-%m-%d %H:%M:%S") if s.entered_step_at else "",
        s.rest_period_ends.strftime("%Y-%m-%d") if s.rest_period_ends else "",
        "yes" if s.rest_period_overdue(now) else "",
        ("overdue" if s.escalation_overdue(now) else "open") if s.open_escalation else "",
        str(view.messages), ", ".join(w.value.lower().replace("_", " ") for w in s.warnings),
    ]  # fmt: skip


def summary_line(totals: dict[str, Any]) -> str:
    """``12 cases: 3 in intake, …, 5 closed; 1 rest period overdue; 2 open escalations, 1
    overdue; 3 broken rules: scenario in rest period 2, escalation answered late 1``."""
    steps = ", ".join(
        f"{n} {_IN_STEP.get(step, step.lower())}" for step, n in totals["by_step"].items()
    )
    rules = totals.get("broken_rules", {})
    named = ", ".join(f"{rule.lower().replace('_', ' ')} {n}" for rule, n in rules.items())
    return (
        f"{_count(totals['cases'], 'case')}: {steps}; "
        f"{_count(totals['rest_periods_overdue'], 'rest period')} overdue; "
        f"{_count(totals['open_escalations'], 'open escalation')}, "
        f"{totals.get('escalations_overdue', 0)} overdue; "
        f"{_count(sum(rules.values()), 'broken rule')}" + (f": {named}" if named else "")
    )


def _count(n: int, thing: str) -> str:
    return f"{n} {thing}" if n == 1 else f"{n} {thing}s"
