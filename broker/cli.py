"""`lvvx`, the command line of LVV Exchange."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from broker import __version__
from broker._errors import LvvError

console = Console(stderr=False)
errors = Console(stderr=True)

DEFAULT_DATA_DIR = ".lvvx"


class _Group(click.Group):
    """Prints our own errors as one clear line with their reason code, not a traceback."""

    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except LvvError as exc:
            errors.print(f"[red]error[/red] {exc}", highlight=False)
            sys.exit(2)


@click.group(cls=_Group)
@click.version_option(__version__, prog_name="lvvx")
def cli() -> None:
    """LVV Exchange: secure case exchange between the parties of the LVV network."""


# --- schemas ---------------------------------------------------------------------------------


@cli.group()
def schemas() -> None:
    """The Avro contract: list schemas, show them, print examples."""


@schemas.command("list")
@click.option("--json", "as_json", is_flag=True, help="One JSON array instead of a table.")
def schemas_list(as_json: bool) -> None:
    """Every top-level schema with its SHA-256 fingerprint (of its Parsing Canonical Form)."""
    from broker._codec import default_codec

    codec = default_codec()
    rows = [
        {
            "name": n,
            "fingerprint": codec.info(n).fingerprint.hex(),
            "doc": codec.info(n).schema.get("doc", ""),
        }
        for n in codec.names
    ]
    if as_json:
        click.echo(json.dumps([{k: r[k] for k in ("name", "fingerprint")} for r in rows], indent=2))
        return
    table = Table("schema", "fingerprint (SHA-256)", "what it is", title="nl.lvv.v1 contract")
    for r in rows:
        table.add_row(r["name"], r["fingerprint"][:16] + "…", r["doc"].split(". ")[0])
    console.print(table)


@schemas.command("show")
@click.argument("type_name", metavar="TYPE")
def schemas_show(type_name: str) -> None:
    """The self-contained schema of TYPE (shared types inlined), as JSON."""
    from broker._codec import default_codec

    click.echo(json.dumps(default_codec().info(type_name).schema, indent=2, ensure_ascii=False))


@schemas.command("example")
@click.argument("type_name", metavar="TYPE")
def schemas_example(type_name: str) -> None:
    """A valid, realistic example of TYPE (e.g. DossierDelivered) in its JSON form."""
    from broker.examples import example

    click.echo(example(type_name).model_dump_json(indent=2))


# --- demo ------------------------------------------------------------------------------------


@cli.command()
@click.option("--kafka", metavar="HOST:PORT", help="Run on Kafka instead of the embedded log.")
@click.option("--cases", default=12, show_default=True, type=click.IntRange(1, 100_000))
@click.option(
    "--data",
    type=click.Path(file_okay=False, path_type=Path),
    default=lambda: os.environ.get("LVVX_DATA_DIR", DEFAULT_DATA_DIR),
    show_default=DEFAULT_DATA_DIR,
    help="Folder for the embedded log and run data.",
)
@click.option("--json", "as_json", is_flag=True, help="End with one JSON summary line.")
def demo(kafka: str | None, cases: int, data: Path, as_json: bool) -> None:
    """Drive LVV cases through the whole case flow between all parties."""
    from broker.demo import run_demo
    from broker.transport import open_transport

    transport = open_transport(kafka, data)
    where = f"Kafka at {kafka}" if kafka else f"the embedded log in {data}/"
    console.print(f"LVV Exchange demo: {cases} cases over {where}")

    async def main() -> object:
        try:
            with Progress(
                TextColumn("delivering"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                console=console, transient=True, disable=as_json,
            ) as progress:  # fmt: skip
                task = progress.add_task("deliver", total=None)
                return await run_demo(
                    transport,
                    cases,
                    on_progress=lambda done, total: progress.update(
                        task, completed=done, total=total
                    ),
                )
        finally:
            await transport.close()

    result = asyncio.run(main())
    from broker.demo import DemoResult

    assert isinstance(result, DemoResult)
    _print_demo(result)
    if as_json:
        click.echo(json.dumps(result.summary()))
    if not result.ok:
        errors.print(
            f"[red]FAILED[/red]: lost {result.lost}, duplicates {result.duplicates}, "
            f"out of order {result.out_of_order}, mismatched {result.mismatched}"
        )
        sys.exit(1)


def _print_demo(result: object) -> None:
    from broker.demo import DemoResult

    assert isinstance(result, DemoResult)
    routes = Table("message", "from", "to", "records", title="What went where")
    for (name, sender, recipient), n in sorted(result.routes.items()):
        routes.add_row(name, sender, recipient, str(n))
    console.print(routes)
    parties = Table("party", "sent", "delivered", title="Per party")
    for party, count in sorted(result.parties.items()):
        parties.add_row(party, str(count.sent), str(count.delivered))
    console.print(parties)
    outcomes = ", ".join(f"{k.lower()} {v}" for k, v in sorted(result.outcomes.items()))
    console.print(
        f"{result.cases} cases ({outcomes}); sent {result.sent}, delivered {result.delivered}, "
        f"lost {result.lost}, duplicates {result.duplicates} in {result.seconds:.1f} s"
    )


def _register_security_commands() -> None:
    from broker._cli_gateway import gateway
    from broker._cli_security import directory, envelope, keys, open_command, seal_command

    for command in (keys, directory, seal_command, open_command, envelope, gateway):
        cli.add_command(command)


_register_security_commands()


def main() -> None:
    cli(prog_name="lvvx")


if __name__ == "__main__":
    main()
