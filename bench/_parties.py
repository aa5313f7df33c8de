"""The parties a benchmark case seals between: IND sends a dossier to one or three local
parties, every party on one KEM, with fresh keys and a freshly signed directory.

Built with the key store and directory functions a real network uses (in a temporary
folder), not with the test helpers, and valid around the real clock: envelopes are sealed
and opened at `datetime.now`.
"""

from __future__ import annotations

import secrets
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from broker.crypto import (
    DEMO_KEY_FILE_KDF,
    AnchorKey,
    Directory,
    KeyStore,
    Opener,
    PartyKeys,
    Sealer,
    build_directory,
    load_directory,
    sign_directory,
)
from broker.models import KeyAlgorithm
from broker.replay import MemoryReplayGuard
from demo.casebook import IND, MUNICIPALITIES, NGOS, Party

NETWORK_NAME = "lvv-bench"
KEY_BACKDATE = timedelta(hours=1)
"""Keys and directory start an hour ago, so clock skew between steps never invalidates them."""

SENDER = IND
RECIPIENTS: dict[int, tuple[Party, ...]] = {
    1: (MUNICIPALITIES[0],),
    3: (MUNICIPALITIES[0], NGOS[0], MUNICIPALITIES[2]),
}
"""Local parties a dossier goes to (the policy allows IND → municipality, NGO). The first
recipient is the one that opens, as its gateway would."""

KEMS = (KeyAlgorithm.X25519, KeyAlgorithm.MLKEM768_X25519)


def clock() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class Parties:
    kem: KeyAlgorithm
    keys: dict[str, PartyKeys]
    directory: Directory

    def sealer(self, format_version: int | None) -> Sealer:
        """IND's sealer; the Sealer's own default format unless one is given (ValueError if
        the Sealer does not know that version)."""
        sender = self.keys[SENDER.party_id]
        if format_version is None:
            return Sealer(sender, self.directory, clock)
        return Sealer(sender, self.directory, clock, format_version=format_version)

    def opener(self, recipients: int) -> Opener:
        """The first recipient's opener, with an in-memory replay guard (the dedup step)."""
        me = self.keys[RECIPIENTS[recipients][0].party_id]
        return Opener(me, self.directory, MemoryReplayGuard(), clock)


def _members() -> tuple[Party, ...]:
    everyone = [SENDER, *RECIPIENTS[1], *RECIPIENTS[3]]
    return tuple({p.party_id: p for p in everyone}.values())


def make_parties(kem: KeyAlgorithm) -> Parties:
    """Fresh keys for every member on ``kem`` and a directory signed by a fresh anchor."""
    now = clock() - KEY_BACKDATE
    passphrase = secrets.token_bytes(16)
    with tempfile.TemporaryDirectory(prefix="lvvx-bench-keys-") as folder:
        store = KeyStore(Path(folder), kdf=DEMO_KEY_FILE_KDF)  # throwaway keys: the cheap KDF
        store.init_anchor(passphrase=passphrase, now=now)
        for party in _members():
            store.init_party(party.party_id, party.role, passphrase=passphrase, now=now, kem=kem)
        document = build_directory(store.public_entries(), serial=1, network=NETWORK_NAME, now=now)
        signed = sign_directory(document, store.anchor_private(passphrase))
        anchor = AnchorKey.from_record(store.anchor_public())
        keys = {p.party_id: store.load_party(p.party_id, passphrase) for p in _members()}
    directory = load_directory(signed, anchor=anchor, now=clock(), network=NETWORK_NAME)
    return Parties(kem, keys, directory)
