"""Where a receiving gateway keeps the chunks of attachments sent to it, until its back
office has acknowledged the message (docs/ENVELOPE.md §11.5, §11.6).

Chunk records come from the party's attachment topic, spread over its partitions and
before (or after) the envelope that references them. Each is kept as it arrives, once its
sender's signature verified (`broker.crypto.read_chunk_record`): a forged record never
takes room here. A message is delivered only when `verify` found every chunk of every
attachment there and the end check passed; the back office then reads the document
through `plaintext`, which decrypts the spool once more, one chunk at a time.

At rest a chunk is ciphertext under the attachment key already; it is sealed once more
under the gateway's content key, bound to its place (sender, attachment, index, signer),
so that the rule for personal data on disk holds here as for the inbox, and a file copied
to another place does not open there. File and folder names are the sender's party id, the
attachment's random id and the chunk index: nothing about the person.

A sender's spool is bounded (`max_bytes_per_sender`): what it sends and never references
cannot fill the disk, and one sender's backlog never refuses another's chunks.
"""

from __future__ import annotations

import os
import shutil
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

from broker.crypto import (
    AttachmentOpener,
    ChunkRecord,
    ContentKey,
    replace_private,
)
from broker.errors import AttachmentCheck, AttachmentRejected, LocalError
from broker.limits import MAX_ATTACHMENT_BYTES_PER_MESSAGE
from broker.models import AttachmentRef
from broker.owner_only import private_dir

DEFAULT_MAX_BYTES_PER_SENDER = 4 * MAX_ATTACHMENT_BYTES_PER_MESSAGE
"""Room for a few messages' worth of documents per sender (2 GiB) not yet delivered."""

_ROW_TAG = b"LVVX-SPOOL-CHUNK-V1\x00"


class SpoolFull(LocalError):
    """A sender's chunks not yet delivered already take its whole room in the spool."""

    reason = "SPOOL_FULL"


def _row(sender: str, attachment_id: uuid.UUID, index: int, signer: str) -> bytes:
    return (_ROW_TAG + sender.encode() + b"\x00" + attachment_id.bytes
            + index.to_bytes(4, "big") + bytes.fromhex(signer))  # fmt: skip


class AttachmentSpool:
    """The chunks a gateway received, sealed at rest, per sender and attachment."""

    def __init__(self, root: str | os.PathLike[str], *, content_key: ContentKey,
                 max_bytes_per_sender: int = DEFAULT_MAX_BYTES_PER_SENDER) -> None:  # fmt: skip
        self.root = private_dir(root)
        self._key = content_key
        self.max_bytes_per_sender = max_bytes_per_sender
        self._bytes: dict[str, int] = {}
        for sender in self._senders():
            self._bytes[sender.name] = sum(f.stat().st_size for f in sender.glob("*/*.chunk"))

    def _senders(self) -> Iterator[Path]:
        return (p for p in self.root.iterdir() if p.is_dir())

    def _folder(self, sender: str, attachment_id: uuid.UUID) -> Path:
        return self.root / sender / attachment_id.hex

    def keep(self, record: ChunkRecord) -> bool:
        """Keep a verified chunk record; False if that place was filled already (a record
        read again after a restart or a rebalance). Durable when it returns."""
        folder = self._folder(record.sender, record.attachment_id)
        path = folder / f"{record.index:05d}.{record.signing_key_id}.chunk"
        if path.exists():  # one look, whatever the attachment's size
            return False
        sealed = self._key.seal(
            record.chunk,
            _row(record.sender, record.attachment_id, record.index, record.signing_key_id),
        )
        used = self._bytes.get(record.sender, 0)
        if used + len(sealed) > self.max_bytes_per_sender:
            raise SpoolFull(f"the spool of {record.sender}'s chunks is full")
        private_dir(folder)
        replace_private(path, sealed)
        self._bytes[record.sender] = used + len(sealed)
        return True

    def indices(self, sender: str, attachment_id: uuid.UUID) -> set[int]:
        """The chunk places of an attachment held so far."""
        folder = self._folder(sender, attachment_id)
        return {int(f.name.split(".", 1)[0]) for f in folder.glob("*.chunk")}

    def complete(self, sender: str, ref: AttachmentRef) -> bool:
        """Whether every chunk of ``ref`` is here (not yet whether they are the document)."""
        return self.indices(sender, ref.attachment_id) >= set(range(ref.chunk_count))

    def _chunks(self, sender: str, ref: AttachmentRef, signer: str) -> Iterator[bytes]:
        """The stored chunks of ``ref`` in index order, opened from their seal; a chunk
        missing, or signed by another key than the envelope's, refuses the attachment."""
        folder = self._folder(sender, ref.attachment_id)
        for index in range(ref.chunk_count):
            path = folder / f"{index:05d}.{signer}.chunk"
            try:
                sealed = path.read_bytes()
            except FileNotFoundError:
                # not here, or only under another signer: the sender's own key signs both
                raise AttachmentRejected(AttachmentCheck.TRUNCATED) from None
            yield self._key.open(sealed, _row(sender, ref.attachment_id, index, signer))

    def verify(self, sender: str, ref: AttachmentRef, *, signer: str, key: bytes) -> None:
        """Open every chunk of ``ref`` and run the end check (`AttachmentRejected` if it
        fails): after this the attachment may be delivered. ``signer`` is the key id that
        signed the envelope; ``key`` the unwrapped attachment key."""
        opener = AttachmentOpener(ref, sender=sender, key=key)
        for chunk in self._chunks(sender, ref, signer):
            opener.open_chunk(chunk)
        opener.finish()

    def plaintext(self, sender: str, ref: AttachmentRef, *, signer: str,
                  key: bytes) -> Iterator[bytes]:  # fmt: skip
        """The document of a verified attachment, one chunk at a time. The end check runs
        again at the end: a spool changed since `verify` raises before the last chunk."""
        opener = AttachmentOpener(ref, sender=sender, key=key)
        held: bytes | None = None
        for chunk in self._chunks(sender, ref, signer):
            if held is not None:
                yield held
            held = opener.open_chunk(chunk)
        opener.finish()
        if held is not None:
            yield held

    def drop(self, sender: str, attachment_id: uuid.UUID) -> None:
        """Forget an attachment (its message acknowledged, or refused)."""
        folder = self._folder(sender, attachment_id)
        freed = sum(f.stat().st_size for f in folder.glob("*.chunk")) if folder.exists() else 0
        shutil.rmtree(folder, ignore_errors=True)
        if freed:
            self._bytes[sender] = max(0, self._bytes.get(sender, 0) - freed)

    def sweep(self, older_than_s: float, *, now: float | None = None) -> int:
        """Drop attachments whose last chunk came more than ``older_than_s`` ago (chunks no
        envelope referenced within an envelope's lifetime); the number dropped."""
        cutoff = (time.time() if now is None else now) - older_than_s
        dropped = 0
        for sender in list(self._senders()):
            for folder in [f for f in sender.iterdir() if f.is_dir()]:
                if folder.stat().st_mtime < cutoff:
                    self.drop(sender.name, uuid.UUID(hex=folder.name))
                    dropped += 1
        return dropped

    def bytes_held(self, sender: str) -> int:
        return self._bytes.get(sender, 0)
