"""W3C Trace Context ``traceparent`` values: parsed strictly, started, continued.

Logboek Dataverwerkingen (LDV 1.0, Logius) links the processing of one case across
organisations by trace and span ids, and requires W3C Trace Context
(https://www.w3.org/TR/trace-context/) where applications call each other over HTTP. A
``traceparent`` is ``version "-" trace-id "-" parent-id "-" trace-flags``: 2, 32, 16 and 2
lowercase hex digits. The rules of its §3.2 applied here:

- version ``ff`` is invalid; version ``00`` is exactly 55 characters;
- a later version is read by its first 55 characters, which must be followed by nothing or
  by ``-`` (the spec's forward compatibility), and continued as version ``00``;
- a trace id or a parent id of all zeros is invalid;
- uppercase hex is invalid (the spec's grammar is ``lowercase hex``).

What travels in an envelope header is always the canonical version-00 form (`CANONICAL`):
the sending gateway writes it, so a receiver refuses anything else as a malformed
envelope. Pure: no I/O, randomness only where a new id is drawn.
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass

from broker.errors import LocalError
from broker.models import TRACEPARENT_PATTERN

VERSION = "00"
"""The only version this module writes (W3C Trace Context Level 1 and 2)."""

TRACEPARENT_HEADER = "traceparent"
"""The HTTP header's name (case-insensitive in HTTP; lowercase in the spec)."""

CANONICAL = TRACEPARENT_PATTERN
"""The form an envelope header's ``traceparent`` must have (docs/ENVELOPE.md §4.2); all-zero
ids are refused on top of it (`parse`)."""

_ANY_VERSION = re.compile(r"([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})")
_ZERO_TRACE = "0" * 32
_ZERO_SPAN = "0" * 16
SAMPLED = 0x01
"""The one trace flag defined: the caller may have recorded the trace."""

MAX_TRACEPARENT_CHARS = 512
"""A later version may append fields; nothing sane is longer, and we never keep the tail."""


class BadTraceparent(LocalError):
    """A ``traceparent`` that breaks the W3C rules. From a back office it is answered 422."""

    reason = "BAD_TRACEPARENT"


@dataclass(frozen=True, slots=True)
class TraceParent:
    """One position in a trace: the trace, the span (the spec's parent-id) and the flags."""

    trace_id: str
    """32 lowercase hex digits, not all zero."""
    span_id: str
    """16 lowercase hex digits, not all zero."""
    flags: int = SAMPLED

    def __str__(self) -> str:
        return f"{VERSION}-{self.trace_id}-{self.span_id}-{self.flags:02x}"

    def child(self) -> TraceParent:
        """The same trace, a new span: what a gateway's own step (seal, deliver, receipt)
        is, with this one as its parent."""
        return TraceParent(self.trace_id, new_span_id(), self.flags)


def new_trace_id() -> str:
    while (value := os.urandom(16).hex()) == _ZERO_TRACE:  # pragma: no cover - 2^-128
        pass
    return value


def new_span_id() -> str:
    while (value := os.urandom(8).hex()) == _ZERO_SPAN:  # pragma: no cover - 2^-64
        pass
    return value


def start() -> TraceParent:
    """A new trace, started at the gateway for a request that came without one."""
    return TraceParent(new_trace_id(), new_span_id(), SAMPLED)


def parse(value: str) -> TraceParent:
    """The ``traceparent`` ``value``, or `BadTraceparent` with what is wrong."""
    if len(value) > MAX_TRACEPARENT_CHARS:
        raise BadTraceparent("traceparent is too long")
    value = value.strip(" \t")  # optional whitespace around an HTTP header's value
    match = _ANY_VERSION.match(value)
    if match is None:
        raise BadTraceparent("traceparent is not version-traceid-parentid-flags in lowercase hex")
    version, trace_id, span_id, flags = match.groups()
    if version == "ff":
        raise BadTraceparent("traceparent version ff is invalid")
    rest = value[match.end() :]
    if version == VERSION and rest:
        raise BadTraceparent("a version-00 traceparent is exactly 55 characters")
    if rest and not rest.startswith("-"):
        raise BadTraceparent("a later version's traceparent continues with '-'")
    if trace_id == _ZERO_TRACE:
        raise BadTraceparent("traceparent trace-id is all zeros")
    if span_id == _ZERO_SPAN:
        raise BadTraceparent("traceparent parent-id is all zeros")
    return TraceParent(trace_id, span_id, int(flags, 16))


def parse_canonical(value: str) -> TraceParent:
    """A ``traceparent`` that must be in the canonical version-00 form (an envelope's)."""
    if not re.fullmatch(CANONICAL, value):
        raise BadTraceparent("traceparent is not in the canonical version-00 form")
    return parse(value)


def is_canonical(value: str) -> bool:
    try:
        parse_canonical(value)
    except BadTraceparent:
        return False
    return True


def derived(parent: TraceParent | None, seed: bytes, step: str) -> TraceParent:
    """The span of a gateway's ``step`` about the record whose SHA-256 is ``seed``: in
    ``parent``'s trace (a new one, also derived, when the record carried none), with a span
    id derived from the seed and the step — so a follow-up published again after a crash
    names the same span, and the DELIVERED event, the inbox item and the receipt agree."""
    digest = hashlib.sha256(b"LVVX-TRACE-SPAN\x00" + step.encode() + b"\x00" + seed).digest()
    span_id = digest[:8].hex()
    if span_id == _ZERO_SPAN:  # pragma: no cover - 2^-64
        span_id = "0" * 15 + "1"
    if parent is None:
        trace_id = digest[8:24].hex()
        return TraceParent(trace_id if trace_id != _ZERO_TRACE else "0" * 31 + "1", span_id)
    return TraceParent(parent.trace_id, span_id, parent.flags)
