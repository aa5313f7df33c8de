"""Secrets never come from the gateway's TOML file: an ``api_token`` or ``webhook_secret``
written there is refused with one line (CONFIG) naming where it belongs; from the
environment, or from the files the TOML names, they still work."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from broker.errors import LocalError
from broker.gateway.settings import load_settings
from cli.main import cli

BASE = (
    'party = "gemeente-utrecht"',
    'keys_dir = "keys"',
    'directory_file = "directory.bin"',
    'anchor_file = "keys/anchor.public.json"',
    'network = "lvv"',
    'data_dir = "state"',
)
TOKEN = "back-office-token-0123456789abcdef"
WEBHOOK_SECRET = "webhook-secret-0123456789abcdef0123456789"


@pytest.fixture(autouse=True)
def _no_gateway_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("LVVX_GATEWAY_"):
            monkeypatch.delenv(name)


def config(folder: Path, *lines: str) -> Path:
    path = folder / "gateway.toml"
    path.write_text("\n".join((*BASE, *lines)) + "\n")
    return path


def test_an_api_token_in_the_toml_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(LocalError) as caught:
        load_settings(config(tmp_path, f'api_token = "{TOKEN}"'))
    assert caught.value.reason == "CONFIG"
    message = str(caught.value)
    assert "\n" not in message
    assert "api_token" in message and "LVVX_GATEWAY_API_TOKEN" in message
    assert "api_token_file" in message
    assert TOKEN not in message  # the refusal does not print the secret it refuses


def test_a_webhook_secret_in_the_toml_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(LocalError) as caught:
        load_settings(config(tmp_path, f'webhook_secret = "{WEBHOOK_SECRET}"'))
    assert caught.value.reason == "CONFIG"
    message = str(caught.value)
    assert "\n" not in message
    assert "LVVX_GATEWAY_WEBHOOK_SECRET" in message and "webhook_secret_file" in message
    assert WEBHOOK_SECRET not in message


def test_a_secret_in_the_file_is_refused_even_when_the_environment_overrides_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LVVX_GATEWAY_API_TOKEN", TOKEN)
    with pytest.raises(LocalError, match="LVVX_GATEWAY_API_TOKEN"):
        load_settings(config(tmp_path, 'api_token = "written-down"'))


def test_the_api_token_comes_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LVVX_GATEWAY_API_TOKEN", TOKEN)
    assert load_settings(config(tmp_path)).token() == TOKEN


def test_the_api_token_comes_from_the_file_the_toml_names(tmp_path: Path) -> None:
    (tmp_path / "secrets").mkdir()
    (tmp_path / "secrets" / "utrecht.token").write_text(TOKEN + "\n")
    settings = load_settings(config(tmp_path, 'api_token_file = "secrets/utrecht.token"'))
    assert settings.token() == TOKEN


def test_without_a_token_the_gateway_does_not_start(tmp_path: Path) -> None:
    with pytest.raises(LocalError, match="LVVX_GATEWAY_API_TOKEN") as caught:
        load_settings(config(tmp_path)).token()
    assert caught.value.reason == "CONFIG"


def test_the_webhook_secret_comes_from_the_environment_or_its_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = 'webhook_url = "https://backoffice.example/lvv"'
    monkeypatch.setenv("LVVX_GATEWAY_WEBHOOK_SECRET", WEBHOOK_SECRET)
    assert load_settings(config(tmp_path, url)).webhook_key() == WEBHOOK_SECRET
    monkeypatch.delenv("LVVX_GATEWAY_WEBHOOK_SECRET")
    (tmp_path / "webhook.secret").write_text(WEBHOOK_SECRET + "\n")
    settings = load_settings(config(tmp_path, url, 'webhook_secret_file = "webhook.secret"'))
    assert settings.webhook_key() == WEBHOOK_SECRET


def test_gateway_run_reports_a_secret_in_the_toml_file_as_one_line(tmp_path: Path) -> None:
    path = config(tmp_path, f'api_token = "{TOKEN}"')
    result = CliRunner().invoke(cli, ["gateway", "run", "--config", str(path)])
    assert result.exit_code == 2, result.output
    assert "CONFIG" in result.output and "LVVX_GATEWAY_API_TOKEN" in result.output
    assert TOKEN not in result.output
    assert "Traceback" not in result.output
