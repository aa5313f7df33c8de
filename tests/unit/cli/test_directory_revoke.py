"""`lvvx directory revoke`: prints what it changes, writes the party's public record only
when something changes and not on --dry-run, and refuses with a reason code what it must
not do."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from broker.crypto import KeyStore
from broker.models import KeyStatus, PartyRole
from cli.main import cli
from tests.crypto_net import A, Net

IND = A[PartyRole.IND]
NET = Net()
KEY = NET.parties[IND].entry.signing_keys[0].key_id
LEAK = "2026-11-28T09:00:00+01:00"


@pytest.fixture
def keys(tmp_path: Path) -> Path:
    store = KeyStore(tmp_path)
    for party in NET.parties.values():
        store.write_public_entry(party.entry)
    return tmp_path


def revoke(keys: Path, *extra: str, key: str = KEY, party: str = IND) -> tuple[int, str]:
    args = ["directory", "revoke", "--party", party, "--key", key, "--reason", "KEY_COMPROMISE",
            "--keys", str(keys), *extra]  # fmt: skip
    done = CliRunner().invoke(cli, args)
    return done.exit_code, done.output


def printed(output: str) -> dict[str, Any]:
    value = json.loads(output)
    assert isinstance(value, dict)
    return value


def test_revoke_prints_the_change_writes_the_record_and_again_changes_nothing(keys: Path) -> None:
    code, out = revoke(keys, "--at", LEAK)
    assert code == 0, out
    shown = printed(out)
    assert {k: shown[k] for k in ("action", "party", "key", "kind", "revoked_at", "reason")} == {
        "action": "revoked", "party": IND, "key": KEY, "kind": "signing",
        "revoked_at": "2026-11-28T08:00:00+00:00", "reason": "KEY_COMPROMISE",
    }  # fmt: skip
    assert "lvvx directory publish" in shown["next"]
    [key] = KeyStore(keys).public_entry(IND).signing_keys
    assert key.revoked_at is not None and key.status is KeyStatus.REVOKED
    assert key.revoked_at.isoformat() == shown["revoked_at"]
    written = (keys / f"{IND}.public.json").read_bytes()

    for again in (["--at", LEAK], []):  # the same moment, or now (later): both unchanged
        code, out = revoke(keys, *again)
        assert (code, printed(out)["action"]) == (
            0,
            f"unchanged: revoked since {shown['revoked_at']}",
        )
    assert (keys / f"{IND}.public.json").read_bytes() == written


def test_dry_run_says_what_would_change_and_writes_nothing(keys: Path) -> None:
    before = (keys / f"{IND}.public.json").read_bytes()
    code, out = revoke(keys, "--at", LEAK, "--dry-run")
    assert (code, printed(out)["action"]) == (0, "would be revoked")
    assert (keys / f"{IND}.public.json").read_bytes() == before


@pytest.mark.parametrize(
    ("setup", "args", "reason"),
    [
        (False, {"party": "no-such-party"}, "UNKNOWN_PARTY"),
        (False, {"party": "../etc"}, "UNKNOWN_PARTY"),
        (False, {"key": "feedfacefeedface"}, "UNKNOWN_KEY"),
        (True, {"at": "2026-11-28T10:00:00+01:00"}, "REVOCATION_LATER"),
        (False, {"at": "2026-11-28T09:00:00"}, "USAGE"),
    ],
    ids=["unknown-party", "not-a-party-id", "unknown-key", "later", "no-zone"],
)
def test_what_it_must_not_do_is_one_error_line_with_its_code(
    keys: Path, setup: bool, args: dict[str, str], reason: str
) -> None:
    if setup:
        assert revoke(keys, "--at", LEAK)[0] == 0
    before = (keys / f"{IND}.public.json").read_bytes()
    extra = ["--at", args["at"]] if "at" in args else []
    code, out = revoke(keys, *extra, key=args.get("key", KEY), party=args.get("party", IND))
    assert code == 2 and f"[{reason}]" in out, out
    assert (keys / f"{IND}.public.json").read_bytes() == before
