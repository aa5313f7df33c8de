"""Audit events on the wire: their bytes, signatures and hashes.

An event is the Avro encoding of `nl.lvv.v1.AuditEvent`. Like an envelope, its signature is
its last field, so the signed bytes are exactly the bytes before it:

    signed part = the event's encoding with an empty signature, minus its final byte (0x00)
    signature   = Ed25519(gateway key, "LVVX-AUDIT-V1" || 0x00 || signed part)
    event hash  = SHA-256(the whole encoding)           — the next event's ``prev_hash``
    Merkle leaf = the whole encoding                      — RFC 6962 leaf data

Each event is signed on its own (~30 µs, small beside sealing the message it records), so a
single event — e.g. in an inclusion proof — can be checked by anyone with the gateway's key.
"""

from __future__ import annotations

import hashlib
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from pydantic import ValidationError

from broker._codec import default_codec
from broker._errors import DecodeError, RemoteError
from broker.models import AuditEvent

AUDIT_SIGNATURE_TAG = b"LVVX-AUDIT-V1\x00"
GENESIS_HASH = bytes(32)
"""The ``prev_hash`` of a chain's first event."""

MAX_AUDIT_EVENT_ITEMS = 64
"""Array items an event may claim: its recipients (at most 16 in an envelope)."""


class BadAuditEvent(RemoteError):
    reason = "BAD_AUDIT_EVENT"


def encode(event: AuditEvent) -> bytes:
    return event.avro_bytes()


def encode_record(record: dict[str, Any]) -> bytes:
    return default_codec().encode(AuditEvent.avro_name, record)


def sign_encoded(unsigned: bytes, key: Ed25519PrivateKey) -> bytes:
    """Sign an event encoded with an empty signature: the signed part is every byte before
    the (empty) signature field, and the signature takes that field's place."""
    if not unsigned.endswith(b"\x00"):
        raise ValueError("the event must be encoded with an empty signature")
    signed = unsigned[:-1]
    signature = key.sign(AUDIT_SIGNATURE_TAG + signed)
    return signed + _bytes_field(signature)


def _bytes_field(value: bytes) -> bytes:
    """Avro encoding of a ``bytes`` value: zigzag varint length, then the bytes."""
    n, out = len(value) << 1, bytearray()
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out) + value


def decode(data: bytes) -> AuditEvent:
    try:
        record = default_codec().decode(AuditEvent.avro_name, data, max_items=MAX_AUDIT_EVENT_ITEMS)
        return AuditEvent.from_avro(record)
    except (DecodeError, ValidationError) as exc:
        raise BadAuditEvent("not an audit event") from exc


def signed_part(event: AuditEvent) -> bytes:
    encoded = encode(event.model_copy(update={"signature": b""}))
    return encoded[:-1]  # the empty signature: its single length byte


def sign(event: AuditEvent, key: Ed25519PrivateKey) -> AuditEvent:
    return event.model_copy(
        update={"signature": key.sign(AUDIT_SIGNATURE_TAG + signed_part(event))}
    )


def verify(event: AuditEvent, key: Ed25519PublicKey) -> None:
    """Raise `BadAuditEvent` unless ``key`` signed ``event``."""
    try:
        key.verify(event.signature, AUDIT_SIGNATURE_TAG + signed_part(event))
    except InvalidSignature:
        raise BadAuditEvent(f"bad signature on event {event.seq} of {event.gateway}") from None


def event_hash(encoded: bytes) -> bytes:
    return hashlib.sha256(encoded).digest()
