"""Hypothesis strategies that build any message model from its type annotations,
honouring the constraints the models declare (patterns, integer ranges, lengths)."""

from __future__ import annotations

import types
import typing
from datetime import UTC, date, datetime
from enum import Enum
from typing import Any
from uuid import UUID

import annotated_types
from hypothesis import strategies as st
from pydantic import AwareDatetime
from pydantic.fields import FieldInfo

from broker.models import AttachmentLocation, AttachmentRef, AvroModel, DeliveryReceipt
from broker.policy import POLICY, chunk_count_for

_MAX_LIST = 3
_EPOCH = datetime(1970, 1, 1)
_FAR = datetime(2200, 1, 1)


def _constraints(metadata: typing.Iterable[Any]) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for item in metadata:
        if isinstance(item, FieldInfo):
            found.update(_constraints(item.metadata))
        elif isinstance(item, annotated_types.Ge):
            found["ge"] = item.ge
        elif isinstance(item, annotated_types.Le):
            found["le"] = item.le
        elif isinstance(item, annotated_types.MinLen):
            found["min_len"] = item.min_length
        elif isinstance(item, annotated_types.MaxLen):
            found["max_len"] = item.max_length
        elif getattr(item, "pattern", None):
            found["pattern"] = item.pattern
    return found


def for_type(annotation: Any, metadata: typing.Iterable[Any] = ()) -> st.SearchStrategy[Any]:
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        base, *extra = typing.get_args(annotation)
        return for_type(base, [*metadata, *extra])
    if origin in (typing.Union, types.UnionType):
        return st.one_of([for_type(a, metadata) for a in typing.get_args(annotation)])
    if origin is tuple:
        item, _ = typing.get_args(annotation)
        return st.lists(for_type(item), max_size=_MAX_LIST).map(tuple)
    c = _constraints(metadata)
    if annotation is type(None):
        return st.none()
    if isinstance(annotation, type) and issubclass(annotation, AvroModel):
        return for_model(annotation)
    if isinstance(annotation, type) and issubclass(annotation, Enum):
        return st.sampled_from(list(annotation))
    if annotation is bool:
        return st.booleans()
    if annotation is int:
        return st.integers(min_value=c.get("ge"), max_value=c.get("le"))
    if annotation is str:
        if "pattern" in c:
            return st.from_regex(c["pattern"], fullmatch=True)
        return st.text(max_size=40)
    if annotation is bytes:
        return st.binary(min_size=c.get("min_len", 0), max_size=c.get("max_len", 64))
    if annotation is UUID:
        return st.uuids()
    if annotation in (datetime, AwareDatetime):
        return st.datetimes(min_value=_EPOCH, max_value=_FAR, timezones=st.just(UTC))
    if annotation is date:
        return st.dates()
    raise TypeError(f"no strategy for {annotation!r}")


_FIELD_RULES: dict[tuple[str, str], st.SearchStrategy[Any]] = {
    # a receipt names a message type of the contract (broker.policy.check_receipt_fields)
    (DeliveryReceipt.avro_name, "message_type"): st.sampled_from(sorted(POLICY)),
}
"""Rules of the contract that a field's annotation does not carry."""


def _consistent_attachment(ref: AttachmentRef) -> AttachmentRef:
    # the policy's rules of one reference (broker.policy.check_attachment_ref); its keys
    # naming the envelope's recipients is up to the test that seals it
    update = {"chunk_count": chunk_count_for(ref.size, ref.chunk_size),
              "location": AttachmentLocation.RECIPIENT_TOPIC}  # fmt: skip
    return AttachmentRef.model_validate(ref.model_dump() | update)


_MODEL_RULES: dict[str, Any] = {AttachmentRef.avro_name: _consistent_attachment}
"""Rules of the contract between a model's fields."""


def for_model(model: type[AvroModel]) -> st.SearchStrategy[AvroModel]:
    """Any valid instance of ``model``."""
    fields = {
        name: _FIELD_RULES[(model.avro_name, name)]
        if (model.avro_name, name) in _FIELD_RULES
        else for_type(info.annotation, info.metadata)
        for name, info in model.model_fields.items()
    }
    built = st.fixed_dictionaries(fields).map(lambda kw: model(**kw))
    fix = _MODEL_RULES.get(model.avro_name)
    return built.map(fix) if fix is not None else built
