"""Audit events of the schema before trace context still decode and verify (docs/AUDIT.md §1.1)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from broker.audit import _events as ev
from broker.contract import default_codec
from broker.contract.binary import write_bytes
from broker.crypto import sign_tagged, signing_key_from_seed

KEY = signing_key_from_seed(b"\x07" * 32)
TRACE = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


def _record(seq: int, prev: bytes) -> dict[str, object]:
    return {
        "event_id": uuid.uuid4(), "gateway": "ind", "seq": seq, "prev_hash": prev, "action": "SENT",
        "occurred_at": datetime(2026, 11, 1, tzinfo=UTC), "message_id": uuid.uuid4(),
        "message_type": "nl.lvv.v1.DossierDelivered", "sender": "ind", "recipients": ["dtv"],
        "case_id": uuid.uuid4(), "envelope_sha256": b"\x01" * 32, "outcome": "OK", "reason": None,
        "checkpoint": None, "signature": b"",
    }  # fmt: skip


def _earlier_unsigned(seq: int, prev: bytes) -> bytes:
    codec = default_codec()
    return codec.encode(codec.by_fingerprint(ev.EARLIER_SCHEMA), _record(seq, prev))


def test_an_earlier_v1_event_decodes_without_trace_and_verifies() -> None:
    signed = ev.unsigned_part(_earlier_unsigned(0, ev.GENESIS_HASH))
    data = signed + write_bytes(sign_tagged(KEY, ev.AUDIT_SIGNATURE_TAG, signed))
    event = ev.decode(data)
    assert (event.traceparent, event.parent_span_id) == (None, None)
    ev.verify(event, data, KEY.public_key())
    tampered = data.replace(b"dtv", b"ind", 1)
    assert not ev.signed_by(ev.decode(tampered), tampered, KEY.public_key())


def test_earlier_v2_events_decode_and_verify_next_to_current_ones() -> None:
    old = ev.unsigned_part(_earlier_unsigned(0, ev.GENESIS_HASH))
    record = {
        **_record(1, ev.GENESIS_HASH),
        "traceparent": TRACE,
        "parent_span_id": "00f067aa0ba902b7",
    }
    new = ev.unsigned_part(ev.encode_record(record))
    encoded = ev.sign_batch([old, new], "ind", 0, KEY)
    first, second = (ev.decode(d) for d in encoded)
    assert first.traceparent is None and second.traceparent == TRACE
    assert second.parent_span_id == "00f067aa0ba902b7"
    for event, data in zip((first, second), encoded, strict=True):
        ev.verify(event, data, KEY.public_key())
