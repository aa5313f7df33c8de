"""What `AuditChain.prepare` costs per event, for a write of 4 events (one message's worth)
and of 64 (a full write batch): ``python -m bench.audit_prepare``. A measurement, not a test."""

from __future__ import annotations

import os
import timeit
import uuid
from datetime import UTC, datetime

from broker.audit import AuditChain, EventSpec
from broker.crypto import signing_key_from_seed
from broker.models import AuditAction

REPEATS = 7
"""Best of 7 runs: the least disturbed by the rest of the machine."""


def _spec() -> EventSpec:
    return EventSpec(AuditAction.SENT, message_id=uuid.uuid4(), message_type="nl.lvv.v1.DossierDelivered",
                     sender="ind", recipients=("gemeente-utrecht",), case_id=uuid.uuid4(),
                     envelope_sha256=bytes(32))  # fmt: skip


def per_event_us(n: int) -> float:
    chain = AuditChain("ind", signing_key_from_seed(b"\x01" * 32), "lvv.v1.audit.ind",
                       lambda: datetime(2026, 1, 1, tzinfo=UTC))  # fmt: skip
    specs = [_spec() for _ in range(n)]
    number = max(1, 2048 // n)
    best = min(timeit.repeat(lambda: chain.prepare(specs), number=number, repeat=REPEATS))
    return best / number / n * 1e6


def main() -> None:
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    for n in (4, 64):
        print(f"prepare({n:2d} events): {per_event_us(n):6.1f} µs per event   (load {load})")


if __name__ == "__main__":
    main()
