"""CPU cost of sealing and opening one envelope (µs), per KEM and recipient count.

    taskset -c 0 .venv/bin/python -m bench.seal_open

Pure CPU: no transport. The replay guard is in memory. Each figure is the median of
5 runs of N operations, on the DossierDelivered example (~1 KiB of Avro).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from functools import partial

from broker.crypto import open_envelope
from broker.examples import example
from broker.models import KeyAlgorithm, PartyRole
from tests.crypto_net import NOW, A, Net

N = 400


class _Forgetful:
    """A replay guard that remembers nothing, so one envelope can be opened N times."""

    def claim(self, message_id: object, keep_until: object, now: object) -> None:
        return None


def per_op_us(fn: Callable[[], object]) -> float:
    runs = []
    for _ in range(5):
        started = time.perf_counter()
        for _ in range(N):
            fn()
        runs.append((time.perf_counter() - started) / N * 1e6)
    return statistics.median(runs)


def main() -> None:
    message = example("DossierDelivered")
    sender = A[PartyRole.IND]
    print(f"{'kem':<18}{'recipients':>11}{'seal µs':>10}{'open µs':>10}{'bytes':>8}")
    for kem in (KeyAlgorithm.X25519, KeyAlgorithm.MLKEM768_X25519):
        net = Net(kem)
        for recipients in (
            [A[PartyRole.MUNICIPALITY]],
            [A[PartyRole.MUNICIPALITY], A[PartyRole.NGO], "gemeente-utrecht"],
        ):
            envelope = net.seal(message, sender, recipients)
            seal_us = per_op_us(partial(net.seal, message, sender, recipients))
            open_us = per_op_us(
                partial(
                    open_envelope,
                    envelope,
                    me=net.keys(recipients[0]),
                    directory=net.directory,
                    replay_guard=_Forgetful(),
                    now=NOW,
                )
            )
            print(
                f"{kem.value:<18}{len(recipients):>11}{seal_us:>10.0f}{open_us:>10.0f}{len(envelope):>8}"
            )


if __name__ == "__main__":
    main()
