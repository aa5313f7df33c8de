"""Fuzzing `open_envelope` — the short run for CI (`make fuzz` runs a million inputs).

One invariant (STYLE §10): any input opens, and then it is an authentic envelope read as it
was sealed, or is refused with `EnvelopeRejected` and a reason code; no other exception
escapes. Inputs are mutations of valid format-1 and format-2 envelopes, with X25519 and
hybrid ML-KEM recipients, a batch of three under one signature, and a hostile but
authenticated sender (bench/_fuzz.py).

tests/unit/crypto/test_envelope.py already holds format 2 to every single-byte change, truncation and
random splice; here the same holds for format 1 and the hybrid KEM, every length, count and
integer field is inflated in turn, and openers with warm caches see all of it mixed.
"""

from __future__ import annotations

import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bench._fuzz import (
    MUTATIONS,
    NOW,
    Base,
    OpenFuzzer,
    bases_named,
    corpus,
    exhaustive_inflations,
)
from broker.crypto import open_envelope
from broker.errors import EnvelopeRejected, RejectReason
from broker.replay import MemoryReplayGuard

SHORT_RUN = 3_000
"""Inputs of the seeded run: every mutation a few hundred times, seconds on a busy machine."""


def verdict(base: Base, data: bytes, me: str | None = None) -> str:
    """OPENED (only ever for the authentic bytes) or the reason; any other exception fails."""
    c = corpus()
    try:
        opened = open_envelope(data, me=c.keys[me or base.me], directory=c.directory,
                               replay_guard=MemoryReplayGuard(), now=NOW)  # fmt: skip
    except EnvelopeRejected as exc:
        assert exc.reject_reason in RejectReason
        return exc.reject_reason.value
    assert c.authentic.get(data) == opened.message, "a changed envelope opened"
    return "OPENED"


def test_a_seeded_fuzz_run_finds_no_crash_and_no_forgery() -> None:
    report = OpenFuzzer(seed=20261128).run(SHORT_RUN)

    assert (report.crashes, report.violations) == (0, 0), report.samples
    assert report.inputs == SHORT_RUN
    assert set(report.by_op) == {*MUTATIONS, "hostile-sender"}  # every mutation was tried
    # the run reached past decoding: signatures, the time window, decryption, payloads
    reached = set(report.outcomes)
    assert {"MALFORMED", "BAD_SIGNATURE", "PAYLOAD_INVALID", "OPENED"} <= reached, reached
    assert len(reached) >= 8, reached


@pytest.mark.parametrize("name", [b.name for b in corpus().bases])
def test_every_varint_inflated_to_every_extreme_is_refused(name: str) -> None:
    """Each length, count and integer field in turn set to 0, ±1, 2^31, 2^63-1, -2^63 ...:
    refused (or, where the value was already there, the envelope itself)."""
    (base,) = [b for b in corpus().bases if b.name == name]
    outcomes = {verdict(base, data) for data in exhaustive_inflations(base)}
    assert "MALFORMED" in outcomes
    assert outcomes <= {r.value for r in RejectReason} | {"OPENED"}


@pytest.mark.parametrize("prefix", ["v1-x25519", "v1-hybrid", "v2-hybrid"])
def test_every_single_bit_flip_is_refused(prefix: str) -> None:
    (base,) = bases_named(prefix)
    rnd = random.Random(prefix)
    for position in range(len(base.data)):
        mutated = bytearray(base.data)
        mutated[position] ^= 1 << rnd.randrange(8)
        assert verdict(base, bytes(mutated)) != "OPENED", position


@pytest.mark.parametrize("prefix", ["v1-x25519", "v2-hybrid", "v2-batch-1"])
def test_every_truncation_is_refused(prefix: str) -> None:
    (base,) = bases_named(prefix)
    for length in range(len(base.data)):
        assert verdict(base, base.data[:length]) in {"MALFORMED", "UNSUPPORTED_VERSION"}


def test_format_1_and_format_2_spliced_together_are_refused() -> None:
    """Any head of one format's envelope on any field boundary of the other's tail."""
    (v1,), (v2,) = bases_named("v1-x25519"), bases_named("v2-x25519")
    for head, tail in ((v1, v2), (v2, v1)):
        for cut, _ in head.varints:
            for resume, _ in tail.varints:
                data = head.data[:cut] + tail.data[resume:]
                if data not in corpus().authentic:
                    assert verdict(head, data) != "OPENED"


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    base=st.sampled_from(corpus().bases),
    op=st.sampled_from(sorted(MUTATIONS)),
    rnd=st.randoms(use_true_random=False),
)
def test_any_mutation_opens_only_as_the_authentic_envelope_or_is_refused(
    base: Base, op: str, rnd: random.Random
) -> None:
    """The same mutations under Hypothesis, which shrinks a failure to a small case."""
    verdict(base, MUTATIONS[op](rnd, base, corpus()))
