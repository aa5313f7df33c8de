"""Identities and keys: generating them, key ids, and the key store on disk.

A party has an Ed25519 signing key and an HPKE encryption key, X25519 or the hybrid
ML-KEM-768+X25519. Private keys live in encrypted key files (`broker.crypto._keyfile`:
scrypt and AES-256-GCM over PKCS#8; the passphrase comes from ``LVVX_KEY_PASSPHRASE`` or the
file named by ``LVVX_KEY_PASSPHRASE_FILE``) and are never logged or printed. A party's public
record is its directory entry as JSON.

Layout of a key folder::

    <party>.signing.pem      Ed25519
    <party>.encryption.pem   X25519, or ML-KEM-768 then X25519 (two blocks)
    <party>.signing.<key id>.pem, <party>.encryption.<key id>.pem
                             the keys a rotation made (`broker.crypto._rotation`); a
                             party's key ring is every such file (`KeyStore.load_ring`)
    <party>.public.json      the party's PartyEntry (public keys, validity), for the directory
    <party>.content.pem      secret of the key its gateway keeps content under at rest
    anchor.signing.pem       the trust anchor's Ed25519 key (programme office only)
    anchor.public.json       the anchor's public key, pinned by every gateway
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.mlkem import MLKEM768PrivateKey, MLKEM768PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.hpke import MLKEM768X25519PrivateKey, MLKEM768X25519PublicKey

from broker.crypto._at_rest import ContentKey
from broker.crypto._keyfile import (
    KEY_FILE_KDF,
    KeyFileChange,
    KeyFileKdf,
    check_passphrase,
    encrypt_key_file,
    key_file_blocks,
    read_key_file,
    replace_private,
    rewrap_key_file,
)
from broker.crypto._points import ed25519_usable, x25519_usable
from broker.errors import KeyStoreError, WeakPassphrase
from broker.models import KeyAlgorithm, KeyStatus, PartyEntry, PartyRole, PublicKey

if TYPE_CHECKING:
    from broker.crypto._ring import KeyRing

EncryptionPrivateKey = X25519PrivateKey | MLKEM768X25519PrivateKey
EncryptionPublicKey = X25519PublicKey | MLKEM768X25519PublicKey

KEY_ID_HEX_DIGITS = 16
"""Key ids are the first 64 bits of the SHA-256 of the raw public key: unique enough to pick
a key within one party, and not a secret."""

DEFAULT_KEY_VALIDITY = timedelta(days=365)
"""Keys are rotated yearly: a new key joins the directory before the old one expires."""

DEFAULT_ANCHOR_VALIDITY = timedelta(days=5 * 365)

_MLKEM768_PUBLIC_BYTES = 1184
_X25519_PUBLIC_BYTES = 32

PASSPHRASE_ENV = "LVVX_KEY_PASSPHRASE"
PASSPHRASE_FILE_ENV = "LVVX_KEY_PASSPHRASE_FILE"
NEW_PASSPHRASE_ENV = "LVVX_NEW_KEY_PASSPHRASE"
NEW_PASSPHRASE_FILE_ENV = "LVVX_NEW_KEY_PASSPHRASE_FILE"
"""The passphrase `lvvx keys upgrade` rewrites the files under, when it changes."""
ANCHOR = "anchor"
PRIVATE_KEY_FILES = ("signing.pem", "encryption.pem", "content.pem")
"""The private key files a folder may hold per party (the anchor has a signing key only),
besides the rotated keys' ``signing.<key id>.pem`` and ``encryption.<key id>.pem``."""

_log = logging.getLogger(__name__)
_legacy_reported: set[Path] = set()


def key_id(raw_public_key: bytes) -> str:
    return hashlib.sha256(raw_public_key).hexdigest()[:KEY_ID_HEX_DIGITS]


# --- public keys from raw bytes, checked ------------------------------------------------------


def signing_public_key(raw: bytes) -> Ed25519PublicKey:
    """The Ed25519 key of ``raw``; ValueError unless it is a usable point."""
    if not ed25519_usable(raw):
        raise ValueError("not a usable Ed25519 public key (malformed or of small order)")
    return Ed25519PublicKey.from_public_bytes(raw)


def encryption_public_key(algorithm: KeyAlgorithm, raw: bytes) -> EncryptionPublicKey:
    """The HPKE recipient key of ``raw``; ValueError unless it is well formed and usable."""
    if algorithm is KeyAlgorithm.X25519:
        if not x25519_usable(raw):
            raise ValueError("not a usable X25519 public key (malformed or of small order)")
        return X25519PublicKey.from_public_bytes(raw)
    if algorithm is KeyAlgorithm.MLKEM768_X25519:
        if len(raw) != _MLKEM768_PUBLIC_BYTES + _X25519_PUBLIC_BYTES:
            raise ValueError("an ML-KEM-768+X25519 public key has 1216 bytes")
        pq, classic = raw[:_MLKEM768_PUBLIC_BYTES], raw[_MLKEM768_PUBLIC_BYTES:]
        if not x25519_usable(classic):
            raise ValueError("the X25519 half of the hybrid key is not usable")
        return MLKEM768X25519PublicKey(
            MLKEM768PublicKey.from_public_bytes(pq), X25519PublicKey.from_public_bytes(classic)
        )
    raise ValueError(f"{algorithm} is not an encryption key algorithm")


# --- private keys in memory -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DecryptionKey:
    key_id: str
    algorithm: KeyAlgorithm
    private_key: EncryptionPrivateKey

    def __repr__(self) -> str:  # never show key material
        return f"DecryptionKey({self.key_id}, {self.algorithm.value})"


@dataclass(frozen=True, slots=True)
class PartyKeys:
    """A party's private keys: what its gateway holds and nobody else."""

    party_id: str
    signing_key: Ed25519PrivateKey
    signing_key_id: str
    decryption_keys: Mapping[str, DecryptionKey]

    def __repr__(self) -> str:
        return f"PartyKeys({self.party_id}, signing {self.signing_key_id}, decryption {sorted(self.decryption_keys)})"


@dataclass(frozen=True, slots=True)
class NewParty:
    """A party's fresh keys: its public record, its private keys, and the private key
    objects its encryption key file holds (two for the hybrid KEM)."""

    entry: PartyEntry
    keys: PartyKeys
    encryption_parts: tuple[object, ...]


def generate_party(
    party_id: str,
    role: PartyRole,
    *,
    now: datetime,
    display_name: str | None = None,
    kem: KeyAlgorithm = KeyAlgorithm.X25519,
    validity: timedelta = DEFAULT_KEY_VALIDITY,
    seed: bytes | None = None,
) -> NewParty:
    """New keys for a party, in memory (the key store writes them to files).

    ``seed`` derives the keys deterministically: only for test vectors and examples."""
    if seed is None:
        signing = Ed25519PrivateKey.generate()
        encryption = generate_encryption_key(kem)
    else:
        signing = Ed25519PrivateKey.from_private_bytes(_derive(seed, b"ed25519", 32))
        encryption = generate_encryption_key(kem, seed=seed)
    signing_public = _public(
        KeyAlgorithm.ED25519, signing.public_key().public_bytes_raw(), now, validity
    )
    encryption_public = _public(kem, encryption.raw_public, now, validity)
    entry = PartyEntry(
        party_id=party_id,
        role=role,
        display_name=display_name or party_id,
        signing_keys=(signing_public,),
        encryption_keys=(encryption_public,),
    )
    decryption = DecryptionKey(encryption_public.key_id, kem, encryption.private_key)
    keys = PartyKeys(party_id, signing, signing_public.key_id, {decryption.key_id: decryption})
    return NewParty(entry, keys, encryption.pem_parts)


@dataclass(frozen=True, slots=True)
class GeneratedEncryptionKey:
    algorithm: KeyAlgorithm
    private_key: EncryptionPrivateKey
    raw_public: bytes
    pem_parts: tuple[object, ...]  # the keys written to the PEM file, in order


def _derive(seed: bytes, label: bytes, size: int) -> bytes:
    return hashlib.shake_256(b"LVVX-TEST-KEY\x00" + label + b"\x00" + seed).digest(size)


def generate_encryption_key(
    algorithm: KeyAlgorithm, *, seed: bytes | None = None
) -> GeneratedEncryptionKey:
    classic = (
        X25519PrivateKey.generate()
        if seed is None
        else X25519PrivateKey.from_private_bytes(_derive(seed, b"x25519", 32))
    )
    classic_raw = classic.public_key().public_bytes_raw()
    if algorithm is KeyAlgorithm.X25519:
        return GeneratedEncryptionKey(algorithm, classic, classic_raw, (classic,))
    if algorithm is KeyAlgorithm.MLKEM768_X25519:
        pq = (
            MLKEM768PrivateKey.generate()
            if seed is None
            else MLKEM768PrivateKey.from_seed_bytes(_derive(seed, b"mlkem768", 64))
        )
        raw = pq.public_key().public_bytes_raw() + classic_raw
        return GeneratedEncryptionKey(
            algorithm, MLKEM768X25519PrivateKey(pq, classic), raw, (pq, classic)
        )
    raise ValueError(f"{algorithm} is not an encryption key algorithm")


# --- the key store on disk --------------------------------------------------------------------


def passphrase_from_env(environ: Mapping[str, str] = os.environ) -> bytes:
    """The key passphrase: ``LVVX_KEY_PASSPHRASE``, else the file ``LVVX_KEY_PASSPHRASE_FILE``."""
    if secret := _secret_from_env(environ, PASSPHRASE_ENV, PASSPHRASE_FILE_ENV):
        return secret
    raise KeyStoreError(
        f"no key passphrase: set {PASSPHRASE_ENV} or {PASSPHRASE_FILE_ENV}; "
        "private keys are never stored unencrypted"
    )


def new_passphrase_from_env(environ: Mapping[str, str] = os.environ) -> bytes | None:
    """The passphrase to rewrite key files under (``LVVX_NEW_KEY_PASSPHRASE``, else the file
    ``LVVX_NEW_KEY_PASSPHRASE_FILE``), or None to keep the current one."""
    return _secret_from_env(environ, NEW_PASSPHRASE_ENV, NEW_PASSPHRASE_FILE_ENV)


def _secret_from_env(environ: Mapping[str, str], name: str, file_name: str) -> bytes | None:
    if value := environ.get(name):
        return value.encode()
    if path := environ.get(file_name):
        try:
            secret = Path(path).read_bytes().strip()
        except OSError as exc:
            raise KeyStoreError(f"cannot read {file_name} ({path}): {exc.strerror}") from exc
        return secret or None
    return None


def _write_private(path: Path, data: bytes) -> None:
    """Write a private key file readable by its owner only, never replacing an existing one."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError as exc:
        raise KeyStoreError(f"{path} exists; refusing to overwrite a private key") from exc
    with os.fdopen(fd, "wb") as f:
        f.write(data)


def _read_private(path: Path, passphrase: bytes, *, blocks: tuple[int, ...] = (1,)) -> list[object]:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise KeyStoreError(f"cannot read key file {path}: {exc.strerror}") from exc
    if (found := key_file_blocks(data)) not in blocks:
        raise KeyStoreError(f"{path} holds {found} PEM blocks, not {' or '.join(map(str, blocks))}")
    try:
        contents = read_key_file(data, passphrase)
    except ValueError as exc:
        # the message says which file, never anything of the key or passphrase
        raise KeyStoreError(f"cannot decrypt {path}: {exc}") from exc
    if contents.legacy and path not in _legacy_reported:
        _legacy_reported.add(path)
        _log.warning(
            "%s is an old-format key file (%s): rewrite it with `lvvx keys upgrade --keys %s`",
            path, contents.describe(), path.parent,
        )  # fmt: skip
    return contents.keys


class KeyStore:
    """A folder of key files (see the module docstring for its layout)."""

    def __init__(
        self,
        folder: str | os.PathLike[str],
        *,
        kdf: KeyFileKdf = KEY_FILE_KDF,
        allow_weak_passphrase: bool = False,
    ) -> None:
        """``kdf`` is the cost of the files this store writes (reading takes each file's
        own); a lower one than `KEY_FILE_KDF` is for the demo and tests
        (`DEMO_KEY_FILE_KDF`). ``allow_weak_passphrase`` lets it write under a passphrase
        shorter than `MIN_PASSPHRASE_CHARS`: for tests only."""
        self.folder = Path(folder)
        self.kdf = kdf
        self.allow_weak_passphrase = allow_weak_passphrase

    def _encrypt(self, keys: tuple[object, ...], passphrase: bytes) -> bytes:
        check_passphrase(passphrase, allow_weak=self.allow_weak_passphrase)
        return encrypt_key_file(keys, passphrase, self.kdf)

    def _path(self, party: str, suffix: str) -> Path:
        return self.folder / f"{party}.{suffix}"

    def init_party(
        self,
        party_id: str,
        role: PartyRole,
        *,
        passphrase: bytes,
        now: datetime,
        display_name: str | None = None,
        kem: KeyAlgorithm = KeyAlgorithm.X25519,
        validity: timedelta = DEFAULT_KEY_VALIDITY,
    ) -> PartyEntry:
        """Make a party's key pair files and its public record; returns the record."""
        check_passphrase(passphrase, allow_weak=self.allow_weak_passphrase)
        self.folder.mkdir(parents=True, exist_ok=True)
        new = generate_party(
            party_id, role, now=now, display_name=display_name, kem=kem, validity=validity
        )
        _write_private(
            self._path(party_id, "signing.pem"), self._encrypt((new.keys.signing_key,), passphrase)
        )
        _write_private(
            self._path(party_id, "encryption.pem"), self._encrypt(new.encryption_parts, passphrase)
        )
        self._path(party_id, "public.json").write_text(new.entry.model_dump_json(indent=2) + "\n")
        self.content_key(party_id, passphrase)
        return new.entry

    def init_anchor(
        self, *, passphrase: bytes, now: datetime, validity: timedelta = DEFAULT_ANCHOR_VALIDITY
    ) -> PublicKey:
        """Make the trust anchor's Ed25519 key pair; returns its public key (to pin)."""
        check_passphrase(passphrase, allow_weak=self.allow_weak_passphrase)
        self.folder.mkdir(parents=True, exist_ok=True)
        key = Ed25519PrivateKey.generate()
        public = _public(KeyAlgorithm.ED25519, key.public_key().public_bytes_raw(), now, validity)
        _write_private(self._path(ANCHOR, "signing.pem"), self._encrypt((key,), passphrase))
        self._path(ANCHOR, "public.json").write_text(public.model_dump_json(indent=2) + "\n")
        return public

    def public_entries(self) -> list[PartyEntry]:
        """Every party's public record in the folder (the anchor's is not a party)."""
        entries = []
        for path in sorted(self.folder.glob("*.public.json")):
            if path.name == f"{ANCHOR}.public.json":
                continue
            try:
                entries.append(PartyEntry.model_validate_json(path.read_text()))
            except (OSError, ValueError) as exc:
                raise KeyStoreError(f"{path} is not a party's public record: {exc}") from exc
        return entries

    def public_entry(self, party_id: str) -> PartyEntry:
        """``party_id``'s public record in this folder."""
        path = self._path(party_id, "public.json")
        try:
            return PartyEntry.model_validate_json(path.read_text())
        except (OSError, ValueError) as exc:
            raise KeyStoreError(f"no public record for party {party_id!r} at {path}") from exc

    def write_public_entry(self, entry: PartyEntry) -> Path:
        """Replace the party's public record atomically (a directory build reading the
        folder sees the old record or the new one, never a part); returns its path."""
        path = self._path(entry.party_id, "public.json")
        replace_private(path, (entry.model_dump_json(indent=2) + "\n").encode(), mode=0o644)
        return path

    def anchor_public(self) -> PublicKey:
        path = self._path(ANCHOR, "public.json")
        try:
            return PublicKey.model_validate_json(path.read_text())
        except (OSError, ValueError) as exc:
            raise KeyStoreError(f"no usable trust anchor public key at {path}") from exc

    def anchor_private(self, passphrase: bytes) -> Ed25519PrivateKey:
        [key] = _read_private(self._path(ANCHOR, "signing.pem"), passphrase)
        if not isinstance(key, Ed25519PrivateKey):
            raise KeyStoreError("the anchor key file does not hold an Ed25519 key")
        return key

    def load_party(
        self, party_id: str, passphrase: bytes, *, now: datetime | None = None
    ) -> PartyKeys:
        """The keys of ``party_id`` its public record says to use at ``now`` (default: the
        clock): the newest signing key valid then, and every decryption key. A private key
        the record lists but the folder lacks is an error. A gateway keeps the whole ring
        (`load_ring`) and chooses by the directory in use instead."""
        entry = self.public_entry(party_id)
        now = now or datetime.now(UTC)
        ring = self.load_ring(party_id, passphrase)
        if missing := ring.missing_from_entry(entry, now):
            raise KeyStoreError(
                f"{party_id}: no private key for {', '.join(sorted(missing))} of its public record"
            )
        encryption = {k.key_id: k.algorithm for k in entry.encryption_keys}
        if any(
            encryption.get(kid, d.algorithm) is not d.algorithm
            for kid, d in ring.decryption.items()
        ):
            raise KeyStoreError(f"{party_id}: encryption key does not match its public record")
        return ring.keys_of_record(entry, now)

    def key_files(self, party_id: str, kind: str) -> list[Path]:
        """``party_id``'s private key files of ``kind`` (``signing`` or ``encryption``): the
        first one and those a rotation made, sorted."""
        first = self._path(party_id, f"{kind}.pem")
        rotated = sorted(self.folder.glob(f"{party_id}.{kind}.*.pem"))
        return ([first] if first.exists() else []) + [p for p in rotated if _is_key_file(p.name)]

    def write_key_file(self, party_id: str, kind: str, kid: str, keys: tuple[object, ...],
                       passphrase: bytes) -> Path:  # fmt: skip
        """Write a rotated key's private file ``<party>.<kind>.<key id>.pem`` (owner-only,
        never over an existing file)."""
        path = self._path(party_id, f"{kind}.{kid}.pem")
        _write_private(path, self._encrypt(keys, passphrase))
        return path

    def load_ring(
        self, party_id: str, passphrase: bytes, *, previous: KeyRing | None = None
    ) -> KeyRing:
        """Every private signing and decryption key of ``party_id`` in the folder. With
        ``previous`` (the ring read before), only files it did not read are decrypted: a
        gateway reloading after a rotation pays for the new keys only."""
        from broker.crypto._ring import KeyRing  # it chooses by the directory: imported late

        files = dict(previous.files) if previous is not None else {}
        signing = dict(previous.signing) if previous is not None else {}
        decryption = dict(previous.decryption) if previous is not None else {}
        for path in self.key_files(party_id, "signing"):
            if path.name in files:
                continue
            [key] = _read_private(path, passphrase)
            if not isinstance(key, Ed25519PrivateKey):
                raise KeyStoreError(f"{path.name} does not hold an Ed25519 key")
            files[path.name] = kid = key_id(key.public_key().public_bytes_raw())
            signing[kid] = key
        for path in self.key_files(party_id, "encryption"):
            if path.name in files:
                continue
            found = _decryption_key(_read_private(path, passphrase, blocks=(1, 2)))
            files[path.name] = found.key_id
            decryption[found.key_id] = found
        if not signing or not decryption:
            raise KeyStoreError(f"no signing or no encryption key of {party_id!r} in {self.folder}")
        return KeyRing(party_id, signing, decryption, files=files)

    def party_key_files(self, party_id: str) -> list[Path]:
        """Every private key file of ``party_id``: signing, encryption and content keys."""
        content = self._path(party_id, "content.pem")
        return [*self.key_files(party_id, "signing"), *self.key_files(party_id, "encryption"),
                *([content] if content.exists() else [])]  # fmt: skip

    def content_key(self, party_id: str, passphrase: bytes) -> ContentKey:
        """The key under which ``party_id``'s gateway keeps content at rest
        (`broker.crypto._at_rest`). Its secret is made on first use — key folders made
        before it existed get one then — and kept encrypted like the other private keys."""
        path = self._path(party_id, "content.pem")
        if not path.exists():
            with contextlib.suppress(KeyStoreError):  # another process made it just now
                _write_private(path, self._encrypt((X25519PrivateKey.generate(),), passphrase))
        [secret] = _read_private(path, passphrase)
        if not isinstance(secret, X25519PrivateKey):
            raise KeyStoreError(f"{party_id}.content.pem does not hold a content key secret")
        return ContentKey.derive(secret.private_bytes_raw(), party_id)

    def private_key_files(self) -> list[Path]:
        """Every private key file of the folder (parties' and the anchor's), sorted."""
        return sorted(path for path in self.folder.glob("*.pem") if _is_key_file(path.name))

    def upgrade(
        self,
        passphrase: bytes,
        *,
        new_passphrase: bytes | None = None,
        dry_run: bool = False,
    ) -> list[KeyFileChange]:
        """Rewrite every key file not yet in the current format at this store's cost
        (`rewrap_key_file`), atomically and owner-only; with ``dry_run`` only say which.
        Every file is decrypted before any is rewritten, so a wrong passphrase or a damaged
        file changes nothing. Running it again changes nothing (unless the passphrase
        changes, which rewrites every file)."""
        files = self.private_key_files()
        if not files:
            raise KeyStoreError(f"no private key files in {self.folder}")
        if new_passphrase is not None:
            check_passphrase(new_passphrase, allow_weak=self.allow_weak_passphrase)
        try:
            checked = [self._rewrap(p, passphrase, new_passphrase, dry_run=True) for p in files]
        except WeakPassphrase as exc:
            raise WeakPassphrase(
                f"{exc.message}; give a longer one in {NEW_PASSPHRASE_FILE_ENV} to rewrite "
                "the files under it"
            ) from exc
        if dry_run:
            return checked
        return [
            self._rewrap(change.path, passphrase, new_passphrase, dry_run=False)
            if change.needed or new_passphrase is not None
            else change
            for change in checked
        ]

    def rewrap(self, path: Path, passphrase: bytes, *, dry_run: bool = False) -> KeyFileChange:
        """Rewrite one key file in the current format at this store's cost, if it is not."""
        return self._rewrap(path, passphrase, None, dry_run=dry_run)

    def _rewrap(
        self, path: Path, passphrase: bytes, new_passphrase: bytes | None, *, dry_run: bool
    ) -> KeyFileChange:
        try:
            return rewrap_key_file(
                path, passphrase, new_passphrase=new_passphrase, kdf=self.kdf,
                allow_weak_passphrase=self.allow_weak_passphrase, dry_run=dry_run,
            )  # fmt: skip
        except ValueError as exc:
            raise KeyStoreError(f"cannot decrypt {path}: {exc}") from exc


def _public(algorithm: KeyAlgorithm, raw: bytes, now: datetime, validity: timedelta) -> PublicKey:
    return PublicKey(
        key_id=key_id(raw),
        algorithm=algorithm,
        public_key=raw,
        valid_from=now,
        valid_until=now + validity,
        status=KeyStatus.ACTIVE,
    )


def _is_key_file(name: str) -> bool:
    """``<party>.signing.pem`` and the like, or a rotated ``<party>.signing.<key id>.pem``."""
    parts = name.split(".")
    if len(parts) == 3:
        return f"{parts[1]}.pem" in PRIVATE_KEY_FILES
    return (
        len(parts) == 4
        and parts[1] in ("signing", "encryption")
        and len(parts[2]) == KEY_ID_HEX_DIGITS
        and parts[3] == "pem"
    )


def _decryption_key(parts: list[object]) -> DecryptionKey:
    """The decryption key of an encryption key file's parts, with its key id."""
    match parts:
        case [X25519PrivateKey() as classic]:
            private: EncryptionPrivateKey = classic
            raw = classic.public_key().public_bytes_raw()
            algorithm = KeyAlgorithm.X25519
        case [MLKEM768PrivateKey() as pq, X25519PrivateKey() as classic]:
            private = MLKEM768X25519PrivateKey(pq, classic)
            raw = pq.public_key().public_bytes_raw() + classic.public_key().public_bytes_raw()
            algorithm = KeyAlgorithm.MLKEM768_X25519
        case _:
            raise KeyStoreError("the encryption key file holds neither an X25519 nor a hybrid key")
    return DecryptionKey(key_id(raw), algorithm, private)
