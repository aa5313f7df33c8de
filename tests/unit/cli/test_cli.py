"""The `lvvx` command line: schemas and the demo, run as a user would."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from broker.contract import default_codec
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


@pytest.mark.parametrize("command", ["show", "example"])
def test_schemas_take_the_full_name_as_well_as_the_short_one(command: str) -> None:
    assert run("schemas", command, "nl.lvv.v1.DossierDelivered") == run(
        "schemas", command, "DossierDelivered"
    )


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


# --- the promise: one line per error, at any width ------------------------------------------
#
# The real `lvvx` process, as a script or an operator's shell sees it: stdout and stderr are
# pipes (not a terminal) and COLUMNS is narrow, where rich would wrap and click would print
# its Usage block.

REPO = Path(__file__).resolve().parents[3]
NOWHERE = "127.0.0.1:1"  # nothing listens there: Kafka unreachable
ERROR_LINE = re.compile(r"error \[[A-Z][A-Z0-9_]*\] \S.*")
PYTHON_REPR = re.compile(r"<[A-Za-z_][\w.]*(?: object at |: |>)")  # <AddressFamily.AF_INET: 2>


def lvvx_process(*args: object, columns: int = 40, **env: str) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("LVVX_")}
    environment.update(COLUMNS=str(columns), **env)
    return subprocess.run(
        [sys.executable, "-m", "cli.main", *map(str, args)],
        capture_output=True, text=True, env=environment, cwd=REPO, timeout=120, check=False,
    )  # fmt: skip


def the_error_line(done: subprocess.CompletedProcess[str]) -> str:
    """The one line on stderr of a failed command; fails the test for anything else."""
    assert done.returncode == 2, (done.returncode, done.stderr)
    assert "Traceback" not in done.stderr and "Unclosed" not in done.stderr, done.stderr
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr
    assert ERROR_LINE.fullmatch(lines[0]), lines[0]
    assert not PYTHON_REPR.search(lines[0]), lines[0]
    return lines[0]


@pytest.fixture(scope="module")
def demo_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small demo network on the embedded log: keys, directory, audit stream."""
    folder = tmp_path_factory.mktemp("cli") / "net"
    run("demo", "--cases", "2", "--no-hostile", "--json", "--data", str(folder))
    return folder


# one failing command line per command group ({demo}: a demo folder; {tmp}: a folder holding
# `file`, an empty file, and `proof.json`, not a proof), and the reason its error line names
ERRORS = {
    "root: unknown command": ("frobnicate", "USAGE"),
    "keys: bad party id": ("keys init --party NOT_AN_ID --role DTV --out {tmp}/k", "BAD_PARTY_ID"),
    "keys: missing option": ("keys init --party dtv --role DTV", "USAGE"),
    "directory: no such file": ("directory verify {tmp}/no.bin --anchor {demo}/keys", "NO_FILE"),
    "seal: no anchor": ("seal --from dtv --to ind --type CaseClosed --payload {tmp}/p.json "
                        "--keys {tmp} --directory {demo}/directory.bin --out {tmp}/o.env", "KEY_STORE"),
    "open: no key": ("open {tmp}/no.env --as dtv --keys {tmp} --directory {demo}/directory.bin "
                     "--anchor {demo}/keys", "KEY_STORE"),
    "envelope: no such file": ("envelope inspect {tmp}/no.env", "NO_FILE"),
    "pki: folder under a file": ("pki init --out {tmp}/file/pki", "OS_ERROR"),
    "topics: Kafka unreachable": ("topics apply --directory {demo}/directory.bin --anchor {demo}/keys "
                                  f"--kafka {NOWHERE}", "TRANSPORT_UNAVAILABLE"),
    "gateway run: no config": ("gateway run", "CONFIG"),
    "gateway run: no such config": ("gateway run --config {tmp}/no.toml", "CONFIG"),
    "audit verify: no log": ("audit verify --data {tmp}", "NO_LOG"),
    "audit verify: Kafka unreachable": (f"audit verify --data {{demo}} --kafka {NOWHERE}",
                                        "TRANSPORT_UNAVAILABLE"),
    "audit prove: not a uuid": ("audit prove not-a-uuid --data {demo}", "USAGE"),
    "audit prove: unknown message": (f"audit prove {uuid.UUID(int=1)} --data {{demo}}", "NOT_FOUND"),
    "audit check-proof: not a proof": ("audit check-proof {tmp}/proof.json --directory "
                                       "{demo}/directory.bin --anchor {demo}/keys", "NOT_A_PROOF"),
    "audit follow: Kafka unreachable": (f"audit follow --data {{demo}} --kafka {NOWHERE} "
                                        "--metrics-port 0", "TRANSPORT_UNAVAILABLE"),
    "cases: no log": ("cases --data {tmp}", "NO_LOG"),
    "cases: Kafka unreachable": (f"cases --data {{demo}} --kafka {NOWHERE}", "TRANSPORT_UNAVAILABLE"),
    "schemas show: unknown type": ("schemas show NoSuchType", "UNKNOWN_SCHEMA"),
    "demo: bad option": ("demo --cases 0", "USAGE"),
}  # fmt: skip


@pytest.mark.parametrize("case", ERRORS, ids=list(ERRORS))
def test_every_command_group_reports_an_error_as_one_line_with_its_reason(
    case: str, demo_folder: Path, tmp_path: Path
) -> None:
    (tmp_path / "file").write_text("")
    (tmp_path / "proof.json").write_text("this is not a proof")
    command, reason = ERRORS[case]

    args = command.format(demo=demo_folder, tmp=tmp_path).split()
    line = the_error_line(lvvx_process(*args))

    assert line.startswith(f"error [{reason}] "), line


def test_a_usage_error_names_the_help_to_read(tmp_path: Path) -> None:
    line = the_error_line(lvvx_process("keys", "init", "--party", "dtv", "--role", "DTV"))
    assert "--out" in line and "lvvx keys init --help" in line


def test_a_long_path_stays_on_one_line_and_whole(tmp_path: Path) -> None:
    deep = tmp_path / ("d" * 200)
    line = the_error_line(lvvx_process("envelope", "inspect", deep / "x.env"))
    assert str(deep / "x.env") in line


def test_brackets_in_a_path_are_printed_as_they_are(tmp_path: Path) -> None:
    odd = tmp_path / "[red]x[/red]"
    line = the_error_line(lvvx_process("envelope", "inspect", odd))
    assert str(odd) in line


def test_gateway_run_without_config_names_the_settings_to_give() -> None:
    line = the_error_line(lvvx_process("gateway", "run"))
    assert "--config" in line and "LVVX_GATEWAY_PARTY" in line


def test_a_malformed_gateway_setting_in_the_environment_is_one_config_line(tmp_path: Path) -> None:
    (tmp_path / "gateway.toml").write_text('party = "dtv"\n')
    done = lvvx_process("gateway", "run", "--config", tmp_path / "gateway.toml",
                        LVVX_GATEWAY_KAFKA="not json")  # fmt: skip
    line = the_error_line(done)
    assert line.startswith("error [CONFIG] ") and "LVVX_GATEWAY_KAFKA" in line


def test_a_bug_is_one_internal_line_and_its_traceback_only_when_asked(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import broker.contract

    def broken() -> object:
        raise RuntimeError("a bug\nover two lines")

    monkeypatch.setattr(broker.contract, "default_codec", broken)
    quiet = CliRunner().invoke(cli, ["schemas", "list"])
    assert quiet.exit_code == 2
    assert quiet.stderr.splitlines() == [
        "error [INTERNAL] RuntimeError: a bug over two lines (a bug in lvvx: LVVX_DEBUG=1 shows where)"
    ]
    monkeypatch.setenv("LVVX_DEBUG", "1")
    loud = CliRunner().invoke(cli, ["schemas", "list"])
    assert loud.exit_code == 2
    assert "Traceback" in loud.stderr and loud.stderr.splitlines()[-1].startswith(
        "error [INTERNAL]"
    )


# --- help that is never cut ------------------------------------------------------------------


def every_command(
    command: click.Command = cli, path: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], click.Command]]:
    yield path, command
    if isinstance(command, click.Group):
        for name, sub in sorted(command.commands.items()):
            yield from every_command(sub, (*path, name))


COMMANDS = {" ".join(path) or "lvvx": path for path, _ in every_command()}


@pytest.mark.parametrize("width", [40, 80, 200])
@pytest.mark.parametrize("command", COMMANDS, ids=list(COMMANDS))
def test_no_help_text_is_cut(command: str, width: int) -> None:
    result = CliRunner().invoke(cli, [*COMMANDS[command], "--help"], terminal_width=width)
    assert result.exit_code == 0, result.output
    text = result.output.replace("[ARGS]...", "[ARGS]")  # click's notation for "more arguments"
    assert "..." not in text and "…" not in text, text


def test_each_command_of_a_group_is_listed_with_a_whole_sentence() -> None:
    for path, group in every_command():
        if not isinstance(group, click.Group):
            continue
        listing = " ".join(
            CliRunner().invoke(cli, [*path, "--help"], terminal_width=40).output.split()
        )
        for name, command in group.commands.items():
            sentence = command.get_short_help_str(limit=10_000)
            assert sentence.endswith(".") and sentence.count("(") == sentence.count(")"), sentence
            assert f"{name} {sentence}" in listing, (path, name)


@pytest.mark.parametrize("group", [[], ["audit"]], ids=["lvvx", "lvvx audit"])
def test_a_group_without_a_command_shows_its_help(group: list[str]) -> None:
    done = lvvx_process(*group)
    assert (done.returncode, done.stderr) == (0, "")
    assert done.stdout.startswith(f"Usage: lvvx {' '.join(group)}".rstrip())


# --- tables that fit, summary lines that never wrap -----------------------------------------

BOX = set("┃│┏┡└━─")


def test_the_case_monitor_summary_is_a_sentence_not_a_dict(demo_folder: Path) -> None:
    printed = lvvx_process("cases", "--data", demo_folder, columns=200).stdout.splitlines()
    assert printed[-1] == (
        "2 cases: 0 in intake, 0 in rest period, 0 with a scenario set, 0 escalated, 2 closed; "
        "0 rest periods overdue; 0 open escalations, 0 overdue; 0 broken rules"
    )
    assert not any("{" in line for line in printed)


@pytest.mark.parametrize("columns", [40, 80, 200])
def test_the_case_monitor_prints_dates_whole_at_any_width(demo_folder: Path, columns: int) -> None:
    done = lvvx_process("cases", "--data", demo_folder, columns=columns)
    assert done.returncode == 0, done.stderr
    cases = json.loads(lvvx_process("cases", "--data", demo_folder, "--json").stdout)["cases"]
    for case in cases:
        since = datetime.fromisoformat(case["in_step_since"]).strftime("%Y-%m-%d %H:%M:%S")
        assert since in done.stdout, done.stdout
    assert "rest periods overdue" in done.stdout.splitlines()[-1]


@pytest.mark.parametrize("columns", [40, 80])
def test_a_table_too_wide_turns_into_one_block_per_row(demo_folder: Path, columns: int) -> None:
    done = lvvx_process("directory", "show", demo_folder / "directory.bin", "--anchor",
                        demo_folder / "keys", columns=columns)  # fmt: skip
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert not BOX & set(done.stdout), done.stdout
    shown = json.loads(lvvx_process("directory", "show", demo_folder / "directory.bin", "--anchor",
                                    demo_folder / "keys", "--json").stdout)  # fmt: skip
    for party in shown["parties"]:
        assert f"party: {party['party_id']}" in lines
        assert f"name: {party['display_name']}" in lines  # whole, however long


def test_a_table_that_fits_stays_a_table_within_the_width(demo_folder: Path) -> None:
    done = lvvx_process("audit", "verify", "--data", demo_folder, columns=80)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert BOX & set(done.stdout)
    assert max(len(line) for line in lines) <= 80
    assert any(line.startswith("│ dtv ") for line in lines), done.stdout


def test_summary_lines_never_wrap(demo_folder: Path) -> None:
    verified = lvvx_process("audit", "verify", "--data", demo_folder).stdout.splitlines()
    assert any(
        re.fullmatch(
            r"messages: \d+ sent, \d+ accounted for at every recipient, \d+ still in flight", line
        )
        for line in verified
    ), verified


def test_the_demo_reports_on_whole_lines(tmp_path: Path) -> None:
    done = lvvx_process("demo", "--cases", "2", "--no-hostile", "--data", tmp_path / "net")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == (
        f"LVV Exchange demo: 2 cases across 12 parties over the embedded log in {tmp_path / 'net'}/"
    )
    assert re.fullmatch(r"2 cases; sent \d+, delivered \d+, receipted \d+, rejected 0, lost 0, "
                        r"duplicates 0 in [\d.]+ s", lines[-1]), lines[-1]  # fmt: skip


# --- on Kafka --------------------------------------------------------------------------------


@pytest.mark.kafka
def test_the_kafka_commands_close_what_they_open(tmp_path: Path) -> None:
    from tests.conftest import KAFKA_BOOTSTRAP

    folder = tmp_path / "net"
    ran = lvvx_process("demo", "--kafka", KAFKA_BOOTSTRAP, "--cases", "2", "--no-hostile",
                       "--json", "--data", folder)  # fmt: skip
    assert ran.returncode == 0, ran.stderr
    assert "Unclosed" not in ran.stderr and "Traceback" not in ran.stderr, ran.stderr
    for command in (["cases"], ["audit", "verify"]):
        done = lvvx_process(*command, "--data", folder)  # Kafka and prefix from run.json
        assert (done.returncode, done.stderr) == (0, ""), done.stderr
    # the plaintext test broker has no authorizer: refused, in one line, every client closed
    refused = lvvx_process("topics", "apply", "--directory", folder / "directory.bin", "--anchor",
                           folder / "keys", "--kafka", KAFKA_BOOTSTRAP, "--dry-run")  # fmt: skip
    assert the_error_line(refused).startswith("error [TRANSPORT_ERROR] describe ACLs")
