"""Traffic through the gateways' HTTP APIs, every operation recorded in a `History`.

Senders: workers each take a case of the casebook (bench/_soak_traffic.py's `CaseSource`) and
send its messages in order, each from its sender's gateway, at a shared fixed rate. A send
is OK when the gateway answered 202 with a message id, FAILED when it answered with an error
that means nothing was sent (4xx; 503 other than a timeout, which the API documents as
"nothing was sent"), and UNKNOWN when no answer came or the gateway timed out itself.

Readers: one back office per gateway (bench/_backoffice.py) reads its inbox and acknowledges
what it read; each delivery goes into the history (a message shown again before its
acknowledgement went through is the same delivery, not a second one).
"""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from typing import Any

import httpx

from bench._backoffice import problem, read_inbox, reason_of
from bench._soak_traffic import CaseSource, Pacer, Send, _send, api_client
from broker.models import AvroModel
from tests.faults.history import History, Outcome

SEND_TIMEOUT_S = 90.0
"""One API call. Longer than the gateway's own Kafka send timeout (30 s), so the gateway's
answer — an acknowledgement or an error — normally comes before the client gives up."""

UNKNOWN_REASONS = frozenset({"TRANSPORT_TIMEOUT"})
"""503 reasons after which the write may still have happened (a Kafka request timed out)."""

WORKERS_PER_MSG_S = 0.5
"""Sender workers per message/s of rate: a send normally takes well under this many seconds."""

MIN_WORKERS = 8
"""So a few slow sends (a leader moving) do not stall the whole stream."""


def short_type(message_type: str) -> str:
    """``DossierDelivered`` from an Avro full name or a short one."""
    return message_type.rsplit(".", 1)[-1]


def outcome_of(response: httpx.Response) -> tuple[Outcome, str]:
    if response.status_code == 202:
        return Outcome.OK, ""
    reason, detail = reason_of(response), problem(response)
    if response.status_code >= 500 and (response.status_code != 503 or reason in UNKNOWN_REASONS):
        return Outcome.UNKNOWN, detail
    return Outcome.FAILED, detail


class Traffic:
    """Senders and readers over one API client per gateway and direction."""

    def __init__(self, gateways: dict[str, tuple[str, str]], history: History) -> None:
        """``gateways``: party → (base URL, token)."""
        self.history = history
        self.senders = {p: self._client(*g) for p, g in gateways.items()}
        self.readers = {p: self._client(*g) for p, g in gateways.items()}
        self.source = CaseSource(self._parties_in_order(gateways))
        self.errors: Counter[str] = Counter()
        self.sent = 0

    @staticmethod
    def _client(base_url: str, token: str) -> httpx.AsyncClient:
        client = api_client(base_url, token)
        client.timeout = httpx.Timeout(SEND_TIMEOUT_S, connect=10.0)
        return client

    @staticmethod
    def _parties_in_order(gateways: dict[str, tuple[str, str]]) -> Any:
        from bench._soak_infra import PARTIES

        return tuple(p for p in PARTIES if p.party_id in gateways)

    def join(self, party: str, base_url: str, token: str) -> None:
        """A gateway that joined the network: it may send (`send_one`) and be `read`."""
        self.senders[party] = self._client(base_url, token)
        self.readers[party] = self._client(base_url, token)

    async def close(self) -> None:
        for client in (*self.senders.values(), *self.readers.values()):
            await client.aclose()

    # --- sending -------------------------------------------------------------------------

    async def send(self, rate: float, messages: int, stop: asyncio.Event) -> None:
        """Send at ``rate`` messages/s until ``messages`` are sent and ``stop`` is set (the
        fault is over), whichever is later."""
        pacer = Pacer(rate, float("inf"))
        target = self.sent + messages
        workers = max(MIN_WORKERS, round(rate * WORKERS_PER_MSG_S))

        async def worker() -> None:
            while not (self.sent >= target and stop.is_set()):
                await self._send_case(self.source.next_case(), pacer)

        await asyncio.gather(*(worker() for _ in range(workers)))

    async def _send_case(self, case: list[Send], pacer: Pacer) -> None:
        for seq, send in enumerate(case):
            await pacer.slot()
            await self.send_one(send, seq)

    async def send_message(self, sender: str, recipients: tuple[str, ...], message: AvroModel,
                           seq: int) -> uuid.UUID | None:  # fmt: skip
        """`send_one` of a message outside the casebook's cases."""
        return await self.send_one(_send(sender, recipients, message), seq)

    async def send_one(self, send: Send, seq: int) -> uuid.UUID | None:
        """Send and record ``send``, the ``seq``-th of its case; its message id if it was
        acknowledged."""
        case_id = uuid.UUID(send.body["message"]["case_id"])
        kind = short_type(send.body["type"])
        self.sent += 1
        try:
            response = await self.senders[send.sender].post("/v1/messages", json=send.body)
        except httpx.ConnectError as exc:  # the request never reached the gateway
            outcome, detail = Outcome.FAILED, type(exc).__name__
        except httpx.HTTPError as exc:  # sent, no answer: it may have been written
            outcome, detail = Outcome.UNKNOWN, type(exc).__name__
        else:
            outcome, detail = outcome_of(response)
        message_id = None
        if outcome is Outcome.OK:
            message_id = uuid.UUID(response.json()["message_id"])
        else:
            self.errors[f"send {detail}"] += 1
        self.history.send(send.sender, send.recipients, case_id, kind, seq, outcome, message_id,
                          detail)  # fmt: skip
        return message_id

    # --- reading: the back office's `Watcher` ---------------------------------------------

    async def read(self, party: str, stop: asyncio.Event) -> None:
        """Read and acknowledge ``party``'s inbox until ``stop`` is set and it is empty."""
        await read_inbox(party, self.readers[party], self, stop)

    def delivered(self, party: str, item: dict[str, Any]) -> None:
        self.history.delivered(party, uuid.UUID(item["message_id"]), item["sender"],
                               uuid.UUID(item["case_id"]), short_type(item["type"]))  # fmt: skip

    def acked(self, party: str, seconds: float) -> None:
        pass

    def inbox_read(self, party: str, seconds: float) -> None:
        pass

    def error(self, party: str, kind: str) -> None:
        self.errors[f"{party} {kind}"] += 1
