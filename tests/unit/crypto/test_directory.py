"""The key directory: what the anchor signs loads back with the right key objects; lookups
honour validity windows and revocation; and every directory a gateway must not trust is
refused with `DirectoryRejected` — at build time and, for one crafted around
`build_directory`, at load time — never with any other exception."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from cryptography.hazmat.primitives import hpke
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PublicKey
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from broker.contract import default_codec
from broker.crypto import AnchorKey, Directory, build_directory, load_directory, sign_directory
from broker.crypto._directory import (
    DIRECTORY_SIGNATURE_TAG,
    DIRECTORY_SIGNATURE_TAG_V2,
    MAX_DIRECTORY_BYTES,
)
from broker.crypto._keys import NewParty, generate_encryption_key, generate_party, key_id
from broker.errors import DecodeError, DirectoryCheck, DirectoryRejected, UnknownParty
from broker.models import (
    KeyAlgorithm,
    KeyStatus,
    PartyDirectory,
    PartyEntry,
    PartyRole,
    PublicKey,
    RevocationReason,
    SignedDirectory,
)

NOW = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
MS = timedelta(milliseconds=1)
NETWORK = "lvv-test"

ANCHOR = Ed25519PrivateKey.from_private_bytes(b"\x01" * 32)
OTHER_ANCHOR = Ed25519PrivateKey.from_private_bytes(b"\x02" * 32)


def pinned(private: Ed25519PrivateKey) -> AnchorKey:
    public = private.public_key()
    return AnchorKey(key_id(public.public_bytes_raw()), public)


PINNED = pinned(ANCHOR)

UTRECHT = generate_party("gemeente-utrecht", PartyRole.MUNICIPALITY, now=NOW, seed=b"utrecht")
DTV = generate_party("dtv", PartyRole.DTV, now=NOW, kem=KeyAlgorithm.MLKEM768_X25519, seed=b"dtv")
IND = generate_party("ind", PartyRole.IND, now=NOW, seed=b"ind")
PARTIES = (UTRECHT, DTV, IND)
ENTRIES = [p.entry for p in PARTIES]


def document(entries: list[PartyEntry], *, serial: int = 7) -> PartyDirectory:
    """A directory made directly, bypassing `build_directory`'s checks: what an attacker
    holding the anchor key, or a buggy tool, could sign."""
    return PartyDirectory(
        serial=serial,
        issued_at=NOW,
        expires_at=NOW + timedelta(days=30),
        network=NETWORK,
        parties=tuple(entries),
    )


def load(
    data: bytes, *, now: datetime = NOW, min_serial: int = 0, network: str | None = None
) -> Directory:
    return load_directory(data, anchor=PINNED, now=now, min_serial=min_serial, network=network)


def wrapper(**changes: object) -> bytes:
    """The signed directory of `ENTRIES` with fields of its SignedDirectory wrapper replaced."""
    codec = default_codec()
    good = SignedDirectory.from_avro(
        codec.decode(SignedDirectory.avro_name, sign_directory(document(ENTRIES), ANCHOR))
    )
    return codec.encode(SignedDirectory.avro_name, good.model_copy(update=changes).to_avro())


def raw_key(algorithm: KeyAlgorithm, raw: bytes, **changes: object) -> PublicKey:
    fields: dict[str, object] = {
        "key_id": key_id(raw),
        "algorithm": algorithm,
        "public_key": raw,
        "valid_from": NOW,
        "valid_until": NOW + timedelta(days=365),
        "status": KeyStatus.ACTIVE,
        **changes,
    }
    return PublicKey.model_validate(fields)


def with_keys(party: NewParty, **keys: tuple[PublicKey, ...]) -> PartyEntry:
    return party.entry.model_copy(update=keys)


@pytest.fixture(scope="module")
def signed() -> bytes:
    return sign_directory(build_directory(ENTRIES, serial=7, network=NETWORK, now=NOW), ANCHOR)


# --- what loads, and what the lookups return --------------------------------------------------


def test_signed_directory_loads_back_with_every_party(signed: bytes) -> None:
    directory = load(signed, network=NETWORK, min_serial=7)
    assert directory.serial == 7
    assert directory.expires_at == NOW + timedelta(days=30)
    assert sorted(directory.parties) == ["dtv", "gemeente-utrecht", "ind"]
    assert directory.party("dtv") == DTV.entry
    assert directory.role("gemeente-utrecht") is PartyRole.MUNICIPALITY


def test_signing_key_lookup_returns_the_partys_verification_key(signed: bytes) -> None:
    directory = load(signed)
    [record] = IND.entry.signing_keys
    key = directory.signing_key("ind", record.key_id, NOW)
    assert key is not None
    assert key.public_bytes_raw() == record.public_key
    # and it verifies what the party's private key signs
    key.verify(IND.keys.signing_key.sign(b"dossier"), b"dossier")


def test_signing_key_lookup_of_an_unknown_key_id_is_none(signed: bytes) -> None:
    assert load(signed).signing_key("ind", "0000000000000000", NOW) is None


def test_lookup_of_an_unknown_party_raises_unknown_party(signed: bytes) -> None:
    with pytest.raises(UnknownParty):
        load(signed).party("gemeente-zwolle")


def test_recipient_key_of_an_x25519_party_is_its_published_key(signed: bytes) -> None:
    recipient = load(signed).recipient_key("gemeente-utrecht", NOW)
    [record] = UTRECHT.entry.encryption_keys
    assert (recipient.key_id, recipient.algorithm) == (record.key_id, KeyAlgorithm.X25519)
    assert isinstance(recipient.public_key, X25519PublicKey)
    assert recipient.public_key.public_bytes_raw() == record.public_key


def test_recipient_key_of_a_hybrid_party_encrypts_to_its_private_key(signed: bytes) -> None:
    recipient = load(signed).recipient_key("dtv", NOW)
    assert recipient.algorithm is KeyAlgorithm.MLKEM768_X25519
    suite = hpke.Suite(hpke.KEM.MLKEM768_X25519, hpke.KDF.HKDF_SHA256, hpke.AEAD.AES_256_GCM)
    [decryption] = DTV.keys.decryption_keys.values()
    assert decryption.key_id == recipient.key_id
    sealed = suite.encrypt(b"payload key", recipient.public_key)
    assert suite.decrypt(sealed, decryption.private_key) == b"payload key"


# --- validity windows and revocation -----------------------------------------------------------


@pytest.mark.parametrize(
    ("at", "valid"),
    [
        (NOW - MS, False),  # before valid_from
        (NOW, True),
        (NOW + timedelta(days=365) - MS, True),
        (NOW + timedelta(days=365), False),  # valid_until is exclusive
    ],
    ids=["before", "from", "last-ms", "until"],
)
def test_signing_key_is_found_only_inside_its_validity_window(
    signed: bytes, at: datetime, valid: bool
) -> None:
    [record] = IND.entry.signing_keys
    assert (load(signed).signing_key("ind", record.key_id, at) is not None) is valid


REVOKED_AT = NOW + timedelta(days=10)


@pytest.mark.parametrize(
    ("at", "valid"),
    [(REVOKED_AT - MS, True), (REVOKED_AT, False), (REVOKED_AT + timedelta(days=5), False)],
    ids=["before", "at", "after"],
)
def test_revoked_signing_key_verifies_only_what_was_made_before_revocation(
    at: datetime, valid: bool
) -> None:
    [record] = IND.entry.signing_keys
    revoked = record.model_copy(update={"status": KeyStatus.REVOKED, "revoked_at": REVOKED_AT})
    entries = [UTRECHT.entry, with_keys(IND, signing_keys=(revoked,))]
    directory = load(
        sign_directory(build_directory(entries, serial=1, network=NETWORK, now=NOW), ANCHOR)
    )
    assert (directory.signing_key("ind", record.key_id, at) is not None) is valid


def test_revoked_key_without_a_revocation_time_is_never_valid() -> None:
    [record] = IND.entry.signing_keys
    revoked = record.model_copy(update={"status": KeyStatus.REVOKED})
    entries = [with_keys(IND, signing_keys=(revoked,))]
    directory = load(
        sign_directory(build_directory(entries, serial=1, network=NETWORK, now=NOW), ANCHOR)
    )
    assert directory.signing_key("ind", record.key_id, NOW + timedelta(days=1)) is None


def two_encryption_keys(
    new_status: KeyStatus = KeyStatus.ACTIVE,
) -> tuple[Directory, PublicKey, PublicKey]:
    """Utrecht with a year-old encryption key and the one that replaced it yesterday."""
    [old] = UTRECHT.entry.encryption_keys
    old = old.model_copy(
        update={"valid_from": NOW - timedelta(days=200), "valid_until": NOW + timedelta(days=165)}
    )
    raw = generate_encryption_key(KeyAlgorithm.X25519, seed=b"utrecht-2027").raw_public
    new = raw_key(
        KeyAlgorithm.X25519,
        raw,
        valid_from=NOW - timedelta(days=1),
        status=new_status,
        revoked_at=NOW - timedelta(hours=1) if new_status is KeyStatus.REVOKED else None,
    )
    entry = with_keys(UTRECHT, encryption_keys=(old, new))
    built = build_directory([entry], serial=1, network=NETWORK, now=NOW)
    return load(sign_directory(built, ANCHOR)), old, new


def test_recipient_key_is_the_newest_valid_key() -> None:
    directory, _, new = two_encryption_keys()
    assert directory.recipient_key("gemeente-utrecht", NOW).key_id == new.key_id


def test_recipient_key_is_the_old_key_before_the_new_one_is_valid() -> None:
    directory, old, _ = two_encryption_keys()
    at = NOW - timedelta(days=100)
    assert directory.recipient_key("gemeente-utrecht", at).key_id == old.key_id


def test_recipient_key_skips_a_revoked_newer_key() -> None:
    directory, old, _ = two_encryption_keys(KeyStatus.REVOKED)
    assert directory.recipient_key("gemeente-utrecht", NOW).key_id == old.key_id


def test_recipient_key_with_no_valid_key_raises_unknown_party() -> None:
    directory, _, _ = two_encryption_keys()
    with pytest.raises(UnknownParty, match="no encryption key valid"):
        directory.recipient_key("gemeente-utrecht", NOW + timedelta(days=400))


# --- refused: the signature and the wrapper ---------------------------------------------------


def test_unsigned_directory_is_refused() -> None:
    with pytest.raises(DirectoryRejected, match="bad signature"):
        load(wrapper(signature=b""))


def test_signature_by_another_key_claiming_the_pinned_key_id_is_refused() -> None:
    codec = default_codec()
    body = codec.encode(PartyDirectory.avro_name, document(ENTRIES).to_avro())
    forged = wrapper(
        anchor_key_id=PINNED.key_id, signature=OTHER_ANCHOR.sign(DIRECTORY_SIGNATURE_TAG_V2 + body)
    )
    with pytest.raises(DirectoryRejected, match="bad signature"):
        load(forged)


def test_directory_of_another_anchor_is_refused() -> None:
    with pytest.raises(DirectoryRejected, match="another anchor"):
        load(sign_directory(document(ENTRIES), OTHER_ANCHOR))


def test_signature_without_the_domain_tag_is_refused() -> None:
    # a signature over the bare body: what another protocol signing the same bytes would make
    body = default_codec().encode(PartyDirectory.avro_name, document(ENTRIES).to_avro())
    with pytest.raises(DirectoryRejected, match="bad signature"):
        load(wrapper(signature=ANCHOR.sign(body)))


@pytest.mark.parametrize("where", [0, 0.5, -1], ids=["first", "middle", "last"])
def test_any_flipped_byte_of_the_signed_body_is_refused(where: float) -> None:
    codec = default_codec()
    body = codec.encode(PartyDirectory.avro_name, document(ENTRIES).to_avro())
    position = int(where * len(body)) if where >= 0 else len(body) - 1
    tampered = bytearray(body)
    tampered[position] ^= 0x01
    with pytest.raises(DirectoryRejected, match="bad signature"):
        load(wrapper(directory=bytes(tampered)))


@pytest.mark.parametrize("version", [0, 3])
def test_unsupported_format_version_is_refused(version: int) -> None:
    with pytest.raises(DirectoryRejected, match="unsupported directory format") as refused:
        load(wrapper(format_version=version))
    assert refused.value.check is DirectoryCheck.UNSUPPORTED_FORMAT


# --- format 1 (before keys had a revocation reason) ----------------------------------------

V1_PARTY_DIRECTORY = bytes.fromhex(
    "13c75b23fc2a0f306d815eb24a27ab15fc775175aa9c391471b4a90787d8f749"
)
"""schemas/avro/history/nl.lvv.v1.PartyDirectory.1.avsc, as docs/ENVELOPE.md §2.3 listed it."""


def format_1(entries: list[PartyEntry]) -> bytes:
    """A directory as the anchor's tools wrote it before format 2: the body in the first
    `PartyDirectory` schema, signed under the format 1 tag."""
    codec = default_codec()
    record = document(entries).to_avro()
    for entry in record["parties"]:
        for key in (*entry["signing_keys"], *entry["encryption_keys"]):
            del key["revocation_reason"]
    body = codec.encode(codec.by_fingerprint(V1_PARTY_DIRECTORY), record)
    signed = SignedDirectory(format_version=1, anchor_key_id=PINNED.key_id, directory=body,
                             signature=ANCHOR.sign(DIRECTORY_SIGNATURE_TAG + body))  # fmt: skip
    return codec.encode(SignedDirectory.avro_name, signed.to_avro())


def revoked_ind(at: datetime, reason: RevocationReason | None = None) -> list[PartyEntry]:
    [record] = IND.entry.signing_keys
    revoked = record.model_copy(
        update={"status": KeyStatus.REVOKED, "revoked_at": at, "revocation_reason": reason}
    )
    return [UTRECHT.entry, with_keys(IND, signing_keys=(revoked,))]


def test_the_first_schema_is_still_in_the_history() -> None:
    assert default_codec().by_fingerprint(V1_PARTY_DIRECTORY).name == PartyDirectory.avro_name


def test_a_format_1_directory_still_loads_and_its_revocations_hold() -> None:
    [record] = IND.entry.signing_keys
    directory = load(format_1(revoked_ind(NOW + timedelta(days=1))))
    [key] = directory.party("ind").signing_keys
    assert (key.status, key.revocation_reason) == (KeyStatus.REVOKED, None)
    assert directory.signing_key("ind", record.key_id, NOW) is not None
    assert directory.signing_key("ind", record.key_id, NOW + timedelta(days=1)) is None


def test_a_revocation_reason_travels_in_the_signed_directory() -> None:
    entries = revoked_ind(NOW, RevocationReason.KEY_COMPROMISE)
    directory = load(sign_directory(document(entries), ANCHOR))
    [key] = directory.party("ind").signing_keys
    assert key.revocation_reason is RevocationReason.KEY_COMPROMISE


@pytest.mark.parametrize(
    ("data", "version"),
    [(sign_directory(document(ENTRIES), ANCHOR), 1), (format_1(ENTRIES), 2)],
    ids=["2-as-1", "1-as-2"],
)
def test_signed_bytes_relabelled_as_the_other_format_are_refused(data: bytes, version: int) -> None:
    # else the body would be decoded with the other format's schema
    codec = default_codec()
    signed = SignedDirectory.from_avro(codec.decode(SignedDirectory.avro_name, data))
    relabelled = signed.model_copy(update={"format_version": version}).to_avro()
    with pytest.raises(DirectoryRejected, match="bad signature"):
        load(codec.encode(SignedDirectory.avro_name, relabelled))


def test_a_format_2_body_does_not_decode_with_the_first_schema() -> None:
    # what a reader of format 1 would meet if it skipped the format check: every key's
    # reason (one byte when null) shifts what follows, so the body is refused, never misread
    codec = default_codec()
    for entries in (ENTRIES, revoked_ind(NOW, RevocationReason.SUPERSEDED)):
        body = codec.encode(PartyDirectory.avro_name, document(entries).to_avro())
        with pytest.raises(DecodeError):
            codec.decode(PartyDirectory.avro_name, body,
                         writer=codec.by_fingerprint(V1_PARTY_DIRECTORY), max_items=100_000)  # fmt: skip


@pytest.mark.parametrize("late", [timedelta(0), timedelta(days=1)], ids=["at-expiry", "after"])
def test_expired_directory_is_refused(signed: bytes, late: timedelta) -> None:
    with pytest.raises(DirectoryRejected, match="expired"):
        load(signed, now=NOW + timedelta(days=30) + late)


def test_directory_is_accepted_until_the_last_millisecond(signed: bytes) -> None:
    assert load(signed, now=NOW + timedelta(days=30) - MS).serial == 7


def test_directory_older_than_the_one_in_use_is_refused(signed: bytes) -> None:
    with pytest.raises(DirectoryRejected, match="older than the one in use"):
        load(signed, min_serial=8)


def test_directory_of_another_network_is_refused(signed: bytes) -> None:
    with pytest.raises(DirectoryRejected, match="network"):
        load(signed, network="lvv-production")


def test_oversized_input_is_refused_before_parsing() -> None:
    with pytest.raises(DirectoryRejected, match="too large"):
        load(bytes(MAX_DIRECTORY_BYTES + 1))


# --- refused: keys and parties that must never be accepted ------------------------------------


def _swap_signing(party: NewParty, key: PublicKey) -> list[PartyEntry]:
    return [e for e in ENTRIES if e.party_id != party.entry.party_id] + [
        with_keys(party, signing_keys=(key,))
    ]


def _swap_encryption(party: NewParty, key: PublicKey) -> list[PartyEntry]:
    return [e for e in ENTRIES if e.party_id != party.entry.party_id] + [
        with_keys(party, encryption_keys=(key,))
    ]


_GOOD_ED25519 = IND.entry.signing_keys[0]
_GOOD_X25519 = IND.entry.encryption_keys[0]
_HYBRID = DTV.entry.encryption_keys[0]

BAD_DIRECTORIES: dict[str, tuple[Callable[[], list[PartyEntry]], str]] = {
    # name: (the entries, what the refusal says)
    "party listed twice": (lambda: [*ENTRIES, IND.entry], "appears twice"),
    "low-order X25519 key": (
        lambda: _swap_encryption(IND, raw_key(KeyAlgorithm.X25519, bytes(32))),
        "not a usable X25519",
    ),
    "hybrid key with a low-order X25519 half": (
        lambda: _swap_encryption(
            DTV, raw_key(KeyAlgorithm.MLKEM768_X25519, _HYBRID.public_key[:-32] + bytes(32))
        ),
        "X25519 half of the hybrid key is not usable",
    ),
    "hybrid key of the wrong length": (
        lambda: _swap_encryption(
            DTV, raw_key(KeyAlgorithm.MLKEM768_X25519, _HYBRID.public_key[:-1])
        ),
        "has 1216 bytes",
    ),
    "malformed Ed25519 key (31 bytes)": (
        lambda: _swap_signing(IND, raw_key(KeyAlgorithm.ED25519, _GOOD_ED25519.public_key[:31])),
        "not a usable Ed25519",
    ),
    "Ed25519 identity (small order)": (
        lambda: _swap_signing(IND, raw_key(KeyAlgorithm.ED25519, (1).to_bytes(32, "little"))),
        "not a usable Ed25519",
    ),
    "key id not matching its key": (
        lambda: _swap_signing(IND, _GOOD_ED25519.model_copy(update={"key_id": "0123456789abcdef"})),
        "key id does not match",
    ),
    "encryption key listed as ED25519": (
        lambda: _swap_encryption(
            IND, _GOOD_X25519.model_copy(update={"algorithm": KeyAlgorithm.ED25519})
        ),
        "an encryption key must be",
    ),
    "signing key listed as X25519": (
        lambda: _swap_signing(
            IND, _GOOD_ED25519.model_copy(update={"algorithm": KeyAlgorithm.X25519})
        ),
        "a signing key must be Ed25519",
    ),
    "empty validity window": (
        lambda: _swap_signing(
            IND, _GOOD_ED25519.model_copy(update={"valid_until": _GOOD_ED25519.valid_from})
        ),
        "empty validity window",
    ),
    "party without an encryption key": (
        lambda: [*ENTRIES[:2], IND.entry.model_copy(update={"encryption_keys": ()})],
        "lacks a role or keys",
    ),
}


@pytest.mark.parametrize(("entries", "says"), BAD_DIRECTORIES.values(), ids=BAD_DIRECTORIES.keys())
def test_build_refuses_a_directory_holding_a_key_or_party_it_must_not(
    entries: Callable[[], list[PartyEntry]], says: str
) -> None:
    with pytest.raises(DirectoryRejected, match=says):
        build_directory(entries(), serial=1, network=NETWORK, now=NOW)


@pytest.mark.parametrize(("entries", "says"), BAD_DIRECTORIES.values(), ids=BAD_DIRECTORIES.keys())
def test_load_refuses_a_signed_directory_holding_a_key_or_party_it_must_not(
    entries: Callable[[], list[PartyEntry]], says: str
) -> None:
    # signed by the real anchor, so only the key checks at load time stand in the way
    data = sign_directory(document(entries()), ANCHOR)
    with pytest.raises(DirectoryRejected, match=says):
        load(data)


def test_build_refuses_the_signing_key_reused_as_the_encryption_key() -> None:
    entries = _swap_encryption(IND, _GOOD_ED25519)
    with pytest.raises(DirectoryRejected):
        build_directory(entries, serial=1, network=NETWORK, now=NOW)


# --- refused: garbage -------------------------------------------------------------------------


def test_every_truncation_of_a_signed_directory_is_refused(signed: bytes) -> None:
    for end in range(len(signed)):
        with pytest.raises(DirectoryRejected):
            load(signed[:end])


def test_trailing_bytes_after_a_signed_directory_are_refused(signed: bytes) -> None:
    with pytest.raises(DirectoryRejected, match="malformed"):
        load(signed + b"\x00")


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=512))
def test_random_bytes_are_refused_with_directory_rejected(data: bytes) -> None:
    with pytest.raises(DirectoryRejected):
        load(data)


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.data())
def test_any_changed_signed_directory_is_refused_with_directory_rejected(
    signed: bytes, data: st.DataObject
) -> None:
    position = data.draw(st.integers(0, len(signed) - 1), label="position")
    how = data.draw(st.sampled_from(["replace", "insert", "delete"]), label="how")
    byte = data.draw(st.integers(0, 255), label="byte")
    mutated = {
        "replace": signed[:position] + bytes([byte]) + signed[position + 1 :],
        "insert": signed[:position] + bytes([byte]) + signed[position:],
        "delete": signed[:position] + signed[position + 1 :],
    }[how]
    if mutated == signed:
        return
    with pytest.raises(DirectoryRejected):
        load(mutated)
