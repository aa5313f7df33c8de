"""Which cases a run measures, in which order, each with a fresh stage.

Per payload size, KEM and recipient count: raw Kafka with records of the sealed envelope's
size, then sealed over Kafka, then sealed over the embedded log — per envelope format asked
for. Raw and sealed of one envelope size run back to back, so their ratio compares like with
like. A format the `Sealer` refuses (ValueError) is skipped with a note.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

from bench._load import SEAL_BATCH_MAX
from bench._parties import RECIPIENTS, Parties
from bench._payload import avro_cpu_us, padded_dossier
from bench._stages import RawStage, SealedStage, Stage
from broker.models import AvroModel

KIB = 1024


@dataclass(frozen=True, slots=True)
class Case:
    transport: str  # kafka | embedded
    kind: str  # raw | sealed
    kem: str
    recipients: int
    payload_bytes: int
    envelope_bytes: int
    format_version: int | None  # the sealed envelope's (or the one raw mimics)

    @property
    def label(self) -> str:
        fmt = f"f{self.format_version}" if self.format_version is not None else "fdefault"
        return f"{self.transport}-{self.kind}-{self.kem}-r{self.recipients}-{self.payload_bytes // KIB}k-{fmt}"


@dataclass(frozen=True, slots=True)
class Planned:
    case: Case
    make_stage: Callable[[], Stage]


@dataclass(frozen=True, slots=True)
class Plan:
    cases: list[Planned]
    avro_cpu_us: dict[int, tuple[float, float]]  # payload bytes → (encode, decode)
    skipped: list[str]


def _sealed(parties: Parties, fmt: int | None, message: AvroModel, recipients: int) -> SealedStage:
    names = tuple(p.party_id for p in RECIPIENTS[recipients])
    return SealedStage(parties.sealer(fmt), parties.opener(recipients), message, names)


def _format_version(stage: SealedStage, asked: int | None) -> int | None:
    return asked if asked is not None else getattr(stage.sealer, "format_version", None)


def _variants(
    parties: Parties,
    message: AvroModel,
    size: int,
    formats: Sequence[int | None],
    skipped: list[str],
) -> Iterator[Planned]:
    kem = parties.kem.value
    for recipients in RECIPIENTS:
        for fmt in formats:
            try:
                probe = _sealed(parties, fmt, message, recipients)
            except ValueError as exc:
                note = f"envelope format {fmt} ({exc})"
                if note not in skipped:
                    skipped.append(note)
                    print(f"bench: skipping {note}")
                continue
            envelope = probe.envelope_bytes(SEAL_BATCH_MAX)
            version = _format_version(probe, fmt)

            def sealed(p: Parties = parties, f: int | None = fmt, r: int = recipients) -> Stage:
                return _sealed(p, f, message, r)

            def raw(n: int = envelope) -> Stage:
                return RawStage(n)

            case = Case("kafka", "raw", kem, recipients, size, envelope, version)
            yield Planned(case, raw)
            for transport in ("kafka", "embedded"):
                yield Planned(
                    Case(transport, "sealed", kem, recipients, size, envelope, version), sealed
                )


def make_plan(
    sizes: Sequence[int], formats: Sequence[int | None], parties: Sequence[Parties]
) -> Plan:
    """Every case of the run, and the model ↔ Avro CPU cost per payload size."""
    skipped: list[str] = []
    cases: list[Planned] = []
    avro: dict[int, tuple[float, float]] = {}
    for size in sizes:
        message = padded_dossier(size)
        avro[size] = avro_cpu_us(message)
        for p in parties:
            cases += _variants(p, message, size, formats, skipped)
    return Plan(cases, avro, skipped)
