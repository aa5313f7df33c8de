"""Small helpers many tests share that are not fixtures: waiting for something to happen
(`eventually`), and typed examples of the contract's messages.

A test never sleeps to let something happen: it waits for a sign that it did, bounded by a
timeout that only a failure reaches. To show that something did *not* happen, it waits for a
later sign that the system got past the point where it would have (a message sent after it
arrives, a record after it is handled) and then looks."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar, overload

import pytest

from broker.models import AvroModel
from demo.examples import example

T = TypeVar("T")
M = TypeVar("M", bound=AvroModel)

WAIT_S = 10.0
"""The default bound on a wait: generous (two shared cores); tests pass in milliseconds."""

POLL_S = 0.005
"""How often a condition is looked at, by default."""


@overload
async def eventually(
    check: Callable[[], Awaitable[T | None]],
    what: str | Callable[[], str],
    *,
    timeout_s: float = WAIT_S,
    every_s: float = POLL_S,
) -> T: ...
@overload
async def eventually(
    check: Callable[[], T | None],
    what: str | Callable[[], str],
    *,
    timeout_s: float = WAIT_S,
    every_s: float = POLL_S,
) -> T: ...
async def eventually(
    check: Callable[[], T | Awaitable[T | None] | None],
    what: str | Callable[[], str],
    *,
    timeout_s: float = WAIT_S,
    every_s: float = POLL_S,
) -> T:
    """What ``check`` returns (it may be a coroutine function) once that is true, looked at
    every ``every_s``; the test fails after ``timeout_s`` saying it timed out waiting for
    ``what`` (a callable is called then, to tell the state at that time). An assertion that
    ``check`` raises ends the wait at once."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while True:
        found = check()
        value = await found if inspect.isawaitable(found) else found
        if value:
            return value
        if loop.time() > deadline:
            pytest.fail(
                f"timed out after {timeout_s:g} s waiting for {what if isinstance(what, str) else what()}"
            )
        await asyncio.sleep(every_s)


def example_of(model: type[M]) -> M:
    """`demo.examples.example` of ``model``, typed as that model (``example`` takes a name,
    so it can only promise an `AvroModel`)."""
    message = example(model.avro_name)
    assert isinstance(message, model)
    return message


def envelope_record(data: bytes) -> dict[str, Any]:
    """The record of a sealed envelope, read with the schema its format was written with
    (formats 1 and 2: the earlier one, without ``traceparent``) into the current one."""
    from broker.contract import default_codec
    from broker.crypto import envelope_schema

    written_with = envelope_schema(data[0] >> 1)
    return default_codec().decode("nl.lvv.v1.SecureEnvelope", data, writer=written_with)


def envelope_bytes(record: dict[str, Any]) -> bytes:
    """`envelope_record` backwards: the bytes of an envelope record in its format's schema."""
    from broker.contract import default_codec
    from broker.crypto import envelope_schema

    version = record["header"]["format_version"]
    if version < 3:  # the earlier schema's header has no traceparent
        header = {k: v for k, v in record["header"].items() if k != "traceparent"}
        record = {**record, "header": header}
    return default_codec().encode(envelope_schema(version), record)
