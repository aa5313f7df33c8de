"""`lvvx gateway run --config FILE`: one party's gateway as a long-running service."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import click


@click.group()
def gateway() -> None:
    """Run a party's gateway (consume loop, HTTP API for the back office, metrics)."""


@gateway.command("run")
@click.option("--config", "config_file", type=click.Path(dir_okay=False, path_type=Path),
              help="TOML settings; LVVX_GATEWAY_* environment variables override them.")  # fmt: skip
def gateway_run(config_file: Path | None) -> None:
    """Start the gateway; SIGTERM or Ctrl-C stops it gracefully."""
    from broker.gateway.service import serve
    from broker.gateway.settings import load_settings
    from broker.log_throttle import quieten

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    # while Kafka is away aiokafka logs each failed connect and fetch, ~100 lines a second:
    # one line per condition per 10 s, with the count, says the same
    quieten("aiokafka")
    settings = load_settings(config_file)
    click.echo(f"gateway {settings.party}: API on http://{settings.http_host}:{settings.http_port}, "
               f"transport {settings.transport}")  # fmt: skip
    asyncio.run(serve(settings))
