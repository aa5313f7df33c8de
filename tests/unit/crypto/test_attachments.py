"""Attachments as a stream of chunks (broker/crypto/_stream.py, docs/ENVELOPE.md §11): round
trips at the sizes around a chunk, every attack on the stream with its code and no plaintext
past the last verified chunk, the reference inside the signed envelope, and memory."""

from __future__ import annotations

import hashlib
import os
import tracemalloc
import uuid
from collections.abc import Callable

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from broker.crypto import (
    AttachmentOpener,
    AttachmentSealer,
    SealedAttachment,
    attachment_reference,
    unwrap_attachment_key,
)
from broker.crypto._stream import TAG_BYTES, chunk_aad, chunk_nonce, stream_key
from broker.errors import (
    AttachmentCheck,
    AttachmentRejected,
    EnvelopeRejected,
    PolicyDenied,
    RejectReason,
)
from broker.limits import MAX_ATTACHMENT_CHUNK_BYTES, MIN_ATTACHMENT_CHUNK_BYTES
from broker.models import AttachmentRef, KeyAlgorithm, PartyRole
from demo.examples import example
from tests.crypto_net import NOW, A, Net

CS = MIN_ATTACHMENT_CHUNK_BYTES
NET = Net()
IND, MUNI, NGO = A[PartyRole.IND], A[PartyRole.MUNICIPALITY], A[PartyRole.NGO]
RECIPIENTS = [MUNI, NGO]


def seal_document(
    data: bytes, *, chunk_size: int = CS, piece: int = 1000, sender: str = IND
) -> tuple[list[bytes], SealedAttachment]:
    sealer = AttachmentSealer(sender=sender, media_type="application/pdf", chunk_size=chunk_size)
    chunks: list[bytes] = []
    for at in range(0, len(data), piece):
        chunks += sealer.update(data[at : at + piece])
    last, sealed = sealer.finish()
    return [*chunks, last], sealed


def reference(sealed: SealedAttachment, recipients: list[str] = RECIPIENTS) -> AttachmentRef:
    return attachment_reference(sealed, recipients, NET.directory, NOW)


def opener(ref: AttachmentRef, me: str = MUNI, sender: str = IND) -> AttachmentOpener:
    return AttachmentOpener.for_recipient(ref, sender=sender, me=NET.keys(me))


def open_all(
    ref: AttachmentRef, chunks: list[bytes], me: str = MUNI
) -> tuple[bytes, AttachmentCheck | None]:
    """What a recipient got out before the verdict, and the verdict (None: released)."""
    got = bytearray()
    try:
        o = opener(ref, me)
        for chunk in chunks:
            got += o.open_chunk(chunk)
        o.finish()
    except AttachmentRejected as refused:
        return bytes(got), refused.check
    return bytes(got), None


SIZES = [0, 1, CS - 1, CS, CS + 1, 2 * CS, 5 * CS + 17]
ROUND_TRIPS = [
    (size, piece)
    for size in SIZES
    for piece in (1, 777, 100_000)
    if piece != 1 or size <= CS + 1  # byte by byte only where it stays quick
]


@pytest.mark.parametrize(("size", "piece"), ROUND_TRIPS)
def test_round_trip_at_every_size_around_a_chunk(size: int, piece: int) -> None:
    data = os.urandom(size)
    chunks, sealed = seal_document(data, piece=piece)
    assert len(chunks) == sealed.chunk_count == max(1, -(-size // CS))
    assert [len(c) for c in chunks[:-1]] == [CS + TAG_BYTES] * (len(chunks) - 1)
    assert (sealed.size, sealed.sha256) == (size, hashlib.sha256(data).digest())
    ref = reference(sealed)
    for me in RECIPIENTS:
        assert open_all(ref, chunks, me) == (data, None)


def test_the_reference_is_a_valid_part_of_a_signed_message_and_opens_as_it_was_sent() -> None:
    data = os.urandom(3 * CS + 5)
    chunks, sealed = seal_document(data)
    ref = reference(sealed)
    dossier = example("DossierDelivered").model_copy(update={"attachments": (ref,)})
    envelope = NET.seal(dossier, IND, RECIPIENTS)
    assert data[:64] not in envelope and chunks[0] not in envelope  # only the reference travels
    for me in RECIPIENTS:
        [got] = NET.open(envelope, me).message.attachments  # type: ignore[attr-defined]
        assert open_all(got, chunks, me) == (data, None)


def test_a_reference_whose_keys_name_others_than_the_recipients_is_not_sealed_and_refused() -> None:
    _, sealed = seal_document(b"x")
    dossier = example("DossierDelivered").model_copy(
        update={"attachments": (reference(sealed, [MUNI]),)}
    )
    with pytest.raises(PolicyDenied):
        NET.seal(dossier, IND, RECIPIENTS)
    forged = NET.forge(dossier.model_copy(update={"attachments": ()}), IND, RECIPIENTS,
                       payload=dossier.avro_bytes())  # fmt: skip
    with pytest.raises(EnvelopeRejected) as refused:
        NET.open(forged, MUNI)
    assert refused.value.reject_reason is RejectReason.PAYLOAD_INVALID


# --- attacks on the stream: each has its code, and no plaintext past the verified chunks ----

DATA = bytes(range(256)) * (4 * CS // 256) + b"tail"  # 4 full chunks and a short last
CHUNKS, SEALED = seal_document(DATA)
REF = reference(SEALED)
OTHER_CHUNKS, OTHER = seal_document(DATA)  # the same document, another attachment


def _flip(chunks: list[bytes]) -> list[bytes]:
    hit = bytearray(chunks[2])
    hit[10] ^= 1
    return [*chunks[:2], bytes(hit), *chunks[3:]]


def _non_last_marked_last(chunks: list[bytes]) -> list[bytes]:
    # a holder of the key (another recipient) ends the stream early with a last flag
    aead_key = stream_key(SEALED.key, SEALED.salt, SEALED.attachment_id, IND)
    fake = AESGCM(aead_key).encrypt(
        chunk_nonce(2, True), DATA[2 * CS : 3 * CS], chunk_aad(SEALED.attachment_id, 2, True)
    )
    return [*chunks[:2], fake, *chunks[3:]]


ATTACKS: dict[str, tuple[Callable[[list[bytes]], list[bytes]], AttachmentCheck, int]] = {
    # name: (what the attacker does, the code, chunks verified before the refusal)
    "flip": (_flip, AttachmentCheck.CHUNK_INVALID, 2),
    "drop-a-middle-chunk": (lambda c: [*c[:1], *c[2:]], AttachmentCheck.CHUNK_INVALID, 1),
    "duplicate": (lambda c: [*c[:2], c[1], *c[2:]], AttachmentCheck.CHUNK_INVALID, 2),
    "reorder": (lambda c: [c[0], c[2], c[1], *c[3:]], AttachmentCheck.CHUNK_INVALID, 1),
    "drop-the-last": (lambda c: c[:-1], AttachmentCheck.TRUNCATED, 4),
    "stop-after-the-first": (lambda c: c[:1], AttachmentCheck.TRUNCATED, 1),
    "non-last-marked-last": (_non_last_marked_last, AttachmentCheck.CHUNK_INVALID, 2),
    "extend": (lambda c: [*c, c[-1]], AttachmentCheck.TOO_MANY_CHUNKS, 5),
    "splice-from-another-attachment": (
        lambda c: [*c[:3], OTHER_CHUNKS[3], c[4]],
        AttachmentCheck.CHUNK_INVALID,
        3,
    ),
    "cut-a-byte": (lambda c: [*c[:3], c[3][:-1], c[4]], AttachmentCheck.CHUNK_SIZE, 3),
    "nothing": (lambda c: [], AttachmentCheck.TRUNCATED, 0),
}


@pytest.mark.parametrize("attack", sorted(ATTACKS))
def test_every_attack_on_the_stream_is_refused_with_its_code(attack: str) -> None:
    change, check, verified = ATTACKS[attack]
    got, verdict = open_all(REF, change(list(CHUNKS)))
    assert verdict is check
    assert got == DATA[: verified * CS]  # nothing beyond the chunks that verified


def test_a_refused_stream_stays_refused() -> None:
    o = opener(REF)
    with pytest.raises(AttachmentRejected):
        o.open_chunk(CHUNKS[1])
    for again in (lambda: o.open_chunk(CHUNKS[0]), o.finish):
        with pytest.raises(AttachmentRejected) as refused:
            again()
        assert refused.value.check is AttachmentCheck.CHUNK_INVALID


def test_every_chunk_verifies_but_the_digest_is_the_end_check() -> None:
    # a recipient knows the key, so it can make chunks that authenticate: only the
    # signed reference's SHA-256 (checked at the end) tells them from the document
    forged = REF.model_copy(update={"sha256": hashlib.sha256(b"another").digest()})
    got, verdict = open_all(forged, CHUNKS)
    assert verdict is AttachmentCheck.DIGEST_MISMATCH
    assert got == DATA  # verified chunk by chunk; never released: the verdict is a refusal


@pytest.mark.parametrize(
    ("update", "check"),
    [
        ({"size": len(DATA) - 1}, AttachmentCheck.CHUNK_SIZE),  # the last chunk is longer
        ({"size": len(DATA) + 1}, AttachmentCheck.CHUNK_SIZE),
        # four full chunks: the fourth would be the last, but was not sealed as the last
        ({"size": len(DATA) - 4, "chunk_count": 4}, AttachmentCheck.CHUNK_INVALID),
        ({"size": len(DATA) + CS, "chunk_count": 6}, AttachmentCheck.CHUNK_SIZE),
        ({"chunk_count": 4}, AttachmentCheck.REFERENCE_INVALID),  # inconsistent layout
        ({"chunk_size": 2 * CS, "chunk_count": 3}, AttachmentCheck.CHUNK_SIZE),
        ({"salt": bytes(16)}, AttachmentCheck.CHUNK_INVALID),
        ({"attachment_id": uuid.uuid4()}, AttachmentCheck.KEY_INVALID),  # the wrap names the id
    ],
)
def test_a_reference_that_does_not_match_the_chunks_is_refused(
    update: dict[str, object], check: AttachmentCheck
) -> None:
    _, verdict = open_all(REF.model_copy(update=update), CHUNKS)
    assert verdict is check


def test_the_wrong_recipients_key_is_refused() -> None:
    # the NGO's wrap put in the municipality's place: the wrap's info names its recipient
    muni, ngo = REF.keys
    swapped = REF.model_copy(update={"keys": (ngo.model_copy(update={"recipient": MUNI}), muni)})
    _, verdict = open_all(swapped, CHUNKS, MUNI)
    assert verdict is AttachmentCheck.KEY_INVALID
    # a party the reference has no key for
    _, verdict = open_all(REF, CHUNKS, A[PartyRole.COA])
    assert verdict is AttachmentCheck.KEY_INVALID
    # the other attachment's wrap, for the right recipient: another attachment id
    stolen = REF.model_copy(update={"keys": reference(OTHER).keys})
    _, verdict = open_all(stolen, CHUNKS, MUNI)
    assert verdict is AttachmentCheck.KEY_INVALID


def test_another_senders_claim_to_the_chunks_is_refused() -> None:
    # the stream key and the wraps name the sender: a recipient that passes the reference
    # on as its own message gives its recipients keys and chunks that do not open
    with pytest.raises(AttachmentRejected) as refused:
        unwrap_attachment_key(REF, sender=NGO, me=NET.keys(MUNI))
    assert refused.value.check is AttachmentCheck.KEY_INVALID
    o = AttachmentOpener(REF, sender=NGO, key=SEALED.key)
    with pytest.raises(AttachmentRejected) as refused:
        o.open_chunk(CHUNKS[0])
    assert refused.value.check is AttachmentCheck.CHUNK_INVALID


def test_a_hybrid_recipient_opens_its_copy() -> None:
    hybrid = Net(kem=KeyAlgorithm.MLKEM768_X25519)
    ref = attachment_reference(SEALED, RECIPIENTS, hybrid.directory, NOW)
    assert {len(k.wrapped) for k in ref.keys} == {1168}
    o = AttachmentOpener.for_recipient(ref, sender=IND, me=hybrid.keys(NGO))
    assert b"".join(o.open_chunk(c) for c in CHUNKS) == DATA
    o.finish()


# --- memory: the document is never held whole --------------------------------------------


def test_64_mib_encrypt_and_decrypt_in_far_less_memory_than_the_document() -> None:
    size, piece = 64 * 1024 * 1024, 256 * 1024
    block = os.urandom(piece)
    digest = hashlib.sha256()
    tracemalloc.start()
    try:
        sealer = AttachmentSealer(
            sender=IND, media_type="image/tiff", chunk_size=MAX_ATTACHMENT_CHUNK_BYTES
        )
        for _ in range(size // piece):
            digest.update(block)
            for chunk in sealer.update(block):  # to the transport as they come
                assert len(chunk) == MAX_ATTACHMENT_CHUNK_BYTES + TAG_BYTES
        last, sealed = sealer.finish()
        sealer_peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.reset_peak()
        # the receiving side: the same chunks again, made from the same key and salt
        again = AttachmentSealer(sender=IND, media_type="image/tiff", chunk_size=MAX_ATTACHMENT_CHUNK_BYTES,
                                 attachment_id=sealed.attachment_id, key=sealed.key, salt=sealed.salt)  # fmt: skip
        o = AttachmentOpener(reference(sealed), sender=IND, key=sealed.key)
        for _ in range(size // piece):
            for chunk in again.update(block):
                o.open_chunk(chunk)
        final, _ = again.finish()
        assert final == last
        o.open_chunk(final)
        o.finish()
        opener_peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert sealed.sha256 == digest.digest() and sealed.size == size
    # a few chunks of 1 MiB, not the 64 MiB document
    assert sealer_peak < 8 * 1024 * 1024, sealer_peak
    assert opener_peak < 8 * 1024 * 1024, opener_peak
