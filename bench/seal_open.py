"""Seal and open alone, in process: the figures `make bench` reports as "seal and open are
also timed alone", without Kafka, in seconds rather than minutes.

    .venv/bin/python -m bench.seal_open                 # 4 KiB, X25519, 3 recipients, format 2
    .venv/bin/python -m bench.seal_open --size 64 --recipients 1 --kem mlkem --repeats 9

The same steps as the benchmark's `SealedStage`: `Sealer.seal_many` of a batch of requests
(fresh message ids), `Opener.open_many` of that batch (in-memory replay guard), each counted
in thread CPU. Each repeat seals and opens ``messages`` messages in batches of the size
given; the best repeat is reported, since on a shared machine noise only ever adds time.
"""

from __future__ import annotations

import argparse
import os
import time
import uuid

from bench._parties import RECIPIENTS, make_parties
from bench._payload import padded_dossier
from bench._stages import CpuMeter, SealedStage
from broker.models import KeyAlgorithm

KEMS = {"x25519": KeyAlgorithm.X25519, "mlkem": KeyAlgorithm.MLKEM768_X25519}


def measure(stage: SealedStage, batch: int, messages: int) -> tuple[float, float]:
    """(seal, open) thread-CPU µs per message over ``messages`` messages in batches."""
    stage.seal, stage.open = CpuMeter(), CpuMeter()
    for _ in range(max(1, messages // batch)):
        records = stage.encode([uuid.uuid4() for _ in range(batch)])
        stage.decode(records, lambda _: None)
    return stage.seal.us_per_message or 0.0, stage.open.us_per_message or 0.0


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.seal_open", description=__doc__)
    parser.add_argument("--size", type=int, default=4, help="payload KiB (default 4)")
    parser.add_argument("--recipients", type=int, choices=sorted(RECIPIENTS), default=3)
    parser.add_argument("--kem", choices=sorted(KEMS), default="x25519")
    parser.add_argument("--format", type=int, default=2, dest="format_version")
    parser.add_argument("--batches", default="64,1", help="batch sizes (default 64,1)")
    parser.add_argument("--messages", type=int, default=1280, help="per repeat and batch size")
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args(argv)

    parties = make_parties(KEMS[args.kem])
    recipients = tuple(p.party_id for p in RECIPIENTS[args.recipients])
    stage = SealedStage(
        parties.sealer(args.format_version),
        parties.opener(args.recipients),
        padded_dossier(args.size * 1024),
        recipients,
    )
    batches = [int(b) for b in args.batches.split(",")]
    measure(stage, batches[0], batches[0] * 4)  # warm: epochs, caches, lazy imports
    best = {b: (float("inf"), float("inf")) for b in batches}
    for _ in range(args.repeats):
        for b in batches:
            s, o = measure(stage, b, args.messages)
            best[b] = (min(best[b][0], s), min(best[b][1], o))
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    print(
        f"{args.size} KiB, {args.kem}, {args.recipients} rcpt, format {args.format_version}; "
        f"best of {args.repeats}; load {load}; {time.strftime('%H:%M:%S')}"
    )
    for b in batches:
        seal_us, open_us = best[b]
        print(f"  batch {b:>3}: seal {seal_us:6.1f} µs  open {open_us:6.1f} µs")


if __name__ == "__main__":
    main()
