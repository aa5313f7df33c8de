"""Epoch keys (envelope format 2, docs/ENVELOPE.md §5.4): one payload key per sender and
recipient set for a bounded epoch, wrapped once per recipient, instead of a fresh key and
fresh HPKE wraps for every message.

An epoch ends after `EPOCH_MAX_MESSAGES` envelopes or `EPOCH_MAX_AGE`, whichever comes
first, and whenever a recipient's key in the directory changes. Epoch keys live in memory
only: a restarted sender starts new epochs, so a (key, nonce) pair can never repeat — the
nonce is the envelope's number within its epoch, which receivers check is below the bound.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from cryptography.hazmat.primitives import hpke
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from broker.crypto._directory import Directory
from broker.crypto._wire import Wrap
from broker.models import Kem, KeyAlgorithm

EPOCH_MAX_MESSAGES = 10_000
"""Envelopes under one epoch key at most; the nonce counts them."""

EPOCH_MAX_AGE = timedelta(minutes=10)
"""An epoch key is used for new envelopes at most this long after it was made."""

EPOCH_WRAP_INFO_TAG = b"LVVX-ENVELOPE-EPOCH-KEY-V2\x00"
"""HPKE info prefix of an epoch key's wrap; the sender and recipient ids follow."""

NONCE_BYTES = 12
PAYLOAD_KEY_BYTES = 32

MAX_CACHED_EPOCHS = 4096
"""Epoch keys a party keeps at most, as sender and (separately) as receiver."""

SUITES = {
    Kem.X25519: hpke.Suite(hpke.KEM.X25519, hpke.KDF.HKDF_SHA256, hpke.AEAD.AES_256_GCM),
    Kem.MLKEM768_X25519: hpke.Suite(
        hpke.KEM.MLKEM768_X25519, hpke.KDF.HKDF_SHA256, hpke.AEAD.AES_256_GCM
    ),
}
KEM_OF = {KeyAlgorithm.X25519: Kem.X25519, KeyAlgorithm.MLKEM768_X25519: Kem.MLKEM768_X25519}


def epoch_wrap_info(sender: str, recipient: str) -> bytes:
    """Binds an epoch key's wrap to its sender and its recipient."""
    return EPOCH_WRAP_INFO_TAG + sender.encode() + b"\x00" + recipient.encode()


def nonce_of(number: int) -> bytes:
    """The AES-GCM nonce of the envelope with this number in its epoch (big-endian)."""
    return number.to_bytes(NONCE_BYTES, "big")


def number_of(nonce: bytes) -> int:
    return int.from_bytes(nonce, "big")


@dataclass(slots=True)
class Epoch:
    """One epoch key, as its sender holds it."""

    aead: AESGCM
    wrapped_keys: tuple[Wrap, ...]
    started: datetime
    used: int = 0
    encoded: tuple[bytes, ...] = field(default=())
    """The wrapped keys in their wire form, filled in by the sealer once."""
    checked: tuple[Directory, datetime] | None = None
    """The directory and moment the recipients' keys were last found current: a batch
    sealed at one moment checks them once."""


class SenderEpochs:
    """A sender's current epoch per recipient set."""

    def __init__(
        self,
        sender: str,
        *,
        max_messages: int = EPOCH_MAX_MESSAGES,
        max_age: timedelta = EPOCH_MAX_AGE,
        random: Callable[[int], bytes] = os.urandom,
    ) -> None:
        self.sender = sender
        self.max_messages = max_messages
        self.max_age = max_age
        self.random = random
        self._epochs: OrderedDict[tuple[str, ...], Epoch] = OrderedDict()
        self.started_count = 0

    def next(
        self, recipients: Sequence[str], directory: Directory, now: datetime
    ) -> tuple[Epoch, bytes]:
        """The epoch to seal the next envelope to ``recipients`` in, and its nonce."""
        names = tuple(recipients)
        epoch = self._epochs.get(names)
        if epoch is None or not self._usable(epoch, names, directory, now):
            epoch = self._start(names, directory, now)
        else:
            self._epochs.move_to_end(names)
        nonce = nonce_of(epoch.used)
        epoch.used += 1
        return epoch, nonce

    def _usable(
        self, epoch: Epoch, names: tuple[str, ...], directory: Directory, now: datetime
    ) -> bool:
        if (
            epoch.used >= self.max_messages
            or not epoch.started <= now < epoch.started + self.max_age
        ):
            return False
        if epoch.checked is not None and epoch.checked[0] is directory and epoch.checked[1] == now:
            return True
        # a recipient's current key changed (rotation, a new directory): wrap to the new one
        current = all(
            directory.recipient_key(w.recipient, now).key_id == w.key_id for w in epoch.wrapped_keys
        )
        epoch.checked = (directory, now)
        return current

    def _start(self, names: tuple[str, ...], directory: Directory, now: datetime) -> Epoch:
        key = self.random(PAYLOAD_KEY_BYTES)
        wrapped = []
        for name in names:
            rk = directory.recipient_key(name, now)
            kem = KEM_OF[rk.algorithm]
            blob = SUITES[kem].encrypt(key, rk.public_key, info=epoch_wrap_info(self.sender, name))
            wrapped.append(Wrap(name, rk.key_id, kem, blob))
        epoch = Epoch(AESGCM(key), tuple(wrapped), now, checked=(directory, now))
        self._epochs[names] = epoch
        self._epochs.move_to_end(names)
        while len(self._epochs) > MAX_CACHED_EPOCHS:
            self._epochs.popitem(last=False)
        self.started_count += 1
        return epoch


class ReceiverEpochs:
    """Epoch keys a receiver has unwrapped, so each costs one HPKE decryption, not one per
    envelope. Keyed by everything the unwrap depended on; bounded, least recently used out."""

    def __init__(self, capacity: int = MAX_CACHED_EPOCHS) -> None:
        self.capacity = capacity
        self._keys: OrderedDict[tuple[str, str, str, Kem, bytes], AESGCM] = OrderedDict()

    def get(self, ident: tuple[str, str, str, Kem, bytes]) -> AESGCM | None:
        aead = self._keys.get(ident)
        if aead is not None:
            self._keys.move_to_end(ident)
        return aead

    def put(self, ident: tuple[str, str, str, Kem, bytes], aead: AESGCM) -> None:
        self._keys[ident] = aead
        while len(self._keys) > self.capacity:
            self._keys.popitem(last=False)
