"""`lvvx demo`: the LVV case flow driven across the network over a transport.

For each case of the case book, every step's message is Avro-encoded and produced to the
inbox of each of its recipients, keyed by case id; one consumer per party reads its inbox,
decodes what arrives and commits. The run is green only if every record sent was received
exactly once, in order per case, and decoded to the message that was sent.

(This first version moves plain Avro; sealing, gateways and receipts build on it.)
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field

from broker._codec import default_codec
from broker.casebook import NETWORK, Case, CaseWriter
from broker.models import AvroModel, model_for
from broker.topics import inbox
from broker.transport import Consumer, TopicSpec, Transport

# How long the receivers may take, after the last send, before what is missing counts lost.
DELIVERY_DEADLINE_S = 60.0

INBOX_PARTITIONS = 3

_ROLE = {p.party_id: p.role.value for p in NETWORK}


@dataclass
class PartyCount:
    sent: int = 0
    delivered: int = 0


@dataclass
class DemoResult:
    cases: int
    sent: int = 0
    delivered: int = 0
    duplicates: int = 0
    out_of_order: int = 0
    mismatched: int = 0
    seconds: float = 0.0
    parties: dict[str, PartyCount] = field(default_factory=lambda: defaultdict(PartyCount))
    routes: Counter[tuple[str, str, str]] = field(default_factory=Counter)
    outcomes: Counter[str] = field(default_factory=Counter)

    @property
    def lost(self) -> int:
        return self.sent - self.delivered

    @property
    def ok(self) -> bool:
        return (
            self.lost == 0
            and self.duplicates == 0
            and self.out_of_order == 0
            and not self.mismatched
        )

    def summary(self) -> dict[str, object]:
        return {
            "cases": self.cases,
            "sent": self.sent,
            "delivered": self.delivered,
            "lost": self.lost,
            "duplicates": self.duplicates,
            "out_of_order": self.out_of_order,
            "outcomes": dict(sorted(self.outcomes.items())),
            "seconds": round(self.seconds, 2),
        }


@dataclass(frozen=True, slots=True)
class _Expected:
    message: AvroModel
    case_id: uuid.UUID
    seq: int  # position of the step within its case


def _headers(
    message_id: uuid.UUID, message: AvroModel, sender: str
) -> tuple[tuple[str, bytes], ...]:
    """Metadata a receiver needs before decoding; ids and names only, no personal data."""
    info = default_codec().info(message.avro_name)
    return (
        ("lvv-message-id", str(message_id).encode()),
        ("lvv-type", info.name.encode()),
        ("lvv-schema", info.fingerprint.hex().encode()),
        ("lvv-sender", sender.encode()),
    )


async def run_demo(
    transport: Transport,
    cases: int,
    *,
    seed: int = 2018,
    on_progress: Callable[[int, int], None] | None = None,
) -> DemoResult:
    """Send every step of ``cases`` cases and receive them at every recipient."""
    started = time.monotonic()
    book: list[Case] = CaseWriter(seed=seed).cases(cases)
    result = DemoResult(cases=cases)
    await transport.ensure_topics(
        [TopicSpec(inbox(p.party_id), partitions=INBOX_PARTITIONS) for p in NETWORK]
    )
    expected: dict[str, dict[uuid.UUID, _Expected]] = defaultdict(dict)
    received: dict[str, Counter[uuid.UUID]] = defaultdict(Counter)
    last_seq: dict[tuple[str, uuid.UUID], int] = {}
    total = sum(len(s.recipients) for c in book for s in c.steps)

    def on_record(party: str, message_id: uuid.UUID, payload: bytes, type_name: str) -> None:
        want = expected[party].get(message_id)
        if want is None:
            return  # a record of an earlier run on the same log
        received[party][message_id] += 1
        if received[party][message_id] > 1:
            result.duplicates += 1
            return
        result.delivered += 1
        result.parties[party].delivered += 1
        codec = default_codec()
        decoded = model_for(type_name).from_avro(codec.decode(type_name, payload))
        if decoded != want.message:
            result.mismatched += 1
        if last_seq.get((party, want.case_id), -1) > want.seq:
            result.out_of_order += 1
        last_seq[(party, want.case_id)] = want.seq
        if on_progress:
            on_progress(result.delivered, total)

    consumers = {
        p.party_id: transport.consumer(f"lvvx-demo.{p.party_id}", [inbox(p.party_id)])
        for p in NETWORK
    }
    for consumer in consumers.values():
        await consumer.start()
    stop = asyncio.Event()
    receivers = [
        asyncio.create_task(_receive(party, consumer, on_record, stop))
        for party, consumer in consumers.items()
    ]
    try:
        async with transport.producer() as producer:
            for case in book:
                for seq, step in enumerate(case.steps):
                    message_id = uuid.uuid4()
                    info = default_codec().info(step.message.avro_name)
                    payload = default_codec().encode(info.name, step.message.to_avro())
                    headers = _headers(message_id, step.message, step.sender)
                    for recipient in step.recipients:
                        expected[recipient][message_id] = _Expected(step.message, case.case_id, seq)
                        await producer.send(
                            inbox(recipient), payload, key=case.case_id.bytes, headers=headers
                        )
                        result.sent += 1
                        result.parties[step.sender].sent += 1
                        result.routes[(info.short_name, _ROLE[step.sender], _ROLE[recipient])] += 1
                result.outcomes[case.outcome.value] += 1
        deadline = time.monotonic() + DELIVERY_DEADLINE_S
        while result.delivered < result.sent and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.3)  # a moment for duplicates to show, if any
    finally:
        stop.set()
        await asyncio.gather(*receivers, return_exceptions=True)
        for consumer in consumers.values():
            await consumer.close()
    result.seconds = time.monotonic() - started
    return result


async def _receive(
    party: str,
    consumer: Consumer,
    on_record: Callable[[str, uuid.UUID, bytes, str], None],
    stop: asyncio.Event,
) -> None:
    while not stop.is_set():
        records = await consumer.poll(timeout_ms=100)
        for record in records:
            headers = dict(record.headers)
            on_record(
                party,
                uuid.UUID(headers["lvv-message-id"].decode()),
                record.value,
                headers["lvv-type"].decode(),
            )
        if records:
            await consumer.commit()
