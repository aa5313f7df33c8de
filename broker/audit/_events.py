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

from pydantic import ValidationError

from broker.contract import default_codec
from broker.contract.binary import write_bytes
from broker.crypto import SignatureInvalid, SigningKey, VerifyKey, sign_tagged, verify_tagged
from broker.errors import DecodeError, RemoteError
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


def sign_encoded(unsigned: bytes, key: SigningKey) -> bytes:
    """Sign an event encoded with an empty signature: the signed part is every byte before
    the (empty) signature field, and the signature takes that field's place."""
    if not unsigned.endswith(b"\x00"):
        raise ValueError("the event must be encoded with an empty signature")
    signed = unsigned[:-1]
    signature = sign_tagged(key, AUDIT_SIGNATURE_TAG, signed)
    return signed + write_bytes(signature)


def decode(data: bytes) -> AuditEvent:
    try:
        record = default_codec().decode(AuditEvent.avro_name, data, max_items=MAX_AUDIT_EVENT_ITEMS)
        return AuditEvent.from_avro(record)
    except (DecodeError, ValidationError) as exc:
        raise BadAuditEvent("not an audit event") from exc


def signed_part(event: AuditEvent) -> bytes:
    encoded = encode(event.model_copy(update={"signature": b""}))
    return encoded[:-1]  # the empty signature: its single length byte


def sign(event: AuditEvent, key: SigningKey) -> AuditEvent:
    signature = sign_tagged(key, AUDIT_SIGNATURE_TAG, signed_part(event))
    return event.model_copy(update={"signature": signature})


def verify(event: AuditEvent, key: VerifyKey) -> None:
    """Raise `BadAuditEvent` unless ``key`` signed ``event``."""
    try:
        verify_tagged(key, event.signature, AUDIT_SIGNATURE_TAG, signed_part(event))
    except SignatureInvalid:
        raise BadAuditEvent(f"bad signature on event {event.seq} of {event.gateway}") from None


def event_hash(encoded: bytes) -> bytes:
    return hashlib.sha256(encoded).digest()
