"""A chunk as it travels on an attachment topic, signed by its sender (docs/ENVELOPE.md §11.6).

Every recipient of an attachment holds its key, so a chunk's tag proves only that *some*
holder of the key made it. A co-recipient that may write the same recipient's attachment
topic (IND and DT&V both send municipalities documents) could put chunks there that
authenticate under the sender's name; the end check would then refuse the attachment, and
with it the message — a hostile co-recipient suppressing a message it was sent too. The
sender's Ed25519 signature over every record closes that: a receiver refuses a forged
record on arrival, before it takes any room, and keeps the sender's own. The end check
stays: the signature proves the sender wrote the record, the end check that the records are
the document the signed reference describes.

This is pure: the receiver passes in its directory and the time it checks at.
"""

from __future__ import annotations

import hashlib
import re
import uuid
from dataclasses import dataclass
from datetime import datetime

from cryptography.exceptions import InvalidSignature

from broker.crypto._directory import Directory
from broker.crypto._keys import PartyKeys
from broker.crypto._stream import TAG_BYTES, chunk_record_key
from broker.errors import RemoteError, UnknownParty
from broker.limits import MAX_ATTACHMENT_CHUNK_BYTES, MAX_ATTACHMENT_CHUNKS
from broker.models import PARTY_ID_PATTERN

CHUNK_RECORD_SIG_TAG = b"LVVX-ATTACHMENT-RECORD-V1\x00"
"""Domain separation of a chunk record's signature: it never verifies as another."""

KEY_ID_BYTES = 8
"""A signing key id (§3.2) as raw bytes: the 16 hex characters decoded."""

SIGNATURE_BYTES = 64

RECORD_HEAD_BYTES = KEY_ID_BYTES + SIGNATURE_BYTES
"""What a chunk record's value holds before the chunk: the signer's key id and signature."""

MAX_CHUNK_RECORD_VALUE_BYTES = RECORD_HEAD_BYTES + MAX_ATTACHMENT_CHUNK_BYTES + TAG_BYTES

_PARTY_ID = re.compile(PARTY_ID_PATTERN.encode())
_KEY_TAIL_BYTES = 1 + 16 + 4  # 0x00, the attachment id, the index


class ChunkRecordInvalid(RemoteError):
    """A record on an attachment topic that is not a chunk its claimed sender signed: the
    key or value is malformed, the sender or its key is unknown, or the signature fails.
    One code for all of them (§6.3: no oracle)."""

    reason = "CHUNK_RECORD_INVALID"

    def __init__(self) -> None:
        super().__init__("chunk record refused")


@dataclass(frozen=True, slots=True)
class ChunkRecord:
    """A chunk record whose signature verified: who sent it, where it belongs, and with
    which key it was signed (the receiver requires the key that signed the envelope)."""

    sender: str
    attachment_id: uuid.UUID
    index: int
    signing_key_id: str
    chunk: bytes


def _signed_bytes(record_key: bytes, chunk: bytes) -> bytes:
    return CHUNK_RECORD_SIG_TAG + record_key + hashlib.sha256(chunk).digest()


def chunk_record(keys: PartyKeys, attachment_id: uuid.UUID, index: int,
                 chunk: bytes) -> tuple[bytes, bytes]:  # fmt: skip
    """The record key and value of chunk ``index`` of ``attachment_id``, sent by ``keys``'s
    party: the same bytes for every recipient."""
    record_key = chunk_record_key(keys.party_id, attachment_id, index)
    signature = keys.signing_key.sign(_signed_bytes(record_key, chunk))
    return record_key, bytes.fromhex(keys.signing_key_id) + signature + chunk


def parse_chunk_record_key(record_key: bytes) -> tuple[str, uuid.UUID, int]:
    """(sender, attachment id, index) of a record key, or `ChunkRecordInvalid`."""
    if len(record_key) <= _KEY_TAIL_BYTES or record_key[-_KEY_TAIL_BYTES] != 0:
        raise ChunkRecordInvalid()
    sender = record_key[:-_KEY_TAIL_BYTES]
    if not _PARTY_ID.fullmatch(sender):
        raise ChunkRecordInvalid()
    attachment_id = uuid.UUID(bytes=record_key[-20:-4])
    index = int.from_bytes(record_key[-4:], "big")
    if index >= MAX_ATTACHMENT_CHUNKS:
        raise ChunkRecordInvalid()
    return sender.decode(), attachment_id, index


def read_chunk_record(record_key: bytes | None, value: bytes | None, *,
                      directory: Directory, at: datetime) -> ChunkRecord:  # fmt: skip
    """The chunk of a record from an attachment topic, if its claimed sender signed it with
    a key the directory lists as valid at ``at``; else `ChunkRecordInvalid`. Bounded work
    for any input: size checks first, then one SHA-256 of at most one chunk and one
    signature check."""
    if record_key is None or value is None:
        raise ChunkRecordInvalid()
    sender, attachment_id, index = parse_chunk_record_key(record_key)
    if not RECORD_HEAD_BYTES + TAG_BYTES <= len(value) <= MAX_CHUNK_RECORD_VALUE_BYTES:
        raise ChunkRecordInvalid()
    key_id = value[:KEY_ID_BYTES].hex()
    try:
        verify_key = directory.signing_key(sender, key_id, at)
    except UnknownParty:
        raise ChunkRecordInvalid() from None
    if verify_key is None:
        raise ChunkRecordInvalid()
    chunk = value[RECORD_HEAD_BYTES:]
    try:
        verify_key.verify(value[KEY_ID_BYTES:RECORD_HEAD_BYTES], _signed_bytes(record_key, chunk))
    except InvalidSignature:
        raise ChunkRecordInvalid() from None
    return ChunkRecord(sender, attachment_id, index, key_id, chunk)
