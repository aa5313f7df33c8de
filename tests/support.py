"""Small helpers many tests share that are not fixtures: typed examples of the contract's
messages."""

from __future__ import annotations

from typing import TypeVar

from broker.models import AvroModel
from demo.examples import example

M = TypeVar("M", bound=AvroModel)


def example_of(model: type[M]) -> M:
    """`demo.examples.example` of ``model``, typed as that model (``example`` takes a name,
    so it can only promise an `AvroModel`)."""
    message = example(model.avro_name)
    assert isinstance(message, model)
    return message
