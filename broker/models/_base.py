"""The base of every message model, and the scalar types the Avro contract uses.

Models are frozen pydantic models whose fields mirror the `.avsc` files one to one (same
names, same order, same optionality; ``tests/unit/contract/test_models.py`` keeps them so). A model
turns into an Avro record with `AvroModel.to_avro` and back with `AvroModel.from_avro`;
the codec turns records into bytes.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, ClassVar, Self

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
)

# at module level, not in each call (an import statement per message): broker.contract
# imports no model, so there is no cycle
from broker.contract import default_codec
from broker.errors import DecodeError
from broker.models._codegen import decoder_for, encoder_for

# Avro `int` and `long` are 32- and 64-bit signed; a model refuses what the wire cannot carry.
Int32 = Annotated[int, Field(ge=-(2**31), le=2**31 - 1)]
Int64 = Annotated[int, Field(ge=-(2**63), le=2**63 - 1)]


def to_utc_millis(value: datetime) -> datetime:
    """Avro timestamp-millis keeps milliseconds: truncate so a round trip is the identity."""
    value = value.astimezone(UTC)
    return value.replace(microsecond=value.microsecond // 1000 * 1000)


Timestamp = Annotated[AwareDatetime, AfterValidator(to_utc_millis)]
"""A point in time with a time zone, kept in UTC to the millisecond."""

PARTY_ID_PATTERN = r"^[a-z0-9][a-z0-9-]{1,62}$"
PartyId = Annotated[str, StringConstraints(pattern=PARTY_ID_PATTERN)]
"""A party id of the key directory (`gemeente-utrecht`, `ind`): also part of topic names,
so lowercase letters, digits and dashes only."""

CountryCode = Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")]
"""ISO 3166-1 alpha-3; `XXA` stateless, `XXX` unknown (ICAO 9303 codes)."""

VNumber = Annotated[str, StringConstraints(pattern=r"^[0-9]{10}$")]
"""Aliens registration number (V-nummer): ten digits."""

LanguageCode = Annotated[str, StringConstraints(pattern=r"^[a-z]{2,3}$")]
"""ISO 639-1 or 639-3 language code."""

AVRO_FULL_NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$"
AvroFullName = Annotated[str, StringConstraints(pattern=AVRO_FULL_NAME_PATTERN)]


def _hex_not_all_zero(n: int) -> str:
    """``n`` lowercase hex digits, not all zero, without look-ahead (pydantic's Rust regex
    engine has none): some zeros, one non-zero digit, then any digits."""
    return "(?:" + "|".join(f"0{{{k}}}[1-9a-f][0-9a-f]{{{n - 1 - k}}}" for k in range(n)) + ")"


TRACEPARENT_PATTERN = rf"^00-{_hex_not_all_zero(32)}-{_hex_not_all_zero(16)}-[0-9a-f]{{2}}$"
Traceparent = Annotated[str, StringConstraints(pattern=TRACEPARENT_PATTERN)]
"""A W3C Trace Context traceparent in its canonical version-00 form, trace id and parent id
not all zeros (docs/ENVELOPE.md §4.2; `broker.tracecontext` parses what a back office sends)."""

SpanId = Annotated[str, StringConstraints(pattern=rf"^{_hex_not_all_zero(16)}$")]
"""A W3C Trace Context span id: 16 lowercase hex digits, not all zeros."""

Sha256 = Annotated[bytes, Field(min_length=32, max_length=32)]
"""A SHA-256 digest (Avro fixed of 32 bytes)."""


def _docs_from_contract(schema: dict[str, Any], cls: type[BaseModel]) -> None:
    """Take the JSON Schema's descriptions from the `.avsc` docs, so the HTTP API's OpenAPI
    description says what the contract says and the docs live in one place."""
    avro = default_codec().named_type(cls.avro_name)  # type: ignore[attr-defined]
    schema["description"] = avro.get("doc", "")
    properties = schema.get("properties", {})
    for field in avro.get("fields", ()):
        if field["name"] in properties and "doc" in field:
            properties[field["name"]]["description"] = field["doc"]


class AvroModel(BaseModel):
    """A frozen model of one Avro record type."""

    model_config = ConfigDict(
        frozen=True,
        extra="forbid",
        validate_default=True,
        # bytes (digests, keys, ciphertext) travel as base64 in the JSON form
        ser_json_bytes="base64",
        val_json_bytes="base64",
        json_schema_extra=_docs_from_contract,
    )

    avro_name: ClassVar[str]
    """Full Avro name of the record, e.g. ``nl.lvv.v1.CaseClosed``."""

    def to_avro(self) -> dict[str, Any]:
        """The Avro record (plain dicts, lists, enums as their symbols) for the codec."""
        return _plain(self.model_dump(mode="python"))  # type: ignore[no-any-return]

    def avro_bytes(self) -> bytes:
        """The Avro encoding of this message under the current contract: the same bytes as
        encoding `to_avro`. A top-level message is written by its generated encoder
        (`broker.models._codegen`), in a third of the time; any other through fastavro
        (a model holds exactly its schema's fields, so the codec's field check is skipped;
        fastavro takes tuples and enums)."""
        encode = encoder_for(type(self))
        if encode is not None:
            return encode(self)
        return default_codec().encode(self.avro_name, self.model_dump(mode="python"), exact=True)

    @classmethod
    def from_avro(cls, record: dict[str, Any]) -> Self:
        """The model of a decoded Avro record; raises pydantic's ValidationError if the
        record breaks a rule the schema cannot express (a party id's pattern, say)."""
        return cls.model_validate(record)

    @classmethod
    def from_checked_values(cls, values: dict[str, Any]) -> Self:
        """A model of ``values`` — every field, each already checked by the caller against
        the model's rules (a reader of untrusted bytes that enforces them) — without
        validating them again: `model_construct` without its defaults and aliases, in a
        fraction of its time."""
        model = _new(cls)
        _set(model, "__dict__", values)
        _set(model, "__pydantic_fields_set__", set(values))
        _set(model, "__pydantic_extra__", None)
        _set(model, "__pydantic_private__", None)
        return model

    @classmethod
    def from_avro_bytes(cls, data: bytes, *, max_items: int) -> Self:
        """The model of untrusted Avro bytes written with the current schema; raises
        `DecodeError` for whatever the reference path — skim within ``max_items``,
        fastavro, the model's validation — refuses. A top-level message is read by its
        generated checked decoder (`broker.models._codegen`), in one pass."""
        decode = decoder_for(cls)
        if decode is not None:
            return decode(data, max_items)  # type: ignore[no-any-return]
        record = default_codec().decode(cls.avro_name, data, max_items=max_items)
        try:
            return cls.from_avro(record)
        except ValidationError as exc:
            raise DecodeError(f"{cls.avro_name} refused by its model: {exc}") from None


_new = object.__new__
_set = object.__setattr__


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value
