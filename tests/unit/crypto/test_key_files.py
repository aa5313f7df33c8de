"""Key files (`broker.crypto._keyfile`): a file written today costs a guesser the strong scrypt
setting, not the 2,048 PBKDF2 iterations of PKCS#8's ``BestAvailableEncryption``; files of
earlier releases still load, say so, and `upgrade` rewrites them in place with the same keys;
a passphrase below the minimum is refused unless a test or the demo opts out by name."""

from __future__ import annotations

import base64
import json
import logging
import stat
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from cryptography.hazmat.primitives import serialization

from broker.crypto import (
    DEMO_KEY_FILE_KDF,
    KEY_FILE_KDF,
    MIN_PASSPHRASE_CHARS,
    KeyFileKdf,
    KeyStore,
    rewrap_key_file,
)
from broker.crypto._keyfile import KEY_FILE_MAGIC, encrypt_key_file, read_key_file
from broker.errors import KeyStoreError, WeakPassphrase
from broker.models import KeyAlgorithm, PartyRole
from cli.main import cli

OWASP_SCRYPT = KeyFileKdf(log2_n=17, r=8, p=1)
"""OWASP's Password Storage Cheat Sheet: the least a key file written today may cost."""
PASSPHRASE = b"correct horse battery staple 42"
SHORT = b"s3cret-pass"  # 11 characters: one below the minimum
NOW = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)


def header_of(path: Path) -> bytes:
    """The first block's 41 header bytes, read without our code: label, base64, fields."""
    lines = path.read_text().splitlines()
    assert lines[0] == "-----BEGIN LVVX ENCRYPTED PRIVATE KEY-----", lines[0]
    body = base64.b64decode("".join(lines[1 : lines.index(lines[0].replace("BEGIN", "END"))]))
    return body[:41]


def legacy_copy(store: KeyStore, party: str, passphrase: bytes = PASSPHRASE) -> dict[str, bytes]:
    """Rewrite ``party``'s key files as earlier releases wrote them (PKCS#8 PEM,
    ``BestAvailableEncryption``); their old bytes, by name."""
    old = {}
    for name in ("signing.pem", "encryption.pem", "content.pem"):
        path = store.folder / f"{party}.{name}"
        keys = read_key_file(path.read_bytes(), passphrase).keys
        encryption = serialization.BestAvailableEncryption(passphrase)
        path.write_bytes(b"".join(
            k.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,  # type: ignore[attr-defined]
                            encryption)
            for k in keys
        ))  # fmt: skip
        old[name] = path.read_bytes()
        assert old[name].startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY-----")
    return old


def fingerprint(store: KeyStore, party: str, passphrase: bytes = PASSPHRASE) -> tuple[str, ...]:
    keys = store.load_party(party, passphrase)
    content = store.content_key(party, passphrase)
    return (keys.signing_key_id, *sorted(keys.decryption_keys), repr(content.seal))


@pytest.fixture
def store(tmp_path: Path) -> KeyStore:
    return KeyStore(tmp_path / "keys", kdf=DEMO_KEY_FILE_KDF)


# --- the cost of a file written today -----------------------------------------------------------


def test_the_default_cost_is_at_least_owasps_scrypt_setting() -> None:
    assert KEY_FILE_KDF.at_least(OWASP_SCRYPT)
    assert KeyStore("unused").kdf == KEY_FILE_KDF
    assert not DEMO_KEY_FILE_KDF.at_least(OWASP_SCRYPT)  # the demo's is named, and weaker


def test_a_key_file_written_today_carries_the_strong_scrypt_parameters(tmp_path: Path) -> None:
    store = KeyStore(tmp_path / "keys")  # the default, as `lvvx keys anchor` makes it
    store.init_anchor(passphrase=PASSPHRASE, now=NOW)
    header = header_of(tmp_path / "keys" / "anchor.signing.pem")
    assert header[:8] == KEY_FILE_MAGIC
    version, kdf, log2_n, r, p = header[8:13]
    assert (version, kdf) == (1, 1)  # format 1, scrypt
    assert log2_n >= 17 and r >= 8 and p >= 1
    assert store.anchor_private(PASSPHRASE).public_key().public_bytes_raw() == (
        store.anchor_public().public_key
    )


def test_lvvx_keys_init_writes_the_strong_setting_without_the_demo_flag(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LVVX_KEY_PASSPHRASE", PASSPHRASE.decode())
    result = CliRunner().invoke(cli, ["keys", "anchor", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert header_of(tmp_path / "anchor.signing.pem")[10] >= 17


@pytest.mark.parametrize("kem", [KeyAlgorithm.X25519, KeyAlgorithm.MLKEM768_X25519])
def test_every_block_of_a_file_shares_one_salt_and_has_its_own_nonce(
    store: KeyStore, kem: KeyAlgorithm
) -> None:
    store.init_party("dtv", PartyRole.DTV, passphrase=PASSPHRASE, now=NOW, kem=kem)
    text = (store.folder / "dtv.encryption.pem").read_text()
    bodies = [
        b.split("-----")[0] for b in text.split("-----BEGIN LVVX ENCRYPTED PRIVATE KEY-----\n")[1:]
    ]
    headers = [base64.b64decode(b)[:41] for b in bodies]
    assert len(headers) == (2 if kem is KeyAlgorithm.MLKEM768_X25519 else 1)
    assert len({h[13:29] for h in headers}) == 1  # the salt: derived once per file
    assert len({h[29:41] for h in headers}) == len(headers)  # the nonces


@pytest.mark.parametrize(
    "offset", [10, 11, 12, 13, 29, 45], ids=["N", "r", "p", "salt", "nonce", "ciphertext"]
)
def test_a_changed_byte_anywhere_is_refused_as_one_error(store: KeyStore, offset: int) -> None:
    store.init_anchor(passphrase=PASSPHRASE, now=NOW)
    path = store.folder / "anchor.signing.pem"
    lines = path.read_text().splitlines()
    blob = bytearray(base64.b64decode("".join(lines[1:-1])))
    blob[offset] ^= 0x01
    path.write_text(f"{lines[0]}\n{base64.encodebytes(bytes(blob)).decode()}{lines[-1]}\n")
    with pytest.raises(KeyStoreError, match="cannot decrypt"):
        store.anchor_private(PASSPHRASE)


@pytest.mark.parametrize(
    ("params", "refusal"),
    [((30, 8, 1), "1 GiB"), ((20, 1, 255), "16 times the default work"), ((17, 8, 0), "range")],
    ids=["memory", "work", "zero"],
)
def test_a_hostile_files_scrypt_cost_is_refused_before_deriving(
    params: tuple[int, int, int], refusal: str
) -> None:
    assert encrypt_key_file([], PASSPHRASE) == b""  # no keys, no block: craft one by hand
    header = KEY_FILE_MAGIC + bytes([1, 1, *params]) + bytes(28)
    block = base64.encodebytes(header + bytes(48)).decode()
    label = "LVVX ENCRYPTED PRIVATE KEY"
    hostile = f"-----BEGIN {label}-----\n{block}-----END {label}-----\n"
    with pytest.raises(ValueError, match=refusal):
        read_key_file(hostile.encode(), PASSPHRASE)


# --- files of earlier releases ------------------------------------------------------------------


def test_an_old_pkcs8_file_still_loads_and_says_it_is_old(
    store: KeyStore, caplog: pytest.LogCaptureFixture
) -> None:
    store.init_party(
        "ind", PartyRole.IND, passphrase=PASSPHRASE, now=NOW, kem=KeyAlgorithm.MLKEM768_X25519
    )
    before = fingerprint(store, "ind")
    legacy_copy(store, "ind")
    with caplog.at_level(logging.WARNING, logger="broker.crypto._keys"):
        assert fingerprint(store, "ind") == before
    warned = " ".join(r.getMessage() for r in caplog.records)
    assert "old-format key file" in warned and "lvvx keys upgrade" in warned
    assert PASSPHRASE.decode() not in warned


def test_upgrade_rewrites_old_files_in_place_with_the_same_keys(store: KeyStore) -> None:
    store.init_party(
        "ind", PartyRole.IND, passphrase=PASSPHRASE, now=NOW, kem=KeyAlgorithm.MLKEM768_X25519
    )
    store.init_anchor(passphrase=PASSPHRASE, now=NOW)
    before = fingerprint(store, "ind")
    old = legacy_copy(store, "ind")

    planned = store.upgrade(PASSPHRASE, dry_run=True)
    assert {c.path.name for c in planned if c.needed} == {f"ind.{n}" for n in old}
    assert all(not c.rewritten for c in planned)
    assert {n: (store.folder / f"ind.{n}").read_bytes() for n in old} == old  # dry run: untouched

    done = store.upgrade(PASSPHRASE)
    assert {c.path.name for c in done if c.rewritten} == {f"ind.{n}" for n in old}
    assert [c.was for c in done if c.rewritten] == [
        "PKCS#8, PBKDF2-HMAC-SHA256 with 2,048 iterations"
    ] * 3
    for name in old:
        path = store.folder / f"ind.{name}"
        assert path.read_bytes().startswith(b"-----BEGIN LVVX ENCRYPTED PRIVATE KEY-----")
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert fingerprint(store, "ind") == before
    assert sorted(p.name for p in store.folder.iterdir()) == sorted(
        ["anchor.public.json", "anchor.signing.pem", "ind.public.json", *(f"ind.{n}" for n in old)]
    )  # no temporary file left behind

    files = {p.name: p.read_bytes() for p in store.folder.iterdir()}
    assert not any(c.rewritten or c.needed for c in store.upgrade(PASSPHRASE))  # idempotent
    assert {p.name: p.read_bytes() for p in store.folder.iterdir()} == files


def test_upgrade_with_a_wrong_passphrase_changes_nothing(store: KeyStore) -> None:
    store.init_party("ind", PartyRole.IND, passphrase=PASSPHRASE, now=NOW)
    old = legacy_copy(store, "ind")
    with pytest.raises(KeyStoreError, match="cannot decrypt"):
        store.upgrade(b"not the passphrase at all")
    assert {n: (store.folder / f"ind.{n}").read_bytes() for n in old} == old


def test_rewrap_raises_a_demo_file_to_the_strong_default(store: KeyStore) -> None:
    store.init_anchor(passphrase=PASSPHRASE, now=NOW)
    path = store.folder / "anchor.signing.pem"
    change = rewrap_key_file(path, PASSPHRASE)
    assert change.rewritten and "N=2^10" in change.was and "N=2^17" in change.now
    assert header_of(path)[10] == 17
    assert not rewrap_key_file(path, PASSPHRASE).rewritten


# --- the passphrase -----------------------------------------------------------------------------


def test_a_short_passphrase_is_refused_and_nothing_is_written(store: KeyStore) -> None:
    assert len(SHORT) == MIN_PASSPHRASE_CHARS - 1
    with pytest.raises(WeakPassphrase, match="at least 12") as caught:
        store.init_party("ind", PartyRole.IND, passphrase=SHORT, now=NOW)
    assert caught.value.reason == "WEAK_PASSPHRASE"
    with pytest.raises(WeakPassphrase):
        store.init_anchor(passphrase=SHORT, now=NOW)
    assert not list(store.folder.glob("*")) if store.folder.exists() else True


def test_the_minimum_counts_characters_not_bytes(store: KeyStore) -> None:
    store.init_anchor(passphrase="ééééééééééé€".encode(), now=NOW)  # 12 characters, 25 bytes
    with pytest.raises(WeakPassphrase):
        store.init_party("ind", PartyRole.IND, passphrase="éééééééééé€".encode(), now=NOW)


def test_the_named_opt_out_allows_a_short_passphrase(tmp_path: Path) -> None:
    store = KeyStore(tmp_path, kdf=DEMO_KEY_FILE_KDF, allow_weak_passphrase=True)
    store.init_party("ind", PartyRole.IND, passphrase=SHORT, now=NOW)
    assert store.load_party("ind", SHORT).party_id == "ind"


def test_an_old_file_under_a_short_passphrase_upgrades_only_under_a_new_one(
    tmp_path: Path,
) -> None:
    weak = KeyStore(tmp_path, kdf=DEMO_KEY_FILE_KDF, allow_weak_passphrase=True)
    weak.init_party("ind", PartyRole.IND, passphrase=SHORT, now=NOW)
    before = fingerprint(weak, "ind", SHORT)
    legacy_copy(weak, "ind", SHORT)
    store = KeyStore(tmp_path, kdf=DEMO_KEY_FILE_KDF)
    with pytest.raises(WeakPassphrase, match="LVVX_NEW_KEY_PASSPHRASE_FILE"):
        store.upgrade(SHORT)
    with pytest.raises(WeakPassphrase):
        store.upgrade(SHORT, new_passphrase=b"too short")
    assert all(c.rewritten for c in store.upgrade(SHORT, new_passphrase=PASSPHRASE))
    assert fingerprint(store, "ind") == before
    with pytest.raises(KeyStoreError, match="cannot decrypt"):
        store.load_party("ind", SHORT)


# --- lvvx keys upgrade --------------------------------------------------------------------------


def test_lvvx_keys_upgrade_dry_run_then_upgrade_then_nothing(
    store: KeyStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    store.init_party("ind", PartyRole.IND, passphrase=PASSPHRASE, now=NOW)
    legacy_copy(store, "ind")
    monkeypatch.setenv("LVVX_KEY_PASSPHRASE", PASSPHRASE.decode())
    monkeypatch.delenv("LVVX_NEW_KEY_PASSPHRASE", raising=False)
    monkeypatch.delenv("LVVX_NEW_KEY_PASSPHRASE_FILE", raising=False)

    def upgrade(*flags: str) -> Any:
        result = CliRunner().invoke(cli, ["keys", "upgrade", "--keys", str(store.folder), *flags])
        assert result.exit_code == 0, result.output
        return json.loads(result.stdout)

    planned = upgrade("--dry-run")
    assert planned["dry_run"] is True
    assert [f["action"] for f in planned["files"]] == ["would rewrite"] * 3
    assert (store.folder / "ind.signing.pem").read_bytes().startswith(b"-----BEGIN ENCRYPTED")
    done = upgrade()
    assert [f["action"] for f in done["files"]] == ["rewritten"] * 3
    assert all("N=2^17" in f["now"] for f in done["files"])
    again = upgrade()
    assert [f["action"] for f in again["files"]] == ["unchanged"] * 3


def test_lvvx_refuses_a_short_passphrase_with_its_reason(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LVVX_KEY_PASSPHRASE", SHORT.decode())
    result = CliRunner().invoke(
        cli, ["keys", "init", "--party", "ind", "--role", "IND", "--out", str(tmp_path / "k")]
    )
    assert result.exit_code == 2
    assert "[WEAK_PASSPHRASE]" in result.output and "at least 12" in result.output
    assert SHORT.decode() not in result.output
    assert not list(tmp_path.rglob("*.pem"))
