"""Avro's zig-zag varint, read from untrusted bytes: the one reader both the schema skimmer
(`broker._skim`) and the envelope's wire decoder (`broker.crypto._wire`) use."""

from __future__ import annotations

from broker._errors import DecodeError

INT32 = (-(2**31), 2**31 - 1)
INT64 = (-(2**63), 2**63 - 1)


def read_varint(data: bytes, pos: int, bounds: tuple[int, int] = INT64) -> tuple[int, int]:
    """The value of the varint at ``pos`` and the position after it. Refuses a varint that
    is truncated, longer than 64 bits, not in its shortest (canonical) form, or whose value
    lies outside ``bounds``. Callers keep an inline path for the one-byte case, the common
    one; this is the whole check."""
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
