"""Steady traffic through the gateways' HTTP APIs, the way back offices make it.

Senders: workers each take a case of the casebook and send its messages in order, each from
its sender's gateway (POST /v1/messages), at one shared fixed rate; they never catch up on
slots they missed, so the achieved rate shows when the gateways cannot keep up. Receivers:
one per gateway reads its inbox (GET /v1/inbox) and acknowledges every message (POST
/v1/inbox/{id}/ack) before reading again, as a back office would.

The ledger pairs every (message id, recipient) a gateway accepted with its appearance in that
recipient's inbox: what is still pending after the drain is lost; what appears without a send
to pair with is a duplicate (or the delivery of a send whose answer never came back).
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import httpx

from broker.casebook import Case, CasePath, CaseWriter, Party
from broker.models import AvroModel

REQUEST_TIMEOUT_S = 30.0
"""One API call; a gateway slower than this counts as an error, not as a hang of the soak."""

SEND_SLACK_S = 0.25
"""Sender workers = rate × this, so the rate holds while a send takes up to this long. Not
more: every request in flight costs the soak's own HTTP client CPU (httpcore scans its whole
pool on each request), CPU the gateways on the same machine then lack."""

MAX_CONNECTIONS = 64
"""Per gateway and client: more than the senders a gateway gets at 200 msg/s (half of them
go to the municipality), and than `ACKS_IN_FLIGHT`."""

ACKS_IN_FLIGHT = 16
"""Acknowledgements a back office has open at once."""

KEEPALIVE_EXPIRY_S = 2.0
"""Drop idle connections before uvicorn does (after 5 s): reusing one it is closing fails
the request with "server disconnected", an error of the client's making."""

INBOX_BATCH = 500
"""Messages read per GET /v1/inbox (the API's maximum)."""

READ_IDLE_S = 0.05
"""Pause after reading an empty inbox."""

CASE_SEED = 2018

QUANTILES = (("p50", 0.50), ("p99", 0.99))


# --- what is sent ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Send:
    sender: str
    recipients: tuple[str, ...]
    body: dict[str, Any]


def _fits(case: Case, parties: frozenset[str]) -> bool:
    return all(s.sender in parties and set(s.recipients) <= parties for s in case.steps)


class CaseSource:
    """Cases of the casebook whose every message stays among ``parties``, round-robin over
    the paths that allow that; reproducible from the seed."""

    def __init__(self, parties: tuple[Party, ...], seed: int = CASE_SEED) -> None:
        self._names = frozenset(p.party_id for p in parties)
        self._municipality, self._ngo = parties[0].party_id, parties[1].party_id
        self._writer = CaseWriter(seed=seed)
        self._base = self._base_index()
        self._paths = [p for p in CasePath if self._fits_path(p)]
        if not self._paths:
            raise ValueError("no casebook path stays among these parties")
        self._n = 0

    def _base_index(self) -> int:
        """The casebook picks a case's municipality and NGO from its index: the first index
        (of ten, which cover every pair) that picks ours."""
        for i in range(10):
            probe = CaseWriter(seed=0).case(i)
            if (probe.municipality.party_id, probe.ngo.party_id) == (self._municipality, self._ngo):
                return i
        raise ValueError(f"no case index pairs {self._municipality} with {self._ngo}")

    def _fits_path(self, path: CasePath) -> bool:
        return _fits(CaseWriter(seed=0).case(self._base, path), self._names)

    @property
    def paths(self) -> list[CasePath]:
        return list(self._paths)

    def next_case(self) -> list[Send]:
        path = self._paths[self._n % len(self._paths)]
        case = self._writer.case(self._base + 10 * self._n, path)
        self._n += 1
        return [_send(step.sender, step.recipients, step.message) for step in case.steps]


def _send(sender: str, recipients: tuple[str, ...], message: AvroModel) -> Send:
    body = {
        "type": message.avro_name.rsplit(".", 1)[1],
        "recipients": list(recipients),
        "message": json.loads(message.model_dump_json()),
    }
    return Send(sender, recipients, body)


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

    def arrived(self, message_id: uuid.UUID, party: str) -> None:
        self.tally[party].delivered += 1
        key = (message_id, party)
        if key in self.pending:
            self.pending.remove(key)
        else:
            self.unpaired.add(key)

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


def api_client(base_url: str, token: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        base_url=base_url, headers={"Authorization": f"Bearer {token}"},
        timeout=REQUEST_TIMEOUT_S, limits=httpx.Limits(max_connections=MAX_CONNECTIONS, keepalive_expiry=KEEPALIVE_EXPIRY_S),
    )  # fmt: skip


def _problem(response: httpx.Response) -> str:
    try:
        reason = response.json().get("reason", "")
    except ValueError:
        reason = ""
    return f"HTTP {response.status_code} {reason}".strip()


class Traffic:
    """``senders`` and ``readers``: an API client per party each, so reading the inbox
    never waits behind sends for a connection."""

    def __init__(self, senders: dict[str, httpx.AsyncClient], readers: dict[str, httpx.AsyncClient],
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
            response = await self.senders[send.sender].post("/v1/messages", json=send.body)
        except httpx.HTTPError as exc:
            self.ledger.error(send.sender, f"send {type(exc).__name__}")
            return
        if response.status_code != 202:
            self.ledger.error(send.sender, f"send {_problem(response)}")
            return
        self.ledger.latencies["send"].append(time.perf_counter() - started)
        self.ledger.accepted(send, uuid.UUID(response.json()["message_id"]))

    async def read_inbox(self, party: str, stop: asyncio.Event) -> None:
        """Read and acknowledge ``party``'s inbox until ``stop`` is set and it is empty."""
        client = self.readers[party]
        held: set[str] = set()  # seen, ack not yet through: it shows again, and is no duplicate
        while True:
            items = await self._read(party, client)
            for item in items:
                if item["message_id"] not in held:
                    held.add(item["message_id"])
                    self.ledger.arrived(uuid.UUID(item["message_id"]), party)
            held -= await self._ack_all(party, client, [item["message_id"] for item in items])
            if not items:
                if stop.is_set():
                    return
                await asyncio.sleep(READ_IDLE_S)

    async def _read(self, party: str, client: httpx.AsyncClient) -> list[dict[str, Any]]:
        started = time.perf_counter()
        try:
            response = await client.get("/v1/inbox", params={"limit": INBOX_BATCH})
        except httpx.HTTPError as exc:
            self.ledger.error(party, f"inbox {type(exc).__name__}")
            return []
        if response.status_code != 200:
            self.ledger.error(party, f"inbox {_problem(response)}")
            return []
        self.ledger.latencies["inbox"].append(time.perf_counter() - started)
        items: list[dict[str, Any]] = response.json()["items"]
        return items

    async def _ack_all(self, party: str, client: httpx.AsyncClient, ids: list[str]) -> set[str]:
        """Acknowledge ``ids``, `ACKS_IN_FLIGHT` at a time; those the gateway took."""
        gate = asyncio.Semaphore(ACKS_IN_FLIGHT)

        async def one(message_id: str) -> str | None:
            async with gate:
                return await self._ack(party, client, message_id)

        return {m for m in await asyncio.gather(*map(one, ids)) if m is not None}

    async def _ack(self, party: str, client: httpx.AsyncClient, message_id: str) -> str | None:
        """Acknowledge one message; its id once the gateway took the ack."""
        started = time.perf_counter()
        try:
            response = await client.post(f"/v1/inbox/{message_id}/ack")
        except httpx.HTTPError as exc:
            self.ledger.error(party, f"ack {type(exc).__name__}")
            return None
        if response.status_code != 204:
            self.ledger.error(party, f"ack {_problem(response)}")
            return None
        self.ledger.latencies["ack"].append(time.perf_counter() - started)
        self.ledger.tally[party].acked += 1
        return message_id


def percentiles_ms(latencies: list[float]) -> dict[str, float]:
    """p50, p99 and max of ``latencies`` (seconds), in ms; empty without any."""
    if not latencies:
        return {}
    ordered = sorted(latencies)
    at = {name: ordered[min(int(q * len(ordered)), len(ordered) - 1)] for name, q in QUANTILES}
    return {name: round(v * 1000, 1) for name, v in (*at.items(), ("max", ordered[-1]))}
