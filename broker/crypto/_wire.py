"""The `SecureEnvelope`'s Avro binary form, written and read by hand for the hot path.

The codec (`broker.contract._codec`: skim, then fastavro, then pydantic) is the reference and stays
the way every other record is read. The envelope is read for every message a gateway
receives, and that general path costs several times more than walking this one fixed
layout, so this module does it directly — and strictly: it accepts exactly the bytes the
reference accepts (canonical form, docs/ENVELOPE.md §2.1; the models' rules for party ids,
type names and uuids) and yields the same values. ``tests/unit/crypto/test_wire.py`` holds it to that,
on valid envelopes and on mutated ones.

Layout (field order of ``nl.lvv.v1.SecureEnvelope``)::

    header{format_version, message_id, message_type, payload_fingerprint, sender,
           sender_key_id, recipients[], case_id, created_at, expires_at, correlation_id?,
           causation_id?, key_wrap, signature_scheme, traceparent? (format 3 on)}
    wrapped_keys[{recipient, key_id, kem, wrapped}]  nonce  ciphertext
    batch_proof?{leaf_index, batch_size, path[fixed 32]}  signature
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any, Literal, NamedTuple, TypeVar

from broker.contract.binary import INT32 as _INT32
from broker.contract.binary import INT64 as _INT64
from broker.contract.binary import ONE_BYTE_VALUES, read_varint, write_bytes, write_long
from broker.errors import DecodeError
from broker.models import (
    AVRO_FULL_NAME_PATTERN,
    PARTY_ID_PATTERN,
    TRACEPARENT_PATTERN,
    EnvelopeHeader,
    Kem,
    KeyWrapMode,
    SignatureScheme,
)

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_PARTY_ID = re.compile(PARTY_ID_PATTERN)
_FULL_NAME = re.compile(AVRO_FULL_NAME_PATTERN)
_TRACEPARENT = re.compile(TRACEPARENT_PATTERN)
_ZERO_TRACE, _ZERO_SPAN = "0" * 32, "0" * 16
_KEY_WRAPS = tuple(KeyWrapMode)
_SCHEMES = tuple(SignatureScheme)
_KEMS = tuple(Kem)
SHA256_BYTES = 32

TRACE_FORMAT = 3
"""The first format whose header ends with ``traceparent`` (schemas/avro/nl.lvv.v1.SecureEnvelope;
formats 1 and 2 are written with schemas/avro/history/nl.lvv.v1.SecureEnvelope.1, without it)."""

SEGMENT_MAX_BYTES = 4096
"""Longest run of bytes `Segments` remembers: a header's sender part and the wrapped keys of
an epoch to the widest recipient list on X25519 (hybrid wraps of 16 recipients are not)."""

SEGMENTS_KEPT = 16
"""Runs remembered per kind: a receiver hears from a handful of senders and epochs at once."""


class Wrap(NamedTuple):
    """A ``nl.lvv.v1.WrappedKey``: the payload key wrapped for one recipient."""

    recipient: str
    key_id: str
    kem: Kem
    wrapped: bytes


class Proof(NamedTuple):
    """A ``nl.lvv.v1.BatchProof``: where an envelope sits in its signed batch."""

    leaf_index: int
    batch_size: int
    path: tuple[bytes, ...]


@dataclass(frozen=True, slots=True)
class WireEnvelope:
    """A decoded envelope and where its parts sit in the bytes it came from."""

    header: EnvelopeHeader
    wrapped_keys: tuple[Wrap, ...]
    nonce: bytes
    ciphertext: bytes
    batch_proof: Proof | None
    signature: bytes
    header_end: int
    """``data[:header_end]`` is the encoded header: the payload's associated data."""
    body_end: int
    """``data[:body_end]`` is everything before the batch proof: a batch leaf's content."""
    signature_start: int
    """``data[:signature_start]`` is everything but the signature: what a v1 signature covers."""


# --- writing -----------------------------------------------------------------------------


def _string(value: str) -> bytes:
    return write_bytes(value.encode())


def _optional_uuid(value: uuid.UUID | None) -> bytes:
    return b"\x00" if value is None else b"\x02" + _string(str(value))


def _millis(moment: datetime) -> int:
    delta = moment - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1000 + delta.microseconds // 1000


def _array(items: Sequence[bytes]) -> bytes:
    """One block of all items, then the end marker: the canonical form."""
    return (write_long(len(items)) + b"".join(items) if items else b"") + b"\x00"


def _optional_string(value: str | None) -> bytes:
    return b"\x00" if value is None else b"\x02" + _string(value)


def encode_header(h: EnvelopeHeader) -> bytes:
    sender_part = (h.message_type, h.payload_fingerprint, h.sender, h.sender_key_id, h.recipients)
    try:
        encoded_sender_part = _sender_part_bytes(*sender_part)
    except TypeError:  # unhashable: a test's hostile header with a list of recipients
        encoded_sender_part = _sender_part_bytes.__wrapped__(*sender_part)
    return b"".join((
        write_long(h.format_version), _string(str(h.message_id)), encoded_sender_part,
        _string(str(h.case_id)), write_long(_millis(h.created_at)),
        write_long(_millis(h.expires_at)), _optional_uuid(h.correlation_id),
        _optional_uuid(h.causation_id), write_long(_KEY_WRAPS.index(h.key_wrap)),
        write_long(_SCHEMES.index(h.signature_scheme)),
    )) + _trace_part(h)  # fmt: skip


def _trace_part(h: EnvelopeHeader) -> bytes:
    if h.format_version >= TRACE_FORMAT:
        return _optional_string(h.traceparent)
    if h.traceparent is not None:
        raise ValueError(f"format {h.format_version} has no traceparent field")
    return b""


@lru_cache(maxsize=SEGMENTS_KEPT * 16)
def _sender_part_bytes(message_type: str, fingerprint: bytes, sender: str, sender_key_id: str,
                       recipients: Sequence[str]) -> bytes:  # fmt: skip
    """The header from its message type to its recipients: the same for every message of
    one type from one sender's key to one recipient list, so a sender encodes it once."""
    return b"".join((
        _string(message_type), fingerprint, _string(sender), _string(sender_key_id),
        _array([_string(r) for r in recipients]),
    ))  # fmt: skip


def encode_wrapped_key(w: Wrap) -> bytes:
    return (
        _string(w.recipient) + _string(w.key_id) + write_long(_KEMS.index(w.kem)) + write_bytes(w.wrapped)
    )  # fmt: skip


def encode_body(
    header: bytes, wrapped_keys: Sequence[bytes], nonce: bytes, ciphertext: bytes
) -> bytes:
    """The envelope up to the batch proof, from its encoded header and wrapped keys."""
    return header + _array(wrapped_keys) + write_bytes(nonce) + write_bytes(ciphertext)


def encode_tail(proof: Proof | None, signature: bytes) -> bytes:
    """The batch proof and the signature: what follows the body."""
    if proof is None:
        return b"\x00" + write_bytes(signature)
    return (
        b"\x02" + write_long(proof.leaf_index) + write_long(proof.batch_size)
        + _array(list(proof.path)) + write_bytes(signature)
    )  # fmt: skip


# --- reading -----------------------------------------------------------------------------


class Segments:
    """Runs of envelope bytes that repeat from one envelope to the next, with what they read
    as: the header from its message type to its recipients (one per sender, key and
    recipient list) and the wrapped keys (one per epoch). Reading the same bytes again
    gives the same values, so a run found at the reader's position is taken as read — its
    checks were made when it was first read. An opener keeps one (`OpenCaches`); bounded."""

    __slots__ = ("headers", "wraps")

    def __init__(self) -> None:
        self.headers: list[tuple[bytes, int, Any]] = []
        self.wraps: list[tuple[bytes, int, Any]] = []

    @staticmethod
    def find(
        kept: list[tuple[bytes, int, Any]], data: bytes, pos: int
    ) -> tuple[bytes, int, Any] | None:
        for entry in kept:
            if data.startswith(entry[0], pos):
                return entry
        return None

    @staticmethod
    def keep(kept: list[tuple[bytes, int, Any]], run: bytes, items: int, value: Any) -> None:
        if len(run) <= SEGMENT_MAX_BYTES:
            kept.insert(0, (run, items, value))
            del kept[SEGMENTS_KEPT:]


class _Reader:
    """A cursor over untrusted bytes. Every read checks bounds and canonical form and
    raises `DecodeError` on the first violation."""

    __slots__ = ("data", "items_left", "pos", "segments")

    def __init__(self, data: bytes, max_items: int, segments: Segments | None = None) -> None:
        self.data = data
        self.pos = 0
        self.items_left = max_items
        self.segments = segments

    def long(self, bounds: tuple[int, int] = _INT64) -> int:
        data, pos = self.data, self.pos
        if pos < len(data):  # one byte, looked up here: most varints of an envelope
            byte = data[pos]
            if byte < 0x80:
                value = ONE_BYTE_VALUES[byte]
                if bounds[0] <= value <= bounds[1]:
                    self.pos = pos + 1
                    return value
        value, self.pos = read_varint(data, pos, bounds)
        return value

    def take(self, n: int) -> bytes:
        start = self.pos
        end = start + n
        if n < 0 or end > len(self.data):
            raise DecodeError(f"truncated at byte {start}: {n} more bytes claimed")
        self.pos = end
        return self.data[start:end]

    def bytes(self) -> bytes:
        return self.take(self.long((0, len(self.data))))

    def string(self) -> str:
        try:
            return self.bytes().decode()
        except UnicodeDecodeError as exc:
            raise DecodeError(f"invalid UTF-8 before byte {self.pos}") from exc

    def matching(self, pattern: re.Pattern[str], what: str) -> str:
        value = self.string()
        if not pattern.fullmatch(value):
            raise DecodeError(f"{what} {value[:80]!r} not in its required form")
        return value

    def read_uuid(self) -> uuid.UUID:
        return uuid.UUID(self.matching(_UUID, "uuid"))

    def optional_uuid(self) -> uuid.UUID | None:
        return self.read_uuid() if self.long((0, 1)) else None

    def index(self, count: int) -> int:
        """An enum symbol's index."""
        return self.long((0, count - 1))

    def timestamp(self) -> datetime:
        millis = self.long()
        try:
            return _EPOCH + timedelta(milliseconds=millis)
        except OverflowError as exc:
            raise DecodeError(f"timestamp {millis} out of range") from exc

    def count(self) -> int:
        """An array's item count: one block, its end marker read after the items."""
        n = self.long((0, len(self.data)))
        self.items_left -= n
        if self.items_left < 0:
            raise DecodeError("more array items than allowed")
        return n

    def end_of_array(self, n: int) -> None:
        if n:
            self.long((0, 0))  # a second block's count is out of range


def _header(r: _Reader) -> EnvelopeHeader:
    version = r.long(_INT32)
    message_id = r.read_uuid()
    message_type, fingerprint, sender, sender_key_id, recipients = _sender_part(r)
    return EnvelopeHeader.from_checked_values({
        "format_version": version, "message_id": message_id, "message_type": message_type,
        "payload_fingerprint": fingerprint, "sender": sender, "sender_key_id": sender_key_id,
        "recipients": recipients, "case_id": r.read_uuid(), "created_at": r.timestamp(),
        "expires_at": r.timestamp(), "correlation_id": r.optional_uuid(),
        "causation_id": r.optional_uuid(), "key_wrap": _KEY_WRAPS[r.index(len(_KEY_WRAPS))],
        "signature_scheme": _SCHEMES[r.index(len(_SCHEMES))],
        "traceparent": _traceparent(r) if version >= TRACE_FORMAT else None,
    })  # fmt: skip


def _traceparent(r: _Reader) -> str | None:
    if not r.long((0, 1)):
        return None
    value = r.matching(_TRACEPARENT, "traceparent")
    if value[3:35] == _ZERO_TRACE or value[36:52] == _ZERO_SPAN:
        raise DecodeError("traceparent with an all-zero id")
    return value


_T = TypeVar("_T")


def _remembered(r: _Reader, kind: Literal["headers", "wraps"],
                read: Callable[[_Reader], tuple[_T, int]]) -> _T:  # fmt: skip
    """``read`` (a value and the array items it holds) at the reader's position, or the
    value of the same run of bytes read before, from the reader's `Segments`."""
    start, segments = r.pos, r.segments
    if segments is None:
        return read(r)[0]
    kept = getattr(segments, kind)
    found = Segments.find(kept, r.data, start)
    if found is not None:
        run, n, value = found
        r.items_left -= n
        if r.items_left < 0:
            raise DecodeError("more array items than allowed")
        r.pos = start + len(run)
        return value  # type: ignore[no-any-return]
    value, n = read(r)
    Segments.keep(kept, r.data[start : r.pos], n, value)
    return value


SenderPart = tuple[str, bytes, str, str, tuple[str, ...]]


def _sender_part(r: _Reader) -> SenderPart:
    """The header from its message type to its recipients: the same for every message of
    one type from one sender's key to one recipient list."""
    return _remembered(r, "headers", _read_sender_part)


def _read_sender_part(r: _Reader) -> tuple[SenderPart, int]:
    message_type = r.matching(_FULL_NAME, "message type")
    fingerprint = r.take(SHA256_BYTES)
    sender = r.matching(_PARTY_ID, "party id")
    sender_key_id = r.string()
    n = r.count()
    recipients = tuple(r.matching(_PARTY_ID, "party id") for _ in range(n))
    r.end_of_array(n)
    return (message_type, fingerprint, sender, sender_key_id, recipients), n


def _wrapped_keys(r: _Reader) -> tuple[Wrap, ...]:
    """The wrapped keys: the same for every envelope of one epoch."""
    return _remembered(r, "wraps", _read_wrapped_keys)


def _read_wrapped_keys(r: _Reader) -> tuple[tuple[Wrap, ...], int]:
    n = r.count()
    wrapped_keys = tuple(_wrapped_key(r) for _ in range(n))
    r.end_of_array(n)
    return wrapped_keys, n


def _wrapped_key(r: _Reader) -> Wrap:
    return Wrap(
        r.matching(_PARTY_ID, "party id"), r.string(), _KEMS[r.index(len(_KEMS))], r.bytes()
    )


def _batch_proof(r: _Reader) -> Proof | None:
    if not r.long((0, 1)):
        return None
    leaf_index, batch_size = r.long(), r.long()
    n = r.count()
    path = tuple(r.take(SHA256_BYTES) for _ in range(n))
    r.end_of_array(n)
    return Proof(leaf_index, batch_size, path)


def decode_envelope(
    data: bytes, *, max_items: int, segments: Segments | None = None
) -> WireEnvelope:
    """Read an envelope, or raise `DecodeError`: truncated, trailing bytes, not canonical,
    a value the contract's models refuse, or more than ``max_items`` array items in all.
    ``segments`` remembers parts that repeat between envelopes, to read them once."""
    return _read_envelope(_Reader(data, max_items, segments))


def _read_envelope(r: _Reader) -> WireEnvelope:
    header = _header(r)
    header_end = r.pos
    wrapped_keys = _wrapped_keys(r)
    nonce, ciphertext = r.bytes(), r.bytes()
    body_end = r.pos
    proof = _batch_proof(r)
    signature_start = r.pos
    signature = r.bytes()
    if r.pos != len(r.data):
        raise DecodeError(f"{len(r.data) - r.pos} trailing bytes")
    return WireEnvelope(header, wrapped_keys, nonce, ciphertext, proof, signature,
                        header_end, body_end, signature_start)  # fmt: skip


# --- layout, for fuzzers -------------------------------------------------------------------


class _SpanRecorder(_Reader):
    """The reader, noting where each varint it reads starts and ends."""

    def __init__(self, data: bytes, max_items: int) -> None:
        super().__init__(data, max_items)
        self.spans: list[tuple[int, int]] = []

    def long(self, bounds: tuple[int, int] = _INT64) -> int:
        start = self.pos
        value = super().long(bounds)
        self.spans.append((start, self.pos))
        return value


def varint_spans(data: bytes, max_items: int) -> tuple[tuple[int, int], ...]:
    """Where every varint of the well-formed envelope ``data`` starts and ends, in the
    order `decode_envelope` reads them: what a fuzzer mutates to reach each length and
    count check. DecodeError if ``data`` is not a whole envelope."""
    recorder = _SpanRecorder(data, max_items)
    _read_envelope(recorder)
    return tuple(recorder.spans)
