"""The security commands of `lvvx` end to end, as an operator runs them: make keys, build and
check the directory, seal a message from a municipality to DT&V and IND, open it, and see
each refusal come out with its exit code and reason."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from broker.errors import RejectReason
from broker.models import IntakeRegistered, KeyAlgorithm
from broker.transport.embedded import EmbeddedTransport
from cli.main import cli
from demo.examples import example
from tests.support import example_of

PASSPHRASE = "operator passphrase for tests"
MUNICIPALITY = "gemeente-utrecht"
PARTIES = [  # (party, role, kem)
    (MUNICIPALITY, "MUNICIPALITY", "x25519"),
    ("dtv", "DTV", "hybrid"),
    ("ind", "IND", "x25519"),
]


def lvvx(*args: object) -> Result:
    return CliRunner().invoke(cli, [str(a) for a in args])


def ok(*args: object) -> str:
    result = lvvx(*args)
    assert result.exit_code == 0, result.output
    return result.stdout


@dataclass(frozen=True)
class Network:
    root: Path
    anchor: Path
    keys: Path
    directory: Path
    intake: Path
    envelope: Path
    made: dict[str, dict[str, str]]  # what `keys init` printed, per party
    built: dict[str, object]  # what `directory build` printed

    def with_directory(self, *args: object) -> list[object]:
        return [*args, "--keys", self.keys, "--directory", self.directory, "--anchor", self.anchor]


@pytest.fixture(scope="module")
def network(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Network]:
    """Three parties' keys, a signed directory, and one sealed intake (built once)."""
    root = tmp_path_factory.mktemp("lvvx")
    anchor, keys = root / "anchor", root / "keys"
    with pytest.MonkeyPatch.context() as env:
        env.setenv("LVVX_KEY_PASSPHRASE", PASSPHRASE)
        # the demo-only KDF keeps this fast; test_key_files.py checks the strong default
        ok("keys", "anchor", "--out", anchor, "--insecure-demo-kdf")
        init = ("keys", "init", "--insecure-demo-kdf", "--out", keys)
        made = {
            party: json.loads(ok(*init, "--party", party, "--role", role, "--kem", kem))
            for party, role, kem in PARTIES
        }
        directory = root / "directory.bin"
        built = json.loads(
            ok("directory", "build", "--keys", keys, "--anchor", anchor, "--out", directory)
        )
        intake = root / "intake.json"
        # the example's municipality is another one: the payload must name the sender
        example_json = json.loads(ok("schemas", "example", "IntakeRegistered"))
        intake.write_text(json.dumps({**example_json, "municipality": MUNICIPALITY}))
        envelope = root / "intake.env"
        net = Network(root, anchor, keys, directory, intake, envelope, made, built)
        ok(
            "seal",
            *net.with_directory(
                "--from", MUNICIPALITY, "--to", "dtv,ind", "--type", "IntakeRegistered"
            ),
            "--payload",
            intake,
            "--out",
            envelope,
        )
        yield net


@pytest.fixture(autouse=True)
def passphrase(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LVVX_KEY_PASSPHRASE", PASSPHRASE)
    monkeypatch.delenv("LVVX_KEY_PASSPHRASE_FILE", raising=False)
    monkeypatch.setenv("COLUMNS", "200")  # rich tables: no wrapped party ids


def tampered_copy(source: Path, target: Path) -> Path:
    data = bytearray(source.read_bytes())
    data[len(data) // 2] ^= 0x01
    target.write_bytes(bytes(data))
    return target


# --- keys and directory -----------------------------------------------------------------------


def test_keys_init_reports_each_partys_key_ids_and_kem(network: Network) -> None:
    kems = {party: made["kem"] for party, made in network.made.items()}
    assert kems == {
        MUNICIPALITY: KeyAlgorithm.X25519.value,
        "dtv": KeyAlgorithm.MLKEM768_X25519.value,
        "ind": KeyAlgorithm.X25519.value,
    }
    public = json.loads((network.keys / "dtv.public.json").read_text())
    assert public["signing_keys"][0]["key_id"] == network.made["dtv"]["signing_key_id"]
    assert public["encryption_keys"][0]["key_id"] == network.made["dtv"]["encryption_key_id"]


def test_keys_init_writes_only_encrypted_private_keys(network: Network) -> None:
    for pem in network.keys.glob("*.pem"):
        assert pem.read_text().startswith("-----BEGIN LVVX ENCRYPTED PRIVATE KEY-----"), pem.name
    assert PASSPHRASE not in "".join(p.read_text() for p in network.root.rglob("*.json"))


def test_directory_build_signs_every_party(network: Network) -> None:
    assert network.built["parties"] == 3
    assert network.directory.stat().st_size > 0


def test_directory_verify_accepts_the_built_directory(network: Network) -> None:
    verified = json.loads(ok("directory", "verify", network.directory, "--anchor", network.anchor))
    assert verified["valid"] is True
    assert verified["parties"] == 3
    assert verified["serial"] == network.built["serial"]
    assert verified["network"] == "lvv"


def test_directory_show_json_lists_every_party_with_its_keys(network: Network) -> None:
    shown = json.loads(
        ok("directory", "show", network.directory, "--anchor", network.anchor, "--json")
    )
    by_party = {p["party_id"]: p for p in shown["parties"]}
    assert sorted(by_party) == sorted(party for party, _, _ in PARTIES)
    dtv_key = by_party["dtv"]["encryption_keys"][0]
    assert dtv_key["algorithm"] == "MLKEM768_X25519"
    assert dtv_key["key_id"] == network.made["dtv"]["encryption_key_id"]


def test_directory_show_prints_a_table_of_every_party(network: Network) -> None:
    table = ok("directory", "show", network.directory, "--anchor", network.anchor)
    for party, role, _ in PARTIES:
        assert party in table
        assert role in table
    assert network.made["ind"]["signing_key_id"] in table


def test_directory_verify_refuses_a_tampered_directory(network: Network, tmp_path: Path) -> None:
    tampered = tampered_copy(network.directory, tmp_path / "directory.bin")
    result = lvvx("directory", "verify", tampered, "--anchor", network.anchor)
    assert result.exit_code == 2
    assert "DIRECTORY_REJECTED" in result.output


def empty_log(folder: Path) -> Path:
    """A network folder with an empty embedded log."""
    folder.mkdir()

    async def make() -> None:
        log = EmbeddedTransport(folder / "log.db")
        await log.ping()
        await log.close()

    asyncio.run(make())
    return folder


def test_directory_publish_writes_once_says_so_again_and_refuses_what_does_not_verify(
    network: Network, tmp_path: Path
) -> None:
    data = empty_log(tmp_path / "net")
    publish = (
        "directory",
        "publish",
        network.directory,
        "--anchor",
        network.anchor,
        "--data",
        data,
    )

    planned = json.loads(ok(*publish, "--dry-run"))
    assert planned["action"] == "would publish"
    assert (planned["network"], planned["serial"]) == ("lvv", network.built["serial"])
    assert planned["parties"] == sorted(p for p, _, _ in PARTIES)
    assert planned["expires_at"] == network.built["expires_at"]
    assert json.loads(ok(*publish))["action"] == "published"
    again = json.loads(ok(*publish))
    assert again["action"].startswith("unchanged") and again["newest_on_topic"] == planned["serial"]

    tampered = tampered_copy(network.directory, tmp_path / "tampered.bin")
    refused = lvvx("directory", "publish", tampered, "--anchor", network.anchor, "--data", data)
    assert refused.exit_code == 2 and "DIRECTORY_REJECTED" in refused.output
    no_log = lvvx("directory", "publish", network.directory, "--anchor", network.anchor,
                  "--data", tmp_path / "nowhere")  # fmt: skip
    assert no_log.exit_code == 2 and "NO_LOG" in no_log.output


def test_directory_publish_refuses_a_serial_lower_than_the_topics(
    network: Network, tmp_path: Path
) -> None:
    data = empty_log(tmp_path / "net")
    older = tmp_path / "older.bin"
    serial = int(str(network.built["serial"]))
    ok("directory", "build", "--keys", network.keys, "--anchor", network.anchor, "--out", older,
       "--serial", serial - 1)  # fmt: skip
    ok("directory", "publish", network.directory, "--anchor", network.anchor, "--data", data)
    result = lvvx("directory", "publish", older, "--anchor", network.anchor, "--data", data)
    assert result.exit_code == 2 and "OLDER_SERIAL" in result.output


def test_keys_init_without_a_passphrase_fails_clearly(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("LVVX_KEY_PASSPHRASE")
    result = lvvx("keys", "init", "--party", "coa", "--role", "COA", "--out", tmp_path / "k")
    assert result.exit_code == 2
    assert "KEY_STORE" in result.output
    assert "LVVX_KEY_PASSPHRASE" in result.output
    assert "Traceback" not in result.output
    assert not list(tmp_path.rglob("*.pem"))


def test_open_with_a_wrong_passphrase_fails_without_showing_it(
    network: Network, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LVVX_KEY_PASSPHRASE", "not the passphrase")
    result = lvvx("open", network.envelope, "--as", "dtv", *network.with_directory())
    assert result.exit_code == 2
    assert "KEY_STORE" in result.output
    assert "not the passphrase" not in result.output


# --- seal and open ----------------------------------------------------------------------------


@pytest.mark.parametrize("recipient", ["dtv", "ind"])
def test_open_as_a_recipient_prints_the_header_and_the_message(
    network: Network, recipient: str
) -> None:
    opened = json.loads(ok("open", network.envelope, "--as", recipient, *network.with_directory()))
    header = opened["header"]
    assert header["sender"] == MUNICIPALITY
    assert header["recipients"] == ["dtv", "ind"]
    assert header["message_type"] == IntakeRegistered.avro_name
    expected = example("IntakeRegistered").model_copy(update={"municipality": MUNICIPALITY})
    assert IntakeRegistered.model_validate(opened["message"]) == expected


def test_open_as_the_sender_is_rejected_as_not_a_recipient(network: Network) -> None:
    result = lvvx("open", network.envelope, "--as", MUNICIPALITY, *network.with_directory())
    assert result.exit_code == 3
    assert json.loads(result.stdout) == {"rejected": "NOT_A_RECIPIENT"}


def test_opening_twice_with_a_replay_db_rejects_the_second_as_replay(
    network: Network, tmp_path: Path
) -> None:
    args = ["open", network.envelope, "--as", "dtv", *network.with_directory()]
    args += ["--replay-db", tmp_path / "replay.db"]
    ok(*args)
    again = lvvx(*args)
    assert again.exit_code == 3
    assert json.loads(again.stdout) == {"rejected": "REPLAY"}


def test_a_tampered_envelope_is_rejected_with_a_reason(network: Network, tmp_path: Path) -> None:
    tampered = tampered_copy(network.envelope, tmp_path / "tampered.env")
    result = lvvx("open", tampered, "--as", "dtv", *network.with_directory())
    assert result.exit_code == 3
    reason = json.loads(result.stdout)["rejected"]
    assert reason in set(RejectReason)
    assert reason != RejectReason.NOT_A_RECIPIENT


def test_seal_takes_the_full_type_name(network: Network, tmp_path: Path) -> None:
    out = tmp_path / "intake.env"
    ok("seal", *network.with_directory("--from", MUNICIPALITY, "--to", "dtv", "--type",
                                       "nl.lvv.v1.IntakeRegistered"),
       "--payload", network.intake, "--out", out)  # fmt: skip
    opened = json.loads(ok("open", out, "--as", "dtv", *network.with_directory()))
    assert opened["header"]["message_type"] == "nl.lvv.v1.IntakeRegistered"


def test_seal_refuses_a_message_the_policy_forbids(network: Network, tmp_path: Path) -> None:
    dossier = tmp_path / "dossier.json"
    dossier.write_text(ok("schemas", "example", "DossierDelivered"))
    out = tmp_path / "dossier.env"
    result = lvvx(
        "seal",
        *network.with_directory(
            "--from", MUNICIPALITY, "--to", "dtv", "--type", "DossierDelivered"
        ),
        "--payload",
        dossier,
        "--out",
        out,
    )
    assert result.exit_code == 2
    assert "POLICY_DENIED" in result.output
    assert not out.exists()


# --- envelope inspect -------------------------------------------------------------------------


def test_inspect_with_the_directory_reports_a_valid_signature(network: Network) -> None:
    shown = json.loads(
        ok(
            "envelope",
            "inspect",
            network.envelope,
            "--directory",
            network.directory,
            "--anchor",
            network.anchor,
        )
    )
    assert shown["signature"] == "valid"
    assert [w["recipient"] for w in shown["wrapped_keys"]] == ["dtv", "ind"]
    assert [w["kem"] for w in shown["wrapped_keys"]] == ["MLKEM768_X25519", "X25519"]


def test_inspect_without_a_directory_does_not_check_the_signature(network: Network) -> None:
    shown = json.loads(ok("envelope", "inspect", network.envelope))
    assert shown["signature"].startswith("not checked")
    assert shown["header"]["sender"] == MUNICIPALITY


def test_inspect_shows_no_plaintext(network: Network) -> None:
    person = example_of(IntakeRegistered).person
    assert person.v_number is not None  # the example's person has one: it must not show
    shown = ok("envelope", "inspect", network.envelope)
    assert person.family_name not in shown
    assert person.v_number not in shown
