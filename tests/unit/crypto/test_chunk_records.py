"""Chunk records signed by their sender (docs/ENVELOPE.md §11.6): a co-recipient, who holds
the attachment key and may write the same recipient's attachment topic, cannot put a chunk
there in the sender's name, so it cannot make the recipient refuse the sender's message."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable
from datetime import timedelta

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from broker.crypto import (
    AttachmentOpener,
    AttachmentSealer,
    ChunkRecordInvalid,
    attachment_reference,
    chunk_record,
    read_chunk_record,
)
from broker.crypto._chunk_record import MAX_CHUNK_RECORD_VALUE_BYTES, RECORD_HEAD_BYTES
from broker.crypto._stream import chunk_aad, chunk_nonce, stream_key, unwrap_attachment_key
from broker.limits import MAX_ATTACHMENT_CHUNKS, MIN_ATTACHMENT_CHUNK_BYTES
from broker.models import AttachmentRef, MediaType, PartyRole
from tests.crypto_net import NOW, A, Net

NET = Net()
IND, DTV, MUNI = A[PartyRole.IND], A[PartyRole.DTV], A[PartyRole.MUNICIPALITY]
CS = MIN_ATTACHMENT_CHUNK_BYTES


def sealed_chunks(document: bytes) -> tuple[uuid.UUID, list[bytes], AttachmentRef]:
    """IND's chunks of ``document`` for MUNI and DT&V (co-recipients), and the reference."""
    sealer = AttachmentSealer(sender=IND, media_type=MediaType("application/pdf"), chunk_size=CS)
    chunks = sealer.update(document)
    last, sealed = sealer.finish()
    chunks.append(last)
    ref = attachment_reference(sealed, [MUNI, DTV], NET.directory, NOW)
    return sealed.attachment_id, chunks, ref


def test_a_signed_record_reads_back_as_its_chunk() -> None:
    aid, chunks, _ = sealed_chunks(os.urandom(3 * CS + 5))
    for i, chunk in enumerate(chunks):
        key, value = chunk_record(NET.keys(IND), aid, i, chunk)
        record = read_chunk_record(key, value, directory=NET.directory, at=NOW)
        assert (record.sender, record.attachment_id, record.index, record.chunk) == (
            IND, aid, i, chunk
        )  # fmt: skip
        assert record.signing_key_id == NET.keys(IND).signing_key_id


def test_a_co_recipient_cannot_put_a_chunk_in_the_senders_name() -> None:
    """DT&V, a co-recipient, unwraps the attachment key and makes a chunk that authenticates
    under it; the stream alone would take it (and the end check then refuse the message)."""
    document = os.urandom(2 * CS)
    aid, chunks, ref = sealed_chunks(document)
    key = unwrap_attachment_key(ref, sender=IND, me=NET.keys(DTV))

    aead = AESGCM(stream_key(key, ref.salt, aid, IND))
    forged = aead.encrypt(chunk_nonce(0, False), b"\x00" * CS, chunk_aad(aid, 0, False))
    # the forgery authenticates as chunk 0 of IND's stream ...
    AttachmentOpener.for_recipient(ref, sender=IND, me=NET.keys(MUNI)).open_chunk(forged)
    # ... but DT&V can sign it only as itself, or not at all
    ind_key, _ = chunk_record(NET.keys(IND), aid, 0, chunks[0])
    _, dtv_value = chunk_record(NET.keys(DTV), aid, 0, forged)
    with pytest.raises(ChunkRecordInvalid):  # DT&V's signature under IND's name
        read_chunk_record(ind_key, dtv_value, directory=NET.directory, at=NOW)
    _, ind_value = chunk_record(NET.keys(IND), aid, 0, chunks[0])
    spliced = ind_value[:RECORD_HEAD_BYTES] + forged  # IND's signature, another chunk
    with pytest.raises(ChunkRecordInvalid):
        read_chunk_record(ind_key, spliced, directory=NET.directory, at=NOW)


def test_a_signature_is_for_its_place_only() -> None:
    aid, chunks, _ = sealed_chunks(os.urandom(2 * CS))
    _, value = chunk_record(NET.keys(IND), aid, 0, chunks[0])
    elsewhere = [
        chunk_record(NET.keys(IND), aid, 1, chunks[0])[0],  # another index
        chunk_record(NET.keys(IND), uuid.uuid4(), 0, chunks[0])[0],  # another attachment
    ]
    for key in elsewhere:
        with pytest.raises(ChunkRecordInvalid):
            read_chunk_record(key, value, directory=NET.directory, at=NOW)


Mangle = Callable[[bytes, bytes], tuple[bytes | None, bytes | None]]

MANGLED: dict[str, Mangle] = {
    "no-key": lambda k, v: (None, v),
    "no-value": lambda k, v: (k, None),
    "empty-key": lambda k, v: (b"", v),
    "bad-party-id": lambda k, v: (b"IND\x00" + k.split(b"\x00", 1)[1], v),  # not a party id
    "unknown-party": lambda k, v: (b"nobody-here" + k[len(IND) :], v),  # not in the directory
    "index-too-big": lambda k, v: (
        k[:-4] + MAX_ATTACHMENT_CHUNKS.to_bytes(4, "big"),
        v,
    ),  # past any stream
    "cut-key": lambda k, v: (k[:-1], v),  # cut
    "short-value": lambda k, v: (k, v[: RECORD_HEAD_BYTES + 15]),  # shorter than a tag
    "long-value": lambda k, v: (
        k,
        v + b"\x00" * MAX_CHUNK_RECORD_VALUE_BYTES,
    ),  # longer than any chunk
    "unknown-key-id": lambda k, v: (k, b"\xff" * 8 + v[8:]),  # an unknown key id
    "bad-signature": lambda k, v: (
        k,
        v[:20] + bytes([v[20] ^ 1]) + v[21:],
    ),  # the signature altered
    "bad-chunk": lambda k, v: (k, v[:-1] + bytes([v[-1] ^ 1])),  # the chunk altered
}


@pytest.mark.parametrize("mangle", MANGLED.values(), ids=MANGLED.keys())
def test_a_malformed_or_forged_record_is_refused_with_one_code(mangle: Mangle) -> None:
    aid, chunks, _ = sealed_chunks(os.urandom(CS))
    key, value = mangle(*chunk_record(NET.keys(IND), aid, 0, chunks[0]))
    with pytest.raises(ChunkRecordInvalid) as refused:
        read_chunk_record(key, value, directory=NET.directory, at=NOW)
    assert str(refused.value) == "[CHUNK_RECORD_INVALID] chunk record refused"  # no detail


def test_a_key_not_valid_at_the_time_of_reading_is_refused() -> None:
    aid, chunks, _ = sealed_chunks(os.urandom(CS))
    key, value = chunk_record(NET.keys(IND), aid, 0, chunks[0])
    with pytest.raises(ChunkRecordInvalid):
        read_chunk_record(key, value, directory=NET.directory, at=NOW + timedelta(days=3650))
