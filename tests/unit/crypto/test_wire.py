"""The hand-written envelope reader and writer (`broker.crypto._wire`) against the reference
path every other record takes (`broker.contract._skim` + fastavro + the pydantic models): the same
bytes for the same envelope, and on any input — valid envelopes of both versions, every
single-byte change, every truncation, random splices and arbitrary bytes — the same verdict
(accept or refuse) and, when accepted, the same values."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from broker.contract import default_codec
from broker.contract.binary import INT32, read_varint
from broker.crypto import Sealer, SealRequest, envelope_schema
from broker.crypto._envelope import MAX_ENVELOPE_ITEMS
from broker.crypto._wire import (
    Proof,
    Wrap,
    decode_envelope,
    encode_body,
    encode_header,
    encode_tail,
)
from broker.errors import DecodeError
from broker.models import EnvelopeHeader, KeyAlgorithm, PartyRole, SecureEnvelope
from demo.examples import example
from tests.crypto_net import NOW, A, Net
from tests.support import envelope_bytes

NET = Net()
HYBRID = Net(KeyAlgorithm.MLKEM768_X25519)
IND, MUNI, NGO = A[PartyRole.IND], A[PartyRole.MUNICIPALITY], A[PartyRole.NGO]
DOSSIER = example("DossierDelivered")


def _batch(net: Net, n: int, recipients: tuple[str, ...] = (MUNI, NGO)) -> list[bytes]:
    sealer = Sealer(net.keys(IND), net.directory, lambda: NOW)
    requests = [
        SealRequest(DOSSIER, recipients, correlation_id=uuid.uuid4() if i % 2 else None,
                    ttl=timedelta(hours=i + 1))
        for i in range(n)
    ]  # fmt: skip
    return sealer.seal_many(requests)


TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
ENVELOPES = {
    "v1": Net(format_version=1).seal(DOSSIER, IND, [MUNI, NGO]),
    "v2 alone": Net(format_version=2).seal(DOSSIER, IND, [MUNI]),
    "v3 alone": NET.seal(DOSSIER, IND, [MUNI]),
    "v3 with a traceparent": NET.seal(DOSSIER, IND, [MUNI], traceparent=TRACEPARENT),
    "v3 in a batch of 5": _batch(NET, 5)[3],
    "v3 hybrid": _batch(HYBRID, 3, (MUNI,))[2],
}


def reference(data: bytes) -> SecureEnvelope | None:
    """What the codec path makes of ``data``: the envelope, or None if it refuses it. The
    version says which schema it was written with (formats 1 and 2: the earlier one)."""
    codec = default_codec()
    try:
        version = read_varint(data, 0, INT32)[0]
        written_with = envelope_schema(version)
        record = codec.decode(SecureEnvelope.avro_name, data, writer=written_with,
                              max_items=MAX_ENVELOPE_ITEMS)  # fmt: skip
        return SecureEnvelope.from_avro(record)
    except (DecodeError, ValueError):
        return None


def as_reference(data: bytes) -> SecureEnvelope | None:
    """What the wire reader makes of ``data``, in the reference's terms."""
    try:
        w = decode_envelope(data, max_items=MAX_ENVELOPE_ITEMS)
    except DecodeError:
        return None
    proof: Any = None
    if w.batch_proof is not None:
        proof = w.batch_proof._asdict()
    return SecureEnvelope.model_validate({
        "header": w.header.model_dump(), "wrapped_keys": [x._asdict() for x in w.wrapped_keys],
        "nonce": w.nonce, "ciphertext": w.ciphertext, "batch_proof": proof, "signature": w.signature,
    })  # fmt: skip


def same_verdict(data: bytes) -> None:
    assert as_reference(data) == reference(data)


@pytest.mark.parametrize("name", ENVELOPES)
def test_valid_envelopes_read_the_same_and_mark_their_parts(name: str) -> None:
    data = ENVELOPES[name]
    expected = reference(data)
    assert expected is not None and as_reference(data) == expected
    w = decode_envelope(data, max_items=MAX_ENVELOPE_ITEMS)
    codec = default_codec()
    header = expected.header.to_avro()
    written_with = envelope_schema(header["format_version"])
    if header["format_version"] < 3:
        del header["traceparent"]
    header_info = codec.record_info_in(written_with, EnvelopeHeader.avro_name)
    assert data[: w.header_end] == codec.encode(header_info, header)
    assert data[w.signature_start :] == b"\x80\x01" + w.signature
    tail = encode_tail(w.batch_proof, w.signature)
    assert data[w.body_end :] == tail


@pytest.mark.parametrize("name", ENVELOPES)
def test_the_writer_writes_what_the_codec_writes(name: str) -> None:
    expected = reference(ENVELOPES[name])
    assert expected is not None
    header = encode_header(expected.header)
    wraps = [encode_wrapped_key_of(w.model_dump()) for w in expected.wrapped_keys]
    proof = None
    if expected.batch_proof is not None:
        p = expected.batch_proof
        proof = Proof(p.leaf_index, p.batch_size, tuple(p.path))
    written = encode_body(header, wraps, expected.nonce, expected.ciphertext) + encode_tail(
        proof, expected.signature
    )
    assert written == envelope_bytes(expected.to_avro()) == ENVELOPES[name]
    assert (expected.header.traceparent == TRACEPARENT) == (name == "v3 with a traceparent")


def encode_wrapped_key_of(fields: dict[str, Any]) -> bytes:
    from broker.crypto._wire import encode_wrapped_key

    return encode_wrapped_key(Wrap(**fields))


@pytest.mark.parametrize("name", ENVELOPES)
def test_every_single_byte_change_gets_the_same_verdict(name: str) -> None:
    data = ENVELOPES[name]
    for position in range(len(data)):
        for flip in (0x01, 0x02, 0x40, 0x80, 0xFF):
            mutated = bytearray(data)
            mutated[position] ^= flip
            same_verdict(bytes(mutated))


@pytest.mark.parametrize("name", ENVELOPES)
def test_every_truncation_and_extension_gets_the_same_verdict(name: str) -> None:
    data = ENVELOPES[name]
    for length in range(len(data)):
        same_verdict(data[:length])
    for tail in (b"\x00", b"\x02", bytes(64)):
        same_verdict(data + tail)


@settings(max_examples=600, deadline=None)
@given(data=st.data(), name=st.sampled_from(sorted(ENVELOPES)))
def test_random_splices_get_the_same_verdict(data: st.DataObject, name: str) -> None:
    original = ENVELOPES[name]
    start = data.draw(st.integers(0, len(original)))
    end = data.draw(st.integers(start, min(len(original), start + 40)))
    insert = data.draw(st.binary(max_size=40))
    same_verdict(original[:start] + insert + original[end:])


@settings(max_examples=600, deadline=None)
@given(garbage=st.binary(max_size=600))
def test_arbitrary_bytes_get_the_same_verdict(garbage: bytes) -> None:
    same_verdict(garbage)


def _varint(n: int) -> bytes:
    z, out = (n << 1) ^ (n >> 63), bytearray()
    while z > 0x7F:
        out.append((z & 0x7F) | 0x80)
        z >>= 7
    out.append(z)
    return bytes(out)


@pytest.mark.parametrize(
    "hostile",
    [
        b"\x04\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01",  # an 11-byte varint
        b"\x04\xc8\x00",  # a non-canonical (padded) uuid length
        b"\x84\x00",  # version 2 padded into two bytes
        _varint(2) + _varint(36) + b"0F1E2D3C-4B5A-4968-8776-A5B4C3D2E1F0",  # uppercase uuid
    ],
    ids=["long varint", "padded length", "padded version", "uppercase uuid"],
)
def test_non_canonical_forms_are_refused_by_both(hostile: bytes) -> None:
    data = hostile + ENVELOPES["v2 alone"][len(hostile) :]
    assert reference(data) is None
    with pytest.raises(DecodeError):
        decode_envelope(data, max_items=MAX_ENVELOPE_ITEMS)


def test_an_array_claiming_more_items_than_allowed_is_refused_before_reading_them() -> None:
    data = ENVELOPES["v2 alone"]
    w = decode_envelope(data, max_items=MAX_ENVELOPE_ITEMS)
    header = bytearray(encode_header(w.header))
    huge = _varint(MAX_ENVELOPE_ITEMS + 1)  # fewer than the bytes, more than allowed
    start = header.index(_varint(len(w.header.recipients)) + _varint(len(MUNI)) + MUNI.encode())
    hostile = bytes(header[:start]) + huge + bytes(header[start + 1 :]) + data[w.header_end :]
    with pytest.raises(DecodeError, match="more array items"):
        decode_envelope(hostile, max_items=MAX_ENVELOPE_ITEMS)
    assert reference(hostile) is None
