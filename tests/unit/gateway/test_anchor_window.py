"""The trust anchor's own validity, where its record is loaded from a key folder: a gateway
does not start, and `lvvx directory verify` refuses, on a directory signed while the pinned
anchor is outside its window (the unit cases are in tests/unit/crypto/test_network_and_anchor.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

from broker.crypto import DEMO_KEY_FILE_KDF, KeyStore, build_directory, sign_directory
from broker.errors import DirectoryRejected
from broker.gateway.service import build_gateway
from broker.gateway.settings import GatewaySettings
from broker.models import PartyRole
from cli.main import cli

PARTY = "gemeente-utrecht"
PASSPHRASE = "a passphrase of the anchor tests"
NETWORK = "lvv-anchor-test"

WINDOWS = {  # the anchor's (valid_from, validity) relative to now, and what is refused
    "expired": (timedelta(days=-400), timedelta(days=365), "ANCHOR_EXPIRED"),
    "not-yet-valid": (timedelta(days=2), timedelta(days=365), "ANCHOR_NOT_YET_VALID"),
}


def folder_with_anchor(root: Path, starts: timedelta, validity: timedelta) -> Path:
    """A key folder: one party, an anchor valid from now + ``starts`` for ``validity``, and a
    directory it signed that is itself valid now."""
    now = datetime.now(UTC)
    store = KeyStore(root / "keys", kdf=DEMO_KEY_FILE_KDF)
    store.init_anchor(passphrase=PASSPHRASE.encode(), now=now + starts, validity=validity)
    store.init_party(PARTY, PartyRole.MUNICIPALITY, passphrase=PASSPHRASE.encode(), now=now)
    document = build_directory(store.public_entries(), serial=1, network=NETWORK, now=now)
    signed = sign_directory(document, store.anchor_private(PASSPHRASE.encode()))
    (root / "directory.bin").write_bytes(signed)
    return root


@pytest.mark.parametrize(("starts", "validity", "reason"), WINDOWS.values(), ids=WINDOWS)
def test_a_gateway_does_not_start_outside_its_pinned_anchors_window(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, starts: timedelta, validity: timedelta,
    reason: str,
) -> None:  # fmt: skip
    root = folder_with_anchor(tmp_path, starts, validity)
    monkeypatch.setenv("LVVX_KEY_PASSPHRASE", PASSPHRASE)
    settings = GatewaySettings(
        party=PARTY, keys_dir=root / "keys", directory_file=root / "directory.bin",
        anchor_file=root / "keys" / "anchor.public.json", network=NETWORK,
        data_dir=root / "state", transport="embedded", embedded_log=root / "log.db",
        api_token="t",
    )  # fmt: skip
    with pytest.raises(DirectoryRejected) as caught:
        build_gateway(settings)
    assert caught.value.reason == reason


@pytest.mark.parametrize(("starts", "validity", "reason"), WINDOWS.values(), ids=WINDOWS)
def test_lvvx_directory_verify_refuses_outside_the_anchors_window(
    tmp_path: Path, starts: timedelta, validity: timedelta, reason: str
) -> None:
    root = folder_with_anchor(tmp_path, starts, validity)
    result = CliRunner().invoke(
        cli, ["directory", "verify", str(root / "directory.bin"), "--anchor", str(root / "keys")]
    )
    assert result.exit_code == 2
    assert f"[{reason}]" in result.output
