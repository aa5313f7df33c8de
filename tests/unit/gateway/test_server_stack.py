"""What `lvvx gateway run` serves its API on: uvicorn's standard extras, httptools and
uvloop, when they import (the project depends on them), and h11 and the standard asyncio
loop, each on its own, when they do not."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Iterator

import pytest

from broker.gateway import service
from broker.gateway.service import ServerStack, server_stack
from broker.gateway.settings import GatewaySettings


@pytest.fixture(autouse=True)
def _fresh_choice() -> Iterator[None]:
    server_stack.cache_clear()  # the choice is made once per process: each test makes its own
    yield
    server_stack.cache_clear()


def test_the_standard_extras_are_used_when_they_import() -> None:
    assert server_stack() == ServerStack("httptools", "uvloop")
    assert str(server_stack()) == "httptools on uvloop"


@pytest.mark.parametrize(
    ("missing", "expected"),
    [
        ("httptools", ServerStack("h11", "uvloop")),
        ("uvloop", ServerStack("httptools", "asyncio")),
    ],
)
def test_without_an_extra_its_pure_python_part_is_used(
    monkeypatch: pytest.MonkeyPatch, missing: str, expected: ServerStack
) -> None:
    monkeypatch.setitem(sys.modules, missing, None)  # None in sys.modules: ImportError
    assert server_stack() == expected


@pytest.mark.parametrize(("missing", "loop_module"), [(None, "uvloop"), ("uvloop", "asyncio")])
def test_run_serves_on_the_loop_it_names(
    monkeypatch: pytest.MonkeyPatch, missing: str | None, loop_module: str
) -> None:
    if missing:
        monkeypatch.setitem(sys.modules, missing, None)
    ran_on: list[str] = []

    async def serve(settings: GatewaySettings) -> None:
        ran_on.append(type(asyncio.get_running_loop()).__module__)

    monkeypatch.setattr(service, "serve", serve)
    service.run(GatewaySettings.model_construct())
    assert len(ran_on) == 1 and ran_on[0].startswith(loop_module), ran_on
