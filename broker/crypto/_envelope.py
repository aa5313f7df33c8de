"""Sealing and opening envelopes: a pure module — bytes, keys, directory and clock in; bytes,
or one rejection reason, out. The wire format is specified in docs/ENVELOPE.md.

Two format versions open here. Version 2 (the default) seals batches: a payload key per
recipient set and epoch (`broker.crypto._epoch`) and one signature per batch
(`broker.crypto._batchsig`); `broker.crypto._batch.Sealer` keeps the epochs between
batches. Version 1 — a fresh payload key, fresh wraps and a signature for every envelope —
still seals and opens.

Layered like Fernet's ``encrypt_at_time``, so known-answer tests and fuzzers can fix time and
randomness: `seal` draws the random parts and calls `seal_v1_from_parts` (version 1) or
`prepare_envelope` and `seal_v2_batch` with a sender's epochs (`SenderEpochs`, whose random
source may be given); `open_envelope` takes ``now`` from its caller. These deterministic
entry points are public (`broker.crypto`) for tests only: a sealer that reuses a payload key
or nonce loses confidentiality, so production code calls `seal` or `Sealer`.

Opening checks, in this order, and stops at the first failure with its reason (§6 of the
spec): size, version, decode, sender key valid at created-at, signature, recipient, policy,
time window, replay, decrypt, payload. The payload is decoded only after the signature and
the decryption authenticated it, and then only within bounds (`broker.contract._skim`).
"""

from __future__ import annotations

import hashlib
import os
import re
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from pydantic import ValidationError

from broker import policy
from broker.contract import SchemaInfo, default_codec
from broker.contract.binary import first_byte_value, write_bytes
from broker.crypto._batchsig import MAX_BATCH_SIZE, VerifiedStatements, sign_batch, statement_of
from broker.crypto._directory import Directory
from broker.crypto._epoch import (
    EPOCH_MAX_MESSAGES,
    KEM_OF,
    SUITES,
    ReceiverEpochs,
    SenderEpochs,
    epoch_wrap_info,
    number_of,
)
from broker.crypto._items import check_item_limit
from broker.crypto._keys import DecryptionKey, PartyKeys
from broker.crypto._wire import (
    Segments,
    WireEnvelope,
    Wrap,
    decode_envelope,
    encode_body,
    encode_header,
    encode_tail,
    encode_wrapped_key,
)
from broker.errors import (
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
from broker.limits import MAX_ENVELOPE_BYTES
from broker.merkle import ProofError
from broker.models import (
    MESSAGE_MODELS,
    TRACEPARENT_PATTERN,
    AvroModel,
    EnvelopeHeader,
    KeyWrapMode,
    SecureEnvelope,
    SignatureScheme,
    WrappedKey,
    to_utc_millis,
)
from broker.replay import ReplayGuard

FORMAT_VERSION = 3
"""The version `seal` and `Sealer` write unless told otherwise: format 2's rules, and a
header that ends with the ``traceparent`` (docs/ENVELOPE.md §4.2, §9)."""

FORMAT_V1 = 1
FORMAT_V2 = 2
SUPPORTED_VERSIONS = (1, 2, 3)
BATCH_VERSIONS = (FORMAT_V2, FORMAT_VERSION)
"""The versions sealed in batches under epoch keys (§5.3); they differ only in the header."""

ENVELOPE_SCHEMA_V1 = bytes.fromhex(
    "58edbe0e733ce16a49729048721c60a27963e9ca4492c83d020225d481e98b4d"
)
"""Fingerprint of the `SecureEnvelope` formats 1 and 2 are written with
(schemas/avro/history/nl.lvv.v1.SecureEnvelope.1.avsc: a header without ``traceparent``)."""

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
AAD_TAG_V2 = b"LVVX-ENVELOPE-AAD-V2\x00"
WRAP_INFO_TAG = b"LVVX-ENVELOPE-KEY-V1\x00"
"""Domain separation tags: a signature, associated data or HPKE info of one purpose can never
stand for another (docs/ENVELOPE.md §4)."""

_TRACEPARENT = re.compile(TRACEPARENT_PATTERN)
_SUITES = SUITES
_KEM_OF = KEM_OF


@dataclass(frozen=True, slots=True)
class Opened:
    """What opening an envelope yields."""

    header: EnvelopeHeader
    message: AvroModel
    envelope: bytes = field(repr=False)
    """The envelope as it came."""

    @property
    def envelope_sha256(self) -> bytes:
        """SHA-256 of `envelope`, hashed when asked: a gateway hashed it before opening."""
        return hashlib.sha256(self.envelope).digest()


@dataclass(frozen=True, slots=True)
class SealRequest:
    """One message to seal: to whom, and the ids and lifetime its envelope gets."""

    message: AvroModel
    recipients: tuple[str, ...]
    message_id: uuid.UUID | None = None
    correlation_id: uuid.UUID | None = None
    causation_id: uuid.UUID | None = None
    ttl: timedelta = DEFAULT_TTL
    traceparent: str | None = None
    """A canonical W3C traceparent (`broker.tracecontext`), format 3 only."""


class OpenCaches:
    """What an opener may remember between envelopes (format 2): the epoch keys it
    unwrapped and the batch signatures it verified. Bounded."""

    def __init__(self) -> None:
        self.epochs = ReceiverEpochs()
        self.statements = VerifiedStatements()
        self.segments = Segments()


def envelope_schema(version: int) -> SchemaInfo:
    """The `SecureEnvelope` schema envelopes of format ``version`` are written with: the
    current one from format 3, the earlier one (no ``traceparent``) for formats 1 and 2."""
    codec = default_codec()
    if version < FORMAT_VERSION:
        return codec.by_fingerprint(ENVELOPE_SCHEMA_V1)
    return codec.info(SecureEnvelope.avro_name)


def _schemas_v1() -> tuple[SchemaInfo, SchemaInfo]:
    info = envelope_schema(FORMAT_V1)
    return info, default_codec().record_info_in(info, EnvelopeHeader.avro_name)


def _wrap_info(message_id: uuid.UUID, recipient: str) -> bytes:
    """HPKE info (format 1): binds a wrapped key to one message and one recipient."""
    return WRAP_INFO_TAG + message_id.bytes + recipient.encode()


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
    format_version: int = FORMAT_VERSION,
    traceparent: str | None = None,
) -> bytes:
    """Sign ``message`` as ``sender`` and encrypt it to each of ``recipients``.

    ``message_id`` is random unless the caller picked one (a gateway records it first).
    One envelope alone costs its own key wraps and signature in either format; to seal
    many, use `broker.crypto.Sealer`, which shares them.

    Raises `PolicyDenied` if the policy forbids it, `UnknownParty` for a recipient not in
    the directory, `RecordTooLarge` for a payload that cannot fit an envelope.
    """
    message_id = message_id or uuid.uuid4()
    if format_version == FORMAT_V1:
        return seal_v1_from_parts(
            message, sender=sender, recipients=recipients, directory=directory, now=now, ttl=ttl,
            correlation_id=correlation_id, causation_id=causation_id, message_id=message_id,
            payload_key=os.urandom(PAYLOAD_KEY_BYTES), nonce=os.urandom(NONCE_BYTES),
        )  # fmt: skip
    if format_version not in BATCH_VERSIONS:
        raise LocalError(f"no envelope format version {format_version}", reason="FORMAT_VERSION")
    request = SealRequest(message, tuple(recipients), message_id, correlation_id, causation_id, ttl,
                          traceparent)  # fmt: skip
    header, payload = prepare_envelope(request, sender=sender, directory=directory, now=now,
                                       format_version=format_version)  # fmt: skip
    return seal_v2_batch([(header, payload)], sender=sender, directory=directory, now=now,
                       epochs=SenderEpochs(sender.party_id))[0]  # fmt: skip


def _checked_payload(
    message: AvroModel,
    sender: PartyKeys,
    names: tuple[str, ...],
    directory: Directory,
    now: datetime,
    ttl: timedelta,
    payload: bytes | None = None,
) -> tuple[bytes, uuid.UUID]:
    """The rules a sender checks before sealing (as a receiver will), and the payload's
    encoding and case id."""
    if not 0 < len(names) <= MAX_RECIPIENTS:
        raise LocalError(f"an envelope has 1 to {MAX_RECIPIENTS} recipients", reason="RECIPIENTS")
    if not timedelta(0) < ttl <= MAX_TTL:
        raise LocalError(f"time to live must be positive and at most {MAX_TTL}", reason="TTL")
    sender_role = directory.role(sender.party_id)
    policy.check(message.avro_name, sender_role, tuple(directory.role(r) for r in names))
    if directory.signing_key(sender.party_id, sender.signing_key_id, now) is None:
        raise LocalError(
            f"{sender.party_id}'s signing key {sender.signing_key_id} is not valid now in the directory",
            reason="SENDER_KEY_INVALID",
        )
    policy.check_sender_fields(message, sender.party_id, sender_role)
    policy.check_receipt_fields(message)
    policy.check_attachments(message, names)
    if payload is None:  # a payload given is a test playing a hostile sender: sent as it is
        payload = message.avro_bytes()
        # what every recipient would refuse as PAYLOAD_INVALID is refused here, before sealing
        info = default_codec().info(message.avro_name)
        check_item_limit(info, payload, max_items=MAX_PAYLOAD_ITEMS)
    if len(payload) > MAX_PAYLOAD_BYTES:
        raise RecordTooLarge(f"payload of {len(payload)} bytes exceeds {MAX_PAYLOAD_BYTES}")
    case_id = getattr(message, "case_id", None)
    if not isinstance(case_id, uuid.UUID):
        raise LocalError(f"{message.avro_name} has no case id", reason="NO_CASE_ID")
    return payload, case_id


def _header(request: SealRequest, sender: PartyKeys, names: tuple[str, ...], case_id: uuid.UUID,
            now: datetime, version: int, message_id: uuid.UUID) -> EnvelopeHeader:  # fmt: skip
    v1 = version == FORMAT_V1
    traceparent = request.traceparent if version >= FORMAT_VERSION else None
    if traceparent is not None and not _canonical_traceparent(traceparent):
        raise LocalError("traceparent is not a canonical W3C traceparent", reason="BAD_TRACEPARENT")
    return EnvelopeHeader.from_checked_values(
        {  # the sender's own values, checked above
            "format_version": version,
            "message_id": message_id,
            "message_type": request.message.avro_name,
            "payload_fingerprint": default_codec().info(request.message.avro_name).fingerprint,
            "sender": sender.party_id,
            "sender_key_id": sender.signing_key_id,
            "recipients": names,
            "case_id": case_id,
            "created_at": to_utc_millis(now),
            "expires_at": to_utc_millis(now + request.ttl),
            "correlation_id": request.correlation_id,
            "causation_id": request.causation_id,
            "key_wrap": KeyWrapMode.PER_MESSAGE if v1 else KeyWrapMode.EPOCH,
            "signature_scheme": SignatureScheme.ED25519
            if v1
            else SignatureScheme.ED25519_MERKLE_BATCH,
            "traceparent": traceparent,
        }
    )


def _canonical_traceparent(value: str) -> bool:
    return _TRACEPARENT.fullmatch(value) is not None


def prepare_envelope(request: SealRequest, *, sender: PartyKeys, directory: Directory,
            now: datetime, format_version: int = FORMAT_VERSION) -> tuple[EnvelopeHeader, bytes]:  # fmt: skip
    """A format-2 or -3 envelope's header and payload, after the sender's checks."""
    now = to_utc_millis(now)
    names = tuple(dict.fromkeys(request.recipients))
    payload, case_id = _checked_payload(request.message, sender, names, directory, now, request.ttl)
    message_id = request.message_id or uuid.uuid4()
    return _header(request, sender, names, case_id, now, format_version, message_id), payload


def seal_v2_batch(
    prepared: Sequence[tuple[EnvelopeHeader, bytes]],
    *,
    sender: PartyKeys,
    directory: Directory,
    now: datetime,
    epochs: SenderEpochs,
) -> list[bytes]:
    """Format-2 envelopes of prepared headers and payloads: each payload encrypted under
    its recipient set's epoch key, and one signature per batch of at most
    `MAX_BATCH_SIZE`. Tests pass hostile headers and payloads here to play an
    authenticated but hostile sender."""
    bodies = []
    for header, payload in prepared:
        epoch, nonce = epochs.next(header.recipients, directory, now)
        if not epoch.encoded:
            epoch.encoded = tuple(encode_wrapped_key(w) for w in epoch.wrapped_keys)
        header_bytes = encode_header(header)
        ciphertext = epoch.aead.encrypt(nonce, payload, AAD_TAG_V2 + header_bytes)
        bodies.append(encode_body(header_bytes, epoch.encoded, nonce, ciphertext))
    envelopes: list[bytes] = []
    for start in range(0, len(bodies), MAX_BATCH_SIZE):
        chunk = bodies[start : start + MAX_BATCH_SIZE]
        proofs, signature = sign_batch(chunk, sender.signing_key)
        envelopes += [
            body + encode_tail(p, signature) for body, p in zip(chunk, proofs, strict=True)
        ]
    for data in envelopes:
        if len(data) > MAX_ENVELOPE_BYTES:
            raise RecordTooLarge(f"envelope of {len(data)} bytes exceeds {MAX_ENVELOPE_BYTES}")
    return envelopes


def seal_v1_from_parts(
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
    """A format-1 envelope, with its random parts given. ``payload`` and
    ``header_overrides`` replace the message's encoding and header fields: tests use them
    to play a hostile but authenticated sender, the only party that can make such
    envelopes."""
    codec = default_codec()
    envelope_info, header_info = _schemas_v1()
    names = tuple(dict.fromkeys(recipients))
    payload, case_id = _checked_payload(message, sender, names, directory, now, ttl, payload)
    request = SealRequest(message, names, message_id, correlation_id, causation_id, ttl)
    header = EnvelopeHeader.model_validate(
        _header(request, sender, names, case_id, now, FORMAT_V1, message_id).model_dump()
        | dict(header_overrides or {})
    )
    header_record = header.to_avro()
    del header_record["traceparent"]  # not in format 1's schema
    header_bytes = codec.encode(header_info, header_record)
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
    record = unsigned.to_avro()
    record["header"] = header_record
    encoded = codec.encode(envelope_info, record)
    assert encoded.endswith(b"\x00")  # the empty signature is the last byte
    signed_part = encoded[:-1]
    signature = sender.signing_key.sign(SIGNATURE_TAG + signed_part)
    data = signed_part + write_bytes(signature)
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
    version = first_byte_value(data)
    if version is None:
        raise _reject(RejectReason.UNSUPPORTED_VERSION)  # 64 and up take two bytes; none exist
    return version


def _decode(data: bytes, caches: OpenCaches | None = None) -> WireEnvelope:
    try:
        segments = caches.segments if caches else None
        return decode_envelope(data, max_items=MAX_ENVELOPE_ITEMS, segments=segments)
    except DecodeError as exc:
        raise _reject(RejectReason.MALFORMED) from exc


def _check_shape(envelope: WireEnvelope, version: int) -> None:
    """Structure every envelope of its version has; a sender that breaks it made a bad
    envelope."""
    h = envelope.header
    if version == FORMAT_V1:
        expected = (KeyWrapMode.PER_MESSAGE, SignatureScheme.ED25519, False)
    else:
        expected = (KeyWrapMode.EPOCH, SignatureScheme.ED25519_MERKLE_BATCH, True)
    if (h.key_wrap, h.signature_scheme, envelope.batch_proof is not None) != expected:
        raise _reject(RejectReason.UNSUPPORTED_VERSION)
    recipients = h.recipients
    if not 0 < len(recipients) <= MAX_RECIPIENTS or len(set(recipients)) != len(recipients):
        raise _reject(RejectReason.MALFORMED)
    if tuple(w.recipient for w in envelope.wrapped_keys) != recipients:
        raise _reject(RejectReason.MALFORMED)
    if len(envelope.nonce) != NONCE_BYTES:
        raise _reject(RejectReason.MALFORMED)
    proof = envelope.batch_proof
    if proof is not None:
        if not 0 <= proof.leaf_index < proof.batch_size <= MAX_BATCH_SIZE:
            raise _reject(RejectReason.MALFORMED)
        if number_of(envelope.nonce) >= EPOCH_MAX_MESSAGES:
            raise _reject(RejectReason.MALFORMED)  # past the epoch's bound


def open_envelope(
    data: bytes,
    *,
    me: PartyKeys,
    directory: Directory,
    replay_guard: ReplayGuard,
    now: datetime,
    caches: OpenCaches | None = None,
) -> Opened:
    """Verify, decrypt and decode an envelope addressed to ``me``, or raise
    `EnvelopeRejected` with the reason of the first check that failed. ``caches`` lets
    envelopes of one batch or epoch share a signature check and a key unwrap."""
    if len(data) > MAX_ENVELOPE_BYTES:
        raise _reject(RejectReason.TOO_LARGE)
    version = _version(data)
    if version not in SUPPORTED_VERSIONS:
        raise _reject(RejectReason.UNSUPPORTED_VERSION)
    envelope = _decode(data, caches)
    _check_shape(envelope, version)
    h = envelope.header

    # who sent it: the key comes from the directory, never from the envelope
    if h.sender not in directory.parties:
        raise _reject(RejectReason.UNKNOWN_SENDER)
    verification_key = directory.signing_key(h.sender, h.sender_key_id, h.created_at)
    if verification_key is None:
        raise _reject(RejectReason.SENDER_KEY_INVALID)
    try:
        verify_signature(envelope, data, verification_key, caches)
    except (InvalidSignature, ProofError):
        raise _reject(RejectReason.BAD_SIGNATURE) from None

    # authenticated from here on: the rest are the sender's statements, checked against rules
    try:
        return _open_authenticated(data, envelope, me, directory, replay_guard, now, caches)
    except EnvelopeRejected as exc:
        exc.authenticated_header = h  # the sender is known: a gateway may answer it
        raise


def verify_signature(envelope: WireEnvelope, data: bytes, key: Ed25519PublicKey,
                     caches: OpenCaches | None = None) -> None:  # fmt: skip
    """Raise `InvalidSignature` (or `ProofError`) unless ``key`` signed the envelope
    ``data`` decodes to: directly (format 1) or as part of a signed batch (format 2)."""
    if len(envelope.signature) != SIGNATURE_BYTES:
        raise InvalidSignature
    if envelope.batch_proof is None:
        key.verify(envelope.signature, SIGNATURE_TAG + data[: envelope.signature_start])
        return
    h = envelope.header
    statement = statement_of(data[: envelope.body_end], envelope.batch_proof)
    statements = caches.statements if caches else VerifiedStatements()
    statements.verify((h.sender, h.sender_key_id), key, statement, envelope.signature)


def _open_authenticated(
    data: bytes,
    envelope: WireEnvelope,
    me: PartyKeys,
    directory: Directory,
    replay_guard: ReplayGuard,
    now: datetime,
    caches: OpenCaches | None,
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
        replay_guard.claim(h.sender, h.message_id, h.expires_at + MAX_CLOCK_SKEW, now)
    except ReplayDetected:
        raise _reject(RejectReason.REPLAY) from None

    header_bytes = data[: envelope.header_end]
    if envelope.batch_proof is None:
        payload = _decrypt_v1(envelope, me, header_bytes)
    else:
        payload = _decrypt_v2(envelope, me, header_bytes, caches)
    message = _payload(h, payload, directory)
    return Opened(h, message, data)


def _my_wrap(envelope: WireEnvelope, me: PartyKeys) -> tuple[Wrap, DecryptionKey]:
    wrapped = next(w for w in envelope.wrapped_keys if w.recipient == me.party_id)
    key = me.decryption_keys.get(wrapped.key_id)
    if key is None or _KEM_OF.get(key.algorithm) is not wrapped.kem:
        raise _reject(RejectReason.DECRYPT_FAILED)
    return wrapped, key


def _decrypt_v1(envelope: WireEnvelope, me: PartyKeys, header_bytes: bytes) -> bytes:
    wrapped, key = _my_wrap(envelope, me)
    try:
        payload_key = _SUITES[wrapped.kem].decrypt(
            wrapped.wrapped,
            key.private_key,
            info=_wrap_info(envelope.header.message_id, me.party_id),
        )
        if len(payload_key) != PAYLOAD_KEY_BYTES:
            raise _reject(RejectReason.DECRYPT_FAILED)
        return AESGCM(payload_key).decrypt(
            envelope.nonce, envelope.ciphertext, AAD_TAG + header_bytes
        )
    except (InvalidTag, ValueError):
        raise _reject(RejectReason.DECRYPT_FAILED) from None


def _decrypt_v2(envelope: WireEnvelope, me: PartyKeys, header_bytes: bytes,
                caches: OpenCaches | None) -> bytes:  # fmt: skip
    wrapped, key = _my_wrap(envelope, me)
    sender = envelope.header.sender
    ident = (sender, me.party_id, wrapped.key_id, wrapped.kem, wrapped.wrapped)
    try:
        aead = caches.epochs.get(ident) if caches else None
        if aead is None:
            epoch_key = _SUITES[wrapped.kem].decrypt(
                wrapped.wrapped, key.private_key, info=epoch_wrap_info(sender, me.party_id)
            )
            if len(epoch_key) != PAYLOAD_KEY_BYTES:
                raise _reject(RejectReason.DECRYPT_FAILED)
            aead = AESGCM(epoch_key)
            if caches:
                caches.epochs.put(ident, aead)
        return aead.decrypt(envelope.nonce, envelope.ciphertext, AAD_TAG_V2 + header_bytes)
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
        if writer is codec.info(h.message_type):  # the current schema: one checked pass
            message = model.from_avro_bytes(payload, max_items=MAX_PAYLOAD_ITEMS)
        else:  # an earlier version: fastavro resolves it to the current one
            record = codec.decode(
                h.message_type, payload, writer=writer, max_items=MAX_PAYLOAD_ITEMS
            )
            message = model.from_avro(record)
    except (DecodeError, ValidationError):
        raise _reject(RejectReason.PAYLOAD_INVALID) from None
    if getattr(message, "case_id", None) != h.case_id:
        raise _reject(RejectReason.PAYLOAD_INVALID)  # the payload must be about the header's case
    try:  # it names another sender, (a receipt) a type that is not of the contract, or its
        # attachments break the rules of their type or name other recipients (§11.2)
        policy.check_sender_fields(message, h.sender, directory.role(h.sender))
        policy.check_receipt_fields(message)
        policy.check_attachments(message, h.recipients)
    except PolicyDenied:
        raise _reject(RejectReason.PAYLOAD_INVALID) from None
    return message
