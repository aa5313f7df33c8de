"""The pydantic models agree with the `.avsc` contract, and a model survives the trip
model → Avro bytes → model unchanged, for generated instances of every type."""

from __future__ import annotations

import types
import typing
from datetime import datetime
from enum import Enum
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import AwareDatetime, ValidationError

from broker.contract import NAMESPACE, default_codec
from broker.models import ALL_MODELS, MESSAGE_MODELS, AvroModel, CaseClosed, model_for
from demo.examples import example
from tests.strategies import for_model
from tests.support import example_of


def _strip(annotation: Any) -> Any:
    while typing.get_origin(annotation) is typing.Annotated:
        annotation = typing.get_args(annotation)[0]
    return annotation


def _optional(annotation: Any) -> tuple[bool, Any]:
    annotation = _strip(annotation)
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        return True, _strip(args[0])
    return False, annotation


def _agree(avro: Any, annotation: Any, where: str, problems: list[str]) -> None:
    """Compare one Avro type with one Python annotation, recursing into records."""
    codec = default_codec()
    if isinstance(avro, str) and avro not in ("string", "int", "long", "boolean", "bytes"):
        avro = codec.named_type(avro)
    is_optional, inner = _optional(annotation)
    if isinstance(avro, list):
        if not (len(avro) == 2 and avro[0] == "null" and is_optional):
            problems.append(f"{where}: Avro union {avro} vs {annotation}")
            return
        return _agree(avro[1], inner, where, problems)
    if is_optional:
        problems.append(f"{where}: optional in the model, not in the schema")
        return
    kind = avro["type"] if isinstance(avro, dict) else avro
    if kind == "record":
        if not (isinstance(inner, type) and issubclass(inner, AvroModel)):
            problems.append(f"{where}: record {avro['name']} vs {inner}")
            return
        _agree_record(avro, inner, problems)
    elif kind == "enum":
        symbols = (
            [e.value for e in inner]
            if isinstance(inner, type) and issubclass(inner, Enum)
            else None
        )
        if symbols != avro["symbols"]:
            problems.append(f"{where}: enum symbols {avro['symbols']} vs {symbols}")
    elif kind == "array":
        if typing.get_origin(inner) is not tuple:
            problems.append(f"{where}: array vs {inner}")
            return
        _agree(avro["items"], typing.get_args(inner)[0], where + "[]", problems)
    else:
        logical = avro.get("logicalType") if isinstance(avro, dict) else None
        expected = {
            "uuid": "UUID", "date": "date", "timestamp-millis": "datetime",
        }.get(logical or "", {"string": "str", "int": "int", "long": "int",
                                "boolean": "bool", "bytes": "bytes", "fixed": "bytes"}.get(kind))  # fmt: skip
        if inner is AwareDatetime:
            inner = datetime
        if getattr(inner, "__name__", None) != expected:
            problems.append(f"{where}: Avro {logical or kind} vs {inner}")


def _agree_record(avro: dict[str, Any], model: type[AvroModel], problems: list[str]) -> None:
    name = f"{avro.get('namespace', NAMESPACE)}.{avro['name']}"
    if model.avro_name != name:
        problems.append(f"{model.__name__}: avro_name {model.avro_name} vs {name}")
    avro_fields = [f["name"] for f in avro["fields"]]
    model_fields = list(model.model_fields)
    if avro_fields != model_fields:
        problems.append(f"{name}: fields {avro_fields} vs {model_fields}")
        return
    for f in avro["fields"]:
        info = model.model_fields[f["name"]]
        where = f"{name}.{f['name']}"
        annotation = info.annotation
        _agree(f["type"], annotation, where, problems)
        if ("default" in f) != (not info.is_required()):
            problems.append(
                f"{where}: default in schema {'default' in f}, in model {not info.is_required()}"
            )


@pytest.mark.parametrize("name", sorted(MESSAGE_MODELS))
def test_model_agrees_with_its_schema(name: str) -> None:
    problems: list[str] = []
    _agree_record(default_codec().info(name).schema, MESSAGE_MODELS[name], problems)
    assert problems == []


def test_every_model_is_a_type_of_the_contract() -> None:
    for model in ALL_MODELS:
        assert default_codec().named_type(model.avro_name)["type"] == "record"


@pytest.mark.parametrize("name", sorted(MESSAGE_MODELS))
def test_model_to_bytes_to_model_is_the_identity(name: str) -> None:
    model = MESSAGE_MODELS[name]
    codec = default_codec()

    @settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(instance=for_model(model))
    def round_trip(instance: AvroModel) -> None:
        data = codec.encode(name, instance.to_avro())
        assert model.from_avro(codec.decode(name, data)) == instance
        assert instance.avro_bytes() == data  # the fast path writes the same bytes

    round_trip()


def test_json_form_round_trips_for_every_example() -> None:
    for name, model in MESSAGE_MODELS.items():
        message = example(name)
        assert model.model_validate_json(message.model_dump_json()) == message


def test_models_are_frozen_and_strict_about_extra_fields() -> None:
    message = example_of(CaseClosed)
    with pytest.raises(ValidationError):
        message.notes = "changed"  # type: ignore[misc]  # the point: the field is read-only
    with pytest.raises(ValidationError):
        type(message).model_validate({**message.model_dump(), "unexpected": 1})


@given(party=st.text(max_size=20))
def test_party_ids_outside_the_pattern_are_refused(party: str) -> None:
    import re

    base = example("CaseClosed").model_dump()
    if re.fullmatch(r"[a-z0-9][a-z0-9-]{1,62}", party):
        model_for("CaseClosed").model_validate({**base, "closed_by": party})
    else:
        with pytest.raises(ValidationError):
            model_for("CaseClosed").model_validate({**base, "closed_by": party})


def test_json_schema_descriptions_come_from_the_contract() -> None:
    schema = model_for("CaseClosed").model_json_schema()
    avro = default_codec().info("CaseClosed").schema
    assert schema["description"] == avro["doc"]
    assert schema["properties"]["outcome"]["description"] == avro["fields"][3]["doc"]
