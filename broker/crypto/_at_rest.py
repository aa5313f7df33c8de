"""Content a gateway keeps at rest, encrypted under a key of its own (AES-256-GCM).

A gateway holds each delivered message until its back office acknowledges it. That content
is personal data, so it is never written to disk as plaintext: the store keeps it sealed
under the party's *content key*, and opens it when the back office reads its inbox. Copies
that SQLite leaves behind (its write-ahead log, freed pages) hold only ciphertext, and the
data folder alone — a backup, a disk image, another local user — discloses nothing without
the key files and their passphrase.

The key is derived (HKDF-SHA256) from a random secret kept like the party's other private
keys: an encrypted PKCS#8 file, ``<party>.content.pem`` (`KeyStore.content_key`). It is not
derived from the signing or encryption keys, so rotating those does not orphan the inbox.

Each sealed blob is ``nonce (12) || ciphertext || tag (16)``; the associated data names the
row it belongs to, so a blob moved to another row does not open.
"""

from __future__ import annotations

import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from broker.errors import LocalError

CONTENT_KEY_BYTES = 32  # AES-256
CONTENT_NONCE_BYTES = 12  # AES-GCM's standard nonce; random, far below its 2^32 bound per key
CONTENT_KEY_INFO = b"LVVX-CONTENT-KEY-V1\x00"
"""HKDF info: domain separation from every other use of the party's key material."""


class ContentUnreadable(LocalError):
    """A sealed blob did not open: another key, another row, or a damaged store."""

    reason = "STORE_UNREADABLE"


class ContentKey:
    """Seals and opens content at rest. Never shows the key in a repr."""

    __slots__ = ("_aead",)

    def __init__(self, key: bytes) -> None:
        if len(key) != CONTENT_KEY_BYTES:
            raise ValueError(f"a content key has {CONTENT_KEY_BYTES} bytes")
        self._aead = AESGCM(key)

    @classmethod
    def derive(cls, secret: bytes, party_id: str) -> ContentKey:
        """The content key of ``party_id`` from its stored secret."""
        hkdf = HKDF(hashes.SHA256(), CONTENT_KEY_BYTES, salt=None,
                    info=CONTENT_KEY_INFO + party_id.encode())  # fmt: skip
        return cls(hkdf.derive(secret))

    @classmethod
    def generate(cls) -> ContentKey:
        """A random key (tests and throwaway stores: what it sealed dies with it)."""
        return cls(AESGCM.generate_key(bit_length=8 * CONTENT_KEY_BYTES))

    def seal(self, plaintext: bytes, row: bytes) -> bytes:
        nonce = os.urandom(CONTENT_NONCE_BYTES)
        return nonce + self._aead.encrypt(nonce, plaintext, row)

    def open(self, blob: bytes, row: bytes) -> bytes:
        try:
            return self._aead.decrypt(blob[:CONTENT_NONCE_BYTES], blob[CONTENT_NONCE_BYTES:], row)
        except (InvalidTag, ValueError):
            raise ContentUnreadable(
                "stored content does not open with this gateway's content key"
            ) from None

    def __repr__(self) -> str:
        return "ContentKey(…)"
