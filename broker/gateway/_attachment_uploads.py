"""Where a sending gateway keeps the documents its back office uploaded, encrypted, until
the message that references them is sent (docs/ENVELOPE.md §11; `POST /v1/attachments`).

An upload is encrypted as it streams in (`AttachmentSealer`): the gateway never holds more
than one chunk of it, and never writes a byte of plaintext. Each chunk's ciphertext is
sealed once more under the gateway's content key, bound to its place, as is the
attachment's description with its key (`SealedAttachment`): what is on disk opens only
with this gateway's content key, and only where it was written.

The chunk records are signed when they are published (`records`), not when uploaded, with
the keys that also sign the envelope: the receiver requires one signer for both (§11.6),
and a key rotated between the upload and the send must not split them.
"""

from __future__ import annotations

import json
import os
import shutil
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

from broker.crypto import (
    AttachmentSealer,
    ContentKey,
    PartyKeys,
    SealedAttachment,
    chunk_record,
    replace_private,
)
from broker.errors import LocalError
from broker.limits import MAX_ATTACHMENT_CHUNK_BYTES
from broker.owner_only import private_dir

_CHUNK_ROW = b"LVVX-UPLOAD-CHUNK-V1\x00"
_META_ROW = b"LVVX-UPLOAD-META-V1\x00"
_META = "attachment.meta"


class UnknownUpload(LocalError):
    """No finished upload has this id (never made, not finished, or dropped)."""

    reason = "UNKNOWN_ATTACHMENT"


def _chunk_row(attachment_id: uuid.UUID, index: int) -> bytes:
    return _CHUNK_ROW + attachment_id.bytes + index.to_bytes(4, "big")


class Upload:
    """One document being uploaded: `write` its pieces in order, then `finish` (or
    `abort`). Durable once `finish` returned."""

    def __init__(self, folder: Path, key: ContentKey, sealer: AttachmentSealer) -> None:
        self._folder = folder
        self._key = key
        self._sealer = sealer
        self._written = 0
        self.attachment_id = sealer.attachment_id

    def write(self, data: bytes) -> None:
        for chunk in self._sealer.update(data):
            self._keep(chunk)

    def finish(self) -> SealedAttachment:
        last, sealed = self._sealer.finish()
        self._keep(last)
        meta = {
            "attachment_id": str(sealed.attachment_id),
            "sender": sealed.sender,
            "media_type": sealed.media_type,
            "size": sealed.size,
            "sha256": sealed.sha256.hex(),
            "chunk_size": sealed.chunk_size,
            "chunk_count": sealed.chunk_count,
            "salt": sealed.salt.hex(),
            "key": sealed.key.hex(),
        }
        replace_private(
            self._folder / _META,
            self._key.seal(json.dumps(meta).encode(), _META_ROW + sealed.attachment_id.bytes),
        )
        return sealed

    def abort(self) -> None:
        """Forget what was written (the upload was cut off or refused)."""
        shutil.rmtree(self._folder, ignore_errors=True)

    def _keep(self, chunk: bytes) -> None:
        index = self._written
        sealed = self._key.seal(chunk, _chunk_row(self.attachment_id, index))
        replace_private(self._folder / f"{index:05d}.chunk", sealed)
        self._written += 1


class AttachmentUploads:
    """A sending gateway's uploaded documents, sealed at rest, by attachment id."""

    def __init__(self, root: str | os.PathLike[str], *, content_key: ContentKey,
                 sender: str) -> None:  # fmt: skip
        self.root = private_dir(root)
        self._key = content_key
        self.sender = sender

    def begin(self, media_type: str, *,
              chunk_size: int = MAX_ATTACHMENT_CHUNK_BYTES) -> Upload:  # fmt: skip
        sealer = AttachmentSealer(sender=self.sender, media_type=media_type, chunk_size=chunk_size)
        folder = private_dir(self.root / sealer.attachment_id.hex)
        return Upload(folder, self._key, sealer)

    def sealed(self, attachment_id: uuid.UUID) -> SealedAttachment:
        """The description and key of a finished upload (to build its reference)."""
        try:
            blob = (self.root / attachment_id.hex / _META).read_bytes()
        except FileNotFoundError:
            raise UnknownUpload(f"no finished upload {attachment_id}") from None
        meta = json.loads(self._key.open(blob, _META_ROW + attachment_id.bytes))
        return SealedAttachment(
            attachment_id=uuid.UUID(meta["attachment_id"]),
            sender=meta["sender"],
            media_type=meta["media_type"],
            size=meta["size"],
            sha256=bytes.fromhex(meta["sha256"]),
            chunk_size=meta["chunk_size"],
            chunk_count=meta["chunk_count"],
            salt=bytes.fromhex(meta["salt"]),
            key=bytes.fromhex(meta["key"]),
        )

    def records(self, attachment_id: uuid.UUID, keys: PartyKeys) -> Iterator[tuple[bytes, bytes]]:
        """The chunk records (key, value) of a finished upload, in index order, signed by
        ``keys`` — the keys that sign the envelope referencing it. One chunk at a time."""
        sealed = self.sealed(attachment_id)
        folder = self.root / attachment_id.hex
        for index in range(sealed.chunk_count):
            blob = (folder / f"{index:05d}.chunk").read_bytes()
            chunk = self._key.open(blob, _chunk_row(attachment_id, index))
            yield chunk_record(keys, attachment_id, index, chunk)

    def drop(self, attachment_id: uuid.UUID) -> None:
        """Forget an upload (its message sent, or the back office gave it up)."""
        shutil.rmtree(self.root / attachment_id.hex, ignore_errors=True)

    def sweep(self, older_than_s: float, *, now: float | None = None) -> int:
        """Drop uploads — finished or cut off — untouched for ``older_than_s``; the number
        dropped."""
        cutoff = (time.time() if now is None else now) - older_than_s
        old = [f for f in self.root.iterdir() if f.is_dir() and f.stat().st_mtime < cutoff]
        for folder in old:
            shutil.rmtree(folder, ignore_errors=True)
        return len(old)
