"""Traffic through the gateways' HTTP APIs, every operation recorded in a `History`.

Senders: workers each take a case of the casebook (bench/_soak_traffic.py's `CaseSource`) and
send its messages in order, each from its sender's gateway, at a shared fixed rate, through
the client SDK (`broker.client`). A back office that does not hear whether a send went
through sends it again with the same idempotency key, and so does the SDK: a send is retried
with its key until a definite answer comes, or until `SEND_DEADLINE_S` has passed. Its
outcome (`outcome_of`) is OK when the gateway answered with a message id, FAILED when the
last answer means nothing was sent and no earlier try may have sent it, UNKNOWN otherwise
(no definite answer by the deadline).

Readers: one back office per gateway (bench/_backoffice.py) reads its inbox and acknowledges
what it read; each delivery goes into the history (a message shown again before its
acknowledgement went through is the same delivery, not a second one).
"""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from collections.abc import Sequence
from contextvars import ContextVar
from typing import Any

import httpx

from bench._backoffice import problem, read_inbox
from bench._soak_traffic import CaseSource, Pacer, Send, api_client
from broker.client import ApiError, AsyncGatewayClient, CallRecord, InboxEntry, RetryPolicy
from broker.models import AvroModel
from tests.faults.history import History, Outcome

TRY_TIMEOUT_S = 90.0
"""One try of an API call. Longer than the gateway's own Kafka send timeout (30 s), so the
gateway's answer — an acknowledgement or an error — normally comes before the client gives up."""

SEND_DEADLINE_S = 420.0
"""How long one send is retried with its key. Past the quorum loss (two brokers down 30 s,
each restart 35–110 s on the 2-core machine) and the gateway's settling, from its audit
topic, of a send whose outcome it did not hear, once the log is back."""

RETRIES = RetryPolicy(attempts=10_000, max_backoff_s=4.0)
"""The deadline, not a count, ends a send's retries; a 503 says when to try again (5 s), a
lost answer backs off up to 4 s, so a send hears soon after the log is back."""

WORKERS_PER_MSG_S = 0.5
"""Sender workers per message/s of rate: a send normally takes well under this many seconds."""

MIN_WORKERS = 8
"""So a few slow sends (a leader moving) do not stall the whole stream."""

_TRIES: ContextVar[list[CallRecord] | None] = ContextVar("faults_send_tries", default=None)
"""The tries of the send this task is making: the clients' ``on_call`` reports to it."""


def short_type(message_type: str) -> str:
    """``DossierDelivered`` from an Avro full name or a short one."""
    return message_type.rsplit(".", 1)[-1]


def outcome_of(final: ApiError | None, tries: Sequence[CallRecord]) -> Outcome:
    """A send's outcome from the error its last try ended in (None: acknowledged) and all
    its tries. A definite refusal after a try whose answer was lost leaves it unknown: the
    refusal says only that this try did nothing."""
    if final is None:
        return Outcome.OK
    lost_answer = any(t.error is not None and t.error.outcome_unknown for t in tries)
    return Outcome.UNKNOWN if final.outcome_unknown or lost_answer else Outcome.FAILED


class Traffic:
    """Senders and readers over one API client per gateway and direction. ``transport``
    replaces the network (a scripted gateway, in tests)."""

    def __init__(
        self, gateways: dict[str, tuple[str, str]], history: History, *,
        deadline_s: float = SEND_DEADLINE_S, retry: RetryPolicy = RETRIES,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:  # fmt: skip
        """``gateways``: party → (base URL, token)."""
        self.history = history
        self.deadline_s, self.retry, self.transport = deadline_s, retry, transport
        self.senders: dict[str, AsyncGatewayClient] = {}
        self.readers: dict[str, AsyncGatewayClient] = {}
        for party, (base_url, token) in gateways.items():
            self.join(party, base_url, token)
        self.source = CaseSource(self._parties_in_order(gateways))
        self.errors: Counter[str] = Counter()
        self.sent = 0

    @staticmethod
    def _parties_in_order(gateways: dict[str, tuple[str, str]]) -> Any:
        from bench._soak_infra import PARTIES

        return tuple(p for p in PARTIES if p.party_id in gateways)

    def join(self, party: str, base_url: str, token: str) -> None:
        """A gateway that joined the network: it may send (`send_one`) and be `read`."""
        self.senders[party] = api_client(base_url, token, timeout_s=TRY_TIMEOUT_S,
                                         retry=self.retry, on_call=self._tried,
                                         transport=self.transport)  # fmt: skip
        self.readers[party] = api_client(base_url, token, timeout_s=TRY_TIMEOUT_S,
                                         transport=self.transport)  # fmt: skip

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
        return await self.send_one(Send(sender, recipients, message), seq)

    def _tried(self, record: CallRecord) -> None:
        if (tries := _TRIES.get()) is not None:
            tries.append(record)
        if record.error is not None and record.wait_s is not None:
            self.errors[f"send retried after {problem(record.error)}"] += 1

    async def send_one(self, send: Send, seq: int) -> uuid.UUID | None:
        """Send and record ``send``, the ``seq``-th of its case, retrying it with its key up
        to the deadline; its message id if it was acknowledged."""
        self.sent += 1
        tries: list[CallRecord] = []
        reset = _TRIES.set(tries)
        message_id, final, detail = None, None, ""
        try:
            async with asyncio.timeout(self.deadline_s):
                message_id = await self.senders[send.sender].send(send.message, send.recipients)
        except ApiError as error:
            final, detail = error, problem(error)
        except TimeoutError:  # the try in flight was cut off: it may have been written
            final = ApiError("no definite answer by the deadline", reason="DEADLINE",
                             outcome_unknown=True)  # fmt: skip
            detail = f"no definite answer in {self.deadline_s:g} s"
        finally:
            _TRIES.reset(reset)
        outcome = outcome_of(final, tries)
        if outcome is not Outcome.OK:
            self.errors[f"send {detail}"] += 1
        elif len(tries) > 1:
            detail = f"acknowledged at try {len(tries)}"
        self.history.send(send.sender, send.recipients, send.case_id, send.kind, seq, outcome,
                          message_id, detail)  # fmt: skip
        return message_id

    # --- reading: the back office's `Watcher` ---------------------------------------------

    async def read(self, party: str, stop: asyncio.Event) -> None:
        """Read and acknowledge ``party``'s inbox until ``stop`` is set and it is empty."""
        await read_inbox(party, self.readers[party], self, stop)

    def delivered(self, party: str, entry: InboxEntry) -> None:
        self.history.delivered(party, entry.message_id, entry.sender, entry.case_id,
                               short_type(entry.type))  # fmt: skip

    def acked(self, party: str, seconds: float) -> None:
        pass

    def inbox_read(self, party: str, seconds: float) -> None:
        pass

    def error(self, party: str, kind: str) -> None:
        self.errors[f"{party} {kind}"] += 1
