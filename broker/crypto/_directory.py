"""The key directory: built and signed by the trust anchor, checked by every gateway.

A gateway pins the anchor's public key (with its validity window) and accepts a directory
only if the anchor key is valid now and signed it, it has not expired, its serial is not
lower than the one in use, it belongs to the expected network, and every key in it is one we
may use. `Directory` is the checked result: lookups with the key objects already made, so
sealing and opening never parse a key.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from pydantic import ValidationError

from broker.contract import default_codec
from broker.crypto._keys import (
    EncryptionPublicKey,
    encryption_public_key,
    key_id,
    signing_public_key,
)
from broker.errors import (
    DecodeError,
    DirectoryCheck,
    DirectoryRejected,
    LocalError,
    SchemaError,
    UnknownParty,
)
from broker.models import (
    KeyAlgorithm,
    KeyStatus,
    PartyDirectory,
    PartyEntry,
    PartyRole,
    PublicKey,
    SignedDirectory,
)

DIRECTORY_FORMAT_VERSION = 2
"""Format of `SignedDirectory` and of its signed bytes, as written. 2: keys carry a
revocation reason (`PublicKey.revocation_reason`). Format 1 is still read."""

DIRECTORY_SIGNATURE_TAG = b"LVVX-DIRECTORY-V1\x00"
"""Domain separation: a directory signature can never be taken for any other signature."""
DIRECTORY_SIGNATURE_TAG_V2 = b"LVVX-DIRECTORY-V2\x00"
"""Format 2's: the format is under the signature, so nobody can relabel the signed bytes
to be decoded with the other format's schema."""

_FORMATS: Mapping[int, tuple[bytes, bytes | None]] = {
    1: (DIRECTORY_SIGNATURE_TAG, bytes.fromhex(
        "13c75b23fc2a0f306d815eb24a27ab15fc775175aa9c391471b4a90787d8f749")),
    2: (DIRECTORY_SIGNATURE_TAG_V2, None),
}  # fmt: skip
"""Per readable format: its signature tag, and the fingerprint of the `PartyDirectory` it
was written with (schemas/avro/history), None for the current schema."""

DEFAULT_DIRECTORY_VALIDITY = timedelta(days=30)
"""A directory is re-issued monthly, so a revocation reaches every gateway within a month
even if a newer directory were withheld from it."""

MAX_DIRECTORY_BYTES = 4 * 1024 * 1024
"""Far above a network of thousands of parties with hybrid keys; bounds what we parse."""

MAX_DIRECTORY_ITEMS = 100_000
"""Parties and keys a directory may list in all: a national network has a few hundred."""

_ENCRYPTION_ALGORITHMS = frozenset({KeyAlgorithm.X25519, KeyAlgorithm.MLKEM768_X25519})


@dataclass(frozen=True, slots=True)
class AnchorKey:
    """The pinned public key of the network's trust anchor, with its validity window.

    A pinned anchor record (`from_record`) always carries its window, and a directory is
    trusted only within it (`load_directory`): an anchor key past its end may have leaked
    since, and one before its start is not yet the network's. A key made directly without
    a window (known-answer vectors, test networks) is not bounded in time."""

    key_id: str
    public_key: Ed25519PublicKey
    valid_from: datetime | None = None
    valid_until: datetime | None = None

    @classmethod
    def from_record(cls, record: PublicKey) -> AnchorKey:
        if record.algorithm is not KeyAlgorithm.ED25519:
            raise LocalError("the trust anchor key must be Ed25519", reason="BAD_KEY")
        if record.key_id != key_id(record.public_key):
            raise LocalError("the trust anchor's key id does not match its key", reason="BAD_KEY")
        if not record.valid_from < record.valid_until:
            raise LocalError("the trust anchor key has an empty validity window", reason="BAD_KEY")
        try:
            public = signing_public_key(record.public_key)
        except ValueError as exc:
            raise LocalError(f"trust anchor key: {exc}", reason="BAD_KEY") from exc
        return cls(record.key_id, public, record.valid_from, record.valid_until)

    def check_valid_at(self, now: datetime) -> None:
        """Raise `DirectoryRejected` unless the anchor key is valid at ``now``
        (``valid_from`` ≤ now < ``valid_until``, as for every key: docs/ENVELOPE.md §3.6)."""
        if self.valid_from is not None and now < self.valid_from:
            raise DirectoryRejected(
                f"the pinned trust anchor {self.key_id} is not valid before "
                f"{self.valid_from.isoformat()}",
                reason="ANCHOR_NOT_YET_VALID",
                check=DirectoryCheck.ANCHOR_NOT_YET_VALID,
            )
        if self.valid_until is not None and now >= self.valid_until:
            raise DirectoryRejected(
                f"the pinned trust anchor {self.key_id} expired at {self.valid_until.isoformat()}",
                reason="ANCHOR_EXPIRED",
                check=DirectoryCheck.ANCHOR_EXPIRED,
            )


@dataclass(frozen=True, slots=True)
class RecipientKey:
    party_id: str
    key_id: str
    algorithm: KeyAlgorithm
    public_key: EncryptionPublicKey


@dataclass(frozen=True)
class Directory:
    """A checked directory, with every key object made once."""

    document: PartyDirectory
    parties: Mapping[str, PartyEntry]
    _signing: Mapping[tuple[str, str], Ed25519PublicKey] = field(repr=False)
    _encryption: Mapping[tuple[str, str], EncryptionPublicKey] = field(repr=False)

    @property
    def serial(self) -> int:
        return self.document.serial

    @property
    def expires_at(self) -> datetime:
        return self.document.expires_at

    def party(self, party_id: str) -> PartyEntry:
        try:
            return self.parties[party_id]
        except KeyError:
            raise UnknownParty(f"{party_id!r} is not in the key directory") from None

    def role(self, party_id: str) -> PartyRole:
        return self.party(party_id).role

    def signing_key(self, party_id: str, key_id: str, at: datetime) -> Ed25519PublicKey | None:
        """The party's verification key ``key_id`` if it was valid at ``at``, else None."""
        record = _find(self.party(party_id).signing_keys, key_id)
        if record is None or not _valid_at(record, at):
            return None
        return self._signing[(party_id, key_id)]

    def signing_keys_of(self, party_id: str) -> list[Ed25519PublicKey]:
        """Every signing key listed for ``party_id``, valid or not (none if not a party):
        what a gateway's own past audit events may be signed with."""
        if party_id not in self.parties:
            return []
        return [self._signing[(party_id, k.key_id)] for k in self.parties[party_id].signing_keys]

    def recipient_key(self, party_id: str, at: datetime) -> RecipientKey:
        """The key to encrypt to ``party_id`` now: its newest key valid at ``at``."""
        usable = [k for k in self.party(party_id).encryption_keys if _valid_at(k, at)]
        if not usable:
            raise UnknownParty(f"{party_id!r} has no encryption key valid at {at.isoformat()}")
        record = max(usable, key=lambda k: k.valid_from)
        return RecipientKey(
            party_id, record.key_id, record.algorithm, self._encryption[(party_id, record.key_id)]
        )


def _find(keys: Iterable[PublicKey], wanted: str) -> PublicKey | None:
    return next((k for k in keys if k.key_id == wanted), None)


def _valid_at(key: PublicKey, at: datetime) -> bool:
    """Valid in its window; a revoked key only for what was made before the revocation."""
    if not key.valid_from <= at < key.valid_until:
        return False
    if key.status is KeyStatus.ACTIVE:
        return True
    return key.status is KeyStatus.REVOKED and key.revoked_at is not None and at < key.revoked_at


def checked_directory(document: PartyDirectory) -> Directory:
    """Make every key object, refusing the whole directory for one key we may not use. The
    signature is not checked here (`load_directory` does): an unsigned directory is what a
    test or the demo gives a compromised sender, which believes what it likes."""
    parties: dict[str, PartyEntry] = {}
    signing: dict[tuple[str, str], Ed25519PublicKey] = {}
    encryption: dict[tuple[str, str], EncryptionPublicKey] = {}
    for entry in document.parties:
        if entry.party_id in parties:
            raise DirectoryRejected(f"party {entry.party_id!r} appears twice")
        if entry.role is PartyRole.UNKNOWN or not entry.signing_keys or not entry.encryption_keys:
            raise DirectoryRejected(f"party {entry.party_id!r} lacks a role or keys")
        parties[entry.party_id] = entry
        for key in entry.signing_keys:
            _check_key(entry.party_id, key, signing=True)
            signing[(entry.party_id, key.key_id)] = signing_public_key(key.public_key)
        for key in entry.encryption_keys:
            _check_key(entry.party_id, key, signing=False)
            encryption[(entry.party_id, key.key_id)] = encryption_public_key(
                key.algorithm, key.public_key
            )
        ids = [k.key_id for k in (*entry.signing_keys, *entry.encryption_keys)]
        if len(set(ids)) != len(ids):
            raise DirectoryRejected(f"party {entry.party_id!r} lists one key twice")
    return Directory(document, parties, signing, encryption)


def _check_key(party: str, key: PublicKey, *, signing: bool) -> None:
    """Refuse a key that must never be accepted; afterwards it can be made without error."""
    where = f"key {key.key_id} of {party!r}"
    if key.key_id != key_id(key.public_key):
        raise DirectoryRejected(f"{where}: key id does not match the key")
    if not key.valid_from < key.valid_until:
        raise DirectoryRejected(f"{where}: empty validity window")
    try:
        if signing:
            if key.algorithm is not KeyAlgorithm.ED25519:
                raise ValueError("a signing key must be Ed25519")
            signing_public_key(key.public_key)
        else:
            if key.algorithm not in _ENCRYPTION_ALGORITHMS:
                raise ValueError("an encryption key must be X25519 or ML-KEM-768+X25519")
            encryption_public_key(key.algorithm, key.public_key)
    except ValueError as exc:
        raise DirectoryRejected(f"{where}: {exc}") from exc


def build_directory(
    entries: Iterable[PartyEntry],
    *,
    serial: int,
    network: str,
    now: datetime,
    validity: timedelta = DEFAULT_DIRECTORY_VALIDITY,
) -> PartyDirectory:
    """A directory of ``entries``; refuses one holding a key that must never be accepted."""
    document = PartyDirectory(
        serial=serial,
        issued_at=now,
        expires_at=now + validity,
        network=network,
        parties=tuple(sorted(entries, key=lambda e: e.party_id)),
    )
    checked_directory(document)
    return document


def sign_directory(document: PartyDirectory, anchor: Ed25519PrivateKey) -> bytes:
    """The `SignedDirectory` bytes: the directory's Avro bytes and the anchor's signature."""
    codec = default_codec()
    body = codec.encode(PartyDirectory.avro_name, document.to_avro())
    signed = SignedDirectory(
        format_version=DIRECTORY_FORMAT_VERSION,
        anchor_key_id=key_id(anchor.public_key().public_bytes_raw()),
        directory=body,
        signature=anchor.sign(DIRECTORY_SIGNATURE_TAG_V2 + body),
    )
    return codec.encode(SignedDirectory.avro_name, signed.to_avro())


def load_directory(
    data: bytes,
    *,
    anchor: AnchorKey,
    now: datetime,
    min_serial: int = 0,
    network: str | None = None,
) -> Directory:
    """Check a signed directory against the pinned anchor (valid itself at ``now``) and
    return it, or raise `DirectoryRejected` saying why. ``network`` is None only for tools
    that inspect any directory; a gateway always names its own."""
    if len(data) > MAX_DIRECTORY_BYTES:
        raise DirectoryRejected(
            f"directory of {len(data)} bytes is too large", check=DirectoryCheck.TOO_LARGE
        )
    codec = default_codec()
    try:
        signed = SignedDirectory.from_avro(codec.decode(SignedDirectory.avro_name, data))
    except (DecodeError, ValidationError) as exc:
        raise DirectoryRejected(
            "not a signed directory (malformed)", check=DirectoryCheck.MALFORMED
        ) from exc
    if signed.format_version not in _FORMATS:
        raise DirectoryRejected(
            f"unsupported directory format {signed.format_version}",
            check=DirectoryCheck.UNSUPPORTED_FORMAT,
        )
    if signed.anchor_key_id != anchor.key_id:
        raise DirectoryRejected(
            "signed by another anchor than the pinned one", check=DirectoryCheck.FOREIGN_ANCHOR
        )
    anchor.check_valid_at(now)
    tag, written_with = _FORMATS[signed.format_version]
    try:
        anchor.public_key.verify(signed.signature, tag + signed.directory)
    except InvalidSignature:
        raise DirectoryRejected(
            "bad signature: not signed by the pinned anchor", check=DirectoryCheck.BAD_SIGNATURE
        ) from None
    try:
        writer = None if written_with is None else codec.by_fingerprint(written_with)
        record = codec.decode(
            PartyDirectory.avro_name, signed.directory, writer=writer,
            max_items=MAX_DIRECTORY_ITEMS,
        )  # fmt: skip
        document = PartyDirectory.from_avro(record)
    except (DecodeError, SchemaError, ValidationError) as exc:
        raise DirectoryRejected(
            "signed directory does not decode", check=DirectoryCheck.MALFORMED
        ) from exc
    if now >= document.expires_at:
        raise DirectoryRejected(
            f"directory expired at {document.expires_at.isoformat()}", check=DirectoryCheck.EXPIRED
        )
    if document.serial < min_serial:
        raise DirectoryRejected(
            f"directory serial {document.serial} is older than the one in use ({min_serial})",
            check=DirectoryCheck.OLDER_SERIAL,
        )
    if network is not None and document.network != network:
        raise DirectoryRejected(
            f"directory of network {document.network!r}, not {network!r}",
            check=DirectoryCheck.OTHER_NETWORK,
        )
    return checked_directory(document)


__all__ = [
    "DEFAULT_DIRECTORY_VALIDITY",
    "AnchorKey",
    "Directory",
    "RecipientKey",
    "build_directory",
    "load_directory",
    "sign_directory",
]
