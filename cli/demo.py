"""`lvvx demo`: the whole network on one machine, with fictional cases."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path
from typing import Any

import click
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from cli._common import console, errors, quiet_kafka_logs, table

DEFAULT_DATA_DIR = ".lvvx"


@click.command()
@click.option("--kafka", metavar="HOST:PORT", help="Run on Kafka instead of the embedded log.")
@click.option("--cases", default=50, show_default=True, type=click.IntRange(1, 10_000))
@click.option(
    "--data",
    type=click.Path(file_okay=False, path_type=Path),
    default=lambda: os.environ.get("LVVX_DATA_DIR", DEFAULT_DATA_DIR),
    show_default=DEFAULT_DATA_DIR,
    help="Folder for the network's keys, directory, gateway state and the embedded log.",
)
@click.option(
    "--seed",
    default=2018,
    show_default=True,
    type=int,
    help="Draws the cases: people, the mix of paths, the days, the planted cases.",
)
@click.option("--json", "as_json", is_flag=True, help="End with one JSON summary line.")
@click.option("--no-hostile", is_flag=True, help="Do not inject hostile envelopes.")
@click.option(
    "--serve",
    is_flag=True,
    help="Afterwards keep the network up (APIs, metrics, new cases) until Ctrl-C.",
)
@click.option(
    "--port-base",
    type=click.IntRange(1024, 65535 - 100),
    help="With --serve: the gateways from PORT_BASE+1 on, the verifier's metrics on "
    "PORT_BASE+28 (default: gateways from 8081, the verifier on 9108).",
)
@click.option(
    "--tls",
    "pki_folder",
    type=click.Path(file_okay=False, path_type=Path),
    help="On a secured Kafka: this PKI's certificates (admin to provision, one per party).",
)
@click.option(
    "--over-http",
    is_flag=True,
    help="Back offices use their gateways' HTTP APIs (long-poll, ack), as `lvvx adapter run`.",
)
def demo(
    kafka: str | None,
    cases: int,
    data: Path,
    seed: int,
    as_json: bool,
    no_hostile: bool,
    serve: bool,
    port_base: int | None,
    pki_folder: Path | None,
    over_http: bool,
) -> None:
    """Run the whole LVV network and drive cases through the case flow."""
    import secrets

    from broker.transport import open_transport
    from demo.folder import fresh_data_folder
    from demo.network import write_gateway_configs, write_run_info
    from demo.run import run_demo

    # aiokafka logs retriable start-up conditions of fresh topics as errors; they pass
    quiet_kafka_logs()
    fresh_data_folder(data)  # removes only a folder the demo made (NOT_A_DEMO_FOLDER)
    # on a shared Kafka, a run's own topics keep earlier runs' records out of it
    prefix = f"lvv.demo-{secrets.token_hex(4)}.v1" if kafka else "lvv.v1"
    transport = open_transport(kafka, data, tls=pki_folder)
    transport_for, provision = (
        _secured(kafka, pki_folder, prefix) if kafka and pki_folder else (None, None)
    )
    where = f"Kafka at {escape(kafka)}" if kafka else f"the embedded log in {escape(str(data))}/"
    if not as_json:
        console.print(f"LVV Exchange demo: {cases} cases across 12 parties over {where}")

    async def main() -> object:
        try:
            with Progress(
                TextColumn("cases"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                console=console, transient=True, disable=as_json,
            ) as progress:  # fmt: skip
                task = progress.add_task("cases", total=cases)
                then = (
                    _serving(
                        data, kafka, prefix, as_json, before=progress.stop, port_base=port_base
                    )
                    if serve
                    else None
                )
                return await run_demo(transport, data, cases, prefix=prefix, hostile=not no_hostile,
                                      on_progress=lambda done, _: progress.update(task, completed=done),
                                      then=then, transport_for=transport_for, provision=provision,
                                      over_http=over_http, seed=seed)  # fmt: skip
        finally:
            await transport.close()

    result = asyncio.run(main())
    from demo.network import open_network
    from demo.run import DemoResult

    assert isinstance(result, DemoResult)
    write_run_info(data, transport="kafka" if kafka else "embedded", kafka=kafka, prefix=prefix, tls=pki_folder,
                   summary=result.summary())  # fmt: skip
    from broker.gateway import utc_now
    from demo.serve import ports_from

    write_gateway_configs(open_network(data, now=utc_now()), kafka=kafka, prefix=prefix,
                          tls=pki_folder, first_port=ports_from(port_base)[0])  # fmt: skip
    if serve:
        pass  # reported before serving began
    elif not as_json:
        _print_demo(result)
    else:
        click.echo(json.dumps(result.summary()))
    if not result.ok:
        errors.print(
            f"[red]FAILED[/red]: lost {result.lost}, duplicates {result.duplicates}, "
            f"not receipted {result.sent - result.receipted}, stuck cases {result.stuck_cases}, "
            f"wrong outcomes {len(result.wrong_outcomes)}, hostile refused {result.hostile_refused}"
        )
        sys.exit(1)


def _secured(kafka: str, pki: Path, prefix: str) -> tuple[Any, Any]:
    """On a secured Kafka: each gateway connects with its party's certificate, and the
    network's topics and ACLs are applied (as admin) before the run."""
    from broker.provision import Layout, apply
    from broker.transport.kafka import KafkaOptions, KafkaTransport

    def transport_for(party: str) -> Any:
        return KafkaTransport(KafkaOptions.for_identity(kafka, pki, party))

    async def provision(net: Any) -> None:
        admin = KafkaTransport(KafkaOptions.for_identity(kafka, pki, "admin"))
        try:
            await apply(admin, net.directory, Layout(prefix, partitions=3))
        finally:
            await admin.close()

    return transport_for, provision


def _serving(data: Path, kafka: str | None, prefix: str, as_json: bool, before: Any,
             port_base: int | None) -> Any:  # fmt: skip
    """What `--serve` does once the cases ran: report, then keep the network up."""

    async def then(demo: Any, result: Any) -> None:
        from demo.network import write_gateway_configs
        from demo.serve import ports_from, serve

        before()
        first, verifier = ports_from(port_base)
        ports = write_gateway_configs(demo.net, kafka=kafka, prefix=prefix, first_port=first)
        if as_json:
            click.echo(json.dumps(result.summary()))
        else:
            _print_demo(result)

        def show(rows: list[tuple[str, str]]) -> None:
            table("Ports (127.0.0.1)", ("port", "party"), rows)

        await serve(demo, ports, say=console.print, verifier_port=verifier,
                    show=show)  # fmt: skip

    return then


def _print_demo(result: object) -> None:
    from demo.run import DemoResult

    assert isinstance(result, DemoResult)
    table("Per party (records)", ("party", "sent", "delivered", "receipted", "rejected"),
          [(party, str(c.sent), str(c.delivered), str(c.receipted), str(c.rejected))
           for party, c in sorted(result.parties.items())])  # fmt: skip
    table("Case outcomes", ("outcome", "cases"),
          [(outcome.lower().replace("_", " "), str(n)) for outcome, n in sorted(result.outcomes.items())])  # fmt: skip
    letters = list(result.dead_letters)
    table("Dead-letter topics", ("hostile envelope", "into", "expected", "dead-lettered as"),
          [(h.kind, h.target, h.expected_reason,
            h.expected_reason if (h.target, h.expected_reason) in letters else "MISSING")
           for h in result.hostile])  # fmt: skip
    if result.planted:
        table("Planted cases (a rule broken on purpose: `lvvx cases` shows them)",
              ("case", "broken rule"),
              [(case, rule.lower().replace("_", " ")) for case, rule in sorted(result.planted.items())])  # fmt: skip
    if result.flow_warnings:
        warned = ", ".join(f"{w} {n}" for w, n in sorted(result.flow_warnings.items()))
        console.print(f"case-flow warnings: {warned}")
    if result.calendar:
        first, last = result.calendar
        console.print(f"calendar: the cases ran from {first} to {last} (simulated)")
    s = result.supervision
    if s:
        console.print(
            f"DT&V supervision: {s['made_known']} persons made known, {s['departures']} departed, "
            f"{s['open_cases']} cases open"
        )
    console.print(
        f"{result.cases} cases; sent {result.sent}, delivered {result.delivered}, "
        f"receipted {result.receipted}, rejected {result.rejected}, lost {result.lost}, "
        f"duplicates {result.duplicates} in {result.seconds:.1f} s"
    )
