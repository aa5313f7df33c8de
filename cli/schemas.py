"""`lvvx schemas list|show|example`: the Avro contract."""

from __future__ import annotations

import json

import click
from rich.markup import escape

from cli._common import Group, table


@click.group(cls=Group)
def schemas() -> None:
    """The Avro contract: list schemas, show them, print examples."""


@schemas.command("list")
@click.option("--json", "as_json", is_flag=True, help="One JSON array instead of a table.")
def schemas_list(as_json: bool) -> None:
    """Every top-level schema with its SHA-256 fingerprint (of its Parsing Canonical Form)."""
    from broker.contract import default_codec

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
    table("nl.lvv.v1 contract", ("schema", "SHA-256 (first 8 bytes)", "what it is"),
          [(r["name"], r["fingerprint"][:16], escape(r["doc"].split(". ")[0])) for r in rows])  # fmt: skip


@schemas.command("show")
@click.argument("type_name", metavar="TYPE")
def schemas_show(type_name: str) -> None:
    """The self-contained schema of TYPE (shared types inlined), as JSON."""
    from broker.contract import default_codec

    click.echo(json.dumps(default_codec().info(type_name).schema, indent=2, ensure_ascii=False))


@schemas.command("example")
@click.argument("type_name", metavar="TYPE")
def schemas_example(type_name: str) -> None:
    """A valid, realistic example of TYPE, such as DossierDelivered, in its JSON form."""
    from demo.examples import example

    click.echo(example(type_name).model_dump_json(indent=2))
