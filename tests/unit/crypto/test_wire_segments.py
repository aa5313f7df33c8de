"""The envelope reader's memo of repeating runs (`broker.crypto._wire.Segments`): an
envelope read with it reads exactly as without it — the same values, the same refusals,
the same item limit — whatever the memo holds, hostile runs included."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from broker.crypto._envelope import MAX_ENVELOPE_ITEMS
from broker.crypto._wire import SEGMENTS_KEPT, Segments, WireEnvelope, decode_envelope
from broker.errors import DecodeError
from tests.unit.crypto.test_wire import ENVELOPES, NET, _batch

MEMO = Segments()  # shared by every case: hits, misses and hostile runs all meet in it
BATCH = _batch(NET, 6)


def read(data: bytes, max_items: int, segments: Segments | None) -> WireEnvelope | str:
    try:
        return decode_envelope(data, max_items=max_items, segments=segments)
    except DecodeError:
        return "refused"


def same_with_and_without(data: bytes, max_items: int = MAX_ENVELOPE_ITEMS) -> None:
    assert read(data, max_items, MEMO) == read(data, max_items, None)


def test_a_batch_reads_the_same_and_its_repeating_runs_are_kept_once() -> None:
    memo = Segments()
    for data in BATCH:
        assert decode_envelope(data, max_items=MAX_ENVELOPE_ITEMS, segments=memo) == (
            decode_envelope(data, max_items=MAX_ENVELOPE_ITEMS)
        )
    assert len(memo.headers) == 1
    assert len(memo.wraps) == 1


def test_the_item_limit_counts_the_items_of_a_remembered_run() -> None:
    memo = Segments()
    data = BATCH[0]
    decode_envelope(data, max_items=MAX_ENVELOPE_ITEMS, segments=memo)
    wire = decode_envelope(data, max_items=MAX_ENVELOPE_ITEMS)
    items = len(wire.header.recipients) + len(wire.wrapped_keys) + len(wire.batch_proof.path)  # type: ignore[union-attr]
    for limit in (items - 1, items, items + 1, 0, 1):
        assert read(data, limit, memo) == read(data, limit, None)


def test_the_memo_is_bounded() -> None:
    memo = Segments()
    for n in range(SEGMENTS_KEPT + 5):
        Segments.keep(memo.headers, bytes([n]) * 8, 0, n)
    assert len(memo.headers) == SEGMENTS_KEPT
    Segments.keep(memo.wraps, bytes(5000), 0, None)  # longer than any run worth keeping
    assert memo.wraps == []


@settings(max_examples=600, deadline=None)
@given(data=st.data(), name=st.sampled_from(sorted(ENVELOPES)))
def test_mutated_envelopes_read_the_same_with_the_memo(data: st.DataObject, name: str) -> None:
    original = data.draw(st.sampled_from([ENVELOPES[name], *BATCH]))
    start = data.draw(st.integers(0, len(original)))
    end = data.draw(st.integers(start, min(len(original), start + 40)))
    insert = data.draw(st.binary(max_size=40))
    limit = data.draw(st.sampled_from([MAX_ENVELOPE_ITEMS, 3, 4, 5]))
    mutated = original[:start] + insert + original[end:]
    same_with_and_without(mutated, limit)
    same_with_and_without(original, limit)  # and the original after the mutation was kept


def test_every_single_byte_change_of_a_batch_envelope_reads_the_same_with_the_memo() -> None:
    data = BATCH[2]
    for position in range(len(data)):
        for flip in (0x01, 0x80, 0xFF):
            mutated = bytearray(data)
            mutated[position] ^= flip
            same_with_and_without(bytes(mutated))
            same_with_and_without(BATCH[3])
