"""What a case does to each message before it is produced and after it is consumed.

`RawStage`: nothing — random bytes of the envelope's size go out and come back.
`SealedStage`: model → Avro → seal (`Sealer.seal_many`, one call per batch) on the way out;
open → dedup (the opener's replay guard) → deliver (`Opener.open_many`) on the way back.
Both key each record by its message id, so a delivery finds its send time.

The CPU of `seal_many` and `open_many` is counted with `time.thread_time`: they run on the
event loop's thread, and the embedded log's SQLite threads must not be counted in.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from broker.crypto import Opener, Sealer, SealRequest
from broker.errors import EnvelopeRejected
from broker.models import AvroModel

Record = tuple[bytes, bytes]
"""A record's key (the message id's 16 bytes) and value."""

Deliver = Callable[[bytes], None]
"""Called with the message id of each message delivered."""

RAW_POOL = 64
"""Distinct random values the raw stage cycles through: making fresh ones per message would
charge raw with CPU that sealed does not spend on it."""


class BenchFailure(RuntimeError):
    """The pipeline did not do what it was measured doing (a rejection, a lost message)."""


@dataclass
class CpuMeter:
    """Thread CPU spent in one step, and how many messages and calls it took."""

    cpu_s: float = 0.0
    messages: int = 0
    calls: int = 0

    def add(self, started: float, messages: int) -> None:
        self.cpu_s += time.thread_time() - started
        self.messages += messages
        self.calls += 1

    @property
    def us_per_message(self) -> float | None:
        return self.cpu_s / self.messages * 1e6 if self.messages else None

    @property
    def mean_batch(self) -> float | None:
        return self.messages / self.calls if self.calls else None


class RawStage:
    kind = "raw"

    def __init__(self, value_bytes: int) -> None:
        self.value_bytes = value_bytes
        self._pool = [os.urandom(value_bytes) for _ in range(RAW_POOL)]
        self._next = 0

    def encode(self, ids: Sequence[uuid.UUID]) -> list[Record]:
        out = []
        for message_id in ids:
            out.append((message_id.bytes, self._pool[self._next]))
            self._next = (self._next + 1) % RAW_POOL
        return out

    def decode(self, records: Sequence[Record], deliver: Deliver) -> None:
        for key, _ in records:
            deliver(key)


@dataclass
class SealedStage:
    kind = "sealed"

    sealer: Sealer
    opener: Opener
    message: AvroModel
    recipients: tuple[str, ...]
    seal: CpuMeter = field(default_factory=CpuMeter)
    open: CpuMeter = field(default_factory=CpuMeter)

    def encode(self, ids: Sequence[uuid.UUID]) -> list[Record]:
        requests = [SealRequest(self.message, self.recipients, message_id=i) for i in ids]
        started = time.thread_time()
        envelopes = self.sealer.seal_many(requests)
        self.seal.add(started, len(requests))
        return [(i.bytes, e) for i, e in zip(ids, envelopes, strict=True)]

    def decode(self, records: Sequence[Record], deliver: Deliver) -> None:
        started = time.thread_time()
        results = self.opener.open_many([value for _, value in records])
        self.open.add(started, len(records))
        for result in results:
            if isinstance(result, EnvelopeRejected):
                raise BenchFailure(f"an envelope was rejected: {result.reason}") from result
            deliver(result.header.message_id.bytes)

    def envelope_bytes(self, batch: int) -> int:
        """The mean size of the envelopes of one batch of ``batch``: format 2 envelopes carry
        their batch's proof, so their size grows a little with the batch."""
        envelopes = self.sealer.seal_many([SealRequest(self.message, self.recipients)] * batch)
        return round(sum(map(len, envelopes)) / batch)


Stage = RawStage | SealedStage
