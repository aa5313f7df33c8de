"""A gateway trusts a directory only of its own network and only while its pinned trust
anchor is itself valid: `network` is a required setting, and `load_directory` refuses a
directory verified by an anchor key outside its validity window at ``now``."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from pydantic import ValidationError

from broker.crypto import AnchorKey, build_directory, load_directory, sign_directory
from broker.crypto._keys import generate_party, key_id
from broker.errors import DirectoryRejected, LocalError
from broker.gateway.settings import GatewaySettings, load_settings
from broker.models import KeyStatus, PartyRole, PublicKey

NOW = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
MS = timedelta(milliseconds=1)
NETWORK = "lvv-test"
ANCHOR = Ed25519PrivateKey.from_private_bytes(b"\x07" * 32)
RAW = ANCHOR.public_key().public_bytes_raw()
PARTY = generate_party("gemeente-utrecht", PartyRole.MUNICIPALITY, now=NOW, seed=b"utrecht")
SIGNED = sign_directory(build_directory([PARTY.entry], serial=1, network=NETWORK, now=NOW), ANCHOR)


def anchor_record(valid_from: datetime, valid_until: datetime) -> PublicKey:
    return PublicKey(
        key_id=key_id(RAW), algorithm="ED25519", public_key=RAW,
        valid_from=valid_from, valid_until=valid_until, status=KeyStatus.ACTIVE,
    )  # fmt: skip


def pinned(valid_from: datetime, valid_until: datetime) -> AnchorKey:
    return AnchorKey.from_record(anchor_record(valid_from, valid_until))


# --- the anchor's own validity -----------------------------------------------------------------


def test_a_directory_is_refused_while_the_pinned_anchor_is_not_yet_valid() -> None:
    anchor = pinned(NOW + timedelta(days=1), NOW + timedelta(days=365))
    with pytest.raises(DirectoryRejected, match="not valid before") as caught:
        load_directory(SIGNED, anchor=anchor, now=NOW, network=NETWORK)
    assert caught.value.reason == "ANCHOR_NOT_YET_VALID"


@pytest.mark.parametrize("late", [timedelta(0), timedelta(days=1)], ids=["at-expiry", "after"])
def test_a_directory_is_refused_once_the_pinned_anchor_expired(late: timedelta) -> None:
    anchor = pinned(NOW - timedelta(days=365), NOW - late)
    with pytest.raises(DirectoryRejected, match="expired") as caught:
        load_directory(SIGNED, anchor=anchor, now=NOW, network=NETWORK)
    assert caught.value.reason == "ANCHOR_EXPIRED"


def test_the_anchor_is_valid_from_its_first_to_its_last_millisecond() -> None:
    anchor = pinned(NOW, NOW + timedelta(days=1))
    assert load_directory(SIGNED, anchor=anchor, now=NOW, network=NETWORK).serial == 1
    last = NOW + timedelta(days=1) - MS
    assert load_directory(SIGNED, anchor=anchor, now=last, network=NETWORK).serial == 1


def test_an_expired_anchor_is_refused_for_a_perfectly_signed_directory() -> None:
    anchor = pinned(NOW - timedelta(days=10), NOW - timedelta(days=1))
    with pytest.raises(DirectoryRejected) as caught:
        load_directory(SIGNED, anchor=anchor, now=NOW)
    assert caught.value.reason == "ANCHOR_EXPIRED"


def test_an_anchor_record_with_an_empty_window_cannot_be_pinned() -> None:
    with pytest.raises(LocalError, match="empty validity window") as caught:
        pinned(NOW, NOW)
    assert caught.value.reason == "BAD_KEY"


# --- the gateway's network is required ----------------------------------------------------------


BASE_SETTINGS = (
    'party = "gemeente-utrecht"',
    'keys_dir = "keys"',
    'directory_file = "directory.bin"',
    'anchor_file = "keys/anchor.public.json"',
    'data_dir = "state"',
)


def _settings_file(folder: Path, *lines: str) -> Path:
    path = folder / "gateway.toml"
    path.write_text("\n".join((*BASE_SETTINGS, *lines)) + "\n")
    return path


@pytest.fixture(autouse=True)
def _no_gateway_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for name in list(os.environ):
        if name.startswith("LVVX_GATEWAY_"):
            monkeypatch.delenv(name)


def test_gateway_settings_without_a_network_are_refused() -> None:
    with pytest.raises(ValidationError, match="network"):
        GatewaySettings(
            party="gemeente-utrecht", keys_dir=Path("keys"), directory_file=Path("d.bin"),
            anchor_file=Path("a.json"), data_dir=Path("state"),
        )  # fmt: skip


def test_a_config_file_without_a_network_is_a_one_line_config_error(tmp_path: Path) -> None:
    with pytest.raises(LocalError, match="network") as caught:
        load_settings(_settings_file(tmp_path))
    assert caught.value.reason == "CONFIG"
    assert "\n" not in str(caught.value)


def test_a_config_file_with_its_network_loads(tmp_path: Path) -> None:
    settings = load_settings(_settings_file(tmp_path, 'network = "lvv"'))
    assert settings.network == "lvv"
    assert settings.anchor_file == tmp_path / "keys" / "anchor.public.json"
