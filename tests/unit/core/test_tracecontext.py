"""W3C Trace Context: the rules of its §3.2 (https://www.w3.org/TR/trace-context/)."""

from __future__ import annotations

import pytest

from broker import tracecontext as tc

GOOD = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


def test_a_valid_traceparent_parses_and_prints_back() -> None:
    parsed = tc.parse(GOOD)
    assert (parsed.trace_id, parsed.span_id, parsed.flags) == (
        "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7", 1,
    )  # fmt: skip
    assert str(parsed) == GOOD
    assert tc.is_canonical(GOOD)


@pytest.mark.parametrize(
    "value",
    [
        "",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",  # no flags
        "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",  # uppercase
        "00-00000000000000000000000000000000-00f067aa0ba902b7-01",  # all-zero trace id
        "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",  # all-zero parent id
        "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",  # version ff
        GOOD + "-extra",  # version 00 is exactly 55 characters
        "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01x",  # later version, no dash
        "00-4bf92f3577b34da6a3ce929d0e0e473-600f067aa0ba902b7-01",  # field lengths
        "0" * 600,
    ],
)
def test_malformed_traceparents_are_refused_with_a_reason(value: str) -> None:
    with pytest.raises(tc.BadTraceparent) as caught:
        tc.parse(value)
    assert caught.value.reason == "BAD_TRACEPARENT"


def test_a_later_version_is_read_by_its_first_55_characters_and_continued_as_00() -> None:
    later = "cc" + GOOD[2:] + "-what-comes-later"
    assert str(tc.parse(later)) == GOOD
    assert not tc.is_canonical(later)  # never on the wire as it came


def test_a_started_trace_and_its_children_share_the_trace_id_with_new_spans() -> None:
    root = tc.start()
    child = root.child()
    assert tc.is_canonical(str(root)) and tc.is_canonical(str(child))
    assert child.trace_id == root.trace_id and child.span_id != root.span_id
    assert child.flags == root.flags == tc.SAMPLED
    assert tc.start().trace_id != root.trace_id
