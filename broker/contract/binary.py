"""Avro's binary primitives, written once: zig-zag varints (``int``, ``long``) and
length-prefixed ``bytes``/``string``. Reading is strict, for untrusted bytes; the schema
skimmer (`broker.contract._skim`) and the envelope's wire reader (`broker.crypto._wire`)
keep their own bounded cursors on top of it."""

from __future__ import annotations

from broker.errors import DecodeError

INT32 = (-(2**31), 2**31 - 1)
INT64 = (-(2**63), 2**63 - 1)

ONE_BYTE_VALUES: tuple[int, ...] = tuple((z >> 1) ^ -(z & 1) for z in range(0x80))
"""The value of each one-byte varint (bytes 0x00-0x7F): the common case, looked up (also
inline, by the hot readers that cannot afford a call per varint)."""


def read_varint(data: bytes, pos: int, bounds: tuple[int, int] = INT64) -> tuple[int, int]:
    """The value of the varint at ``pos`` and the position after it. Refuses a varint that
    is truncated, longer than 64 bits, not in its shortest (canonical) form, or whose value
    lies outside ``bounds``."""
    if pos < len(data) and data[pos] < 0x80:  # one byte: the common case
        value = ONE_BYTE_VALUES[data[pos]]
        if bounds[0] <= value <= bounds[1]:
            return value, pos + 1
    start, shift, z = pos, 0, 0
    while True:
        if pos >= len(data):
            raise DecodeError(f"truncated varint at byte {start}")
        byte = data[pos]
        pos += 1
        z |= (byte & 0x7F) << shift
        if not byte & 0x80:
            break
        shift += 7
        if shift > 63:
            raise DecodeError(f"varint too long at byte {start}")
    if byte == 0 and pos - start > 1:
        raise DecodeError(f"non-canonical varint at byte {start}")
    value = (z >> 1) ^ -(z & 1)
    if not bounds[0] <= value <= bounds[1]:
        raise DecodeError(f"integer {value} out of range at byte {start}")
    return value, pos


def first_byte_value(data: bytes) -> int | None:
    """The value of a one-byte varint at the start of ``data``; None if ``data`` is empty
    or starts with a longer varint."""
    if not data or data[0] & 0x80:
        return None
    return ONE_BYTE_VALUES[data[0]]


def write_long(n: int) -> bytes:
    """Avro ``int``/``long``: zig-zag, then 7 bits a byte, least significant first."""
    z = (n << 1) ^ (n >> 63)
    out = bytearray()
    while z > 0x7F:
        out.append((z & 0x7F) | 0x80)
        z >>= 7
    out.append(z)
    return bytes(out)


def write_bytes(value: bytes) -> bytes:
    """Avro ``bytes``: the length, then the bytes."""
    return write_long(len(value)) + value
