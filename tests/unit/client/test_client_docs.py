"""docs/CLIENT.md's examples run as written: the back office's round (a send, a refusal, the
inbox read and acknowledged) against a real gateway served on loopback, and the webhook
handler on a request the gateway's signer signed."""

from __future__ import annotations

import asyncio
import re
import time
from pathlib import Path
from typing import Any

import pytest

from broker.client import TOKEN_ENV, TOKEN_FILE_ENV
from broker.gateway._webhook import webhook_signature
from demo.examples import example
from tests.support import eventually
from tests.unit.client.conftest import IND, MUNI, TOKEN
from tests.unit.client.test_webhook_verifier import BODY
from tests.unit.gateway.test_api import Stack
from tests.unit.gateway.test_webhook import SECRET

PAGE = Path(__file__).parents[3] / "docs" / "CLIENT.md"


def examples() -> list[str]:
    blocks = re.findall(r"```python\n(.*?)```", PAGE.read_text(), flags=re.S)
    assert len(blocks) == 2, "the page's two examples: the round, the webhook"
    return blocks


async def test_the_back_office_round_runs_as_written(
    stack: Stack, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    ind = await stack.started(IND, run=True)
    muni = await stack.started(MUNI, run=True)
    intake = example("IntakeRegistered").model_copy(update={"municipality": MUNI})
    await muni.send(intake, [IND])
    await eventually(lambda: ind.store.inbox(limit=1), "the intake in IND's inbox")
    served = await stack.serve(ind)
    monkeypatch.setenv("LVVX_API_URL", str(served.base_url))
    monkeypatch.setenv(TOKEN_ENV, TOKEN)
    monkeypatch.delenv(TOKEN_FILE_ENV, raising=False)
    monkeypatch.delenv("LVVX_API_CA", raising=False)

    await asyncio.to_thread(exec, examples()[0], {})

    printed = capsys.readouterr().out.splitlines()
    sent, refused, received = printed
    assert re.fullmatch(r"sent [0-9a-f-]{36} SENT", sent)
    assert refused == "refused 422 SCHEMA_VIOLATION"
    assert received == f"received IntakeRegistered from {MUNI}"
    assert ind.store.inbox(limit=10) == []  # acknowledged
    assert ind.store.counts()["sent"] == 1


def test_the_webhook_handler_runs_as_written(capsys: pytest.CaptureFixture[str]) -> None:
    namespace: dict[str, Any] = {}
    exec(examples()[1], namespace)
    handler = namespace["receive_webhook"]
    signed = {"lvvx-signature": webhook_signature(SECRET, BODY, int(time.time()))}

    assert handler(SECRET, signed, BODY) == 200
    assert handler(SECRET, signed, BODY + b" ") == 400
    assert handler(SECRET, {}, BODY) == 400
    assert capsys.readouterr().out.splitlines()[1:] == [
        "webhook refused BAD_SIGNATURE", "webhook refused MALFORMED",
    ]  # fmt: skip
