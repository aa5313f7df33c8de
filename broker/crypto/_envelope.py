"""Sealing and opening envelopes: a pure module — bytes, keys, directory and clock in; bytes,
or one rejection reason, out. The wire format is specified in docs/ENVELOPE.md.

Layered like Fernet so tests can fix time and randomness: `seal` draws the random parts and
calls `_seal_from_parts`; `open_envelope` takes ``now`` from its caller.

Opening checks, in this order, and stops at the first failure with its reason (§6 of the
spec): size, version, decode, sender key valid at created-at, signature, recipient, policy,
time window, replay, decrypt, payload. The payload is decoded only after the signature and
the decryption authenticated it, and then only within bounds (`broker._skim`).
"""

from __future__ import annotations

import hashlib
import os
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives import hpke
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from pydantic import ValidationError

from broker import policy
from broker._codec import SchemaInfo, default_codec
from broker._errors import (
    DecodeError,
    EnvelopeRejected,
    LocalError,
    PolicyDenied,
    RecordTooLarge,
    RejectReason,
    ReplayDetected,
    UnknownParty,
    UnknownSchema,
)
from broker.crypto._directory import Directory
from broker.crypto._keys import PartyKeys
from broker.models import (
    MESSAGE_MODELS,
    AvroModel,
    EnvelopeHeader,
    Kem,
    KeyAlgorithm,
    KeyWrapMode,
    SecureEnvelope,
    SignatureScheme,
    WrappedKey,
)
from broker.replay import ReplayGuard
from broker.transport import MAX_RECORD_BYTES

FORMAT_VERSION = 1

MAX_ENVELOPE_BYTES = MAX_RECORD_BYTES - 16 * 1024
"""An envelope must fit one transport record, with room for its key and headers."""

MAX_RECIPIENTS = 16
"""The widest message of the case flow goes to five parties; more is a mistake or an attack."""

MAX_PAYLOAD_BYTES = MAX_ENVELOPE_BYTES - MAX_RECIPIENTS * 1_400 - 4 * 1024
"""What is left for the payload after the header and the widest hybrid key wraps (~1.2 KiB each)."""

MAX_ENVELOPE_ITEMS = 3 * MAX_RECIPIENTS + 64
"""Array items an envelope may claim in all: recipients, wrapped keys, a batch path."""

MAX_PAYLOAD_ITEMS = 10_000
"""Array items a payload may claim in all; a large dossier has a few hundred."""

MAX_CLOCK_SKEW = timedelta(minutes=2)
"""Clocks of the parties' gateways may differ this much (they run NTP)."""

DEFAULT_TTL = timedelta(days=7)
"""An envelope must be opened within a week: covers a gateway down over a long weekend."""

MAX_TTL = timedelta(days=30)
"""No sender may ask for longer; it bounds how long replay guards remember ids."""

PAYLOAD_KEY_BYTES = 32  # AES-256
NONCE_BYTES = 12  # AES-GCM's standard nonce
SIGNATURE_BYTES = 64  # Ed25519

SIGNATURE_TAG = b"LVVX-ENVELOPE-SIG-V1\x00"
AAD_TAG = b"LVVX-ENVELOPE-AAD-V1\x00"
WRAP_INFO_TAG = b"LVVX-ENVELOPE-KEY-V1\x00"
"""Domain separation tags: a signature, associated data or HPKE info of one purpose can never
stand for another (docs/ENVELOPE.md §4)."""

_SUITES = {
    Kem.X25519: hpke.Suite(hpke.KEM.X25519, hpke.KDF.HKDF_SHA256, hpke.AEAD.AES_256_GCM),
    Kem.MLKEM768_X25519: hpke.Suite(
        hpke.KEM.MLKEM768_X25519, hpke.KDF.HKDF_SHA256, hpke.AEAD.AES_256_GCM
    ),
}
_KEM_OF = {KeyAlgorithm.X25519: Kem.X25519, KeyAlgorithm.MLKEM768_X25519: Kem.MLKEM768_X25519}


@dataclass(frozen=True, slots=True)
class Opened:
    """What opening an envelope yields."""

    header: EnvelopeHeader
    message: AvroModel
    envelope_sha256: bytes


def _schemas() -> tuple[SchemaInfo, SchemaInfo]:
    codec = default_codec()
    return codec.info(SecureEnvelope.avro_name), codec.record_info(EnvelopeHeader.avro_name)


def _wrap_info(message_id: uuid.UUID, recipient: str) -> bytes:
    """HPKE info: binds a wrapped key to one message and one recipient."""
    return WRAP_INFO_TAG + message_id.bytes + recipient.encode()


def _bytes_field(value: bytes) -> bytes:
    """Avro encoding of a ``bytes`` value: zigzag varint length, then the bytes."""
    n, out = len(value) << 1, bytearray()
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out) + value


# --- sealing ---------------------------------------------------------------------------------


def seal(
    message: AvroModel,
    *,
    sender: PartyKeys,
    recipients: Sequence[str],
    directory: Directory,
    now: datetime,
    ttl: timedelta = DEFAULT_TTL,
    correlation_id: uuid.UUID | None = None,
    causation_id: uuid.UUID | None = None,
    message_id: uuid.UUID | None = None,
) -> bytes:
    """Sign ``message`` as ``sender`` and encrypt it to each of ``recipients``.

    ``message_id`` is random unless the caller picked one (a gateway records it first).

    Raises `PolicyDenied` if the policy forbids it, `UnknownParty` for a recipient not in
    the directory, `RecordTooLarge` for a payload that cannot fit an envelope.
    """
    return _seal_from_parts(
        message,
        sender=sender,
        recipients=recipients,
        directory=directory,
        now=now,
        ttl=ttl,
        correlation_id=correlation_id,
        causation_id=causation_id,
        message_id=message_id or uuid.uuid4(),
        payload_key=os.urandom(PAYLOAD_KEY_BYTES),
        nonce=os.urandom(NONCE_BYTES),
    )


def _seal_from_parts(
    message: AvroModel,
    *,
    sender: PartyKeys,
    recipients: Sequence[str],
    directory: Directory,
    now: datetime,
    ttl: timedelta,
    correlation_id: uuid.UUID | None,
    causation_id: uuid.UUID | None,
    message_id: uuid.UUID,
    payload_key: bytes,
    nonce: bytes,
    payload: bytes | None = None,
    header_overrides: Mapping[str, Any] | None = None,
) -> bytes:
    """`seal` with its random parts given. ``payload`` and ``header_overrides`` replace the
    message's encoding and header fields: tests use them to play a hostile but
    authenticated sender, the only party that can make such envelopes."""
    codec = default_codec()
    envelope_info, header_info = _schemas()
    names = tuple(dict.fromkeys(recipients))
    if not 0 < len(names) <= MAX_RECIPIENTS:
        raise LocalError(f"an envelope has 1 to {MAX_RECIPIENTS} recipients", reason="RECIPIENTS")
    if not timedelta(0) < ttl <= MAX_TTL:
        raise LocalError(f"time to live must be positive and at most {MAX_TTL}", reason="TTL")
    policy.check(
        message.avro_name,
        directory.role(sender.party_id),
        tuple(directory.role(r) for r in names),
    )
    if directory.signing_key(sender.party_id, sender.signing_key_id, now) is None:
        raise LocalError(
            f"{sender.party_id}'s signing key {sender.signing_key_id} is not valid now in the directory",
            reason="SENDER_KEY_INVALID",
        )
    policy.check_sender_fields(message, sender.party_id, directory.role(sender.party_id))
    if payload is None:
        payload = codec.encode(message.avro_name, message.to_avro())
    if len(payload) > MAX_PAYLOAD_BYTES:
        raise RecordTooLarge(f"payload of {len(payload)} bytes exceeds {MAX_PAYLOAD_BYTES}")
    case_id = getattr(message, "case_id", None)
    if not isinstance(case_id, uuid.UUID):
        raise LocalError(f"{message.avro_name} has no case id", reason="NO_CASE_ID")
    header = EnvelopeHeader(
        format_version=FORMAT_VERSION,
        message_id=message_id,
        message_type=message.avro_name,
        payload_fingerprint=codec.info(message.avro_name).fingerprint,
        sender=sender.party_id,
        sender_key_id=sender.signing_key_id,
        recipients=names,
        case_id=case_id,
        created_at=now,
        expires_at=now + ttl,
        correlation_id=correlation_id,
        causation_id=causation_id,
        key_wrap=KeyWrapMode.PER_MESSAGE,
        signature_scheme=SignatureScheme.ED25519,
    )
    if header_overrides:
        header = EnvelopeHeader.model_validate({**header.model_dump(), **header_overrides})
    header_bytes = codec.encode(header_info, header.to_avro())
    ciphertext = AESGCM(payload_key).encrypt(nonce, payload, AAD_TAG + header_bytes)
    wrapped = []
    for name in names:
        key = directory.recipient_key(name, now)
        kem = _KEM_OF[key.algorithm]
        blob = _SUITES[kem].encrypt(payload_key, key.public_key, info=_wrap_info(message_id, name))
        wrapped.append(WrappedKey(recipient=name, key_id=key.key_id, kem=kem, wrapped=blob))
    unsigned = SecureEnvelope(
        header=header,
        wrapped_keys=tuple(wrapped),
        nonce=nonce,
        ciphertext=ciphertext,
        signature=b"",
    )
    encoded = codec.encode(envelope_info, unsigned.to_avro())
    assert encoded.endswith(b"\x00")  # the empty signature is the last byte
    signed_part = encoded[:-1]
    signature = sender.signing_key.sign(SIGNATURE_TAG + signed_part)
    data = signed_part + _bytes_field(signature)
    if len(data) > MAX_ENVELOPE_BYTES:
        raise RecordTooLarge(f"envelope of {len(data)} bytes exceeds {MAX_ENVELOPE_BYTES}")
    return data


# --- opening ---------------------------------------------------------------------------------


def _reject(reason: RejectReason) -> EnvelopeRejected:
    return EnvelopeRejected(reason)


def _version(data: bytes) -> int:
    """The format version: the envelope's first field, read before anything else."""
    if not data:
        raise _reject(RejectReason.MALFORMED)
    if data[0] & 0x80:
        raise _reject(RejectReason.UNSUPPORTED_VERSION)  # 64 and up take two bytes; none exist
    return (data[0] >> 1) ^ -(data[0] & 1)


def _decode(data: bytes) -> tuple[SecureEnvelope, bytes, bytes]:
    """The envelope, its header bytes (the AAD) and the bytes its signature covers."""
    codec = default_codec()
    envelope_info, header_info = _schemas()
    try:
        record = codec.decode(envelope_info, data, max_items=MAX_ENVELOPE_ITEMS)
        envelope = SecureEnvelope.from_avro(record)
    except (DecodeError, ValidationError) as exc:
        raise _reject(RejectReason.MALFORMED) from exc
    header_bytes = codec.encode(header_info, record["header"])
    signature_field = _bytes_field(envelope.signature)
    # the skim guarantees canonical bytes, so both slices are exactly what the sender made
    return envelope, header_bytes, data[: len(data) - len(signature_field)]


def _check_shape(envelope: SecureEnvelope) -> None:
    """Structure every version-1 envelope has; a sender that breaks it made a bad envelope."""
    h = envelope.header
    if (
        h.key_wrap is not KeyWrapMode.PER_MESSAGE
        or h.signature_scheme is not SignatureScheme.ED25519
    ):
        raise _reject(RejectReason.UNSUPPORTED_VERSION)
    if envelope.batch_proof is not None:
        raise _reject(RejectReason.UNSUPPORTED_VERSION)
    recipients = h.recipients
    if not 0 < len(recipients) <= MAX_RECIPIENTS or len(set(recipients)) != len(recipients):
        raise _reject(RejectReason.MALFORMED)
    if tuple(w.recipient for w in envelope.wrapped_keys) != recipients:
        raise _reject(RejectReason.MALFORMED)
    if len(envelope.nonce) != NONCE_BYTES:
        raise _reject(RejectReason.MALFORMED)


def open_envelope(
    data: bytes,
    *,
    me: PartyKeys,
    directory: Directory,
    replay_guard: ReplayGuard,
    now: datetime,
) -> Opened:
    """Verify, decrypt and decode an envelope addressed to ``me``, or raise
    `EnvelopeRejected` with the reason of the first check that failed."""
    if len(data) > MAX_ENVELOPE_BYTES:
        raise _reject(RejectReason.TOO_LARGE)
    if _version(data) != FORMAT_VERSION:
        raise _reject(RejectReason.UNSUPPORTED_VERSION)
    envelope, header_bytes, signed_part = _decode(data)
    _check_shape(envelope)
    h = envelope.header

    # who sent it: the key comes from the directory, never from the envelope
    if h.sender not in directory.parties:
        raise _reject(RejectReason.UNKNOWN_SENDER)
    verification_key = directory.signing_key(h.sender, h.sender_key_id, h.created_at)
    if verification_key is None:
        raise _reject(RejectReason.SENDER_KEY_INVALID)
    try:
        if len(envelope.signature) != SIGNATURE_BYTES:
            raise InvalidSignature
        verification_key.verify(envelope.signature, SIGNATURE_TAG + signed_part)
    except InvalidSignature:
        raise _reject(RejectReason.BAD_SIGNATURE) from None

    # authenticated from here on: the rest are the sender's statements, checked against rules
    try:
        return _open_authenticated(data, envelope, header_bytes, me, directory, replay_guard, now)
    except EnvelopeRejected as exc:
        exc.authenticated_header = h  # the sender is known: a gateway may answer it
        raise


def _open_authenticated(
    data: bytes,
    envelope: SecureEnvelope,
    header_bytes: bytes,
    me: PartyKeys,
    directory: Directory,
    replay_guard: ReplayGuard,
    now: datetime,
) -> Opened:
    h = envelope.header
    if me.party_id not in h.recipients:
        raise _reject(RejectReason.NOT_A_RECIPIENT)
    try:
        roles = tuple(directory.role(r) for r in h.recipients)
        policy.check(h.message_type, directory.role(h.sender), roles)
    except (PolicyDenied, UnknownParty):
        raise _reject(RejectReason.POLICY_DENIED) from None
    if h.created_at > now + MAX_CLOCK_SKEW:
        raise _reject(RejectReason.FROM_FUTURE)
    # the lifetime bound first: afterwards expires_at is near now, so adding the skew is safe
    if not timedelta(0) < h.expires_at - h.created_at <= MAX_TTL:
        raise _reject(RejectReason.EXPIRED)
    if now - MAX_CLOCK_SKEW >= h.expires_at:
        raise _reject(RejectReason.EXPIRED)
    try:
        replay_guard.claim(h.message_id, h.expires_at + MAX_CLOCK_SKEW, now)
    except ReplayDetected:
        raise _reject(RejectReason.REPLAY) from None

    payload = _decrypt(envelope, me, header_bytes)
    message = _payload(h, payload, directory)
    return Opened(h, message, hashlib.sha256(data).digest())


def _decrypt(envelope: SecureEnvelope, me: PartyKeys, header_bytes: bytes) -> bytes:
    h = envelope.header
    wrapped = next(w for w in envelope.wrapped_keys if w.recipient == me.party_id)
    key = me.decryption_keys.get(wrapped.key_id)
    if key is None or _KEM_OF.get(key.algorithm) is not wrapped.kem:
        raise _reject(RejectReason.DECRYPT_FAILED)
    try:
        payload_key = _SUITES[wrapped.kem].decrypt(
            wrapped.wrapped, key.private_key, info=_wrap_info(h.message_id, me.party_id)
        )
        if len(payload_key) != PAYLOAD_KEY_BYTES:
            raise _reject(RejectReason.DECRYPT_FAILED)
        return AESGCM(payload_key).decrypt(
            envelope.nonce, envelope.ciphertext, AAD_TAG + header_bytes
        )
    except (InvalidTag, ValueError):
        raise _reject(RejectReason.DECRYPT_FAILED) from None


def _payload(h: EnvelopeHeader, payload: bytes, directory: Directory) -> AvroModel:
    codec = default_codec()
    try:
        writer = codec.by_fingerprint(h.payload_fingerprint)
        model = MESSAGE_MODELS[h.message_type]
    except (UnknownSchema, KeyError):
        raise _reject(RejectReason.UNKNOWN_SCHEMA) from None
    if writer.name != h.message_type:
        raise _reject(RejectReason.UNKNOWN_SCHEMA)
    if len(payload) > MAX_PAYLOAD_BYTES:
        raise _reject(RejectReason.PAYLOAD_INVALID)
    try:
        record = codec.decode(h.message_type, payload, writer=writer, max_items=MAX_PAYLOAD_ITEMS)
        message = model.from_avro(record)
    except (DecodeError, ValidationError):
        raise _reject(RejectReason.PAYLOAD_INVALID) from None
    if getattr(message, "case_id", None) != h.case_id:
        raise _reject(RejectReason.PAYLOAD_INVALID)  # the payload must be about the header's case
    try:
        policy.check_sender_fields(message, h.sender, directory.role(h.sender))
    except PolicyDenied:
        raise _reject(RejectReason.PAYLOAD_INVALID) from None  # it names another sender
    return message
