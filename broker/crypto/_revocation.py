"""Revoking one of a party's keys in its public record: what `lvvx directory revoke` decides.

Pure: a record, a key id, a moment and a reason in; the record to write and what changed out.
A revocation only ever narrows what a key makes valid (docs/ENVELOPE.md §3.6: a revoked key
is valid for what was created before ``revoked_at``), so the rules are:

| the key now | asked: revoke at ``at`` | result |
| --- | --- | --- |
| active | any moment | revoked at ``at`` |
| revoked at ``at``, same reason | | unchanged |
| revoked at ``at``, other reason | | the reason replaced |
| revoked later than ``at`` | | revoked at ``at`` (earlier: more is refused) |
| revoked earlier than ``at`` | ``at`` left to default to now | unchanged: revoked since then |
| revoked earlier than ``at`` | ``at`` given | refused ``REVOCATION_LATER`` |

(A key revoked without a moment, or of status UNKNOWN, is valid for nothing: it counts as
revoked from its ``valid_from``.)

Moving ``revoked_at`` later would make valid again what a thief signed in between; it is
never done.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from broker.errors import LocalError
from broker.models import KeyStatus, PartyEntry, PublicKey, RevocationReason, to_utc_millis


class RevocationAction(StrEnum):
    REVOKED = "revoked"
    """The key was active; it is revoked now."""
    MOVED_EARLIER = "moved earlier"
    """The key was revoked later than asked; its revocation moves to the earlier moment."""
    REASON_CHANGED = "reason changed"
    """Revoked at the same moment, with another reason."""
    UNCHANGED = "unchanged"
    """Revoked at that moment with that reason already, or earlier."""


@dataclass(frozen=True, slots=True)
class Revocation:
    """The outcome: ``entry`` is the record to write (the same object when unchanged)."""

    entry: PartyEntry
    key: PublicKey
    kind: str
    """``signing`` or ``encryption``."""
    action: RevocationAction
    previous: PublicKey

    @property
    def changed(self) -> bool:
        return self.action is not RevocationAction.UNCHANGED


def revoke_key(
    entry: PartyEntry,
    key_id: str,
    *,
    at: datetime | None,
    now: datetime,
    reason: RevocationReason,
) -> Revocation:
    """Revoke ``key_id`` (a signing or an encryption key of ``entry``) from ``at`` on, or from
    ``now`` if ``at`` is None. Raises `LocalError` ``UNKNOWN_KEY`` for a key the record does
    not have, ``REVOCATION_LATER`` for moving an earlier revocation later."""
    if reason is RevocationReason.UNKNOWN:
        raise LocalError("UNKNOWN is not a revocation reason", reason="BAD_REASON")
    for kind, keys in (("signing", entry.signing_keys), ("encryption", entry.encryption_keys)):
        for i, key in enumerate(keys):
            if key.key_id == key_id:
                action, revoked = _decide(key, at, now, reason)
                if action is RevocationAction.UNCHANGED:
                    return Revocation(entry, key, kind, action, key)
                field = f"{kind}_keys"
                replaced = (*keys[:i], revoked, *keys[i + 1 :])
                new = entry.model_copy(update={field: replaced})
                return Revocation(new, revoked, kind, action, key)
    known = ", ".join(k.key_id for k in (*entry.signing_keys, *entry.encryption_keys))
    raise LocalError(
        f"party {entry.party_id!r} has no key {key_id!r} (its keys: {known})", reason="UNKNOWN_KEY"
    )


def _decide(
    key: PublicKey, at: datetime | None, now: datetime, reason: RevocationReason
) -> tuple[RevocationAction, PublicKey]:
    wanted = to_utc_millis(now if at is None else at)  # as the record will keep it
    since = _revoked_since(key)
    if since is not None and since < wanted:
        if at is None:
            return RevocationAction.UNCHANGED, key
        raise LocalError(
            f"key {key.key_id} is revoked since {since.isoformat()}; revoking it from "
            f"{at.isoformat()} would make valid again what was signed in between",
            reason="REVOCATION_LATER",
        )
    if since == wanted:
        if key.revocation_reason is reason:
            return RevocationAction.UNCHANGED, key
        action = RevocationAction.REASON_CHANGED
    else:
        action = RevocationAction.REVOKED if since is None else RevocationAction.MOVED_EARLIER
    revoked = key.model_copy(
        update={"status": KeyStatus.REVOKED, "revoked_at": wanted, "revocation_reason": reason}
    )
    return action, revoked


def _revoked_since(key: PublicKey) -> datetime | None:
    """From when ``key`` is refused, None if it is active. A key of another status, or revoked
    without a moment, is valid for nothing (§3.6): as if revoked from its ``valid_from``."""
    if key.status is KeyStatus.ACTIVE:
        return None
    if key.status is KeyStatus.REVOKED and key.revoked_at is not None:
        return key.revoked_at
    return key.valid_from


__all__ = ["Revocation", "RevocationAction", "revoke_key"]
