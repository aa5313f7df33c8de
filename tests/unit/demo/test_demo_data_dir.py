"""`lvvx demo --data DIR` removes DIR only if it is a demo network: the demo marks the folder
it makes (`.lvvx-demo`), and refuses — one line with a reason code, exit 2, nothing touched —
to reuse a non-empty folder without that mark."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from broker.errors import LocalError
from cli.main import cli
from demo.folder import DEMO_MARKER, fresh_data_folder


def demo(folder: Path) -> tuple[int, str]:
    result = CliRunner().invoke(
        cli, ["demo", "--cases", "1", "--no-hostile", "--json", "--data", str(folder)]
    )
    return result.exit_code, result.output


def test_a_folder_that_is_not_a_demo_network_is_refused_and_left_alone(tmp_path: Path) -> None:
    precious = tmp_path / "home"
    (precious / "thesis").mkdir(parents=True)
    (precious / "thesis" / "chapter1.tex").write_text("years of work")
    (precious / "notes.txt").write_text("keep")

    code, output = demo(precious)

    assert code == 2, output
    assert "NOT_A_DEMO_FOLDER" in output and "Traceback" not in output
    assert (precious / "thesis" / "chapter1.tex").read_text() == "years of work"
    assert (precious / "notes.txt").read_text() == "keep"
    assert not (precious / DEMO_MARKER).exists()


def test_the_demo_marks_its_folder_and_makes_it_afresh_on_the_next_run(tmp_path: Path) -> None:
    data = tmp_path / "run"
    code, output = demo(data)
    assert code == 0, output
    assert "lvvx demo" in (data / DEMO_MARKER).read_text()
    first_directory = (data / "directory.bin").read_bytes()
    (data / "left-over").write_text("from the first run")

    code, output = demo(data)

    assert code == 0, output
    assert json.loads(output.strip().splitlines()[-1])["lost"] == 0
    assert not (data / "left-over").exists()  # a fresh network: new keys, log and state
    assert (data / "directory.bin").read_bytes() != first_directory
    assert (data / DEMO_MARKER).is_file()


def test_an_empty_folder_is_taken_and_marked(tmp_path: Path) -> None:
    folder = tmp_path / "empty"
    folder.mkdir()
    fresh_data_folder(folder)
    assert [p.name for p in folder.iterdir()] == [DEMO_MARKER]


def test_a_marked_folder_is_emptied_and_marked_again(tmp_path: Path) -> None:
    folder = tmp_path / "old-demo"
    (folder / "state" / "ind").mkdir(parents=True)
    (folder / "state" / "ind" / "gateway.db").write_bytes(b"old")
    (folder / DEMO_MARKER).write_text("made by lvvx demo\n")
    fresh_data_folder(folder)
    assert [p.name for p in folder.iterdir()] == [DEMO_MARKER]


def test_a_marker_that_is_a_folder_does_not_count(tmp_path: Path) -> None:
    folder = tmp_path / "odd"
    (folder / DEMO_MARKER).mkdir(parents=True)
    (folder / "data.csv").write_text("1,2,3")
    with pytest.raises(LocalError) as caught:
        fresh_data_folder(folder)
    assert caught.value.reason == "NOT_A_DEMO_FOLDER"
    assert (folder / "data.csv").exists()


def test_a_symlink_is_never_followed_into_removal(tmp_path: Path) -> None:
    target = tmp_path / "elsewhere"
    target.mkdir()
    (target / DEMO_MARKER).write_text("made by lvvx demo\n")
    (target / "keep.txt").write_text("keep")
    link = tmp_path / "link"
    link.symlink_to(target, target_is_directory=True)
    with pytest.raises(LocalError) as caught:
        fresh_data_folder(link)
    assert caught.value.reason == "NOT_A_DEMO_FOLDER"
    assert (target / "keep.txt").exists()
