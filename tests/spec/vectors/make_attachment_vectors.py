"""Write the attachment known-answer vectors: tests/spec/vectors/attachment-v1.json
(docs/ENVELOPE.md §11.9).

Keys (derived from the seeds named in the file, as in §10), the attachment id, attachment
key, salt, chunk size and plaintext are fixed; the stream key, the chunks and their record
keys follow from them and are stored. HPKE draws its ephemeral key inside the library, so
the reference's wrapped keys (and with them its Avro bytes) differ on every run; the tests
(`tests/spec/test_attachment_spec.py`) unwrap them instead.

Run it only when the attachment format changes on purpose:

    .venv/bin/python -m tests.spec.vectors.make_attachment_vectors
"""

from __future__ import annotations

import hashlib
import json
import uuid
from pathlib import Path
from typing import Any

from broker.contract import default_codec
from broker.crypto import AttachmentSealer, attachment_reference, chunk_record_key, load_directory
from broker.crypto._stream import chunk_aad, chunk_nonce, stream_key
from broker.models import AttachmentRef, KeyAlgorithm, PartyRole
from tests.crypto_net import PINNED, signed_directory
from tests.spec.vectors.make_vectors import KEY_START, NOW, _parties_json, party

OUT = Path(__file__).with_name("attachment-v1.json")

CASES: list[dict[str, Any]] = [
    {
        "name": "scan-of-3-chunks-ind-to-municipality-x25519-and-ngo-hybrid",
        "sender": ("ind", PartyRole.IND, KeyAlgorithm.X25519),
        "recipients": [
            ("gemeente-utrecht", PartyRole.MUNICIPALITY, KeyAlgorithm.X25519),
            ("ngo-perspectief", PartyRole.NGO, KeyAlgorithm.MLKEM768_X25519),
        ],
        "attachment_id": "3f2a6c1e-8d4b-4e7a-9b05-c1d2e3f40516",
        "media_type": "application/pdf",
        "size": 10_000,
        "chunk_size": 4096,
    },
    {
        "name": "two-full-chunks-avim-to-dtv",
        "sender": ("avim", PartyRole.AVIM, KeyAlgorithm.X25519),
        "recipients": [("dtv", PartyRole.DTV, KeyAlgorithm.X25519)],
        "attachment_id": "a1b2c3d4-e5f6-4a7b-8c9d-0e1f2a3b4c5d",
        "media_type": "image/jpeg",
        "size": 8192,
        "chunk_size": 4096,
    },
    {
        "name": "empty-document-ind-to-municipality",
        "sender": ("ind", PartyRole.IND, KeyAlgorithm.X25519),
        "recipients": [("gemeente-utrecht", PartyRole.MUNICIPALITY, KeyAlgorithm.X25519)],
        "attachment_id": "00000000-0000-4000-8000-000000000001",
        "media_type": "text/plain",
        "size": 0,
        "chunk_size": 1048576,
    },
]

HOSTILE: list[dict[str, Any]] = [
    # which stored chunks a receiver is given, each by index, optionally altered; the code
    {"name": "flip", "chunks": [{"chunk": 0}, {"chunk": 1, "flip": 7}, {"chunk": 2}], "code": "CHUNK_INVALID"},
    {"name": "reorder", "chunks": [{"chunk": 1}, {"chunk": 0}, {"chunk": 2}], "code": "CHUNK_INVALID"},
    {"name": "duplicate", "chunks": [{"chunk": 0}, {"chunk": 0}, {"chunk": 1}, {"chunk": 2}], "code": "CHUNK_INVALID"},
    {"name": "drop-a-middle-chunk", "chunks": [{"chunk": 0}, {"chunk": 2}], "code": "CHUNK_SIZE"},
    {"name": "drop-the-last", "chunks": [{"chunk": 0}, {"chunk": 1}], "code": "TRUNCATED"},
    {"name": "extend", "chunks": [{"chunk": 0}, {"chunk": 1}, {"chunk": 2}, {"chunk": 2}], "code": "TOO_MANY_CHUNKS"},
    {"name": "cut-a-byte", "chunks": [{"chunk": 0}, {"chunk": 1, "cut": 1}, {"chunk": 2}], "code": "CHUNK_SIZE"},
    {"name": "another-digest", "chunks": [{"chunk": 0}, {"chunk": 1}, {"chunk": 2}], "sha256": "00" * 32, "code": "DIGEST_MISMATCH"},
]  # fmt: skip
"""Hostile cases of the first vector (three chunks)."""


def plaintext(name: str, size: int) -> bytes:
    """The vector's document: SHAKE256 of its name (any bytes would do)."""
    return hashlib.shake_256(b"LVVX-TEST-ATTACHMENT\x00" + name.encode()).digest(size)


def vector(case: dict[str, Any], number: int) -> dict[str, Any]:
    sender = party(case["sender"])
    recipients = [party(r) for r in case["recipients"]]
    directory = load_directory(
        signed_directory([sender.entry, *(r.entry for r in recipients)], now=NOW),
        anchor=PINNED,
        now=NOW,
    )
    attachment_id = uuid.UUID(case["attachment_id"])
    key = bytes(range(32 * number, 32 * number + 32))
    salt = bytes(range(200 + number, 216 + number))
    data = plaintext(case["name"], case["size"])
    sender_id = sender.keys.party_id
    sealer = AttachmentSealer(sender=sender_id, media_type=case["media_type"], attachment_id=attachment_id,
                              chunk_size=case["chunk_size"], key=key, salt=salt)  # fmt: skip
    chunks = sealer.update(data)
    last, sealed = sealer.finish()
    chunks.append(last)
    ref = attachment_reference(sealed, [r.keys.party_id for r in recipients], directory, NOW)
    codec = default_codec()
    reference_avro = codec.encode(codec.record_info(AttachmentRef.avro_name), ref.to_avro())
    n = len(chunks)
    return {
        "name": case["name"],
        "now": NOW.isoformat(),
        "key_start": KEY_START.isoformat(),
        **_parties_json(sender, recipients),
        "attachment_id": str(attachment_id),
        "attachment_key": key.hex(),
        "salt": salt.hex(),
        "chunk_size": case["chunk_size"],
        "media_type": case["media_type"],
        "plaintext": data.hex(),
        "plaintext_sha256": hashlib.sha256(data).hexdigest(),
        "stream_key": stream_key(key, salt, attachment_id, sender_id).hex(),
        "chunks": [
            {
                "index": i,
                "last": i == n - 1,
                "nonce": chunk_nonce(i, i == n - 1).hex(),
                "aad": chunk_aad(attachment_id, i, i == n - 1).hex(),
                "record_key": chunk_record_key(sender_id, attachment_id, i).hex(),
                "chunk": chunk.hex(),
            }
            for i, chunk in enumerate(chunks)
        ],
        "reference_json": json.loads(ref.model_dump_json()),
        "reference_avro": reference_avro.hex(),
        "hostile": HOSTILE if number == 0 else [],
    }


def main() -> None:
    document = {"format": "LVVX attachment chunks, docs/ENVELOPE.md §11", "version": 1,
                "vectors": [vector(case, i) for i, case in enumerate(CASES)]}  # fmt: skip
    OUT.write_text(json.dumps(document, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
