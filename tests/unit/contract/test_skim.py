"""The skim of untrusted Avro bytes (`broker.contract._skim`): canonical data passes, and every way of
writing a datum that is not its one canonical form, or that claims more than it holds, is
refused with `DecodeError` before fastavro builds anything.

Each refusal is checked on both routes: `default_codec().decode(name, data, max_items=N)`
(what the envelope code calls) and `skim()` with the schema's skipper alone. The bad inputs
are written byte by byte (Avro spec, "Binary Encoding"); each says in a comment what it breaks.
"""

from __future__ import annotations

import contextlib
import time
import tracemalloc
import uuid
from collections.abc import Callable
from datetime import UTC, date, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from broker.contract import compile_schema, default_codec, skim
from broker.crypto import generate_party
from broker.errors import DecodeError
from broker.models import (
    PartyDirectory,
    PartyRole,
    ScenarioAnswer,
    ScenarioResponse,
    SignedDirectory,
    TransferConfirmed,
)
from demo.examples import example

CODEC = default_codec()
NAMES = CODEC.names
GENEROUS = 10_000  # more items than any example holds

Check = Callable[[str, bytes, int], None]


def decode_via_codec(name: str, data: bytes, max_items: int) -> None:
    CODEC.decode(name, data, max_items=max_items)


def skim_directly(name: str, data: bytes, max_items: int) -> None:
    skim(CODEC.info(name).skipper, data, max_items=max_items)


@pytest.fixture(params=[decode_via_codec, skim_directly], ids=["codec", "skim"])
def check(request: pytest.FixtureRequest) -> Check:
    checker: Check = request.param
    return checker


# --- writing Avro by hand ---------------------------------------------------------------------


def long(n: int) -> bytes:
    """An Avro int or long: zigzag, then a varint of 7-bit groups, low group first."""
    z = (n << 1) ^ (n >> 63)
    out = bytearray()
    while z > 0x7F:
        out.append(z & 0x7F | 0x80)
        z >>= 7
    out.append(z)
    return bytes(out)


def string(value: str | bytes) -> bytes:
    """Avro string or bytes: the length as a long, then the bytes."""
    raw = value.encode() if isinstance(value, str) else value
    return long(len(raw)) + raw


CASE_ID = uuid.UUID("0f5a6c1e-3b7d-4c2a-9e81-5d4b2a7c9f10")
DECISION_ID = uuid.UUID("8c2d4e6f-1a3b-4c5d-8e7f-9a0b1c2d3e4f")
AT = datetime(2026, 11, 2, 9, 30, tzinfo=UTC)
AT_MS = int(AT.timestamp() * 1000)


def scenario_response(*, answer: bytes = long(1), conditions: bytes = long(0)) -> bytes:
    """ScenarioResponse: uuid, uuid, timestamp, recorded_by, answer (enum of 4: 1 is
    PARTICIPATES), conditions (union null|string: 0 is null), notes (null)."""
    return (
        string(str(CASE_ID))
        + string(str(DECISION_ID))
        + long(AT_MS)
        + string("ngo-perspectief")
        + answer
        + conditions
        + long(0)
    )


def transfer_confirmed(*, accepted: bytes = b"\x01", transfer_date: bytes = long(20_400)) -> bytes:
    """TransferConfirmed: uuid, uuid, timestamp, accepted (boolean), facility name and
    municipality (null), transfer_date (union null|date: an int of days since 1970), and
    refusal_reason (null)."""
    return (
        string(str(CASE_ID))
        + string(str(DECISION_ID))
        + long(AT_MS)
        + accepted
        + long(0)
        + long(0)
        + long(1)  # union branch 1: the date
        + transfer_date
        + long(0)
    )


def signed_directory(
    *, format_version: bytes = long(1), anchor_key_id: bytes = string("")
) -> bytes:
    """SignedDirectory: format_version (int), anchor_key_id (string), directory and
    signature (bytes, here empty)."""
    return format_version + anchor_key_id + string(b"") + string(b"")


PARTIES = [
    generate_party(p, role, now=AT, seed=p.encode()).entry
    for p, role in [("dtv", PartyRole.DTV), ("ind", PartyRole.IND), ("coa", PartyRole.COA)]
]
ENTRY_BYTES = [CODEC.encode(CODEC.record_info("PartyEntry"), e.to_avro()) for e in PARTIES]
ITEMS_IN_DIRECTORY = 3 * 3  # three parties, each with one signing and one encryption key


def party_directory(parties: bytes, *, serial: bytes = long(1)) -> bytes:
    """PartyDirectory: serial (long), issued_at, expires_at (timestamps), network, then the
    ``parties`` array as given."""
    return serial + long(AT_MS) + long(AT_MS) + string("lvv") + parties


CANONICAL_PARTIES = long(3) + b"".join(ENTRY_BYTES) + long(0)


def test_hand_written_records_are_what_fastavro_writes() -> None:
    """The helpers above write the canonical form; edits to them below are the only change."""
    response = ScenarioResponse(
        case_id=CASE_ID,
        decision_id=DECISION_ID,
        responded_at=AT,
        recorded_by="ngo-perspectief",
        answer=ScenarioAnswer.PARTICIPATES,
    )
    confirmed = TransferConfirmed(
        case_id=CASE_ID,
        transfer_id=DECISION_ID,
        confirmed_at=AT,
        accepted=True,
        transfer_date=date.fromordinal(date(1970, 1, 1).toordinal() + 20_400),
    )
    directory = PartyDirectory(
        serial=1, issued_at=AT, expires_at=AT, network="lvv", parties=tuple(PARTIES)
    )
    signed = SignedDirectory(format_version=1, anchor_key_id="", directory=b"", signature=b"")
    for model, hand_written in [
        (response, scenario_response()),
        (confirmed, transfer_confirmed()),
        (directory, party_directory(CANONICAL_PARTIES)),
        (signed, signed_directory()),
    ]:
        assert CODEC.encode(model.avro_name, model.to_avro()) == hand_written


# --- canonical data passes --------------------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_every_example_passes_the_skim_and_decodes_to_itself(name: str) -> None:
    message = example(name)
    data = CODEC.encode(name, message.to_avro())
    skim(CODEC.info(name).skipper, data, max_items=GENEROUS)
    assert type(message).from_avro(CODEC.decode(name, data, max_items=GENEROUS)) == message


# --- refused: length ----------------------------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_a_trailing_byte_is_refused(check: Check, name: str) -> None:
    data = CODEC.encode(name, example(name).to_avro())
    with pytest.raises(DecodeError, match="trailing"):
        check(name, data + b"\x00", GENEROUS)


def test_every_truncation_of_an_example_is_refused(check: Check) -> None:
    name = "nl.lvv.v1.DossierDelivered"
    data = CODEC.encode(name, example(name).to_avro())
    for end in range(len(data)):
        with pytest.raises(DecodeError):
            check(name, data[:end], GENEROUS)


# --- refused: not the canonical form ------------------------------------------------------------

NON_CANONICAL = {
    # name: (schema, bytes). Each decodes to the same value as a canonical datum would, so a
    # signature over the bytes would not pin the datum down.
    "long 0 as 80 00": (
        PartyDirectory.avro_name,
        party_directory(CANONICAL_PARTIES, serial=b"\x80\x00"),
    ),
    "int 1 as 82 00": (SignedDirectory.avro_name, signed_directory(format_version=b"\x82\x00")),
    "string length 0 as 80 00": (
        SignedDirectory.avro_name,
        signed_directory(anchor_key_id=b"\x80\x00"),
    ),
    "union index 0 as 80 00": (
        ScenarioResponse.avro_name,
        scenario_response(conditions=b"\x80\x00"),
    ),
    # a negative count -3 means "3 items, then their size in bytes" (for skipping)
    "negative (sized) array block": (
        PartyDirectory.avro_name,
        party_directory(
            long(-3) + long(sum(map(len, ENTRY_BYTES))) + b"".join(ENTRY_BYTES) + long(0)
        ),
    ),
    # two blocks of 2 and 1 items instead of one block of 3
    "array split into two blocks": (
        PartyDirectory.avro_name,
        party_directory(long(2) + b"".join(ENTRY_BYTES[:2]) + long(1) + ENTRY_BYTES[2] + long(0)),
    ),
}


@pytest.mark.parametrize(("name", "data"), NON_CANONICAL.values(), ids=NON_CANONICAL.keys())
def test_non_canonical_encoding_is_refused(check: Check, name: str, data: bytes) -> None:
    with pytest.raises(DecodeError):
        check(name, data, GENEROUS)


@pytest.mark.parametrize(("name", "data"), NON_CANONICAL.values(), ids=NON_CANONICAL.keys())
def test_fastavro_alone_accepts_what_the_skim_refuses(name: str, data: bytes) -> None:
    """Why the skim exists: without ``max_items`` the codec takes these bytes."""
    CODEC.decode(name, data)


# --- refused: values out of range ---------------------------------------------------------------


def test_boolean_byte_2_is_refused(check: Check) -> None:
    # a boolean is one byte, 0 or 1; fastavro would read 2 as True
    with pytest.raises(DecodeError, match="boolean"):
        check(TransferConfirmed.avro_name, transfer_confirmed(accepted=b"\x02"), GENEROUS)


@pytest.mark.parametrize("value", [2**31, -(2**31) - 1], ids=["2**31", "-2**31-1"])
def test_int_outside_32_bits_is_refused(check: Check, value: int) -> None:
    # format_version is an Avro int: the varint is valid, the value does not fit 32 bits
    data = signed_directory(format_version=long(value))
    with pytest.raises(DecodeError, match="out of range"):
        check(SignedDirectory.avro_name, data, GENEROUS)


def test_int_date_outside_32_bits_is_refused(check: Check) -> None:
    # transfer_date is an int (days) inside a union
    data = transfer_confirmed(transfer_date=long(2**31))
    with pytest.raises(DecodeError, match="out of range"):
        check(TransferConfirmed.avro_name, data, GENEROUS)


def test_union_index_out_of_range_is_refused(check: Check) -> None:
    # conditions is ["null", "string"]: only branches 0 and 1 exist
    with pytest.raises(DecodeError, match="out of range"):
        check(ScenarioResponse.avro_name, scenario_response(conditions=long(2)), GENEROUS)


def test_negative_union_index_is_refused(check: Check) -> None:
    with pytest.raises(DecodeError, match="out of range"):
        check(ScenarioResponse.avro_name, scenario_response(conditions=long(-1)), GENEROUS)


def test_enum_index_out_of_range_is_refused(check: Check) -> None:
    # ScenarioAnswer has 4 symbols: indexes 0..3
    with pytest.raises(DecodeError, match="out of range"):
        check(ScenarioResponse.avro_name, scenario_response(answer=long(4)), GENEROUS)


def test_varint_longer_than_64_bits_is_refused(check: Check) -> None:
    # eleven continuation bytes: no Avro long needs more than ten
    data = party_directory(CANONICAL_PARTIES, serial=b"\xff" * 10 + b"\x01")
    with pytest.raises(DecodeError):
        check(PartyDirectory.avro_name, data, GENEROUS)


# --- refused: claims beyond the input or the limit --------------------------------------------


def test_array_claiming_2_to_the_40_items_fails_fast_without_allocating(check: Check) -> None:
    # five bytes of count: fastavro alone would start building 2**40 PartyEntry records
    data = party_directory(long(2**40))
    tracemalloc.start()
    started = time.perf_counter()
    try:
        with pytest.raises(DecodeError):
            check(PartyDirectory.avro_name, data, GENEROUS)
        elapsed = time.perf_counter() - started
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert elapsed < 0.5
    assert peak < 5 * 1024 * 1024


def test_string_claiming_more_bytes_than_there_are_is_refused(check: Check) -> None:
    data = signed_directory(anchor_key_id=long(2**40) + b"abc")
    with pytest.raises(DecodeError):
        check(SignedDirectory.avro_name, data, GENEROUS)


def test_more_items_than_max_items_is_refused(check: Check) -> None:
    data = party_directory(CANONICAL_PARTIES)
    check(PartyDirectory.avro_name, data, ITEMS_IN_DIRECTORY)  # nested arrays count too
    with pytest.raises(DecodeError, match="more array items"):
        check(PartyDirectory.avro_name, data, ITEMS_IN_DIRECTORY - 1)


# --- schemas the contract does not use yet: maps and fixed --------------------------------------

MAP_OF_INTS = compile_schema({"type": "map", "values": "int"})
FIXED_4 = compile_schema({"type": "fixed", "name": "Four", "size": 4})


def test_map_in_one_block_passes_and_split_map_is_refused() -> None:
    one = long(2) + string("a") + long(1) + string("b") + long(2) + long(0)
    skim(MAP_OF_INTS, one, max_items=2)
    split = long(1) + string("a") + long(1) + long(1) + string("b") + long(2) + long(0)
    with pytest.raises(DecodeError):
        skim(MAP_OF_INTS, split, max_items=2)


def test_map_entries_count_towards_max_items() -> None:
    data = long(2) + string("a") + long(1) + string("b") + long(2) + long(0)
    with pytest.raises(DecodeError, match="more array items or map entries"):
        skim(MAP_OF_INTS, data, max_items=1)


def test_fixed_must_have_exactly_its_size() -> None:
    skim(FIXED_4, b"abcd", max_items=0)
    for wrong in (b"abc", b"abcde"):
        with pytest.raises(DecodeError):
            skim(FIXED_4, wrong, max_items=0)


# --- properties -------------------------------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(name=st.sampled_from(NAMES), data=st.data())
def test_a_changed_example_decodes_or_raises_decode_error(name: str, data: st.DataObject) -> None:
    encoded = CODEC.encode(name, example(name).to_avro())
    position = data.draw(st.integers(0, len(encoded) - 1), label="position")
    byte = data.draw(st.integers(0, 255), label="byte")
    changed = encoded[:position] + bytes([byte]) + encoded[position + 1 :]
    with contextlib.suppress(DecodeError):
        CODEC.decode(name, changed, max_items=GENEROUS)


@settings(max_examples=300, deadline=None)
@given(name=st.sampled_from(NAMES), data=st.binary(max_size=256))
def test_random_bytes_decode_or_raise_decode_error(name: str, data: bytes) -> None:
    with contextlib.suppress(DecodeError):
        CODEC.decode(name, data, max_items=GENEROUS)


def test_accepted_input_re_encodes_to_the_same_bytes_even_for_uuids(check: Check) -> None:
    """A uuid decodes to a `uuid.UUID`, which encodes in lowercase: the skim takes only that
    form, so the bytes a signature covers are the bytes the record re-encodes to."""
    canonical = scenario_response()
    record = CODEC.decode(ScenarioResponse.avro_name, canonical, max_items=GENEROUS)
    assert CODEC.encode(ScenarioResponse.avro_name, record) == canonical

    upper = canonical.replace(str(CASE_ID).encode(), str(CASE_ID).upper().encode())
    assert upper != canonical
    with pytest.raises(DecodeError, match="uuid not in canonical lowercase form"):
        check(ScenarioResponse.avro_name, upper, GENEROUS)
    # why: without the skim, the upper-case uuid is taken, and re-encodes to other bytes
    taken = CODEC.decode(ScenarioResponse.avro_name, upper)
    assert taken == record and CODEC.encode(ScenarioResponse.avro_name, taken) != upper
