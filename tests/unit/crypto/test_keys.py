"""Identities and the key store: keys survive a round trip through encrypted files, private
keys never leak (file modes, PEM encryption, error messages, reprs), and the point checks
refuse every public key that must never be used (RFC 7748 §6.1, RFC 8032 §5.1.3)."""

from __future__ import annotations

import base64
import hashlib
import stat
import traceback
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hpke
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from hypothesis import given
from hypothesis import strategies as st

from broker.crypto._keyfile import DEMO_KEY_FILE_KDF
from broker.crypto._keys import (
    KeyStore,
    encryption_public_key,
    generate_party,
    key_id,
    passphrase_from_env,
    signing_public_key,
)
from broker.crypto._points import ed25519_usable, x25519_usable
from broker.errors import KeyStoreError
from broker.models import KeyAlgorithm, PartyRole

NOW = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
PASSPHRASE = b"correct horse battery staple 42"
P = 2**255 - 19
ED25519_D = (-121665 * pow(121666, P - 2, P)) % P

HPKE_SUITES = {
    KeyAlgorithm.X25519: hpke.Suite(hpke.KEM.X25519, hpke.KDF.HKDF_SHA256, hpke.AEAD.AES_256_GCM),
    KeyAlgorithm.MLKEM768_X25519: hpke.Suite(
        hpke.KEM.MLKEM768_X25519, hpke.KDF.HKDF_SHA256, hpke.AEAD.AES_256_GCM
    ),
}


def le(n: int) -> bytes:
    """``n`` as a 32-byte little-endian string, the wire form of both curves."""
    return n.to_bytes(32, "little")


@pytest.fixture
def store(tmp_path: Path) -> KeyStore:
    # the cheap KDF: these tests are about the store, test_key_files.py about the strong cost
    return KeyStore(tmp_path / "keys", kdf=DEMO_KEY_FILE_KDF)


# --- the key store ----------------------------------------------------------------------------


@pytest.mark.parametrize("kem", [KeyAlgorithm.X25519, KeyAlgorithm.MLKEM768_X25519])
def test_loaded_keys_are_the_private_halves_of_the_public_record(
    store: KeyStore, kem: KeyAlgorithm
) -> None:
    entry = store.init_party("dtv", PartyRole.DTV, passphrase=PASSPHRASE, now=NOW, kem=kem)
    keys = store.load_party("dtv", PASSPHRASE)

    [signing], [encryption] = entry.signing_keys, entry.encryption_keys
    assert keys.signing_key.public_key().public_bytes_raw() == signing.public_key
    assert keys.signing_key_id == signing.key_id == key_id(signing.public_key)
    # the loaded decryption key opens what is encrypted to the published key
    [decryption] = keys.decryption_keys.values()
    assert (decryption.key_id, decryption.algorithm) == (encryption.key_id, kem)
    suite = HPKE_SUITES[kem]
    sealed = suite.encrypt(b"payload key", encryption_public_key(kem, encryption.public_key))
    assert suite.decrypt(sealed, decryption.private_key) == b"payload key"


def test_public_entries_lists_every_party_but_not_the_anchor(store: KeyStore) -> None:
    store.init_anchor(passphrase=PASSPHRASE, now=NOW)
    ind = store.init_party("ind", PartyRole.IND, passphrase=PASSPHRASE, now=NOW)
    dtv = store.init_party("dtv", PartyRole.DTV, passphrase=PASSPHRASE, now=NOW)
    assert store.public_entries() == [dtv, ind]


def test_anchor_private_key_matches_its_pinned_public_key(store: KeyStore) -> None:
    public = store.init_anchor(passphrase=PASSPHRASE, now=NOW)
    private = store.anchor_private(PASSPHRASE)
    assert private.public_key().public_bytes_raw() == public.public_key
    assert store.anchor_public() == public


@pytest.mark.parametrize("kem", [KeyAlgorithm.X25519, KeyAlgorithm.MLKEM768_X25519])
def test_private_key_files_are_owner_only_and_encrypted(store: KeyStore, kem: KeyAlgorithm) -> None:
    store.init_party("dtv", PartyRole.DTV, passphrase=PASSPHRASE, now=NOW, kem=kem)
    store.init_anchor(passphrase=PASSPHRASE, now=NOW)
    pem_files = sorted(store.folder.glob("*.pem"))
    assert [p.name for p in pem_files] == [
        "anchor.signing.pem",
        "dtv.content.pem",
        "dtv.encryption.pem",
        "dtv.signing.pem",
    ]
    for path in pem_files:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path.name
        text = path.read_text()
        assert "-----BEGIN LVVX ENCRYPTED PRIVATE KEY-----" in text
        assert "BEGIN PRIVATE KEY" not in text  # no unencrypted block slipped in
    blocks = (store.folder / "dtv.encryption.pem").read_text().count("BEGIN LVVX ENCRYPTED")
    assert blocks == (2 if kem is KeyAlgorithm.MLKEM768_X25519 else 1)


def test_wrong_passphrase_is_refused_without_revealing_passphrase_or_key(store: KeyStore) -> None:
    entry = store.init_party("dtv", PartyRole.DTV, passphrase=PASSPHRASE, now=NOW)
    wrong = b"tr0ub4dor&3-guess"
    with pytest.raises(KeyStoreError) as caught:
        store.load_party("dtv", wrong)

    # everything an operator could see: the message, and the whole chained traceback
    shown = str(caught.value) + "".join(traceback.format_exception(caught.value))
    assert "wrong passphrase" in str(caught.value)
    for secret in (wrong, PASSPHRASE):
        assert secret.decode() not in shown
    pem_body = (store.folder / "dtv.signing.pem").read_text().splitlines()[1]
    public = entry.signing_keys[0].public_key
    for material in (pem_body, public.hex(), base64.b64encode(public).decode()):
        assert material not in shown


def test_init_refuses_to_overwrite_an_existing_private_key(store: KeyStore) -> None:
    store.init_party("dtv", PartyRole.DTV, passphrase=PASSPHRASE, now=NOW)
    before = {p.name: p.read_bytes() for p in store.folder.iterdir()}

    with pytest.raises(KeyStoreError, match="refusing to overwrite"):
        store.init_party("dtv", PartyRole.DTV, passphrase=PASSPHRASE, now=NOW)
    assert {p.name: p.read_bytes() for p in store.folder.iterdir()} == before


def test_anchor_init_refuses_to_overwrite_the_anchor_key(store: KeyStore) -> None:
    store.init_anchor(passphrase=PASSPHRASE, now=NOW)
    before = (store.folder / "anchor.signing.pem").read_bytes()
    with pytest.raises(KeyStoreError, match="refusing to overwrite"):
        store.init_anchor(passphrase=PASSPHRASE, now=NOW)
    assert (store.folder / "anchor.signing.pem").read_bytes() == before


def test_a_key_file_that_is_not_pem_is_a_key_store_error(store: KeyStore) -> None:
    store.init_party("dtv", PartyRole.DTV, passphrase=PASSPHRASE, now=NOW)
    (store.folder / "dtv.encryption.pem").write_bytes(
        b"-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----\n"
    )
    with pytest.raises(KeyStoreError, match="cannot decrypt"):
        store.load_party("dtv", PASSPHRASE)


@pytest.mark.parametrize("content", [b"", b"garbage, no PEM block"], ids=["empty", "garbage"])
def test_a_key_file_holding_no_key_is_a_key_store_error(store: KeyStore, content: bytes) -> None:
    store.init_party("dtv", PartyRole.DTV, passphrase=PASSPHRASE, now=NOW)
    (store.folder / "dtv.signing.pem").write_bytes(content)
    with pytest.raises(KeyStoreError):
        store.load_party("dtv", PASSPHRASE)


def test_loading_an_unknown_party_is_a_key_store_error(store: KeyStore) -> None:
    store.init_party("dtv", PartyRole.DTV, passphrase=PASSPHRASE, now=NOW)
    with pytest.raises(KeyStoreError, match="no public record"):
        store.load_party("ind", PASSPHRASE)


# --- the passphrase ---------------------------------------------------------------------------


@pytest.mark.parametrize("environ", [{}, {"LVVX_KEY_PASSPHRASE": ""}], ids=["unset", "empty"])
def test_no_passphrase_in_the_environment_is_refused(environ: dict[str, str]) -> None:
    with pytest.raises(KeyStoreError, match="LVVX_KEY_PASSPHRASE"):
        passphrase_from_env(environ)


def test_passphrase_comes_from_the_environment_variable() -> None:
    assert passphrase_from_env({"LVVX_KEY_PASSPHRASE": "s3cret"}) == b"s3cret"


def test_passphrase_file_is_read_without_its_trailing_newline(tmp_path: Path) -> None:
    secret = tmp_path / "passphrase"
    secret.write_text("from a file\n")
    environ = {"LVVX_KEY_PASSPHRASE_FILE": str(secret)}
    assert passphrase_from_env(environ) == b"from a file"


def test_missing_passphrase_file_is_a_key_store_error(tmp_path: Path) -> None:
    environ = {"LVVX_KEY_PASSPHRASE_FILE": str(tmp_path / "absent")}
    with pytest.raises(KeyStoreError, match="cannot read"):
        passphrase_from_env(environ)


def test_empty_passphrase_file_is_refused(tmp_path: Path) -> None:
    secret = tmp_path / "passphrase"
    secret.write_text("\n")
    with pytest.raises(KeyStoreError, match="no key passphrase"):
        passphrase_from_env({"LVVX_KEY_PASSPHRASE_FILE": str(secret)})


# --- keys in memory ---------------------------------------------------------------------------


def test_repr_of_party_keys_shows_no_key_material() -> None:
    keys = generate_party("dtv", PartyRole.DTV, now=NOW, seed=b"dtv").keys
    [decryption] = keys.decryption_keys.values()
    assert isinstance(decryption.private_key, X25519PrivateKey)
    secrets = [keys.signing_key.private_bytes_raw(), decryption.private_key.private_bytes_raw()]

    for shown in (repr(keys), str(keys), repr(decryption), repr(dict(keys.decryption_keys))):
        for secret in secrets:
            assert secret.hex() not in shown
            assert base64.b64encode(secret).decode() not in shown
        assert "private" not in shown.lower()
    assert repr(keys).startswith("PartyKeys(dtv, signing ")


@pytest.mark.parametrize("kem", [KeyAlgorithm.X25519, KeyAlgorithm.MLKEM768_X25519])
def test_seeded_generation_is_deterministic(kem: KeyAlgorithm) -> None:
    first = generate_party("ind", PartyRole.IND, now=NOW, kem=kem, seed=b"vector")
    again = generate_party("ind", PartyRole.IND, now=NOW, kem=kem, seed=b"vector")
    other = generate_party("ind", PartyRole.IND, now=NOW, kem=kem, seed=b"other")
    assert first.entry == again.entry
    assert first.entry.signing_keys != other.entry.signing_keys
    assert first.entry.encryption_keys != other.entry.encryption_keys


@pytest.mark.parametrize("kem", [KeyAlgorithm.X25519, KeyAlgorithm.MLKEM768_X25519])
def test_unseeded_generation_gives_fresh_keys_every_time(kem: KeyAlgorithm) -> None:
    one = generate_party("ind", PartyRole.IND, now=NOW, kem=kem)
    two = generate_party("ind", PartyRole.IND, now=NOW, kem=kem)
    assert one.entry.signing_keys[0].public_key != two.entry.signing_keys[0].public_key
    assert one.entry.encryption_keys[0].public_key != two.entry.encryption_keys[0].public_key


def test_key_id_is_the_first_16_hex_digits_of_sha256() -> None:
    assert key_id(b"") == "e3b0c44298fc1c14"  # SHA-256 of nothing: e3b0c442 98fc1c14 9afb...
    raw = Ed25519PrivateKey.generate().public_key().public_bytes_raw()
    assert key_id(raw) == hashlib.sha256(raw).hexdigest()[:16]


def test_generated_entries_carry_key_ids_of_their_keys() -> None:
    entry = generate_party("ind", PartyRole.IND, now=NOW, seed=b"ids").entry
    for key in (*entry.signing_keys, *entry.encryption_keys):
        assert key.key_id == key_id(key.public_key)


# --- X25519 points ----------------------------------------------------------------------------

X25519_LOW_ORDER = {
    # RFC 7748 §6.1 / libsodium's blocklist: every u that maps to the all-zero shared secret
    "zero": le(0),
    "one": le(1),
    "order 8 (a)": bytes.fromhex(
        "e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800"
    ),
    "order 8 (b)": bytes.fromhex(
        "5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f1157"
    ),
    "p-1": le(P - 1),
    "p": le(P),
    "p+1": le(P + 1),
}


def test_generated_x25519_keys_are_usable() -> None:
    for _ in range(20):
        raw = X25519PrivateKey.generate().public_key().public_bytes_raw()
        assert x25519_usable(raw)


@pytest.mark.parametrize("raw", X25519_LOW_ORDER.values(), ids=X25519_LOW_ORDER.keys())
def test_x25519_refuses_small_order_points(raw: bytes) -> None:
    assert not x25519_usable(raw)


def test_x25519_refuses_u_at_or_above_p() -> None:
    # u = p + 9 is the base point's u (9) written non-canonically; 2**255 - 1 is the largest
    for u in (P + 9, 2**255 - 1):
        assert not x25519_usable(le(u))


def test_x25519_refuses_a_good_key_with_the_top_bit_set() -> None:
    raw = X25519PrivateKey.generate().public_key().public_bytes_raw()
    assert x25519_usable(raw)
    assert not x25519_usable(raw[:31] + bytes([raw[31] | 0x80]))


@pytest.mark.parametrize("size", [0, 31, 33, 64])
def test_x25519_refuses_wrong_lengths(size: int) -> None:
    assert not x25519_usable(b"\x09" * size)


@given(st.binary(max_size=64))
def test_x25519_usable_never_raises(raw: bytes) -> None:
    result = x25519_usable(raw)
    assert result is False or len(raw) == 32


def test_encryption_public_key_refuses_a_low_order_x25519_key() -> None:
    with pytest.raises(ValueError, match="not a usable X25519"):
        encryption_public_key(KeyAlgorithm.X25519, le(0))


# --- Ed25519 points ---------------------------------------------------------------------------


def off_curve_y() -> int:
    """The smallest y for which no x exists: x² = (y² - 1) / (d·y² + 1) is then not a square
    mod p (Euler's criterion), so the encoding names no point (RFC 8032 §5.1.3 step 3)."""
    y = 2
    while True:
        x2 = (y * y - 1) * pow(ED25519_D * y * y + 1, P - 2, P) % P
        if pow(x2, (P - 1) // 2, P) == P - 1:
            return y
        y += 1


ED25519_REFUSED = {
    "all zero (order 4)": bytes(32),
    "identity": le(1),
    "identity with the sign bit (x = 0 cannot be negative)": le(1 | 1 << 255),
    "order 2 (y = -1)": le(P - 1),
    "order 8 (a)": bytes.fromhex(
        "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05"
    ),
    "order 8 (b)": bytes.fromhex(
        "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a"
    ),
    "y = p (non-canonical 0)": le(P),
    "y = p + 1 (non-canonical identity)": le(P + 1),
    "y = 2**255 - 1": le(2**255 - 1),
    "y with no x": le(off_curve_y()),
}


def test_generated_ed25519_keys_are_usable() -> None:
    for _ in range(20):
        raw = Ed25519PrivateKey.generate().public_key().public_bytes_raw()
        assert ed25519_usable(raw)


@pytest.mark.parametrize("raw", ED25519_REFUSED.values(), ids=ED25519_REFUSED.keys())
def test_ed25519_refuses_small_order_non_canonical_and_off_curve_keys(raw: bytes) -> None:
    assert not ed25519_usable(raw)


@pytest.mark.parametrize("size", [0, 31, 33, 64])
def test_ed25519_refuses_wrong_lengths(size: int) -> None:
    good = Ed25519PrivateKey.generate().public_key().public_bytes_raw()
    assert not ed25519_usable((good * 3)[:size])


@given(st.binary(max_size=40))
def test_ed25519_usable_never_raises(raw: bytes) -> None:
    result = ed25519_usable(raw)
    assert result is False or len(raw) == 32


def test_signing_public_key_refuses_the_identity() -> None:
    with pytest.raises(ValueError, match="not a usable Ed25519"):
        signing_public_key(le(1))
