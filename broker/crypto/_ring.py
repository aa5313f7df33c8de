"""A party's key ring: every private key it holds, and which of them it uses when.

After a rotation (`broker.crypto._rotation`) a party holds more than one key pair: the old
ones until they retire, the new ones from their activation on. What it uses follows from
the directory in use and the moment, never from which file is newest:

- it **signs** with its newest signing key (latest ``valid_from``) that the directory lists
  as valid at that moment, so it changes keys at the activation the directory announced —
  when every gateway has known the new key for the rotation's lead time;
- it **opens** with any decryption key it holds: an envelope sealed to the old key before
  the activation still opens after it (docs/ENVELOPE.md §3.7).

`KeyRing.keys_at` answers for one moment and remembers the answer until the next moment at
which it can change (a key's ``valid_from``, ``valid_until`` or ``revoked_at``), so the hot
path pays a comparison, not a search.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from broker.crypto._directory import Directory, checked_directory
from broker.crypto._keys import DecryptionKey, PartyKeys
from broker.models import PartyDirectory, PartyEntry, PublicKey


@dataclass(frozen=True, slots=True)
class _Choice:
    directory: Directory
    since: datetime | None
    until: datetime | None
    keys: PartyKeys


@dataclass(slots=True)
class KeyRing:
    """Every private key of one party (see the module docstring)."""

    party_id: str
    signing: Mapping[str, Ed25519PrivateKey]
    decryption: Mapping[str, DecryptionKey]
    files: Mapping[str, str] = field(default_factory=dict)
    """The key files read, by name, with the key id each holds (`KeyStore.load_ring` reads
    only others again; a rotation removes retired keys' files by it)."""
    _choice: _Choice | None = field(default=None, repr=False)

    @classmethod
    def of(cls, keys: PartyKeys) -> KeyRing:
        """The ring of one key set: what a gateway made from `PartyKeys` holds."""
        return cls(keys.party_id, {keys.signing_key_id: keys.signing_key}, keys.decryption_keys)

    def __repr__(self) -> str:  # never show key material
        return f"KeyRing({self.party_id}, signing {sorted(self.signing)}, decryption {sorted(self.decryption)})"

    def verification_keys(self) -> list[Ed25519PublicKey]:
        """The public halves of every signing key held: the party's own audit events, signed
        by any of them, are its chain (`AuditChain.recover`)."""
        return [k.public_key() for k in self.signing.values()]

    def missing_from(self, directory: Directory, at: datetime) -> set[str]:
        """Key ids the directory lists for this party that the ring holds no private key of
        (the key folder gained them since it was read: reload it)."""
        if self.party_id not in directory.parties:
            return set()
        return self.missing_from_entry(directory.parties[self.party_id], at)

    def missing_from_entry(self, entry: PartyEntry, at: datetime) -> set[str]:
        """Key ids of the party's record the ring holds no private key of, except keys past
        their end: a rotation deletes those files but keeps listing the signing keys, so
        the audit history stays verifiable."""
        return {k.key_id for k in entry.signing_keys
                if k.key_id not in self.signing and k.valid_until > at} | {
            k.key_id for k in entry.encryption_keys if k.key_id not in self.decryption
        }  # fmt: skip

    def keys_of_record(self, entry: PartyEntry, at: datetime) -> PartyKeys:
        """`keys_at` by the party's own public record instead of a network's directory."""
        document = PartyDirectory(serial=0, issued_at=at, expires_at=at + timedelta(days=1),
                                  network="", parties=(entry,))  # fmt: skip
        return self.keys_at(checked_directory(document), at)

    def keys_at(self, directory: Directory, at: datetime) -> PartyKeys:
        """The keys to use at ``at`` under ``directory``: its newest signing key valid then
        that the ring holds (if none is valid, the newest held, which sealing then refuses
        as SENDER_KEY_INVALID), with every decryption key."""
        c = self._choice
        if (
            c is not None
            and c.directory is directory
            and (c.since is None or c.since <= at)
            and (c.until is None or at < c.until)
        ):
            return c.keys
        listed = self._listed_signing(directory)
        valid = [k for k in listed if directory.signing_key(self.party_id, k.key_id, at)]
        chosen = max(valid or listed, key=lambda k: k.valid_from, default=None)
        # the directory lists none of ours: keep any, sealing refuses it
        kid = next(iter(self.signing)) if chosen is None else chosen.key_id
        keys = PartyKeys(self.party_id, self.signing[kid], kid, self.decryption)
        since, until = _unchanged_around(listed, at)
        self._choice = _Choice(directory, since, until, keys)
        return keys

    def _listed_signing(self, directory: Directory) -> list[PublicKey]:
        if self.party_id not in directory.parties:
            return []
        keys = directory.parties[self.party_id].signing_keys
        return [k for k in keys if k.key_id in self.signing]


def _unchanged_around(
    keys: list[PublicKey], at: datetime
) -> tuple[datetime | None, datetime | None]:
    """The moments before and after ``at`` at which a key's validity changes: the choice
    made at ``at`` holds from the first up to the second."""
    moments = [m for k in keys for m in (k.valid_from, k.valid_until, k.revoked_at) if m]
    since = max((m for m in moments if m <= at), default=None)
    until = min((m for m in moments if m > at), default=None)
    return since, until


__all__ = ["KeyRing"]
