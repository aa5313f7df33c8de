"""`lvvx gateway run --config FILE`: one party's gateway as a long-running service."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import click

from broker.errors import LocalError
from cli._common import Group


@click.group(cls=Group)
def gateway() -> None:
    """Run a party's gateway (consume loop, HTTP API for the back office, metrics)."""


@gateway.command("run")
@click.option("--config", "config_file", type=click.Path(dir_okay=False, path_type=Path),
              help="TOML settings; LVVX_GATEWAY_* environment variables override them.")  # fmt: skip
def gateway_run(config_file: Path | None) -> None:
    """Start the gateway; SIGTERM or Ctrl-C stops it gracefully."""
    from broker.gateway.service import run, server_stack
    from broker.gateway.settings import load_settings
    from broker.log_throttle import quieten

    if config_file is None:
        _require_environment()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    # while Kafka is away aiokafka logs each failed connect and fetch, ~100 lines a second:
    # one line per condition per 10 s, with the count, says the same
    quieten("aiokafka")
    settings = load_settings(config_file)
    click.echo(f"gateway {settings.party}: API on http://{settings.http_host}:{settings.http_port} "
               f"({server_stack()}), transport {settings.transport}")  # fmt: skip
    run(settings)


def _require_environment() -> None:
    """Without --config the environment must give every required setting: name the
    variables that are missing."""
    from broker.gateway.settings import ENV_PREFIX, GatewaySettings

    given = {name.upper() for name in os.environ}  # pydantic-settings ignores their case
    required = [f"{ENV_PREFIX}{name.upper()}" for name, field in GatewaySettings.model_fields.items()
                if field.is_required()]  # fmt: skip
    missing = [variable for variable in required if variable not in given]
    if missing:
        names = ", ".join(missing[:-1]) + " and " + missing[-1] if len(missing) > 1 else missing[0]
        verb = "are" if len(missing) > 1 else "is"
        raise LocalError(f"no --config given and {names} {verb} not set (give --config FILE; "
                         "`lvvx demo` writes one per party in DATA/gateways/)", reason="CONFIG")  # fmt: skip
