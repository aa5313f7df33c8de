"""Network records: delivery receipts, audit events, the key directory, the envelope."""

from __future__ import annotations

from uuid import UUID

from broker.models._base import (
    AvroFullName,
    AvroModel,
    Int32,
    Int64,
    PartyId,
    Sha256,
    SpanId,
    Timestamp,
    Traceparent,
)
from broker.models._enums import (
    AuditAction,
    AuditOutcome,
    Kem,
    KeyAlgorithm,
    KeyStatus,
    KeyWrapMode,
    PartyRole,
    ReceiptOutcome,
    ReceiptReason,
    RevocationReason,
    SignatureScheme,
)

__all__ = [
    "AuditCheckpoint",
    "AuditEvent",
    "BatchProof",
    "DeliveryReceipt",
    "EnvelopeHeader",
    "PartyDirectory",
    "PartyEntry",
    "PublicKey",
    "SecureEnvelope",
    "SignedDirectory",
    "WrappedKey",
]


class DeliveryReceipt(AvroModel):
    """Step 7: signed proof that a party received and accepted a message."""

    avro_name = "nl.lvv.v1.DeliveryReceipt"

    receipt_id: UUID
    message_id: UUID
    message_type: AvroFullName
    case_id: UUID
    received_by: PartyId
    received_at: Timestamp
    envelope_sha256: Sha256
    outcome: ReceiptOutcome = ReceiptOutcome.ACCEPTED
    reason: ReceiptReason | None = None


class AuditCheckpoint(AvroModel):
    """A signed Merkle tree head over the gateway's events so far (RFC 6962 hashing)."""

    avro_name = "nl.lvv.v1.AuditCheckpoint"

    tree_size: Int64
    root_hash: Sha256


class AuditEvent(AvroModel):
    """One record of a gateway's audit chain (topic lvv.v1.audit)."""

    avro_name = "nl.lvv.v1.AuditEvent"

    event_id: UUID
    gateway: PartyId
    seq: Int64
    prev_hash: Sha256
    action: AuditAction
    occurred_at: Timestamp
    message_id: UUID | None = None
    message_type: AvroFullName | None = None
    sender: PartyId | None = None
    recipients: tuple[PartyId, ...] = ()
    case_id: UUID | None = None
    envelope_sha256: Sha256 | None = None
    outcome: AuditOutcome
    reason: str | None = None
    checkpoint: AuditCheckpoint | None = None
    traceparent: Traceparent | None = None
    parent_span_id: SpanId | None = None
    signature: bytes


class PublicKey(AvroModel):
    """A public key with its validity."""

    avro_name = "nl.lvv.v1.PublicKey"

    key_id: str
    algorithm: KeyAlgorithm
    public_key: bytes
    valid_from: Timestamp
    valid_until: Timestamp
    status: KeyStatus
    revoked_at: Timestamp | None = None
    revocation_reason: RevocationReason | None = None


class PartyEntry(AvroModel):
    """One party of the network."""

    avro_name = "nl.lvv.v1.PartyEntry"

    party_id: PartyId
    role: PartyRole
    display_name: str
    signing_keys: tuple[PublicKey, ...]
    encryption_keys: tuple[PublicKey, ...]


class PartyDirectory(AvroModel):
    """The key directory: every party of the network with its public keys."""

    avro_name = "nl.lvv.v1.PartyDirectory"

    serial: Int64
    issued_at: Timestamp
    expires_at: Timestamp
    network: str
    parties: tuple[PartyEntry, ...]


class EnvelopeHeader(AvroModel):
    """Metadata bound to the payload as AEAD associated data and covered by the signature."""

    avro_name = "nl.lvv.v1.EnvelopeHeader"

    format_version: Int32
    message_id: UUID
    message_type: AvroFullName
    payload_fingerprint: Sha256
    sender: PartyId
    sender_key_id: str
    recipients: tuple[PartyId, ...]
    case_id: UUID
    created_at: Timestamp
    expires_at: Timestamp
    correlation_id: UUID | None = None
    causation_id: UUID | None = None
    key_wrap: KeyWrapMode
    signature_scheme: SignatureScheme
    traceparent: Traceparent | None = None


class WrappedKey(AvroModel):
    """The payload key, wrapped for one recipient with HPKE (RFC 9180)."""

    avro_name = "nl.lvv.v1.WrappedKey"

    recipient: PartyId
    key_id: str
    kem: Kem
    wrapped: bytes


class BatchProof(AvroModel):
    """Merkle inclusion path of this envelope under a signed batch root."""

    avro_name = "nl.lvv.v1.BatchProof"

    leaf_index: Int64
    batch_size: Int64
    path: tuple[Sha256, ...]


class SecureEnvelope(AvroModel):
    """Carries one message: signed by the sender, payload encrypted to each recipient."""

    avro_name = "nl.lvv.v1.SecureEnvelope"

    header: EnvelopeHeader
    wrapped_keys: tuple[WrappedKey, ...]
    nonce: bytes
    ciphertext: bytes
    batch_proof: BatchProof | None = None
    signature: bytes


class SignedDirectory(AvroModel):
    """A key directory as distributed, signed by the trust anchor."""

    avro_name = "nl.lvv.v1.SignedDirectory"

    format_version: Int32
    anchor_key_id: str
    directory: bytes
    signature: bytes
