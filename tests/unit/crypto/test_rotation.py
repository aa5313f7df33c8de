"""Key rotation (`broker.crypto._rotation`, `lvvx keys rotate`) and the key ring that uses the
result (`broker.crypto._ring`): new keys announced before their activation, old ones ended
there, retired only once nothing sealed to them can be valid; idempotent while pending; and a
directory that ends a key in use too soon is refused at publication."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

from broker.crypto import (
    DEMO_KEY_FILE_KDF,
    RETIRED_AFTER,
    KeyStore,
    build_directory,
    checked_directory,
    reschedule_rotation,
    rotate_keys,
)
from broker.crypto._keyfile import read_key_file
from broker.directory_feed import KEY_CHANGE_NOTICE, keys_ended_too_soon
from broker.errors import LocalError
from broker.models import KeyAlgorithm, KeyStatus, PartyEntry, PartyRole
from cli.main import cli
from tests.unit.crypto.test_key_files import PASSPHRASE, legacy_copy

NOW = datetime(2026, 12, 2, 9, 0, tzinfo=UTC)
LEAD = timedelta(minutes=10)
PARTY = "gemeente-tilburg"


@pytest.fixture
def store(tmp_path: Path) -> KeyStore:
    s = KeyStore(tmp_path / "keys", kdf=DEMO_KEY_FILE_KDF)
    s.init_party(PARTY, PartyRole.MUNICIPALITY, passphrase=PASSPHRASE, now=NOW - timedelta(days=40))
    return s


def directory_of(*entries: PartyEntry, at: datetime = NOW):  # type: ignore[no-untyped-def]
    return checked_directory(
        build_directory(entries, serial=1, network="lvv", now=at - timedelta(days=1))
    )


def test_a_rotation_announces_new_keys_from_the_activation_and_ends_the_old_ones_there(
    store: KeyStore,
) -> None:
    before = store.public_entry(PARTY)
    done = rotate_keys(store, PARTY, passphrase=PASSPHRASE, now=NOW, lead=LEAD)
    after = store.public_entry(PARTY)
    activation = NOW + LEAD
    assert done.plan is not None and done.plan.activation == activation
    [old_s, new_s], [old_e, new_e] = after.signing_keys, after.encryption_keys
    assert (old_s.key_id, old_e.key_id) == (
        before.signing_keys[0].key_id,
        before.encryption_keys[0].key_id,
    )
    assert old_s.valid_until == old_e.valid_until == activation
    assert new_s.valid_from == new_e.valid_from == activation
    assert new_e.algorithm is old_e.algorithm and new_s.status is KeyStatus.ACTIVE
    assert [p.name for p in done.written] == [
        f"{PARTY}.signing.{new_s.key_id}.pem",
        f"{PARTY}.encryption.{new_e.key_id}.pem",
    ]
    assert all(p.stat().st_mode & 0o077 == 0 for p in done.written)
    ring = store.load_ring(PARTY, PASSPHRASE)
    assert set(ring.signing) == {old_s.key_id, new_s.key_id}
    assert set(ring.decryption) == {old_e.key_id, new_e.key_id}


def test_the_ring_signs_with_the_old_key_until_the_activation_and_opens_with_both(
    store: KeyStore,
) -> None:
    rotate_keys(store, PARTY, passphrase=PASSPHRASE, now=NOW, lead=LEAD)
    entry = store.public_entry(PARTY)
    old, new = (k.key_id for k in entry.signing_keys)
    ring, directory = store.load_ring(PARTY, PASSPHRASE), directory_of(entry)
    activation = NOW + LEAD
    assert ring.keys_at(directory, NOW).signing_key_id == old
    assert ring.keys_at(directory, activation - timedelta(milliseconds=1)).signing_key_id == old
    assert ring.keys_at(directory, activation).signing_key_id == new
    assert ring.keys_at(directory, NOW + timedelta(days=1)).signing_key_id == new
    assert ring.keys_at(directory, NOW).signing_key_id == old  # the remembered choice is bounded
    assert set(ring.keys_at(directory, activation).decryption_keys) == {
        k.key_id for k in entry.encryption_keys
    }
    # a directory that does not list the new keys yet: the old key goes on
    before = directory_of(entry.model_copy(update={"signing_keys": entry.signing_keys[:1]}))
    assert ring.keys_at(before, activation).signing_key_id == old
    # what the record says at a moment, for tools without a directory (lvvx envelope seal)
    assert store.load_party(PARTY, PASSPHRASE, now=activation).signing_key_id == new


def test_rotating_again_while_a_rotation_is_pending_changes_nothing(store: KeyStore) -> None:
    rotate_keys(store, PARTY, passphrase=PASSPHRASE, now=NOW, lead=LEAD)
    record, files = store.public_entry(PARTY), sorted(store.folder.iterdir())
    again = rotate_keys(
        store, PARTY, passphrase=PASSPHRASE, now=NOW + timedelta(minutes=1), lead=LEAD
    )
    assert again.pending and again.plan is None
    assert store.public_entry(PARTY) == record and sorted(store.folder.iterdir()) == files


def test_a_dry_run_says_what_would_change_and_writes_nothing(store: KeyStore) -> None:
    record, files = store.public_entry(PARTY), {p: p.read_bytes() for p in store.folder.iterdir()}
    done = rotate_keys(store, PARTY, passphrase=PASSPHRASE, now=NOW, lead=LEAD, dry_run=True)
    assert done.plan is not None and not done.written
    assert store.public_entry(PARTY) == record
    assert {p: p.read_bytes() for p in store.folder.iterdir()} == files


def test_a_wrong_passphrase_rotates_nothing(store: KeyStore) -> None:
    record, files = store.public_entry(PARTY), sorted(store.folder.iterdir())
    with pytest.raises(LocalError, match="cannot decrypt"):
        rotate_keys(store, PARTY, passphrase=b"not the passphrase at all", now=NOW, lead=LEAD)
    assert store.public_entry(PARTY) == record and sorted(store.folder.iterdir()) == files


def test_old_keys_retire_only_once_nothing_sealed_to_them_can_be_valid(store: KeyStore) -> None:
    first = rotate_keys(store, PARTY, passphrase=PASSPHRASE, now=NOW, lead=LEAD)
    assert first.plan is not None
    old_s, old_e = (
        k.key_id
        for k in (
            store.public_entry(PARTY).signing_keys[0],
            store.public_entry(PARTY).encryption_keys[0],
        )
    )
    activation = first.plan.activation
    # just before the retirement bound the old encryption key stays, with its file
    soon = rotate_keys(
        store,
        PARTY,
        passphrase=PASSPHRASE,
        now=activation + RETIRED_AFTER - timedelta(seconds=1),
        lead=LEAD,
    )
    assert soon.plan is not None and old_e not in {k.key_id for k in soon.plan.retired}
    assert old_e in {k.key_id for k in store.public_entry(PARTY).encryption_keys}
    assert (store.folder / f"{PARTY}.encryption.pem").exists()
    # its signing key had ended: its private file went, its public key stays listed (the
    # verifier checks old audit events with it)
    assert not (store.folder / f"{PARTY}.signing.pem").exists()
    assert old_s in {k.key_id for k in store.public_entry(PARTY).signing_keys}
    later = rotate_keys(
        store,
        PARTY,
        passphrase=PASSPHRASE,
        now=activation + RETIRED_AFTER + timedelta(days=1),
        lead=LEAD,
    )
    assert later.plan is not None and old_e in {k.key_id for k in later.plan.retired}
    assert old_e not in {k.key_id for k in store.public_entry(PARTY).encryption_keys}
    assert not (store.folder / f"{PARTY}.encryption.pem").exists()
    assert old_s in {k.key_id for k in store.public_entry(PARTY).signing_keys}


def test_a_rotation_rewrites_the_old_format_files_it_keeps(store: KeyStore) -> None:
    legacy_copy(store, PARTY)
    done = rotate_keys(store, PARTY, passphrase=PASSPHRASE, now=NOW, lead=LEAD)
    assert {c.path.name for c in done.rewrapped} == {
        f"{PARTY}.{n}" for n in ("signing.pem", "encryption.pem", "content.pem")
    }
    for change in done.rewrapped:
        assert not read_key_file(change.path.read_bytes(), PASSPHRASE).legacy


def test_a_late_rotation_is_rescheduled_without_new_keys(store: KeyStore) -> None:
    rotate_keys(store, PARTY, passphrase=PASSPHRASE, now=NOW, lead=LEAD)
    rotated = store.public_entry(PARTY)
    late = NOW + LEAD + timedelta(minutes=5)
    was, now_at = reschedule_rotation(store, PARTY, now=late, lead=LEAD)
    moved = store.public_entry(PARTY)
    assert (was, now_at) == (NOW + LEAD, late + LEAD)
    assert [k.key_id for k in moved.signing_keys] == [k.key_id for k in rotated.signing_keys]
    assert moved.signing_keys[0].valid_until == moved.signing_keys[1].valid_from == late + LEAD
    assert moved.signing_keys[1].valid_until - moved.signing_keys[1].valid_from == timedelta(
        days=365
    )


def test_publishing_a_directory_that_ends_a_key_in_use_too_soon_is_refused(store: KeyStore) -> None:
    published = directory_of(store.public_entry(PARTY))
    rotate_keys(store, PARTY, passphrase=PASSPHRASE, now=NOW, lead=LEAD)
    rotated = directory_of(store.public_entry(PARTY))
    assert keys_ended_too_soon(published, rotated, NOW) == []  # announced ten minutes ahead
    old = store.public_entry(PARTY).signing_keys[0].key_id
    # published after its activation, gateways would refuse what the party signed meanwhile
    late = NOW + LEAD + timedelta(seconds=1)
    assert f"{PARTY}/{old}" in keys_ended_too_soon(published, rotated, late)
    assert f"{PARTY}/{old}" in keys_ended_too_soon(
        published, rotated, NOW + LEAD - KEY_CHANGE_NOTICE / 2
    )
    # a revocation ends a key at once on purpose
    entry = store.public_entry(PARTY)
    revoked = entry.model_copy(update={"signing_keys": (
        entry.signing_keys[0].model_copy(update={"status": KeyStatus.REVOKED, "revoked_at": NOW}),
        entry.signing_keys[1])})  # fmt: skip
    assert keys_ended_too_soon(published, directory_of(revoked), NOW) == []


def test_the_rotate_command_prints_what_it_changes_and_is_idempotent(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LVVX_KEY_PASSPHRASE", PASSPHRASE.decode())
    run = CliRunner().invoke
    folder = str(tmp_path / "k")
    made = run(
        cli,
        [
            "keys",
            "init",
            "--party",
            PARTY,
            "--role",
            "MUNICIPALITY",
            "--out",
            folder,
            "--insecure-demo-kdf",
        ],
    )
    assert made.exit_code == 0, made.output
    dry = run(
        cli,
        ["keys", "rotate", "--party", PARTY, "--keys", folder, "--dry-run", "--insecure-demo-kdf"],
    )
    assert dry.exit_code == 0, dry.output
    assert (
        json.loads(dry.output)["action"] == "would rotate"
        and len(list(Path(folder).iterdir())) == 4
    )
    done = run(
        cli,
        [
            "keys",
            "rotate",
            "--party",
            PARTY,
            "--keys",
            folder,
            "--activate-in",
            "60",
            "--insecure-demo-kdf",
        ],
    )
    assert done.exit_code == 0, done.output
    rotated = json.loads(done.output)
    assert rotated["action"] == "rotated" and len(rotated["files_written"]) == 2
    assert rotated["new_signing_key_id"] in {
        k["key_id"]
        for k in json.loads((Path(folder) / f"{PARTY}.public.json").read_text())["signing_keys"]
    }
    again = run(cli, ["keys", "rotate", "--party", PARTY, "--keys", folder, "--insecure-demo-kdf"])
    assert again.exit_code == 0, again.output
    assert json.loads(again.output)["action"] == "unchanged: a rotation is pending"
    assert json.loads(again.output)["pending_keys"] == [
        rotated["new_signing_key_id"],
        rotated["new_encryption_key_id"],
    ]


def test_a_rotation_to_the_hybrid_kem_is_asked_for_by_name(store: KeyStore) -> None:
    done = rotate_keys(
        store, PARTY, passphrase=PASSPHRASE, now=NOW, lead=LEAD, kem=KeyAlgorithm.MLKEM768_X25519
    )
    assert (
        done.plan is not None and done.plan.new_encryption.algorithm is KeyAlgorithm.MLKEM768_X25519
    )
    assert (
        store.load_ring(PARTY, PASSPHRASE).decryption[done.plan.new_encryption.key_id].algorithm
        is KeyAlgorithm.MLKEM768_X25519
    )


async def test_publish_refuses_a_rotation_published_after_its_activation(
    store: KeyStore, tmp_path: Path
) -> None:
    from broker.crypto import sign_directory
    from broker.directory_feed import publish_directory
    from broker.transport.embedded import EmbeddedTransport
    from tests.crypto_net import ANCHOR, PINNED

    def signed(serial: int) -> bytes:
        document = build_directory(
            [store.public_entry(PARTY)], serial=serial, network="lvv", now=NOW - timedelta(days=1)
        )
        return sign_directory(document, ANCHOR)

    log = EmbeddedTransport(tmp_path / "log.db")
    try:
        await publish_directory(log, signed(1), anchor=PINNED, now=NOW)
        rotate_keys(store, PARTY, passphrase=PASSPHRASE, now=NOW, lead=LEAD)
        with pytest.raises(LocalError) as refused:
            await publish_directory(
                log, signed(2), anchor=PINNED, now=NOW + LEAD + timedelta(minutes=1)
            )
        assert refused.value.reason == "KEY_ENDS_TOO_SOON"
        reschedule_rotation(store, PARTY, now=NOW + LEAD + timedelta(minutes=1), lead=LEAD)
        done = await publish_directory(
            log, signed(3), anchor=PINNED, now=NOW + LEAD + timedelta(minutes=1)
        )
        assert done.written
    finally:
        await log.close()
