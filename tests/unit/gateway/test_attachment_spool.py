"""The receiving gateway's spool of attachment chunks: kept as they arrive (out of order,
again after a restart), sealed at rest, bounded per sender, delivered all or nothing."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from broker.crypto import (
    AttachmentSealer,
    ChunkRecord,
    ContentKey,
    ContentUnreadable,
    attachment_reference,
    chunk_record,
    read_chunk_record,
    unwrap_attachment_key,
)
from broker.errors import AttachmentCheck, AttachmentRejected
from broker.gateway._attachment_spool import AttachmentSpool, SpoolFull
from broker.limits import MIN_ATTACHMENT_CHUNK_BYTES
from broker.models import AttachmentRef, MediaType, PartyRole
from tests.crypto_net import NOW, A, Net

NET = Net()
IND, DTV, MUNI = A[PartyRole.IND], A[PartyRole.DTV], A[PartyRole.MUNICIPALITY]
CS = MIN_ATTACHMENT_CHUNK_BYTES
KEY = ContentKey.generate()


def sent(document: bytes, sender: str = IND) -> tuple[AttachmentRef, list[ChunkRecord]]:
    """``sender``'s reference to ``document`` for MUNI, and its chunk records as MUNI's
    gateway reads them off its attachment topic."""
    sealer = AttachmentSealer(sender=sender, media_type=MediaType("application/pdf"), chunk_size=CS)
    chunks = sealer.update(document)
    last, sealed = sealer.finish()
    ref = attachment_reference(sealed, [MUNI], NET.directory, NOW)
    records = [
        read_chunk_record(
            *chunk_record(NET.keys(sender), sealed.attachment_id, i, c),
            directory=NET.directory,
            at=NOW,
        )
        for i, c in enumerate([*chunks, last])
    ]
    return ref, records


def attachment_key(ref: AttachmentRef, sender: str = IND) -> bytes:
    return unwrap_attachment_key(ref, sender=sender, me=NET.keys(MUNI))


def signer(sender: str = IND) -> str:
    return NET.keys(sender).signing_key_id


def test_chunks_in_any_order_and_again_make_the_document_once(tmp_path: Path) -> None:
    document = os.urandom(4 * CS + 100)
    ref, records = sent(document)
    spool = AttachmentSpool(tmp_path / "spool", content_key=KEY)
    order = [3, 0, 4, 1]  # partitions deliver in any order; the last is still missing
    assert all(spool.keep(records[i]) for i in order)
    assert not spool.complete(IND, ref)
    with pytest.raises(AttachmentRejected) as missing:
        spool.verify(IND, ref, signer=signer(), key=attachment_key(ref))
    assert missing.value.check is AttachmentCheck.TRUNCATED
    assert spool.keep(records[2])
    assert not spool.keep(records[0])  # read again after a rebalance: nothing new
    assert spool.complete(IND, ref)
    spool.verify(IND, ref, signer=signer(), key=attachment_key(ref))
    served = list(spool.plaintext(IND, ref, signer=signer(), key=attachment_key(ref)))
    assert b"".join(served) == document
    assert max(len(c) for c in served) == CS  # one chunk at a time


def test_nothing_readable_is_on_disk_and_only_the_owner_may_look(tmp_path: Path) -> None:
    document = b"BSN 123456782, Jansen, geboren 1990-01-01. " * 400
    ref, records = sent(document)
    spool = AttachmentSpool(tmp_path / "spool", content_key=KEY)
    for record in records:
        spool.keep(record)
    files = [p for p in (tmp_path / "spool").rglob("*") if p.is_file()]
    assert len(files) == ref.chunk_count
    for path in files:
        data = path.read_bytes()
        assert b"Jansen" not in data and b"123456782" not in data
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    for folder in [p for p in (tmp_path / "spool").rglob("*") if p.is_dir()]:
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700


def test_a_chunk_moved_to_another_place_does_not_open(tmp_path: Path) -> None:
    ref, records = sent(os.urandom(2 * CS))
    spool = AttachmentSpool(tmp_path / "spool", content_key=KEY)
    for record in records:
        spool.keep(record)
    folder = tmp_path / "spool" / IND / ref.attachment_id.hex
    first, second = sorted(folder.glob("*.chunk"))
    first_bytes = first.read_bytes()
    first.write_bytes(second.read_bytes())
    second.write_bytes(first_bytes)
    with pytest.raises(ContentUnreadable):
        spool.verify(IND, ref, signer=signer(), key=attachment_key(ref))


def test_chunks_signed_by_another_key_than_the_envelopes_are_not_the_attachments(
    tmp_path: Path,
) -> None:
    ref, records = sent(os.urandom(CS))
    spool = AttachmentSpool(tmp_path / "spool", content_key=KEY)
    spool.keep(records[0])
    with pytest.raises(AttachmentRejected) as refused:
        spool.verify(IND, ref, signer="00" * 8, key=attachment_key(ref))
    assert refused.value.check is AttachmentCheck.TRUNCATED


def test_chunks_of_another_attachment_filed_under_this_one_are_refused(tmp_path: Path) -> None:
    ref, _ = sent(os.urandom(CS + 1))
    _, other = sent(os.urandom(CS + 1))
    spool = AttachmentSpool(tmp_path / "spool", content_key=KEY)
    # IND's own records of one attachment, filed under another's id: the stream refuses them
    for record in other:
        spool.keep(ChunkRecord(IND, ref.attachment_id, record.index, record.signing_key_id,
                               record.chunk))  # fmt: skip
    with pytest.raises(AttachmentRejected) as refused:
        spool.verify(IND, ref, signer=signer(), key=attachment_key(ref))
    assert refused.value.check is AttachmentCheck.CHUNK_INVALID
    with pytest.raises(AttachmentRejected):
        b"".join(spool.plaintext(IND, ref, signer=signer(), key=attachment_key(ref)))


def test_a_senders_room_is_bounded_and_other_senders_keep_theirs(tmp_path: Path) -> None:
    ref, records = sent(os.urandom(3 * CS))
    _, dtv_records = sent(os.urandom(CS), sender=DTV)
    spool = AttachmentSpool(tmp_path / "spool", content_key=KEY, max_bytes_per_sender=2 * CS + 200)
    spool.keep(records[0])
    spool.keep(records[1])
    with pytest.raises(SpoolFull):
        spool.keep(records[2])
    assert spool.keep(dtv_records[0])  # DT&V's room is its own
    spool.drop(IND, ref.attachment_id)  # delivered and acknowledged, or refused
    assert spool.bytes_held(IND) == 0
    assert spool.keep(records[2])


def test_a_restarted_gateway_finds_its_spool_and_its_use(tmp_path: Path) -> None:
    document = os.urandom(2 * CS)
    ref, records = sent(document)
    spool = AttachmentSpool(tmp_path / "spool", content_key=KEY)
    spool.keep(records[0])
    again = AttachmentSpool(tmp_path / "spool", content_key=KEY)
    assert again.bytes_held(IND) == spool.bytes_held(IND) > 0
    assert not again.keep(records[0])
    again.keep(records[1])
    assert b"".join(again.plaintext(IND, ref, signer=signer(), key=attachment_key(ref))) == document


def test_chunks_no_envelope_referenced_are_swept_after_the_lifetime(tmp_path: Path) -> None:
    _, records = sent(os.urandom(CS))
    spool = AttachmentSpool(tmp_path / "spool", content_key=KEY)
    spool.keep(records[0])
    assert spool.sweep(3600) == 0
    assert spool.sweep(3600, now=os.path.getmtime(tmp_path / "spool") + 7200) == 1
    assert spool.bytes_held(IND) == 0
    assert not list((tmp_path / "spool").rglob("*.chunk"))
