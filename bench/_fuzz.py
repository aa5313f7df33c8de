"""A mutation fuzzer for opening envelopes — the one invariant of STYLE §10 and h11's fuzzer:
any input opens (and then it is an authentic envelope, read as it was sealed) or is refused
with `EnvelopeRejected` and a reason; nothing else ever escapes `open_envelope`.

Shared by the short run in CI (tests/unit/crypto/test_open_fuzz.py) and the long one (bench/fuzz_open.py).
Inputs are made from a fixed corpus of valid envelopes of both formats and both KEMs, sealed
once on the example network:

- byte-level mutations of an envelope: bit flips, interesting bytes, truncations, extensions,
  splices, duplicated chunks, two envelopes spliced together, random bytes;
- field-level ones: a length, count or integer field (every Avro varint of the envelope,
  found by walking it) replaced by a huge, negative, off-by-one or non-canonical value;
- an authenticated but hostile sender: a sender's own key seals a mutated payload or a
  header that lies (type, fingerprint, case, times), so the checks after the signature
  (time window, decryption, payload decoding) are fuzzed too.

Everything is seeded: a run is reproducible from its seed and input count.
"""

from __future__ import annotations

import random
import traceback
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from functools import cache
from typing import Any

from broker.contract.binary import write_long
from broker.crypto import (
    MAX_ENVELOPE_ITEMS,
    Directory,
    Opener,
    PartyKeys,
    Sealer,
    SealRequest,
    SenderEpochs,
    open_envelope,
    prepare_envelope,
    seal,
    seal_v1_from_parts,
    seal_v2_batch,
    varint_spans,
)
from broker.errors import EnvelopeRejected
from broker.models import MESSAGE_MODELS, AvroModel, EnvelopeHeader, PartyRole
from broker.policy import POLICY, SENDER_FIELDS, SENDER_ROLE_FIELDS
from broker.replay import MemoryReplayGuard
from demo.examples import EXAMPLE_TIME, example, example_network

NOW = EXAMPLE_TIME
"""Every envelope is sealed and opened at the example network's time."""

REPLAY_WINDOW = 1_000
"""Inputs one replay guard sees before a fresh one takes over: authentic envelopes are
opened (and then refused as replays) again and again, while memory stays bounded."""

MAX_SAMPLES = 20
"""Crashes and violations kept with their input, for the report."""

INTERESTING_BYTES = (0x00, 0x01, 0x02, 0x7F, 0x80, 0xFE, 0xFF)
INTERESTING_INTS = (
    0, 1, -1, 2, 63, 64, -64, 127, 128, 2**31 - 1, 2**31, -(2**31), 2**32, 2**40,
    2**62, 2**63 - 1, -(2**63),
)  # fmt: skip
"""Values a length, count or integer field is replaced with: each end of every range the
reader checks, and sizes that would allocate far more than the input holds."""


# --- the corpus ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Base:
    """A valid envelope, who opens it, and where its varints sit."""

    name: str
    data: bytes
    me: str
    message: AvroModel
    varints: tuple[tuple[int, int], ...]


@dataclass(frozen=True)
class Forgeable:
    """A message a sender may send, for the hostile-but-authenticated inputs."""

    message: AvroModel
    sender: str
    recipients: tuple[str, ...]


@dataclass
class Corpus:
    keys: dict[str, PartyKeys]
    directory: Directory
    bases: list[Base]
    forgeable: list[Forgeable]
    authentic: dict[bytes, AvroModel] = field(default_factory=dict)


def _route(name: str, directory: Directory, *, want: str | None = None) -> tuple[str, list[str]]:
    """The example's sender and up to two recipients the policy allows for type ``name``."""
    rule = POLICY[name]
    parties = sorted(directory.parties)
    message = example(name)
    if name in SENDER_FIELDS:
        sender = str(getattr(message, SENDER_FIELDS[name]))
    else:
        role = getattr(message, SENDER_ROLE_FIELDS.get(name, ""), None)
        sender = next(p for p in parties if directory.role(p) in ({role} if role else rule.senders))
    recipients = [p for p in parties if p != sender and directory.role(p) in rule.recipients]
    if want is not None:
        recipients.sort(key=lambda p: p != want)
    return sender, recipients[:2]


@cache
def corpus() -> Corpus:
    """The valid envelopes every input is made from (sealed once per process)."""
    net = example_network()
    keys = {p: n.keys for p, n in net.parties.items()}
    directory = net.directory
    dtv = next(p for p in directory.parties if directory.role(p) is PartyRole.DTV)
    out = Corpus(keys, directory, [], [])

    def add(name: str, data: bytes, me: str, message: AvroModel) -> None:
        out.bases.append(Base(name, data, me, message, varint_spans(data, MAX_ENVELOPE_ITEMS)))
        out.authentic[data] = message

    plan = [
        ("nl.lvv.v1.DossierDelivered", None, "x25519"),
        ("nl.lvv.v1.IntakeRegistered", dtv, "hybrid"),
    ]
    for name, want, kem in plan:
        sender, recipients = _route(name, directory, want=want)
        message = example(name)
        out.forgeable.append(Forgeable(message, sender, tuple(recipients)))
        for version in (1, 2):
            data = seal(message, sender=keys[sender], recipients=recipients, directory=directory,
                        now=NOW, format_version=version)  # fmt: skip
            add(f"v{version}-{kem}", data, recipients[0], message)
    # a batch of three under one signature: proofs with real paths
    name = "nl.lvv.v1.DossierDelivered"
    sender, recipients = _route(name, directory)
    sealer = Sealer(keys[sender], directory, lambda: NOW)
    batch = sealer.seal_many([SealRequest(example(name), tuple(recipients)) for _ in range(3)])
    for i, data in enumerate(batch):
        add(f"v2-batch-{i}", data, recipients[-1], example(name))
    return out


# --- mutations -------------------------------------------------------------------------------

Mutation = Callable[[random.Random, Base, Corpus], bytes]


def _flip(rnd: random.Random, base: Base, _c: Corpus) -> bytes:
    data = bytearray(base.data)
    for _ in range(rnd.randint(1, 4)):
        data[rnd.randrange(len(data))] ^= 1 << rnd.randrange(8)
    return bytes(data)


def _interesting_byte(rnd: random.Random, base: Base, _c: Corpus) -> bytes:
    data = bytearray(base.data)
    for _ in range(rnd.randint(1, 3)):
        data[rnd.randrange(len(data))] = rnd.choice(INTERESTING_BYTES)
    return bytes(data)


def _truncate(rnd: random.Random, base: Base, _: Corpus) -> bytes:
    return base.data[: rnd.randrange(len(base.data))]


def _extend(rnd: random.Random, base: Base, _: Corpus) -> bytes:
    return base.data + rnd.randbytes(rnd.randint(1, 64))


def _splice(rnd: random.Random, base: Base, _: Corpus) -> bytes:
    start = rnd.randrange(len(base.data) + 1)
    end = min(len(base.data), start + rnd.randint(0, 64))
    return base.data[:start] + rnd.randbytes(rnd.randint(0, 64)) + base.data[end:]


def _duplicate(rnd: random.Random, base: Base, _: Corpus) -> bytes:
    start = rnd.randrange(len(base.data))
    chunk = base.data[start : start + rnd.randint(1, 256)]
    at = rnd.randrange(len(base.data) + 1)
    return base.data[:at] + chunk + base.data[at:]


def _cross(rnd: random.Random, base: Base, c: Corpus) -> bytes:
    """The head of one envelope and the tail of another, cut at byte or field boundaries."""
    other = rnd.choice(c.bases)
    if rnd.random() < 0.5 and base.varints and other.varints:
        cut = rnd.choice(base.varints)[0]
        resume = rnd.choice(other.varints)[0]
    else:
        cut, resume = rnd.randrange(len(base.data) + 1), rnd.randrange(len(other.data) + 1)
    return base.data[:cut] + other.data[resume:]


def _inflate(rnd: random.Random, base: Base, _: Corpus) -> bytes:
    """A length, count or integer field replaced by a value far out of its range."""
    start, end = rnd.choice(base.varints)
    roll = rnd.random()
    if roll < 0.6:
        value = rnd.choice(INTERESTING_INTS)
    elif roll < 0.8:  # just past what is there
        value = len(base.data) - end + rnd.randint(-2, 2)
    else:
        value = rnd.randint(-(2**63), 2**63 - 1)
    encoded = write_long(value)
    if rnd.random() < 0.1:  # the same value, padded: a non-canonical encoding
        encoded = bytes(b | 0x80 for b in encoded) + b"\x00"
    return base.data[:start] + encoded + base.data[end:]


def _random(rnd: random.Random, _: Base, __: Corpus) -> bytes:
    data = rnd.randbytes(rnd.choice((0, 1, 2, 8, 64, 512, 2048)))
    if data and rnd.random() < 0.5:  # past the version check
        data = bytes([rnd.choice((2, 4))]) + data[1:]
    return data


def _stacked(rnd: random.Random, base: Base, c: Corpus) -> bytes:
    data = base.data
    for _ in range(rnd.randint(2, 4)):
        op = rnd.choice(_STACKABLE)
        data = op(rnd, Base(base.name, data or b"\x00", base.me, base.message, base.varints), c)
    return data


_STACKABLE: tuple[Mutation, ...] = (
    _flip,
    _interesting_byte,
    _truncate,
    _extend,
    _splice,
    _duplicate,
)

MUTATIONS: dict[str, Mutation] = {
    "bit-flip": _flip,
    "interesting-byte": _interesting_byte,
    "truncate": _truncate,
    "extend": _extend,
    "splice": _splice,
    "duplicate": _duplicate,
    "cross-splice": _cross,
    "length-inflation": _inflate,
    "random-bytes": _random,
    "stacked": _stacked,
}
WEIGHTS = {"length-inflation": 3, "bit-flip": 2, "cross-splice": 2}


# --- a hostile but authenticated sender -------------------------------------------------------


def _mutate_payload(rnd: random.Random, c: Corpus, f: Forgeable, payload: bytes) -> bytes:
    if rnd.random() < 0.25:  # a varint somewhere claiming a huge length or count
        at = rnd.randrange(len(payload) + 1)
        return payload[:at] + write_long(rnd.choice(INTERESTING_INTS)) + payload[at + 1 :]
    return rnd.choice(_STACKABLE)(rnd, Base("payload", payload, "", f.message, ()), c)


def _lying_header(rnd: random.Random) -> dict[str, Any]:
    roll = rnd.randrange(6)
    if roll == 0:
        return {"message_type": rnd.choice(sorted(MESSAGE_MODELS))}
    if roll == 1:
        return {"payload_fingerprint": rnd.randbytes(32)}
    if roll == 2:
        return {"case_id": uuid.UUID(int=rnd.getrandbits(128))}
    created = NOW + timedelta(minutes=rnd.choice((-20_000, -60, 3, 60, 100_000)))
    if roll == 3:
        return {"created_at": created}
    if roll == 4:
        return {"expires_at": NOW + timedelta(minutes=rnd.choice((-5, -1, 1, 50_000)))}
    return {"created_at": created, "expires_at": created + timedelta(days=rnd.choice((1, 40)))}


@dataclass
class _ForgeState:
    epochs: dict[str, SenderEpochs] = field(default_factory=dict)


def forge(rnd: random.Random, c: Corpus, state: _ForgeState) -> tuple[bytes, str, bytes]:
    """An envelope sealed by a real sender around a mutated payload or a lying header: the
    envelope, who opens it, and the payload it carries."""
    f = rnd.choice(c.forgeable)
    keys = c.keys[f.sender]
    payload = f.message.avro_bytes()
    mutated: bytes | None = None
    overrides: dict[str, Any] = {}
    if rnd.random() < 0.7:
        mutated = _mutate_payload(rnd, c, f, payload)
    else:
        overrides = _lying_header(rnd)
    me = rnd.choice(f.recipients)
    if rnd.random() < 0.5:
        data = seal_v1_from_parts(
            f.message, sender=keys, recipients=f.recipients, directory=c.directory, now=NOW,
            ttl=timedelta(days=7), correlation_id=None, causation_id=None,
            message_id=uuid.UUID(int=rnd.getrandbits(128)), payload_key=rnd.randbytes(32),
            nonce=rnd.randbytes(12), payload=mutated, header_overrides=overrides,
        )  # fmt: skip
        return data, me, mutated or payload
    request = SealRequest(f.message, f.recipients, uuid.UUID(int=rnd.getrandbits(128)))
    header, encoded = prepare_envelope(request, sender=keys, directory=c.directory, now=NOW)
    if overrides:
        header = EnvelopeHeader.model_validate(header.model_dump() | overrides)
    epochs = state.epochs.setdefault(f.sender, SenderEpochs(f.sender))
    data = seal_v2_batch([(header, encoded if mutated is None else mutated)], sender=keys,
                       directory=c.directory, now=NOW, epochs=epochs)[0]  # fmt: skip
    return data, me, mutated or payload


# --- running ---------------------------------------------------------------------------------


@dataclass
class Sample:
    """One input that broke the invariant, to reproduce it."""

    kind: str
    op: str
    base: str
    error: str
    input_hex: str


@dataclass
class Report:
    inputs: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)
    by_op: dict[str, Counter[str]] = field(default_factory=dict)
    crashes: int = 0
    violations: int = 0
    samples: list[Sample] = field(default_factory=list)

    def note(self, op: str, outcome: str) -> None:
        self.inputs += 1
        self.outcomes[outcome] += 1
        self.by_op.setdefault(op, Counter())[outcome] += 1

    def as_dict(self) -> dict[str, Any]:
        return {
            "inputs": self.inputs,
            "outcomes": dict(self.outcomes.most_common()),
            "by_mutation": {op: dict(c.most_common()) for op, c in sorted(self.by_op.items())},
            "crashes": self.crashes,
            "violations": self.violations,
            "samples": [s.__dict__ for s in self.samples],
        }


class OpenFuzzer:
    """Feeds mutated envelopes to the openers of the corpus's recipients."""

    def __init__(self, seed: int, *, forge_share: float = 0.1) -> None:
        self.rnd = random.Random(seed)
        self.corpus = corpus()
        self.forge_share = forge_share
        self.forge_state = _ForgeState()
        self.report = Report()
        self.ops = [
            op for op, w in ((op, WEIGHTS.get(op, 1)) for op in MUTATIONS) for _ in range(w)
        ]
        self._fresh_openers()

    def _fresh_openers(self) -> None:
        guard = MemoryReplayGuard()
        self.openers = {
            p: Opener(k, self.corpus.directory, guard, lambda: NOW)
            for p, k in self.corpus.keys.items()
        }

    def inputs(self) -> Iterator[tuple[str, str, bytes, str, bytes | None]]:
        """(mutation, base, input, who opens it, forged payload) — endlessly."""
        rnd, c = self.rnd, self.corpus
        while True:
            if rnd.random() < self.forge_share:
                data, me, payload = forge(rnd, c, self.forge_state)
                yield "hostile-sender", "forged", data, me, payload
                continue
            base = rnd.choice(c.bases)
            op = rnd.choice(self.ops)
            me = base.me if rnd.random() < 0.9 else rnd.choice(sorted(c.keys))
            yield op, base.name, MUTATIONS[op](rnd, base, c), me, None

    def run(self, count: int) -> Report:
        """Open ``count`` more inputs; the report covers every input so far."""
        source = self.inputs()
        for _ in range(count):
            if self.report.inputs % REPLAY_WINDOW == 0:
                self._fresh_openers()
            op, base, data, me, payload = next(source)
            self.report.note(op, self.open_one(op, base, data, me, payload))
        return self.report

    def open_one(self, op: str, base: str, data: bytes, me: str, payload: bytes | None) -> str:
        """The outcome of one input: ``OPENED``, a reason code, ``CRASH`` or ``VIOLATION``."""
        try:
            if self.rnd.random() < 0.2:  # without an opener's caches, as a one-off tool opens
                opened = open_envelope(data, me=self.corpus.keys[me], directory=self.corpus.directory,
                                       replay_guard=MemoryReplayGuard(), now=NOW)  # fmt: skip
            else:
                opened = self.openers[me].open(data)
        except EnvelopeRejected as exc:
            return exc.reject_reason.value
        except Exception as exc:  # the invariant broken: anything else escaped
            self.report.crashes += 1
            self._sample("crash", op, base, data, "".join(traceback.format_exception(exc)))
            return "CRASH"
        if op == "hostile-sender":  # authentic by construction: it must read as sealed
            if opened.message.avro_bytes() == payload:
                return "OPENED"
            why = "a forged payload opened as other bytes than were sealed"
        elif self.corpus.authentic.get(data) == opened.message:
            return "OPENED"
        else:
            why = "a mutated envelope opened"
        self.report.violations += 1
        self._sample("violation", op, base, data, why)
        return "VIOLATION"

    def _sample(self, kind: str, op: str, base: str, data: bytes, error: str) -> None:
        if len(self.report.samples) < MAX_SAMPLES:
            self.report.samples.append(Sample(kind, op, base, error[-2000:], data[:4096].hex()))


def exhaustive_inflations(base: Base) -> Iterator[bytes]:
    """Every varint of ``base`` replaced by every interesting value (a deterministic sweep)."""
    for start, end in base.varints:
        for value in INTERESTING_INTS:
            yield base.data[:start] + write_long(value) + base.data[end:]


def bases_named(prefix: str) -> Sequence[Base]:
    return [b for b in corpus().bases if b.name.startswith(prefix)]
