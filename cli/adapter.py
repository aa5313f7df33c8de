"""`lvvx adapter run`: a party's adapter as its own process, on its gateway's HTTP API."""

from __future__ import annotations

import logging
from pathlib import Path

import click

from cli._common import Group


@click.group(cls=Group)
def adapter() -> None:
    """Run a party's back-office adapter against its gateway's HTTP API."""


@adapter.command("run")
@click.option("--config", "config_file", type=click.Path(dir_okay=False, path_type=Path),
              help="TOML settings; LVVX_ADAPTER_* environment variables and the options "
                   "below override them.")  # fmt: skip
@click.option("--party", help="The party whose adapter runs (its kind is its role).")
@click.option("--gateway", "gateway_url", metavar="URL", help="The party's gateway's HTTP API.")
@click.option("--token-file", type=click.Path(dir_okay=False, path_type=Path),
              help="File with the API token (else $LVVX_API_TOKEN or $LVVX_API_TOKEN_FILE).")  # fmt: skip
def adapter_run(
    config_file: Path | None, party: str | None, gateway_url: str | None, token_file: Path | None
) -> None:
    """Long-poll the inbox, hand each message to the adapter, acknowledge it once handled;
    SIGTERM or Ctrl-C stops it within seconds."""
    from adapters.service import run
    from adapters.settings import load_adapter_settings

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    settings = load_adapter_settings(config_file, party=party, gateway_url=gateway_url,
                                     token_file=token_file)  # fmt: skip
    click.echo(f"adapter {settings.party}: gateway {settings.gateway_url}")
    run(settings)
