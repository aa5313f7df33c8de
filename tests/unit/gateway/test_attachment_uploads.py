"""The sending gateway's uploads: encrypted as they stream in, sealed at rest, published as
chunk records signed when sent — and read by a recipient's spool into the same document."""

from __future__ import annotations

import os
import stat
import tracemalloc
import uuid
from pathlib import Path

import pytest

from broker.crypto import (
    ContentKey,
    ContentUnreadable,
    attachment_reference,
    read_chunk_record,
    unwrap_attachment_key,
)
from broker.gateway._attachment_spool import AttachmentSpool
from broker.gateway._attachment_uploads import AttachmentUploads, UnknownUpload
from broker.limits import MIN_ATTACHMENT_CHUNK_BYTES
from broker.models import PartyRole
from tests.crypto_net import NOW, A, Net

NET = Net()
IND, MUNI, DTV = A[PartyRole.IND], A[PartyRole.MUNICIPALITY], A[PartyRole.DTV]
CS = MIN_ATTACHMENT_CHUNK_BYTES


def uploads(tmp_path: Path, key: ContentKey | None = None) -> AttachmentUploads:
    return AttachmentUploads(tmp_path / "uploads", content_key=key or KEY, sender=IND)


KEY = ContentKey.generate()


def test_an_upload_reaches_each_recipient_as_the_same_document(tmp_path: Path) -> None:
    document = os.urandom(5 * CS + 17)
    upload = uploads(tmp_path).begin("application/pdf", chunk_size=CS)
    for at in range(0, len(document), 1000):  # as an HTTP body arrives: pieces of any size
        upload.write(document[at : at + 1000])
    sealed = upload.finish()
    again = uploads(tmp_path)  # the gateway restarted between the upload and the send
    ref = attachment_reference(again.sealed(sealed.attachment_id), [MUNI, DTV], NET.directory, NOW)
    published = list(again.records(sealed.attachment_id, NET.keys(IND)))
    assert len(published) == ref.chunk_count == 6
    for recipient in (MUNI, DTV):
        spool = AttachmentSpool(tmp_path / f"spool-{recipient}", content_key=ContentKey.generate())
        for record_key, value in reversed(published):
            spool.keep(read_chunk_record(record_key, value, directory=NET.directory, at=NOW))
        key = unwrap_attachment_key(ref, sender=IND, me=NET.keys(recipient))
        signer = NET.keys(IND).signing_key_id
        spool.verify(IND, ref, signer=signer, key=key)
        assert b"".join(spool.plaintext(IND, ref, signer=signer, key=key)) == document


def test_no_plaintext_and_no_key_on_disk(tmp_path: Path) -> None:
    document = b"Dossier van mevrouw De Vries, BSN 123456782. " * 500
    upload = uploads(tmp_path).begin("application/pdf", chunk_size=CS)
    upload.write(document)
    sealed = upload.finish()
    files = [p for p in (tmp_path / "uploads").rglob("*") if p.is_file()]
    assert len(files) == sealed.chunk_count + 1  # the chunks and the description
    for path in files:
        data = path.read_bytes()
        assert b"De Vries" not in data and b"123456782" not in data
        assert sealed.key not in data and sealed.key.hex().encode() not in data
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    with pytest.raises(ContentUnreadable):  # another gateway's content key
        uploads(tmp_path, ContentKey.generate()).sealed(sealed.attachment_id)


def test_an_upload_holds_one_chunk_at_a_time(tmp_path: Path) -> None:
    piece = os.urandom(256 * 1024)
    upload = uploads(tmp_path).begin("application/pdf")  # 1 MiB chunks
    tracemalloc.start()
    try:
        for _ in range(64):  # 16 MiB
            upload.write(piece)
        upload.finish()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 6 * 1024 * 1024


def test_an_unfinished_or_dropped_upload_cannot_be_referenced(tmp_path: Path) -> None:
    store = uploads(tmp_path)
    upload = store.begin("application/pdf", chunk_size=CS)
    upload.write(os.urandom(3 * CS))
    with pytest.raises(UnknownUpload):
        store.sealed(upload.attachment_id)  # not finished: no reference can be made of it
    upload.abort()
    assert not (tmp_path / "uploads" / upload.attachment_id.hex).exists()
    done = store.begin("application/pdf", chunk_size=CS)
    done.write(b"x")
    sealed = done.finish()
    store.drop(sealed.attachment_id)
    with pytest.raises(UnknownUpload):
        store.sealed(sealed.attachment_id)
    with pytest.raises(UnknownUpload):
        store.sealed(uuid.uuid4())


def test_uploads_left_behind_are_swept(tmp_path: Path) -> None:
    store = uploads(tmp_path)
    upload = store.begin("application/pdf", chunk_size=CS)
    upload.write(os.urandom(CS + 1))  # cut off: never finished
    assert store.sweep(3600) == 0
    later = os.path.getmtime(tmp_path / "uploads" / upload.attachment_id.hex) + 7200
    assert store.sweep(3600, now=later) == 1
    assert list((tmp_path / "uploads").iterdir()) == []
