"""The one varint reader behind the skimmer and the envelope decoder."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from broker.contract.binary import INT32, INT64, read_varint, write_long
from broker.errors import DecodeError


@given(st.integers(*INT64), st.binary(max_size=4))
def test_reads_back_what_was_written_and_stops_after_it(value: int, rest: bytes) -> None:
    data = b"\xaa" + write_long(value) + rest
    assert read_varint(data, 1) == (value, len(data) - len(rest))


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "truncated varint at byte 0"),
        (b"\x80\x80", "truncated varint at byte 0"),
        (b"\x80" * 10 + b"\x01", "varint too long at byte 0"),
        (b"\x80\x00", "non-canonical varint at byte 0"),  # 0 written in two bytes
        (b"\x82\x80\x00", "non-canonical varint at byte 0"),
    ],
)
def test_refuses_broken_varints(data: bytes, reason: str) -> None:
    with pytest.raises(DecodeError, match=reason):
        read_varint(data, 0)


def test_refuses_values_outside_the_bounds() -> None:
    assert read_varint(write_long(INT32[1]), 0, INT32)[0] == INT32[1]
    with pytest.raises(DecodeError, match=r"integer 2147483648 out of range at byte 0"):
        read_varint(write_long(INT32[1] + 1), 0, INT32)
    with pytest.raises(DecodeError, match="out of range"):
        read_varint(write_long(INT32[0] - 1), 0, INT32)
