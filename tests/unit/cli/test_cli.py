"""The `lvvx` command line: schemas and the demo, run as a user would."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from broker._codec import default_codec
from broker.models import MESSAGE_MODELS, model_for
from cli.main import cli


def run(*args: str) -> str:
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def test_schemas_list_json_gives_every_schema_with_its_fingerprint() -> None:
    listed = json.loads(run("schemas", "list", "--json"))
    codec = default_codec()
    assert {s["name"] for s in listed} == set(MESSAGE_MODELS)
    for entry in listed:
        assert bytes.fromhex(entry["fingerprint"]) == codec.info(entry["name"]).fingerprint


@pytest.mark.parametrize("name", sorted(MESSAGE_MODELS))
def test_schemas_example_prints_a_valid_message(name: str) -> None:
    short = name.rsplit(".", 1)[1]
    printed = run("schemas", "example", short)
    message = model_for(name).model_validate_json(printed)
    default_codec().encode(name, message.to_avro())  # and it fits the Avro schema


def test_unknown_type_is_a_clear_error() -> None:
    result = CliRunner().invoke(cli, ["schemas", "example", "NoSuchType"])
    assert result.exit_code == 2
    assert "UNKNOWN_SCHEMA" in result.output


def test_demo_on_the_embedded_log_runs_the_network_green(tmp_path: Path) -> None:
    output = run("demo", "--cases", "6", "--data", str(tmp_path / "run"), "--json")
    summary = json.loads(output.strip().splitlines()[-1])
    assert summary["cases"] == 6
    assert summary["sent"] == summary["delivered"] == summary["receipted"] > 0
    assert summary["lost"] == 0 and summary["duplicates"] == 0
    assert summary["rejected"] == 4 and summary["hostile_refused"] is True
    assert sum(summary["outcomes"].values()) == 6
    # the run leaves what later commands need
    for made in (
        "directory.bin",
        "keys/anchor.public.json",
        "log.db",
        "run.json",
        "gateways/dtv.toml",
    ):
        assert (tmp_path / "run" / made).exists(), made
