"""The message measured: the example `DossierDelivered`, its free-text ``notes`` padded so
the Avro-encoded payload is exactly the size asked for; and the CPU cost of the model ↔ Avro
steps alone, which sealing and opening include."""

from __future__ import annotations

import time
from collections.abc import Callable

from broker.crypto import MAX_PAYLOAD_ITEMS
from broker.models import AvroModel, DossierDelivered
from demo.examples import example

PAD = "Aanvullende notitie bij het dossier, zonder persoonsgegevens. "
"""Filler text for ``notes``: readable like real notes (Kafka compression is off anyway)."""

AVRO_CPU_ROUNDS = 200
"""Repetitions of one encode or decode when timing it: enough to average out timer ticks."""


def encode(message: AvroModel) -> bytes:
    """Model → Avro, as `seal` does it."""
    return message.avro_bytes()


def decode(model: type[AvroModel], payload: bytes) -> AvroModel:
    """Avro → model, as `open_envelope` does it for the current schema: the generated
    checked decoder (canonical form, bounds and the model's rules in one pass)."""
    return model.from_avro_bytes(payload, max_items=MAX_PAYLOAD_ITEMS)


def padded_dossier(size: int) -> DossierDelivered:
    """The example dossier with ``notes`` grown until its Avro encoding is ``size`` bytes."""
    base = example("DossierDelivered")
    assert isinstance(base, DossierDelivered)
    notes = base.notes or ""
    for _ in range(8):  # converges in one or two steps; the length prefix may grow a byte
        message = base.model_copy(update={"notes": notes})
        missing = size - len(encode(message))
        if missing == 0:
            return DossierDelivered.model_validate(message.model_dump())
        if missing < 0 and len(notes) + missing < 0:
            raise ValueError(f"the dossier is larger than {size} bytes without notes")
        notes = _grow(notes, missing)
    raise ValueError(f"cannot pad the dossier to exactly {size} bytes")


def _grow(text: str, by: int) -> str:
    if by < 0:
        return text[:by]
    return text + (PAD * (by // len(PAD) + 1))[:by]


def cpu_us(step: Callable[[], object], rounds: int = AVRO_CPU_ROUNDS) -> float:
    """CPU µs of this thread per call of ``step``."""
    step()  # warm: caches, lazy imports
    started = time.thread_time()
    for _ in range(rounds):
        step()
    return (time.thread_time() - started) / rounds * 1e6


def avro_cpu_us(message: AvroModel) -> tuple[float, float]:
    """(model → Avro, Avro → model) CPU µs per message."""
    payload = encode(message)
    return cpu_us(lambda: encode(message)), cpu_us(lambda: decode(type(message), payload))
