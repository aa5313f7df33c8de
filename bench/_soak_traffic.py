"""Steady traffic through the gateways' HTTP APIs, the way back offices make it.

Senders: workers each take a case of the casebook and send its messages in order, each from
its sender's gateway (the client SDK's `send`), at one shared fixed rate; they never catch up
on slots they missed, so the achieved rate shows when the gateways cannot keep up. Receivers:
one per gateway reads its inbox and acknowledges every message before reading again, as a
back office would (bench/_backoffice.py).

The ledger pairs every (message id, recipient) a gateway accepted with its appearance in that
recipient's inbox: what is still pending after the drain is lost; what appears without a send
to pair with is a duplicate (or the delivery of a send whose answer never came back).
"""

from __future__ import annotations

import asyncio
import math
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field

import httpx

from bench._backoffice import problem, read_inbox
from broker.client import ApiError, AsyncGatewayClient, InboxEntry, OnCall, RetryPolicy
from broker.models import AvroModel
from demo.casebook import MUNICIPALITIES, NGOS, Case, CasePath, CaseWriter, Party

REQUEST_TIMEOUT_S = 30.0
"""One API call; a gateway slower than this counts as an error, not as a hang of the soak."""

SEND_SLACK_S = 0.25
"""Sender workers = rate × this, so the rate holds while a send takes up to this long. Not
more: every request in flight costs the soak's own HTTP client CPU (httpcore scans its whole
pool on each request), CPU the gateways on the same machine then lack."""

MAX_CONNECTIONS = 64
"""Per gateway and client: more than the senders a gateway gets at 200 msg/s (half of them
go to the municipality), and than `ACKS_IN_FLIGHT`."""

KEEPALIVE_EXPIRY_S = 2.0
"""Drop idle connections before uvicorn does (after 5 s): reusing one it is closing fails
the request with "server disconnected", an error of the client's making."""

CASE_SEED = 2018

QUANTILES = (("p50", 0.50), ("p99", 0.99))


# --- what is sent ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Send:
    sender: str
    recipients: tuple[str, ...]
    message: AvroModel

    @property
    def case_id(self) -> uuid.UUID:
        case_id = getattr(self.message, "case_id", None)
        if not isinstance(case_id, uuid.UUID):
            raise TypeError(f"{self.message.avro_name} has no case id")
        return case_id

    @property
    def kind(self) -> str:
        """The message type's short name (``DossierDelivered``)."""
        return self.message.avro_name.rsplit(".", 1)[-1]


def _fits(case: Case, parties: frozenset[str]) -> bool:
    return all(s.sender in parties and set(s.recipients) <= parties for s in case.steps)


class CaseSource:
    """Cases of the casebook whose every message stays among ``parties``, round-robin over
    the (municipality and NGO pair, path) combinations that allow that; reproducible from
    the seed. With the whole demo network every pair and every path takes its turn."""

    PERIOD = math.lcm(len(MUNICIPALITIES), len(NGOS))
    """The casebook picks a case's municipality and NGO from its index (modulo their counts):
    this many consecutive indices cover every pair, and ``i + PERIOD`` picks what ``i`` does."""

    def __init__(self, parties: tuple[Party, ...], seed: int = CASE_SEED) -> None:
        names = frozenset(p.party_id for p in parties)
        probe = CaseWriter(seed=0)
        self._turns = [
            (i, path)
            for i in range(self.PERIOD)
            for path in CasePath
            if _fits(probe.case(i, path), names)
        ]
        if not self._turns:
            raise ValueError("no casebook case stays among these parties")
        self._writer = CaseWriter(seed=seed)
        self._n = 0

    @property
    def paths(self) -> list[CasePath]:
        return [p for p in CasePath if any(p is path for _, path in self._turns)]

    def next_case(self) -> list[Send]:
        first, path = self._turns[self._n % len(self._turns)]
        index = first + self.PERIOD * (self._n // len(self._turns))
        case = self._writer.case(index, path)
        self._n += 1
        return [Send(step.sender, step.recipients, step.message) for step in case.steps]


# --- pacing ------------------------------------------------------------------------------


class Pacer:
    """Hands out send slots ``1/rate`` apart until ``deadline`` (loop time). A slot missed
    is gone: there is no burst to catch up."""

    def __init__(self, rate: float, deadline: float) -> None:
        self._interval = 1.0 / rate
        self._deadline = deadline
        self._next = 0.0

    async def slot(self) -> bool:
        """Wait for the next slot; False once the deadline has passed."""
        now = asyncio.get_running_loop().time()
        at = max(self._next, now)
        if at >= self._deadline:
            return False
        self._next = at + self._interval
        await asyncio.sleep(at - now)
        return True


# --- accounting --------------------------------------------------------------------------


@dataclass
class PartyTally:
    sent: int = 0
    """Messages this party's gateway accepted (202)."""
    copies: int = 0
    """Those times their recipients: what should arrive in inboxes."""
    delivered: int = 0
    """Messages seen in this party's inbox."""
    acked: int = 0
    errors: Counter[str] = field(default_factory=Counter)


class Ledger:
    def __init__(self, parties: list[str]) -> None:
        self.tally = {p: PartyTally() for p in parties}
        self.pending: set[tuple[uuid.UUID, str]] = set()
        self.unpaired: set[tuple[uuid.UUID, str]] = set()
        self.latencies: dict[str, list[float]] = {"send": [], "inbox": [], "ack": []}
        """Seconds each successful API call took, by operation."""

    def accepted(self, send: Send, message_id: uuid.UUID) -> None:
        tally = self.tally[send.sender]
        tally.sent += 1
        tally.copies += len(send.recipients)
        for recipient in send.recipients:
            key = (message_id, recipient)
            if key in self.unpaired:  # it arrived before the send's answer came back
                self.unpaired.remove(key)
            else:
                self.pending.add(key)

    # the back office's `Watcher`

    def delivered(self, party: str, entry: InboxEntry) -> None:
        self.tally[party].delivered += 1
        key = (entry.message_id, party)
        if key in self.pending:
            self.pending.remove(key)
        else:
            self.unpaired.add(key)

    def acked(self, party: str, seconds: float) -> None:
        self.tally[party].acked += 1
        self.latencies["ack"].append(seconds)

    def inbox_read(self, party: str, seconds: float) -> None:
        self.latencies["inbox"].append(seconds)

    def error(self, party: str, kind: str) -> None:
        self.tally[party].errors[kind] += 1

    def totals(self) -> PartyTally:
        total = PartyTally()
        for t in self.tally.values():
            total.sent += t.sent
            total.copies += t.copies
            total.delivered += t.delivered
            total.acked += t.acked
            total.errors.update(t.errors)
        return total


# --- the traffic -------------------------------------------------------------------------


def api_client(
    base_url: str, token: str, connections: int = MAX_CONNECTIONS, *,
    timeout_s: float = REQUEST_TIMEOUT_S, retry: RetryPolicy | None = None,
    on_call: OnCall | None = None, transport: httpx.AsyncBaseTransport | None = None,
) -> AsyncGatewayClient:  # fmt: skip
    """A gateway's API with keep-alive connections: at most ``connections`` of them (httpcore
    scans every connection of its pool on each request, so no more than needed); retries
    the client's default unless ``retry`` says otherwise."""
    limits = httpx.Limits(max_connections=connections, keepalive_expiry=KEEPALIVE_EXPIRY_S)
    return AsyncGatewayClient(base_url, transport=transport, token=token, timeout_s=timeout_s,
                              limits=limits, retry=retry, on_call=on_call)  # fmt: skip


class Traffic:
    """``senders`` and ``readers``: an API client per party each, so reading the inbox
    never waits behind sends for a connection."""

    def __init__(self, senders: dict[str, AsyncGatewayClient], readers: dict[str, AsyncGatewayClient],
                 source: CaseSource, ledger: Ledger) -> None:  # fmt: skip
        self.senders, self.readers = senders, readers
        self.source = source
        self.ledger = ledger

    async def send_steadily(self, rate: float, seconds: float) -> None:
        """Send at ``rate`` messages/s for ``seconds``; returns when the last send answered."""
        pacer = Pacer(rate, asyncio.get_running_loop().time() + seconds)
        workers = max(1, round(rate * SEND_SLACK_S))
        await asyncio.gather(*(self._worker(pacer) for _ in range(workers)))

    async def _worker(self, pacer: Pacer) -> None:
        while True:
            for send in self.source.next_case():
                if not await pacer.slot():
                    return
                await self._send(send)

    async def _send(self, send: Send) -> None:
        started = time.perf_counter()
        try:
            message_id = await self.senders[send.sender].send(send.message, send.recipients)
        except ApiError as error:
            self.ledger.error(send.sender, f"send {problem(error)}")
            return
        self.ledger.latencies["send"].append(time.perf_counter() - started)
        self.ledger.accepted(send, message_id)

    async def read_inbox(self, party: str, stop: asyncio.Event) -> None:
        """``party``'s back office: reads and acknowledges until ``stop`` and empty."""
        await read_inbox(party, self.readers[party], self.ledger, stop)


def percentiles_ms(latencies: list[float]) -> dict[str, float]:
    """p50, p99 and max of ``latencies`` (seconds), in ms; empty without any."""
    if not latencies:
        return {}
    ordered = sorted(latencies)
    at = {name: ordered[min(int(q * len(ordered)), len(ordered) - 1)] for name, q in QUANTILES}
    return {name: round(v * 1000, 1) for name, v in (*at.items(), ("max", ordered[-1]))}
