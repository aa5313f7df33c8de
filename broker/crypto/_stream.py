"""Attachments: documents encrypted as a stream of fixed-size chunks (docs/ENVELOPE.md §11).
Pure: bytes, keys and the directory in; chunks, a reference, or one refusal out; no I/O.

The construction is STREAM (Hoang, Reyhanitabar, Rogaway, Vizár, "Online
Authenticated-Encryption and its Nonce-Reuse Misuse-Resistance", 2015), as age's payload
and Tink's AES-GCM-HKDF streaming AEAD use it:

- a random 32-byte **attachment key** per attachment, wrapped with HPKE to each recipient
  of the message like the envelope's payload key, the wrap's info naming the attachment,
  the sender and that recipient;
- a **stream key** derived from it by HKDF-SHA256 with a random 16-byte salt, binding the
  attachment id and the sender;
- chunk ``i`` encrypted with AES-256-GCM under the stream key, its nonce the chunk index
  (big-endian) and a last-chunk flag, its associated data the attachment id, the index and
  the flag again.

So a reordered, dropped, duplicated or spliced chunk (from another attachment: another key)
fails its tag; a stream cut after a non-last chunk ends without a last flag; a chunk past
the last has no place; the signed reference pins the size, the layout and the plaintext's
SHA-256, which together with the key fix every ciphertext byte (AES-GCM is deterministic
given key, nonce and associated data).

Nothing is held whole: `AttachmentSealer` takes the document piece by piece and gives back
chunks as they fill (one chunk held back until it is known whether it is the last);
`AttachmentOpener` takes chunks in order and gives back each one's plaintext once its tag
verified. **A chunk's plaintext is not yet the document**: another recipient knows the
attachment key too and could make chunks that authenticate, so only `AttachmentOpener.finish`
(every chunk there, the SHA-256 matches) makes it one. A gateway therefore spools what it
verified — as the ciphertext chunks it received, which are encrypted at rest already — and
releases the attachment only after `finish`.

Layered like `broker.crypto._envelope` so known-answer vectors can fix the randomness:
`AttachmentSealer` takes the key and salt when a test gives them; `wrap_attachment_key`
draws HPKE's randomness inside the library, as the envelope's wraps do.
"""

from __future__ import annotations

import hashlib
import os
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from broker import policy
from broker.crypto._directory import Directory
from broker.crypto._epoch import KEM_OF, SUITES
from broker.crypto._keys import PartyKeys
from broker.errors import AttachmentCheck, AttachmentRejected, LocalError, PolicyDenied
from broker.limits import (
    ATTACHMENT_SALT_BYTES,
    MAX_ATTACHMENT_BYTES,
    MAX_ATTACHMENT_CHUNK_BYTES,
    MIN_ATTACHMENT_CHUNK_BYTES,
)
from broker.models import AttachmentKey, AttachmentLocation, AttachmentRef

ATTACHMENT_KEY_BYTES = 32
"""AES-256: the attachment key, and the stream key derived from it."""

TAG_BYTES = 16
"""AES-GCM's tag, appended to each chunk's ciphertext."""

CHUNK_NONCE_BYTES = 12
"""AES-GCM's standard nonce: 11 bytes of chunk index, big-endian, then the last-chunk flag."""

ATTACHMENT_WRAP_INFO_TAG = b"LVVX-ATTACHMENT-KEY-V1\x00"
"""HPKE info prefix of an attachment key's wrap; attachment id, sender and recipient follow."""

STREAM_KEY_INFO_TAG = b"LVVX-ATTACHMENT-STREAM-V1\x00"
"""HKDF info prefix of the stream key; the attachment id and the sender follow."""

CHUNK_AAD_TAG = b"LVVX-ATTACHMENT-CHUNK-V1\x00"
"""AES-GCM associated data prefix of a chunk; attachment id, index and flag follow."""

_LAST, _NOT_LAST = b"\x01", b"\x00"


def wrap_info(attachment_id: uuid.UUID, sender: str, recipient: str) -> bytes:
    """Binds a wrapped attachment key to its attachment, its sender and one recipient."""
    return (
        ATTACHMENT_WRAP_INFO_TAG
        + attachment_id.bytes
        + sender.encode()
        + b"\x00"
        + recipient.encode()
    )


def stream_key(attachment_key: bytes, salt: bytes, attachment_id: uuid.UUID, sender: str) -> bytes:
    """The AES-256-GCM key of the chunks (§11.3)."""
    return HKDF(
        algorithm=hashes.SHA256(),
        length=ATTACHMENT_KEY_BYTES,
        salt=salt,
        info=STREAM_KEY_INFO_TAG + attachment_id.bytes + sender.encode(),
    ).derive(attachment_key)


def chunk_nonce(index: int, last: bool) -> bytes:
    """Chunk ``index``'s nonce: the index as 11 bytes big-endian, then 0x01 for the last."""
    return index.to_bytes(CHUNK_NONCE_BYTES - 1, "big") + (_LAST if last else _NOT_LAST)


def chunk_aad(attachment_id: uuid.UUID, index: int, last: bool) -> bytes:
    """Chunk ``index``'s associated data."""
    return (
        CHUNK_AAD_TAG
        + attachment_id.bytes
        + index.to_bytes(4, "big")
        + (_LAST if last else _NOT_LAST)
    )


def plaintext_length(size: int, chunk_size: int, index: int) -> int:
    """Plaintext bytes of chunk ``index`` of a document of ``size`` bytes: ``chunk_size``
    for every chunk but the last, the rest (0 only for an empty document) for the last."""
    count = policy.chunk_count_for(size, chunk_size)
    return chunk_size if index < count - 1 else size - (count - 1) * chunk_size


def chunk_record_key(sender: str, attachment_id: uuid.UUID, index: int) -> bytes:
    """The transport record key of chunk ``index`` (§11.6): sender, attachment id, index.
    Not authenticated: the chunk's tag and the reference are."""
    return sender.encode() + b"\x00" + attachment_id.bytes + index.to_bytes(4, "big")


# --- sending ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SealedAttachment:
    """What the sender keeps of an encrypted attachment until the message that references it
    is sealed: its description and its key (a secret: the gateway keeps it sealed at rest)."""

    attachment_id: uuid.UUID
    sender: str
    media_type: str
    size: int
    sha256: bytes
    chunk_size: int
    chunk_count: int
    salt: bytes
    key: bytes = field(repr=False)


class AttachmentSealer:
    """Encrypts one document fed piece by piece (`update`), never holding more than a chunk
    and the piece given: each call returns the chunks it completed, `finish` the last one
    and the attachment's description."""

    def __init__(
        self,
        *,
        sender: str,
        media_type: str,
        attachment_id: uuid.UUID | None = None,
        chunk_size: int = MAX_ATTACHMENT_CHUNK_BYTES,
        key: bytes | None = None,
        salt: bytes | None = None,
    ) -> None:
        """``key`` and ``salt`` are random unless a known-answer test gives them: a key or
        salt used twice loses the confidentiality of both documents."""
        if not MIN_ATTACHMENT_CHUNK_BYTES <= chunk_size <= MAX_ATTACHMENT_CHUNK_BYTES:
            raise LocalError(f"chunk size {chunk_size} out of range", reason="ATTACHMENT_LAYOUT")
        self.attachment_id = attachment_id or uuid.uuid4()
        self.sender = sender
        self.media_type = media_type
        self.chunk_size = chunk_size
        self._key = key if key is not None else os.urandom(ATTACHMENT_KEY_BYTES)
        self._salt = salt if salt is not None else os.urandom(ATTACHMENT_SALT_BYTES)
        if len(self._key) != ATTACHMENT_KEY_BYTES or len(self._salt) != ATTACHMENT_SALT_BYTES:
            raise LocalError(
                "an attachment key has 32 bytes and its salt 16", reason="ATTACHMENT_KEY"
            )
        self._aead = AESGCM(stream_key(self._key, self._salt, self.attachment_id, sender))
        self._buffer = bytearray()
        self._hash = hashlib.sha256()
        self._size = 0
        self._index = 0
        self._done = False

    def update(self, data: bytes) -> list[bytes]:
        """Take the next piece of the document; return the chunks it completed."""
        if self._done:
            raise LocalError("the attachment is finished", reason="ATTACHMENT_FINISHED")
        self._size += len(data)
        if self._size > MAX_ATTACHMENT_BYTES:
            raise LocalError(
                f"an attachment has at most {MAX_ATTACHMENT_BYTES} bytes", reason="TOO_LARGE"
            )
        self._hash.update(data)
        view, size, out = memoryview(data), self.chunk_size, []
        # a full chunk is held back while nothing follows it: it may be the last; whole
        # chunks of ``data`` are encrypted from it directly, without a copy
        if self._buffer and len(self._buffer) + len(view) > size:
            need = size - len(self._buffer)
            self._buffer += view[:need]
            view = view[need:]
            out.append(self._seal(self._buffer, last=False))
            self._buffer = bytearray()
        while len(view) > size:
            out.append(self._seal(view[:size], last=False))
            view = view[size:]
        self._buffer += view
        return out

    def finish(self) -> tuple[bytes, SealedAttachment]:
        """The last chunk (for an empty document, an empty chunk) and the description."""
        if self._done:
            raise LocalError("the attachment is finished", reason="ATTACHMENT_FINISHED")
        last = self._seal(self._buffer, last=True)
        self._done = True
        self._buffer = bytearray()
        sealed = SealedAttachment(
            attachment_id=self.attachment_id,
            sender=self.sender,
            media_type=self.media_type,
            size=self._size,
            sha256=self._hash.digest(),
            chunk_size=self.chunk_size,
            chunk_count=self._index,
            salt=self._salt,
            key=self._key,
        )
        return last, sealed

    def _seal(self, plaintext: bytes | bytearray | memoryview, *, last: bool) -> bytes:
        i = self._index
        self._index += 1
        return self._aead.encrypt(
            chunk_nonce(i, last), plaintext, chunk_aad(self.attachment_id, i, last)
        )


def wrap_attachment_key(
    sealed: SealedAttachment, recipients: Sequence[str], directory: Directory, now: datetime
) -> tuple[AttachmentKey, ...]:
    """The attachment key wrapped to each recipient's current encryption key (§3.7), in
    the order given: the envelope's recipients, in its header's order."""
    keys = []
    for name in dict.fromkeys(recipients):
        rk = directory.recipient_key(name, now)
        info = wrap_info(sealed.attachment_id, sealed.sender, name)
        blob = SUITES[KEM_OF[rk.algorithm]].encrypt(sealed.key, rk.public_key, info=info)
        keys.append(AttachmentKey(recipient=name, key_id=rk.key_id, wrapped=blob))
    return tuple(keys)


def attachment_reference(
    sealed: SealedAttachment, recipients: Sequence[str], directory: Directory, now: datetime
) -> AttachmentRef:
    """The reference a message carries for ``sealed``, sent to ``recipients`` (§11.2)."""
    return AttachmentRef(
        attachment_id=sealed.attachment_id,
        media_type=sealed.media_type,
        size=sealed.size,
        sha256=sealed.sha256,
        chunk_size=sealed.chunk_size,
        chunk_count=sealed.chunk_count,
        salt=sealed.salt,
        keys=wrap_attachment_key(sealed, recipients, directory, now),
        location=AttachmentLocation.RECIPIENT_TOPIC,
    )


# --- receiving -------------------------------------------------------------------------------


def unwrap_attachment_key(ref: AttachmentRef, *, sender: str, me: PartyKeys) -> bytes:
    """The attachment key of ``ref`` for ``me`` (checks 1 and 2 of §11.5). ``sender`` is
    the authenticated sender of the envelope that carried ``ref``."""
    try:
        policy.check_attachment_ref(ref)
    except PolicyDenied:
        raise AttachmentRejected(AttachmentCheck.REFERENCE_INVALID) from None
    mine = [k for k in ref.keys if k.recipient == me.party_id]
    if len(mine) != 1:
        raise AttachmentRejected(AttachmentCheck.KEY_INVALID)
    private = me.decryption_keys.get(mine[0].key_id)
    if private is None:
        raise AttachmentRejected(AttachmentCheck.KEY_INVALID)
    info = wrap_info(ref.attachment_id, sender, me.party_id)
    try:
        key = SUITES[KEM_OF[private.algorithm]].decrypt(
            mine[0].wrapped, private.private_key, info=info
        )
    except (InvalidTag, ValueError, KeyError):
        raise AttachmentRejected(AttachmentCheck.KEY_INVALID) from None
    if len(key) != ATTACHMENT_KEY_BYTES:
        raise AttachmentRejected(AttachmentCheck.KEY_INVALID)
    return key


class AttachmentOpener:
    """Verifies and decrypts one attachment's chunks, fed in order (checks 3 to 7 of
    §11.5). Each chunk's plaintext is returned once its tag verified; the document is the
    concatenation only once `finish` passed. After a refusal every call raises it again."""

    def __init__(self, ref: AttachmentRef, *, sender: str, key: bytes) -> None:
        """``key``: from `unwrap_attachment_key` (or, for a gateway's second pass over its
        spool, kept from the first)."""
        try:
            policy.check_attachment_ref(ref)
        except PolicyDenied:
            raise AttachmentRejected(AttachmentCheck.REFERENCE_INVALID) from None
        if len(key) != ATTACHMENT_KEY_BYTES:
            raise AttachmentRejected(AttachmentCheck.KEY_INVALID)
        self.ref = ref
        self._aead = AESGCM(stream_key(key, ref.salt, ref.attachment_id, sender))
        self._hash = hashlib.sha256()
        self._index = 0
        self._refused: AttachmentRejected | None = None
        self.finished = False

    @classmethod
    def for_recipient(cls, ref: AttachmentRef, *, sender: str, me: PartyKeys) -> AttachmentOpener:
        return cls(ref, sender=sender, key=unwrap_attachment_key(ref, sender=sender, me=me))

    @property
    def chunks_verified(self) -> int:
        return self._index

    def open_chunk(self, chunk: bytes) -> bytes:
        """The plaintext of the next chunk, after its checks. Not released before `finish`."""
        if self._refused is not None:
            raise self._refused
        if self.finished:
            raise self._refuse(AttachmentCheck.TOO_MANY_CHUNKS)
        ref, i = self.ref, self._index
        if i >= ref.chunk_count:
            raise self._refuse(AttachmentCheck.TOO_MANY_CHUNKS)
        if len(chunk) != plaintext_length(ref.size, ref.chunk_size, i) + TAG_BYTES:
            raise self._refuse(AttachmentCheck.CHUNK_SIZE)
        last = i == ref.chunk_count - 1
        try:
            plaintext = self._aead.decrypt(
                chunk_nonce(i, last), chunk, chunk_aad(ref.attachment_id, i, last)
            )
        except InvalidTag:
            raise self._refuse(AttachmentCheck.CHUNK_INVALID) from None
        self._hash.update(plaintext)
        self._index += 1
        return plaintext

    def finish(self) -> None:
        """The end check: every chunk came, and the plaintext's SHA-256 is the reference's.
        Only after it may the attachment be released."""
        if self._refused is not None:
            raise self._refused
        if self._index != self.ref.chunk_count:
            raise self._refuse(AttachmentCheck.TRUNCATED)
        if self._hash.digest() != self.ref.sha256:
            raise self._refuse(AttachmentCheck.DIGEST_MISMATCH)
        self.finished = True

    def _refuse(self, check: AttachmentCheck) -> AttachmentRejected:
        self._refused = AttachmentRejected(check)
        return self._refused
