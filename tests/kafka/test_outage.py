"""An outage of Kafka is quiet and answered fast: while the log is away a gateway logs each
repeating condition once per 10 s with a count (not ~100 lines a second), answers a send
at once with 503 TRANSPORT_UNAVAILABLE and a Retry-After (not after the 30 s send
timeout), sends nothing, and leaves no client unclosed; when the log is back it sends again.

The outage is a TCP proxy in front of the broker refusing connections
(`tests.faults.proxy`, ``refuse``: as when the broker is down), so Kafka itself runs on."""

from __future__ import annotations

import asyncio
import re
import time
from collections import Counter
from pathlib import Path

import httpx
import pytest

from tests.faults.proxy import TcpProxy
from tests.gateway_processes import (
    RECIPIENT,
    SENDER,
    GatewayRun,
    delivered_once,
    dossier_body,
    two_parties,
)
from tests.proxied_kafka import DIRECT, PROXIED
from tests.support import eventually

pytestmark = pytest.mark.kafka

OUTAGE_S = 15.0
"""Long enough for every repeating condition to come back more than once a second."""

KNOWN_WITHIN_S = 10.0
"""A gateway knows of the outage within this: a probe every 2 s, each bounded at 5 s."""

ANSWER_WITHIN_S = 1.0
"""A send during a known outage is answered within this."""

MAX_LINES_PER_CONDITION = 2
"""At most one line per condition per 10 s: two in a 15 s window."""

_LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} (\w+) (\S+) (.*)$")


def conditions(lines: list[str]) -> Counter[str]:
    """Log lines by condition: the logger and the message's first words (numbers out)."""
    found: Counter[str] = Counter()
    for line in lines:
        if m := _LINE.match(line):
            words = re.sub(r"\d+", "N", m[3]).split()[:4]
            found[f"{m[1]} {m[2]} {' '.join(words)}"] += 1
    return found


async def test_an_outage_is_quiet_and_a_send_is_refused_at_once(
    tmp_path: Path, proxy: TcpProxy
) -> None:
    net = two_parties(tmp_path, kafka=PROXIED)
    sender, recipient = GatewayRun(net, SENDER), GatewayRun(net, RECIPIENT)
    async with httpx.AsyncClient(timeout=60) as client:
        try:
            sender.start()
            recipient.start()
            await sender.wait_ready(client)
            await recipient.wait_ready(client)
            before = await sender.send(client, dossier_body())
            assert before.status_code == 202, before.text
            first = before.json()["message_id"]
            await until_delivered(recipient, client, {first})

            lines_before = len(sender.log().splitlines())
            await proxy.cut("refuse")
            cut_at = time.monotonic()
            await eventually(lambda: ready(client, sender, False), "the outage to become known",
                             timeout_s=KNOWN_WITHIN_S, every_s=0.2)  # fmt: skip
            started = time.monotonic()
            refused = await sender.send(client, dossier_body())
            answered_s = time.monotonic() - started
            assert refused.status_code == 503, refused.text
            assert refused.json()["reason"] == "TRANSPORT_UNAVAILABLE"
            assert int(refused.headers["Retry-After"]) > 0
            assert answered_s < ANSWER_WITHIN_S, f"answered after {answered_s:.1f} s"

            # the scenario: the outage lasts OUTAGE_S, while the log lines are counted
            await asyncio.sleep(max(OUTAGE_S - (time.monotonic() - cut_at), 0))
            window_s = time.monotonic() - cut_at
            during = sender.log().splitlines()[lines_before:]
            print(f"\n{len(during)} log lines in {window_s:.1f} s of outage; POST answered "
                  f"503 in {answered_s * 1000:.0f} ms")  # fmt: skip
            for condition, count in conditions(during).most_common():
                print(f"  {count:4d}  {condition}")
            too_many = {c: n for c, n in conditions(during).items() if n > MAX_LINES_PER_CONDITION}
            assert not too_many, f"repeating lines not throttled: {too_many}"

            await proxy.restore()
            await eventually(lambda: ready(client, sender, True), "ready again after the restore",
                             timeout_s=30, every_s=0.2)  # fmt: skip
            after = await sender.send(client, dossier_body())
            assert after.status_code == 202, after.text
            last = after.json()["message_id"]
            delivered = await delivered_once(recipient, client, {first, last}, kafka=DIRECT)
            assert sorted(delivered) == sorted([first, last]), "the refused send was sent after all"
            for gateway in (sender, recipient):
                gateway.signal()
                assert await gateway.wait_exit(10) == 0, gateway.log()[-3000:]
                assert "Unclosed" not in gateway.log(), gateway.log()[-3000:]
        finally:
            sender.kill()
            recipient.kill()


async def ready(client: httpx.AsyncClient, gateway: GatewayRun, wanted: bool) -> bool:
    """Whether ``gateway``'s readiness is ``wanted``."""
    return ((await client.get(f"{gateway.url}/readyz")).status_code == 200) is wanted


async def until_delivered(
    recipient: GatewayRun, client: httpx.AsyncClient, wanted: set[str]
) -> None:
    async def delivered() -> bool:
        return wanted <= set(await recipient.inbox_ids(client))

    await eventually(delivered, f"{sorted(wanted)} delivered", timeout_s=60, every_s=0.2)
