"""A two-sided test helper: the pilot network with seeded keys, a signed directory, and
seal/open on behalf of any party (STYLE §10: seal on one side, open on the other)."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from broker.crypto import (
    DEFAULT_TTL,
    FORMAT_VERSION,
    AnchorKey,
    ContentKey,
    Directory,
    NewParty,
    Opened,
    PartyKeys,
    SealRequest,
    SenderEpochs,
    build_directory,
    generate_party,
    key_id,
    load_directory,
    open_envelope,
    prepare_envelope,
    seal,
    seal_v1_from_parts,
    seal_v2_batch,
    sign_directory,
)
from broker.models import AvroModel, EnvelopeHeader, KeyAlgorithm, PartyEntry, PartyRole
from broker.replay import MemoryReplayGuard, ReplayGuard
from demo.casebook import NETWORK

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)

CONTENT_KEY = ContentKey(bytes(range(32)))
"""One content key for every test store (a store reopened in a test reads what it sealed)."""
KEY_START = NOW - timedelta(days=30)

ROLE_OF = {p.party_id: p.role for p in NETWORK}
# one party of each role, for tests that need "a municipality", "an NGO", ...
A = {
    role: next(p.party_id for p in NETWORK if p.role is role)
    for role in PartyRole
    if role.value != "UNKNOWN"
}


@cache
def _party(party_id: str, role: PartyRole, kem: KeyAlgorithm) -> NewParty:
    return generate_party(party_id, role, now=KEY_START, kem=kem, seed=f"{party_id}/{kem}".encode())


ANCHOR = Ed25519PrivateKey.from_private_bytes(b"\x42" * 32)
PINNED = AnchorKey(key_id(ANCHOR.public_key().public_bytes_raw()), ANCHOR.public_key())


def signed_directory(
    entries: Iterable[PartyEntry], *, serial: int = 1, now: datetime = NOW
) -> bytes:
    document = build_directory(
        list(entries), serial=serial, network="lvv-test", now=now - timedelta(days=1)
    )
    return sign_directory(document, ANCHOR)


@dataclass
class Net:
    """The network with every party on ``kem``; ``roles`` may give parties other roles."""

    kem: KeyAlgorithm = KeyAlgorithm.X25519
    roles: dict[str, PartyRole] = field(default_factory=dict)
    extra: dict[str, PartyEntry] = field(default_factory=dict)
    format_version: int = FORMAT_VERSION

    def __post_init__(self) -> None:
        self.parties = {
            pid: _party(pid, self.roles.get(pid, role), self.kem) for pid, role in ROLE_OF.items()
        }
        entries = [p.entry for p in self.parties.values()] + list(self.extra.values())
        self.directory: Directory = load_directory(
            signed_directory(entries), anchor=PINNED, now=NOW
        )

    def keys(self, party: str) -> PartyKeys:
        return self.parties[party].keys

    def seal(self, message: AvroModel, sender: str, recipients: Iterable[str], *, now: datetime = NOW,
             ttl: timedelta = DEFAULT_TTL, traceparent: str | None = None) -> bytes:  # fmt: skip
        return seal(message, sender=self.keys(sender), recipients=list(recipients),
                    directory=self.directory, now=now, ttl=ttl,
                    format_version=self.format_version, traceparent=traceparent)  # fmt: skip

    def forge(
        self, message: AvroModel, sender: str, recipients: Iterable[str], **parts: Any
    ) -> bytes:
        """Seal with chosen parts: a hostile but authenticated sender. Format 1 takes
        `seal_v1_from_parts`'s parts; format 2 ``payload``, ``header_overrides``, ``now``,
        ``ttl`` and ``message_id``, and a fixed epoch key."""
        if self.format_version != 1:
            return self._forge_v2(message, sender, list(recipients), **parts)
        defaults: dict[str, Any] = {
            "now": NOW, "ttl": DEFAULT_TTL, "correlation_id": None, "causation_id": None,
            "message_id": uuid.uuid4(), "payload_key": b"\x01" * 32, "nonce": b"\x02" * 12,
        }  # fmt: skip
        return seal_v1_from_parts(message, sender=self.keys(sender), recipients=list(recipients),
                                directory=self.directory, **{**defaults, **parts})  # fmt: skip

    def _forge_v2(self, message: AvroModel, sender: str, recipients: list[str], *,
                  payload: bytes | None = None, header_overrides: dict[str, Any] | None = None,
                  now: datetime = NOW, ttl: timedelta = DEFAULT_TTL,
                  message_id: uuid.UUID | None = None, payload_key: bytes = b"\x01" * 32,
                  nonce: bytes | None = None) -> bytes:  # fmt: skip
        """``payload_key`` is the epoch key; ``nonce`` is format 1's (two forged format-2
        envelopes differ anyway: HPKE wraps with a fresh ephemeral key)."""
        keys = self.keys(sender)
        request = SealRequest(message, tuple(recipients), message_id=message_id, ttl=ttl)
        header, encoded = prepare_envelope(request, sender=keys, directory=self.directory, now=now,
                                           format_version=self.format_version)  # fmt: skip
        if header_overrides:
            header = EnvelopeHeader.model_validate(header.model_dump() | header_overrides)
        epochs = SenderEpochs(sender, random=lambda n: payload_key[:n])
        return seal_v2_batch([(header, encoded if payload is None else payload)], sender=keys,
                           directory=self.directory, now=now, epochs=epochs)[0]  # fmt: skip

    def open(self, data: bytes, me: str, *, guard: ReplayGuard | None = None, now: datetime = NOW,
             directory: Directory | None = None) -> Opened:  # fmt: skip
        return open_envelope(data, me=self.keys(me), directory=directory or self.directory,
                             replay_guard=guard or MemoryReplayGuard(), now=now)  # fmt: skip
