"""Key rotation: a party's new signing and encryption keys, announced before they are used.

`lvvx keys rotate` (`rotate_keys`) makes the new pair with ``valid_from`` = the
**activation**, a lead time ahead (`DEFAULT_ROTATION_LEAD`), and ends the current keys'
windows there. The party's next directory lists old and new. Every gateway learns the new
keys from it before the activation, so at that moment — and not before — the party signs
with its new key and senders seal to its new encryption key (`broker.crypto._ring`), and
nobody refuses either as unknown. What was sealed to the old key before the activation
still opens: its private file stays until no envelope sealed to it can be valid any more
(`RETIRED_AFTER` past its end), then a later rotation removes it from the record and the
folder. Old signing keys stay listed: the verifier checks a gateway's whole audit chain, old
events included, against the newest directory. Their private files go once they have ended.

The steps are ordered so that an interruption leaves a folder that works and a rotation
that can be run again: new private files first (unlisted, unused), then the public record
(the commit point), then the retired files.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from broker.crypto._envelope import MAX_CLOCK_SKEW, MAX_TTL
from broker.crypto._keyfile import KeyFileChange
from broker.crypto._keys import DEFAULT_KEY_VALIDITY, KeyStore, generate_party
from broker.errors import LocalError
from broker.models import KeyAlgorithm, KeyStatus, PartyEntry, PublicKey

DEFAULT_ROTATION_LEAD = timedelta(minutes=10)
"""From the rotation to the activation: the time to build and publish the directory that
announces the new keys. Publishing reaches every running gateway within a second
(docs/OPERATING.md); a gateway that is down reads it before it handles anything."""

RETIRED_AFTER = MAX_TTL + MAX_CLOCK_SKEW
"""An envelope sealed to a key before the key's end can be opened until this long after it:
the longest lifetime plus the clock skew receivers allow."""


@dataclass(frozen=True)
class RotationPlan:
    """What a rotation changes in a party's record (pure: `plan_rotation`)."""

    entry: PartyEntry
    """The new record: old keys ended at the activation, new keys from it, retired
    encryption keys gone."""
    activation: datetime
    new_signing: PublicKey
    new_encryption: PublicKey
    ended: tuple[PublicKey, ...]
    """The current keys whose windows now end at the activation."""
    retired: tuple[PublicKey, ...]
    """Encryption keys no envelope can be sealed to any more: out of the record."""


@dataclass
class Rotation:
    """What `rotate_keys` did (or, with ``dry_run``, would do)."""

    party_id: str
    pending: bool
    """A rotation was made before and has not reached its activation: nothing changed."""
    plan: RotationPlan | None = None
    written: list[Path] = field(default_factory=list)
    removed: list[Path] = field(default_factory=list)
    rewrapped: list[KeyFileChange] = field(default_factory=list)


def pending_keys(entry: PartyEntry, now: datetime) -> list[PublicKey]:
    """Keys of the record that are not valid yet: a rotation waiting for its activation."""
    return [k for k in (*entry.signing_keys, *entry.encryption_keys) if k.valid_from > now]


def _end(key: PublicKey) -> datetime:
    if key.status is KeyStatus.REVOKED and key.revoked_at is not None:
        return min(key.valid_until, key.revoked_at)
    return key.valid_until


def plan_rotation(entry: PartyEntry, new_signing: PublicKey, new_encryption: PublicKey, *,
                  now: datetime) -> RotationPlan:  # fmt: skip
    """The record after a rotation to the two new keys, which start at the same moment."""
    activation = new_signing.valid_from
    if new_encryption.valid_from != activation or activation < now:
        raise ValueError("the new keys start together, not before now")

    def ended_at_activation(key: PublicKey) -> PublicKey:
        if key.valid_until > activation and key.status is KeyStatus.ACTIVE:
            return key.model_copy(update={"valid_until": activation})
        return key

    signing = tuple(ended_at_activation(k) for k in entry.signing_keys)
    kept = [k for k in entry.encryption_keys if _end(k) + RETIRED_AFTER > now]
    encryption = tuple(ended_at_activation(k) for k in kept)
    ended = tuple(
        new for old, new in zip((*entry.signing_keys, *kept), (*signing, *encryption), strict=True)
        if new is not old
    )  # fmt: skip
    retired = tuple(k for k in entry.encryption_keys if k not in kept)
    record = entry.model_copy(
        update={
            "signing_keys": (*signing, new_signing),
            "encryption_keys": (*encryption, new_encryption),
        }
    )
    return RotationPlan(record, activation, new_signing, new_encryption, ended, retired)


def rescheduled(entry: PartyEntry, activation: datetime) -> PartyEntry:
    """The record with its last rotation's activation moved to ``activation``: the new keys
    start then (keeping their validity's length) and the keys they replace end then. For
    a rotation whose directory was not published in time (`lvvx directory publish` refuses
    one that ends keys in use too soon); `ValueError` if the record shows no rotation."""
    keys = (*entry.signing_keys, *entry.encryption_keys)
    last = max(k.valid_from for k in keys)
    if not any(k.valid_until == last for k in keys):
        raise ValueError("the record shows no rotation to reschedule")

    def moved(key: PublicKey) -> PublicKey:
        if key.valid_from == last:
            return key.model_copy(update={"valid_from": activation,
                                          "valid_until": key.valid_until + (activation - last)})  # fmt: skip
        if key.valid_until == last:
            return key.model_copy(update={"valid_until": activation})
        return key

    return entry.model_copy(update={
        "signing_keys": tuple(moved(k) for k in entry.signing_keys),
        "encryption_keys": tuple(moved(k) for k in entry.encryption_keys),
    })  # fmt: skip


def reschedule_rotation(store: KeyStore, party_id: str, *, now: datetime,
                        lead: timedelta = DEFAULT_ROTATION_LEAD, dry_run: bool = False) -> tuple[datetime, datetime]:  # fmt: skip
    """Move ``party_id``'s last rotation's activation to ``now + lead`` (`rescheduled`);
    returns the old and the new activation. No key file changes."""
    entry = store.public_entry(party_id)
    before = max(k.valid_from for k in (*entry.signing_keys, *entry.encryption_keys))
    now = now.replace(microsecond=now.microsecond // 1000 * 1000)
    try:
        record = rescheduled(entry, now + lead)
    except ValueError as exc:
        raise LocalError(f"{party_id}: {exc}", reason="NO_ROTATION") from exc
    if not dry_run:
        store.write_public_entry(record)
    return before, now + lead


def rotate_keys(
    store: KeyStore,
    party_id: str,
    *,
    passphrase: bytes,
    now: datetime,
    lead: timedelta = DEFAULT_ROTATION_LEAD,
    validity: timedelta = DEFAULT_KEY_VALIDITY,
    kem: KeyAlgorithm | None = None,
    dry_run: bool = False,
) -> Rotation:
    """Rotate ``party_id``'s keys in ``store`` (see the module docstring); idempotent while a
    rotation is pending. ``kem`` defaults to the algorithm of the current encryption key.
    The party's key files that stay are rewritten in the current format if they are not."""
    now = now.replace(microsecond=now.microsecond // 1000 * 1000)  # as records keep times
    entry = store.public_entry(party_id)
    if pending_keys(entry, now):
        return Rotation(party_id, pending=True)
    if lead < timedelta(0):
        raise LocalError("the activation cannot be in the past", reason="BAD_ACTIVATION")
    ring = store.load_ring(party_id, passphrase)  # the passphrase must open every key file
    current = max(entry.encryption_keys, key=lambda k: k.valid_from)
    new = generate_party(party_id, entry.role, now=now + lead, validity=validity,
                         kem=kem or current.algorithm)  # fmt: skip
    [signing], [encryption] = new.entry.signing_keys, new.entry.encryption_keys
    plan = plan_rotation(entry, signing, encryption, now=now)
    done = Rotation(party_id, pending=False, plan=plan)
    gone = {k.key_id for k in plan.retired} | {
        k.key_id for k in entry.signing_keys if _end(k) <= now
    }
    done.removed = [store.folder / name for name, kid in sorted(ring.files.items()) if kid in gone]
    kept = [p for p in store.party_key_files(party_id) if p not in done.removed]
    if dry_run:
        done.rewrapped = [
            c for c in (store.rewrap(p, passphrase, dry_run=True) for p in kept) if c.needed
        ]
        return done
    done.written = [
        store.write_key_file(party_id, "signing", signing.key_id, (new.keys.signing_key,), passphrase),
        store.write_key_file(party_id, "encryption", encryption.key_id, new.encryption_parts, passphrase),
    ]  # fmt: skip
    done.rewrapped = [c for c in (store.rewrap(p, passphrase) for p in kept) if c.rewritten]
    store.write_public_entry(plan.entry)  # the commit point
    for path in done.removed:
        path.unlink(missing_ok=True)
    return done


__all__ = [
    "DEFAULT_ROTATION_LEAD",
    "RETIRED_AFTER",
    "Rotation",
    "RotationPlan",
    "pending_keys",
    "plan_rotation",
    "reschedule_rotation",
    "rescheduled",
    "rotate_keys",
]
