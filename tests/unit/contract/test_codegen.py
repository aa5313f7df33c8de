"""The generated encoders and checked decoders (`broker.models._codegen`) against the
reference path: the same bytes out, the same models in, the same refusals.

The reference reads untrusted bytes with the skim (within the item limit), fastavro, then the
model's validation; the generated decoder does all three in one pass and builds the models
without validating them again — so any rule the validation makes and the decoder misses
would let a hostile payload through. Each kind of rule is shown refused here, and mutated
payloads must get the same verdict from both paths.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime
from enum import StrEnum
from typing import Annotated, Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import StringConstraints, ValidationError, field_validator

from broker.contract import default_codec
from broker.errors import DecodeError, SchemaError
from broker.models import (
    CASE_MESSAGES,
    MESSAGE_MODELS,
    AuditEvent,
    AvroModel,
    CaseClosed,
    DeliveryReceipt,
    DossierDelivered,
    IntakeRegistered,
    ScenarioDecision,
    ScenarioResponse,
    TransferConfirmed,
)
from broker.models._codegen import Unsupported, build_decoder, decoder_for, encoder_for
from demo.examples import example
from tests.strategies import for_model
from tests.unit.contract.test_skim import (
    AT_MS,
    CASE_ID,
    DECISION_ID,
    NON_CANONICAL,
    long,
    scenario_response,
    string,
    transfer_confirmed,
)

CODEC = default_codec()
GENEROUS = 10_000
MODELS = sorted(MESSAGE_MODELS.values(), key=lambda m: m.avro_name)


def reference(model: type[AvroModel], data: bytes, max_items: int = GENEROUS) -> AvroModel:
    """How a payload was read before: skim, fastavro, the model's validation."""
    return model.from_avro(CODEC.decode(model.avro_name, data, max_items=max_items))


def fast(model: type[AvroModel], data: bytes, max_items: int = GENEROUS) -> AvroModel:
    decode = decoder_for(model)
    assert decode is not None
    result: AvroModel = decode(data, max_items)
    return result


def verdict(read: Callable[[], AvroModel], refusals: tuple[type[Exception], ...]) -> Any:
    try:
        return read()
    except refusals:
        return "refused"


def same_verdict(model: type[AvroModel], data: bytes, max_items: int = GENEROUS) -> None:
    expected = verdict(lambda: reference(model, data, max_items), (DecodeError, ValidationError))
    got = verdict(lambda: fast(model, data, max_items), (DecodeError,))  # and nothing else
    assert got == expected
    if expected != "refused":
        assert_identical(got, expected)


def assert_identical(got: Any, expected: Any) -> None:
    """Equal, and built alike: the same types and the same fields set, all the way down."""
    assert type(got) is type(expected)
    if isinstance(expected, AvroModel):
        assert got.__pydantic_fields_set__ == expected.__pydantic_fields_set__
        assert list(got.__dict__) == list(expected.__dict__)
        for name, value in expected.__dict__.items():
            assert_identical(got.__dict__[name], value)
    elif isinstance(expected, tuple):
        assert len(got) == len(expected)
        for g, e in zip(got, expected, strict=True):
            assert_identical(g, e)
    else:
        assert got == expected
        if isinstance(expected, datetime):
            assert got.tzinfo is expected.tzinfo


def refused_by_both(model: type[AvroModel], data: bytes) -> None:
    with pytest.raises((DecodeError, ValidationError)):
        reference(model, data)
    with pytest.raises(DecodeError):
        fast(model, data)


# --- every top-level record has both, and they agree with the reference --------------------


@pytest.mark.parametrize("model", MODELS, ids=lambda m: m.__name__)
def test_every_top_level_record_gets_a_generated_encoder_and_decoder(
    model: type[AvroModel],
) -> None:
    """A model the generator cannot handle would silently keep the slow path: say so here."""
    assert decoder_for(model) is not None
    assert encoder_for(model) is not None


@pytest.mark.parametrize("model", CASE_MESSAGES, ids=lambda m: m.__name__)
def test_examples_encode_to_fastavros_bytes_and_decode_to_the_same_models(
    model: type[AvroModel],
) -> None:
    message = example(model.avro_name)
    data = CODEC.encode(model.avro_name, message.to_avro())
    assert message.avro_bytes() == data
    assert_identical(fast(model, data), reference(model, data))
    assert model.from_avro_bytes(data, max_items=GENEROUS) == message


@settings(max_examples=400, deadline=None)
@given(data=st.data(), model=st.sampled_from(MODELS))
def test_any_valid_model_encodes_and_decodes_as_the_reference_does(
    data: st.DataObject, model: type[AvroModel]
) -> None:
    message = data.draw(for_model(model), label="message")
    expected = CODEC.encode(model.avro_name, message.to_avro())
    assert message.avro_bytes() == expected
    same_verdict(model, expected)


MUTATIONS = ["flip", "replace", "truncate", "insert", "delete"]


@settings(max_examples=1500, deadline=None)
@given(data=st.data(), model=st.sampled_from(MODELS), how=st.sampled_from(MUTATIONS))
def test_mutated_payloads_get_the_same_verdict(
    data: st.DataObject, model: type[AvroModel], how: str
) -> None:
    """Hostile bytes: refused by both, or read by both to identical models. The fast path
    raises nothing but DecodeError."""
    encoded = bytearray(CODEC.encode(model.avro_name, data.draw(for_model(model)).to_avro()))
    at = data.draw(st.integers(0, max(0, len(encoded) - 1)), label="at")
    if how == "flip" and encoded:
        encoded[at] ^= 1 << data.draw(st.integers(0, 7))
    elif how == "replace" and encoded:
        encoded[at] = data.draw(st.integers(0, 255))
    elif how == "truncate":
        del encoded[at:]
    elif how == "insert":
        encoded[at:at] = data.draw(st.binary(min_size=1, max_size=8))
    elif how == "delete":
        del encoded[at : at + data.draw(st.integers(1, 8))]
    max_items = data.draw(st.sampled_from([GENEROUS, 0, 1, 3]), label="max_items")
    same_verdict(model, bytes(encoded), max_items)


@settings(max_examples=300, deadline=None)
@given(model=st.sampled_from(MODELS), data=st.binary(max_size=256))
def test_random_bytes_get_the_same_verdict(model: type[AvroModel], data: bytes) -> None:
    same_verdict(model, data)


def test_every_truncation_and_every_byte_of_an_example_gets_the_same_verdict() -> None:
    data = CODEC.encode(DossierDelivered.avro_name, example("DossierDelivered").to_avro())
    for end in range(len(data)):
        with pytest.raises(DecodeError):
            fast(DossierDelivered, data[:end])
    for at in range(len(data)):
        for byte in (0x00, 0x01, 0x02, 0x7F, 0x80, 0xFF, data[at] ^ 0x40):
            same_verdict(DossierDelivered, data[:at] + bytes([byte]) + data[at + 1 :])


# --- the skim's refusals, through the fast path --------------------------------------------------


@pytest.mark.parametrize(("name", "data"), NON_CANONICAL.values(), ids=NON_CANONICAL.keys())
def test_non_canonical_encodings_are_refused(name: str, data: bytes) -> None:
    refused_by_both(MESSAGE_MODELS[name], data)


@pytest.mark.parametrize(
    "data",
    [
        transfer_confirmed(accepted=b"\x02"),  # a boolean other than 0 or 1
        transfer_confirmed(transfer_date=long(2**31)),  # an int outside 32 bits
        transfer_confirmed(transfer_date=long(2_932_897)),  # a date after 9999-12-31
        transfer_confirmed(transfer_date=long(-719_163)),  # a date before 0001-01-01
        transfer_confirmed() + b"\x00",  # a trailing byte
    ],
    ids=["boolean 2", "int 2**31", "date 10000", "date 0", "trailing"],
)
def test_values_out_of_range_are_refused(data: bytes) -> None:
    refused_by_both(TransferConfirmed, data)


def test_the_first_and_last_date_are_read() -> None:
    for days in (-719_162, 2_932_896):
        same_verdict(TransferConfirmed, transfer_confirmed(transfer_date=long(days)))
        fast(TransferConfirmed, transfer_confirmed(transfer_date=long(days)))


def response(*, at: int = AT_MS, recorded_by: bytes = string("ngo-perspectief"),
             answer: bytes = long(1), conditions: bytes = long(0)) -> bytes:  # fmt: skip
    return (string(str(CASE_ID)) + string(str(DECISION_ID)) + long(at) + recorded_by + answer
            + conditions + long(0))  # fmt: skip


@pytest.mark.parametrize(
    "data",
    [
        response(at=253_402_300_800_000),  # 10000-01-01
        response(at=-62_135_596_800_001),  # before 0001-01-01
        response(at=2**63 - 1),
        scenario_response(conditions=long(2)),  # union branch 2 of 2
        scenario_response(conditions=long(-1)),
        scenario_response(answer=long(4)),  # enum symbol 4 of 4
        scenario_response(answer=b"\x82\x00"),  # enum index 1, not in its shortest form
        response(conditions=long(1) + string(b"\xff")),  # not UTF-8
        response(conditions=long(1) + string(b"\xc0\xaf")),  # overlong UTF-8
        response(conditions=long(1) + string(b"\xed\xa0\x80")),  # a surrogate
        response(conditions=long(1) + long(-2) + b"ab"),  # a negative length
        response(conditions=long(1) + long(50) + b"ab"),  # more bytes claimed than there are
        string(str(CASE_ID).upper()) + response()[37:],  # an uppercase uuid
        string("{" + str(CASE_ID)[:-2] + "}") + response()[37:],  # another uuid form
    ],
    ids=[
        "ts 10000",
        "ts 0",
        "ts max",
        "union 2",
        "union -1",
        "enum 4",
        "enum 82 00",
        "utf-8 ff",
        "utf-8 overlong",
        "utf-8 surrogate",
        "length -1",
        "length 50",
        "uuid upper",
        "uuid braces",
    ],
)
def test_undecodable_responses_are_refused(data: bytes) -> None:
    refused_by_both(ScenarioResponse, data)


def test_the_first_and_last_timestamp_are_read() -> None:
    for millis in (-62_135_596_800_000, 253_402_300_799_999):
        same_verdict(ScenarioResponse, response(at=millis))
        read = fast(ScenarioResponse, response(at=millis))
        assert isinstance(read, ScenarioResponse)
        assert read.responded_at.tzinfo is UTC


def test_items_beyond_the_limit_are_refused_before_they_are_read() -> None:
    message = example("IntakeRegistered")
    assert isinstance(message, IntakeRegistered)
    data = message.model_copy(update={"household_case_ids": (CASE_ID,) * 5}).avro_bytes()
    fast(IntakeRegistered, data, 5 + 50)
    with pytest.raises(DecodeError, match="more array items"):
        fast(IntakeRegistered, data, 4)
    with pytest.raises(DecodeError, match="more array items"):
        reference(IntakeRegistered, data, 4)


# --- the models' rules: what skim and fastavro take and the model refuses ------------------------


def written_by_fastavro(message: AvroModel, **changes: Any) -> bytes:
    """The message's encoding with fields changed past its validation: only what the
    schema allows is checked by fastavro on writing."""
    record = message.to_avro()
    for path, value in changes.items():
        node: Any = record
        *parents, last = path.split("__")
        for key in parents:
            node = node[int(key)] if key.isdigit() else node[key]
        node[last] = value
    return CODEC.encode(message.avro_name, record)


MODEL_RULES = [
    # (message, field path, a value the schema takes and the model refuses)
    ("ScenarioDecision", "decided_by", "Gemeente-Utrecht"),  # a party id: lowercase
    ("ScenarioDecision", "decided_by", "ind\n"),  # Python's `$` matches before the newline
    ("ScenarioDecision", "decided_by", "x"),  # too short
    ("ScenarioDecision", "decided_by", "a" * 64),  # too long
    ("ScenarioDecision", "consulted_parties", ["ind", "NGO"]),  # inside an array
    ("ScenarioDecision", "plan__0__owner", "not a party"),  # inside a record in an array
    ("CaseClosed", "closed_by", "-ind"),
    ("CaseClosed", "destination_country", "nld"),  # a country code: three capitals
    ("CaseClosed", "destination_country", "NLD\n"),
    ("CaseClosed", "destination_country", "ＮＬＤ"),  # fullwidth letters
    ("IntakeRegistered", "person__v_number", "12345"),  # ten digits
    ("IntakeRegistered", "person__v_number", "١٢٣٤٥٦٧٨٩٠"),  # other digits than 0-9
    ("IntakeRegistered", "person__languages", ["nl", "EN"]),
    ("IntakeRegistered", "person__nationalities", ["NLD", "XX"]),
    ("IntakeRegistered", "person__documents__0__issuing_country", "nl"),
    ("IntakeRegistered", "guiding_ngo", "NGO"),  # inside a union
    (
        "DossierDelivered",
        "return_history",
        [
            {
                "date": date(2025, 3, 1),
                "kind": "ASSISTED",
                "destination_country": "Marokko",
                "outcome": "DEPARTED",
                "notes": None,
            }
        ],
    ),
    ("DeliveryReceipt", "message_type", "nl.lvv.v1.Case Closed"),  # an Avro full name
    ("DeliveryReceipt", "message_type", "nl..v1"),
    ("DeliveryReceipt", "received_by", "IND"),
    ("AuditEvent", "recipients", ["ind", "Ind"]),
    ("AuditEvent", "sender", "IND"),
    ("AuditEvent", "message_type", "1nl.lvv"),
]


@pytest.mark.parametrize(("name", "path", "value"), MODEL_RULES)
def test_what_the_models_refuse_the_fast_path_refuses(name: str, path: str, value: Any) -> None:
    message = example(name) if MESSAGE_MODELS[f"nl.lvv.v1.{name}"] in CASE_MESSAGES else None
    if message is None:
        message = _network_record(name)
    data = written_by_fastavro(message, **{path: value})
    model = type(message)
    with pytest.raises(ValidationError):
        reference(model, data)
    with pytest.raises(DecodeError, match="required form"):
        fast(model, data)
    with pytest.raises(DecodeError):
        model.from_avro_bytes(data, max_items=GENEROUS)


def _network_record(name: str) -> AvroModel:
    at = datetime(2026, 11, 2, 9, 30, tzinfo=UTC)
    if name == "DeliveryReceipt":
        return DeliveryReceipt(receipt_id=CASE_ID, message_id=DECISION_ID,
                               message_type=CaseClosed.avro_name, case_id=CASE_ID,
                               received_by="ind", received_at=at, envelope_sha256=b"\x01" * 32)  # fmt: skip
    assert name == "AuditEvent"
    return AuditEvent(event_id=CASE_ID, gateway="ind", seq=1, prev_hash=b"\x00" * 32,
                      action="SENT", occurred_at=at, message_id=DECISION_ID,
                      message_type=CaseClosed.avro_name, sender="ind", recipients=("coa",),
                      outcome="OK", signature=b"s")  # fmt: skip


def test_the_patterns_mean_what_pydantic_means(data: Any = None) -> None:
    """`fullmatch` with Python's `re` against pydantic's Rust regex, on strings chosen to
    split them: a final newline, other scripts' digits and letters, the length bounds."""
    tricky = ["ind", "ind\n", "\nind", "in d", "i", "a" * 63, "a" * 64, "NLD", "NLD\n", "nld",
              "ＮＬＤ", "0123456789", "0123456789\n", "١٢٣٤٥٦٧٨٩٠", "nl", "nl\n", "NL",
              "nl.lvv.v1.CaseClosed", "nl.lvv.v1.CaseClosed\n", "nl..v1", "_a.b_", "é"]  # fmt: skip
    decided_by = ScenarioDecision.model_fields["decided_by"]
    for text in tricky:
        message = example("ScenarioDecision")
        data_ = written_by_fastavro(message, decided_by=text)
        same_verdict(ScenarioDecision, data_)
    assert decided_by.metadata  # the pattern is there to be tested


# --- what the generator refuses to guess -----------------------------------------------------------


class _Answer(StrEnum):
    """ScenarioAnswer without its last symbol: a model that refuses one the schema has."""

    UNKNOWN = "UNKNOWN"
    PARTICIPATES = "PARTICIPATES"
    DECLINES = "DECLINES"


class _NarrowResponse(ScenarioResponse):
    answer: _Answer  # type: ignore[assignment]


def test_an_enum_symbol_the_model_does_not_know_is_refused() -> None:
    last = len(CODEC.named_type("ScenarioAnswer")["symbols"]) - 1
    assert last == len(_Answer)
    data = scenario_response(answer=long(last))
    with pytest.raises(ValidationError):
        _NarrowResponse.from_avro(CODEC.decode(ScenarioResponse.avro_name, data))
    with pytest.raises(DecodeError, match="unknown to _Answer"):
        build_decoder(_NarrowResponse)(data, GENEROUS)
    assert build_decoder(_NarrowResponse)(scenario_response(), GENEROUS).answer == "PARTICIPATES"


class _Validated(CaseClosed):
    @field_validator("notes")
    @classmethod
    def _no_secrets(cls, value: str | None) -> str | None:
        if value and "secret" in value:
            raise ValueError("no secrets")
        return value


class _Unanchored(CaseClosed):
    notes: Annotated[str, StringConstraints(pattern=r"[a-z]+")] | None = None


class _Constrained(CaseClosed):
    notes: Annotated[str, StringConstraints(to_lower=True)] | None = None


@pytest.mark.parametrize("model", [_Validated, _Unanchored, _Constrained])
def test_a_model_with_rules_the_generator_does_not_know_keeps_the_reference_path(
    model: type[CaseClosed],
) -> None:
    with pytest.raises(Unsupported):
        build_decoder(model)
    assert decoder_for(model) is None
    assert encoder_for(model) is None
    message = example("CaseClosed")
    data = written_by_fastavro(message, notes="a secret")
    if model is _Validated:
        with pytest.raises(DecodeError, match="refused by its model"):
            model.from_avro_bytes(data, max_items=GENEROUS)
    again = model.model_validate(message.model_dump())
    assert again.avro_bytes() == CODEC.encode(model.avro_name, again.to_avro())


@pytest.mark.filterwarnings("ignore::UserWarning")  # pydantic's, on dumping the broken models
def test_a_model_built_unchecked_does_not_encode_to_garbage() -> None:
    message = example("CaseClosed")
    for bad in ({"outcome": "NO_SUCH_OUTCOME"}, {"case_id": 17}, {"closed_at": "yesterday"},
                {"notes": b"bytes"}):  # fmt: skip
        broken = CaseClosed.model_construct(**{**message.model_dump(), **bad})
        with pytest.raises(SchemaError):
            broken.avro_bytes()
        with pytest.raises(SchemaError):
            CODEC.encode(CaseClosed.avro_name, broken.model_dump(), exact=True)
