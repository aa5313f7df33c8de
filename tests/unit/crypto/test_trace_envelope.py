"""Envelope format 3: the header's ``traceparent`` (docs/ENVELOPE.md §4.2, §9)."""

from __future__ import annotations

import pytest

from broker.contract import default_codec
from broker.crypto import Sealer, SealRequest, envelope_schema, open_envelope
from broker.errors import EnvelopeRejected, LocalError, RejectReason
from broker.models import PartyRole, SecureEnvelope
from broker.replay import MemoryReplayGuard
from demo.examples import example
from tests.crypto_net import NOW, A, Net
from tests.support import envelope_record

IND, MUNI = A[PartyRole.IND], A[PartyRole.MUNICIPALITY]
DOSSIER = example("DossierDelivered")
TRACE = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
NET = Net()


def _open(data: bytes) -> SecureEnvelope:
    opened = open_envelope(data, me=NET.keys(MUNI), directory=NET.directory,
                           replay_guard=MemoryReplayGuard(), now=NOW)  # fmt: skip
    return opened.header  # type: ignore[return-value]


def test_a_format_3_envelope_carries_its_traceparent_to_the_recipient() -> None:
    data = NET.seal(DOSSIER, IND, [MUNI], traceparent=TRACE)
    assert data[0] == 0x06  # format 3
    assert _open(data).traceparent == TRACE  # type: ignore[attr-defined]
    assert _open(NET.seal(DOSSIER, IND, [MUNI])).traceparent is None  # type: ignore[attr-defined]


def test_the_traceparent_is_covered_by_the_signature() -> None:
    data = NET.seal(DOSSIER, IND, [MUNI], traceparent=TRACE)
    at = data.index(TRACE.encode())
    altered = data[: at + 3] + b"5" + data[at + 4 :]  # another trace id, still canonical
    assert altered != data
    with pytest.raises(EnvelopeRejected) as caught:
        _open(altered)
    assert caught.value.reason == RejectReason.BAD_SIGNATURE


@pytest.mark.parametrize(
    "bad", [TRACE.upper()[:2] + TRACE[2:].upper(), "00-" + "0" * 32 + TRACE[35:]]
)
def test_a_traceparent_not_in_canonical_form_is_malformed(bad: str) -> None:
    data = NET.seal(DOSSIER, IND, [MUNI], traceparent=TRACE)
    at = data.index(TRACE.encode())
    with pytest.raises(EnvelopeRejected) as caught:
        _open(data[:at] + bad.encode() + data[at + len(TRACE) :])
    assert caught.value.reason == RejectReason.MALFORMED


def test_a_sender_refuses_a_traceparent_not_in_canonical_form() -> None:
    sealer = Sealer(NET.keys(IND), NET.directory, lambda: NOW)
    [error] = sealer.seal_each([SealRequest(DOSSIER, (MUNI,), traceparent="00-abc")])
    assert isinstance(error, LocalError) and error.reason == "BAD_TRACEPARENT"


def test_formats_1_and_2_have_no_traceparent_field_and_still_open() -> None:
    for version in (1, 2):
        data = Net(format_version=version).seal(DOSSIER, IND, [MUNI], traceparent=TRACE)
        assert TRACE.encode() not in data  # nowhere to carry it: dropped
        assert _open(data).traceparent is None  # type: ignore[attr-defined]


def test_old_and_new_readers_read_each_other_by_avro_schema_resolution() -> None:
    codec = default_codec()
    old, new = envelope_schema(2), envelope_schema(3)
    assert old.fingerprint != new.fingerprint
    v3 = NET.seal(DOSSIER, IND, [MUNI], traceparent=TRACE)
    # an old reader (the earlier schema as reader schema) reads a format-3 envelope, field skipped
    as_old = codec.decode(old, v3, writer=new)
    assert "traceparent" not in as_old["header"]
    assert as_old["header"]["message_type"] == DOSSIER.avro_name
    # a new reader reads a format-2 envelope: the field takes its default
    v2 = Net(format_version=2).seal(DOSSIER, IND, [MUNI])
    assert envelope_record(v2)["header"]["traceparent"] is None
    assert envelope_record(v3)["header"]["traceparent"] == TRACE
