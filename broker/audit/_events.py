"""Audit events on the wire: their bytes, signatures and hashes (docs/AUDIT.md).

An event is the Avro encoding of `nl.lvv.v1.AuditEvent`. Like an envelope, its signature is
its last field, so the signed part is exactly the bytes before it. Two formats, told apart
by the signature field's length (a V1 signature is exactly 64 bytes; a V2 one is longer and
starts with its version byte):

    signed part   = the event's encoding minus its signature field
    V1 signature  = Ed25519(key, "LVVX-AUDIT-V1" 0x00 || signed part)          — one per event
    V2 signature  = 0x02 || batch size (u16) || leaf index (u16) || path || batch signature
    batch leaf    = RFC 6962 leaf hash of "LVVX-AUDIT-LEAF-V2" 0x00 || signed part
    batch sig.    = Ed25519(key, "LVVX-AUDIT-BATCH-V2" 0x00 || gateway || first seq
                            || batch size || Merkle root of the batch's leaves)

The gateway writes V2: one signature per write batch (`sign_batch`), each event carrying its
inclusion path, so any single event (e.g. in an inclusion proof) is still checkable by anyone
with the gateway's key. A verifier remembers the batch signatures it verified
(`VerifiedBatches`), so a batch's later events cost hashes, not a signature check.

What the chain covers depends on the format, because a V2 signature depends on the events
after it in its batch: an event's chain hash (the next event's ``prev_hash``) and its
checkpoint leaf are over the whole encoding for V1 and over the signed part for V2
(`covered`). V1 events, written by earlier releases, stay valid forever (`sign_v1`).
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

from pydantic import ValidationError

from broker.contract import default_codec
from broker.contract.binary import write_bytes
from broker.crypto import (
    SignatureInvalid,
    SigningKey,
    VerifyKey,
    raw_public_key,
    sign_tagged,
    verify_tagged,
)
from broker.errors import DecodeError, RemoteError
from broker.merkle import ProofError, leaf_hash, root_and_proofs, root_from_inclusion
from broker.models import AuditEvent

AUDIT_SIGNATURE_TAG = b"LVVX-AUDIT-V1\x00"
"""V1: what a single event's signature signs, before its signed part."""

AUDIT_BATCH_TAG = b"LVVX-AUDIT-BATCH-V2\x00"
AUDIT_LEAF_TAG = b"LVVX-AUDIT-LEAF-V2\x00"
"""V2 domain separation: what a batch signature signs, and the content of a batch's leaf
(never the same bytes as an envelope batch's, a checkpoint's leaf or a V1 statement)."""

V1_SIGNATURE_BYTES = 64
"""A V1 signature field is a bare Ed25519 signature; every later format is longer."""

FORMAT_V2 = 0x02
"""The first byte of a V2 signature field."""

_V2_FIXED = 1 + 2 + 2 + 64  # version, batch size, leaf index, signature

MAX_AUDIT_BATCH = 1024
"""Events under one batch signature at most: a path has at most 10 hashes (a V2 signature
field of at most 389 bytes). A larger write is signed in several batches."""

MAX_VERIFIED_BATCHES = 4096
"""Verified batch signatures a verifier remembers (least recently used out)."""

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


EARLIER_SCHEMA = bytes.fromhex("14d0bfa50961568d25b6ab5a1a980639bfc2e9f63d0cad53506dcaf5408fd960")
"""Fingerprint of the `AuditEvent` of releases before trace context (schemas/avro/history/
nl.lvv.v1.AuditEvent.1.avsc: no ``traceparent``, ``parent_span_id``; docs/AUDIT.md §1.1)."""


def decode(data: bytes) -> AuditEvent:
    """An event of the current schema or, failing that, of the earlier one (read with the
    two trace fields null). Never both: after ``checkpoint`` the current schema has a union
    index (``0x00``/``0x02``) where the earlier has the signature's length (≥ 64: ``0x80``
    and up), so bytes of one never decode under the other."""
    codec = default_codec()
    try:
        try:
            record = codec.decode(AuditEvent.avro_name, data, max_items=MAX_AUDIT_EVENT_ITEMS)
        except DecodeError:
            record = codec.decode(AuditEvent.avro_name, data, max_items=MAX_AUDIT_EVENT_ITEMS,
                                  writer=codec.by_fingerprint(EARLIER_SCHEMA))  # fmt: skip
        return AuditEvent.from_avro(record)
    except (DecodeError, ValidationError) as exc:
        raise BadAuditEvent("not an audit event") from exc


def unsigned_part(unsigned: bytes) -> bytes:
    """The signed part of an event encoded with an empty signature: every byte before that
    (empty) field, whose encoding is its single length byte."""
    if not unsigned.endswith(b"\x00"):
        raise ValueError("the event must be encoded with an empty signature")
    return unsigned[:-1]


def signed_part(event: AuditEvent, data: bytes) -> bytes:
    """The bytes of ``data`` (which decodes to ``event``) before its signature field."""
    field_bytes = write_bytes(event.signature)
    if not data.endswith(field_bytes):
        raise BadAuditEvent(f"event {event.seq} of {event.gateway} does not end in its signature")
    return data[: len(data) - len(field_bytes)]


def is_v1(event: AuditEvent) -> bool:
    return len(event.signature) == V1_SIGNATURE_BYTES


def covered(event: AuditEvent, data: bytes) -> bytes:
    """What the chain hash and the checkpoint leaf are over: all of a V1 event, the signed
    part of a V2 event (its signature depends on the events after it in its batch)."""
    return data if is_v1(event) else signed_part(event, data)


def event_hash(event: AuditEvent, data: bytes) -> bytes:
    """The chain hash of an event: the next event's ``prev_hash``."""
    return hashlib.sha256(covered(event, data)).digest()


def chain_leaf(event: AuditEvent, data: bytes) -> bytes:
    """The event's RFC 6962 leaf hash in its gateway's tree (checkpoints, inclusion proofs)."""
    return leaf_hash(covered(event, data))


# --- V2: one signature per batch ---------------------------------------------------------------


def batch_leaf(signed: bytes) -> bytes:
    return leaf_hash(AUDIT_LEAF_TAG + signed)


def batch_statement(gateway: str, first_seq: int, batch_size: int, root: bytes) -> bytes:
    """What a batch signature signs after `AUDIT_BATCH_TAG`: whose chain, where in it the
    batch starts, how many events it has, and their root — so a signature stands for one
    batch of one gateway's chain and nothing else."""
    name = gateway.encode()
    return (
        len(name).to_bytes(2, "big") + name + first_seq.to_bytes(8, "big")
        + batch_size.to_bytes(8, "big") + root
    )  # fmt: skip


def sign_batch(signed: Sequence[bytes], gateway: str, first_seq: int,
               key: SigningKey) -> list[bytes]:  # fmt: skip
    """The encodings of the events whose signed parts are ``signed`` (the events of
    ``gateway``'s chain from ``first_seq`` on), with one signature per `MAX_AUDIT_BATCH`."""
    out: list[bytes] = []
    for start in range(0, len(signed), MAX_AUDIT_BATCH):
        chunk = signed[start : start + MAX_AUDIT_BATCH]
        root, paths = root_and_proofs([batch_leaf(s) for s in chunk])
        statement = batch_statement(gateway, first_seq + start, len(chunk), root)
        signature = sign_tagged(key, AUDIT_BATCH_TAG, statement)
        head = bytes([FORMAT_V2]) + len(chunk).to_bytes(2, "big")
        for index, (part, path) in enumerate(zip(chunk, paths, strict=True)):
            field = head + index.to_bytes(2, "big") + b"".join(path) + signature
            out.append(part + write_bytes(field))
    return out


def sign(event: AuditEvent, key: SigningKey) -> AuditEvent:
    """``event`` signed as a batch of its own (V2)."""
    signed = unsigned_part(encode(event.model_copy(update={"signature": b""})))
    return decode(sign_batch([signed], event.gateway, event.seq, key)[0])


class VerifiedBatches:
    """Batch signatures this verifier has checked, by gateway, key, statement and signature.
    Bounded; least recently used out. A hit stands for exactly the verification it saves."""

    def __init__(self, capacity: int = MAX_VERIFIED_BATCHES) -> None:
        self.capacity = capacity
        self._seen: OrderedDict[tuple[bytes, bytes, bytes], None] = OrderedDict()

    def verify(self, key: VerifyKey, statement: bytes, signature: bytes) -> None:
        """Raise `SignatureInvalid` unless ``signature`` is ``key``'s over ``statement``
        (which names the gateway)."""
        ident = (raw_public_key(key), statement, signature)
        if ident in self._seen:
            self._seen.move_to_end(ident)
            return
        verify_tagged(key, signature, AUDIT_BATCH_TAG, statement)
        self._seen[ident] = None
        while len(self._seen) > self.capacity:
            self._seen.popitem(last=False)


def _verify_v2(event: AuditEvent, data: bytes, key: VerifyKey, batches: VerifiedBatches) -> None:
    field = event.signature
    paths = len(field) - _V2_FIXED
    if len(field) < _V2_FIXED or field[0] != FORMAT_V2 or paths % 32:
        raise SignatureInvalid("not a V2 audit signature")
    size, index = int.from_bytes(field[1:3], "big"), int.from_bytes(field[3:5], "big")
    if not 0 < size <= MAX_AUDIT_BATCH or index > event.seq:
        raise SignatureInvalid("not a batch this event can be in")
    path = [field[i : i + 32] for i in range(5, 5 + paths, 32)]
    try:
        root = root_from_inclusion(batch_leaf(signed_part(event, data)), index, size, path)
    except ProofError:
        raise SignatureInvalid("the batch path leads to no root") from None
    statement = batch_statement(event.gateway, event.seq - index, size, root)
    batches.verify(key, statement, field[-64:])


def verify(event: AuditEvent, data: bytes, key: VerifyKey,
           batches: VerifiedBatches | None = None) -> None:  # fmt: skip
    """Raise `BadAuditEvent` unless ``key`` signed ``event`` (decoded from ``data``), alone
    (V1) or in a batch (V2: remembered in ``batches``, if given)."""
    try:
        if is_v1(event):
            # the bytes as they came (canonical, so the same as re-encoding the decoded event
            # under the schema it was written with: the earlier one, for real V1 events)
            verify_tagged(key, event.signature, AUDIT_SIGNATURE_TAG, signed_part(event, data))
        else:
            _verify_v2(event, data, key, batches if batches is not None else VerifiedBatches(1))
    except SignatureInvalid:
        raise BadAuditEvent(f"bad signature on event {event.seq} of {event.gateway}") from None


def signed_by(event: AuditEvent, data: bytes, key: VerifyKey,
              batches: VerifiedBatches | None = None) -> bool:  # fmt: skip
    """`verify` as a question: did ``key`` sign ``event``?"""
    try:
        verify(event, data, key, batches)
    except BadAuditEvent:
        return False
    return True


# --- V1: one signature per event, as earlier releases wrote ------------------------------------


def v1_signed_part(event: AuditEvent) -> bytes:
    return unsigned_part(encode(event.model_copy(update={"signature": b""})))


def sign_v1(event: AuditEvent, key: SigningKey) -> AuditEvent:
    """``event`` signed alone, as releases before batch signatures did: for tests of chains
    they wrote, which verifiers must accept forever."""
    signature = sign_tagged(key, AUDIT_SIGNATURE_TAG, v1_signed_part(event))
    return event.model_copy(update={"signature": signature})
