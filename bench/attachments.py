"""The attachment stream alone, in process: how fast a document is encrypted into chunks and
verified and decrypted back (docs/ENVELOPE.md §11), without the transport.

    .venv/bin/python -m bench.attachments                  # 100 MB, 1 MiB chunks, 3 repeats
    .venv/bin/python -m bench.attachments --mb 20 --chunk-kib 64 --repeats 5

Each repeat feeds the document in 256 KiB pieces to `AttachmentSealer` (as an upload
arrives), its chunks handed on as they come; then chunks sealed before, one by one, to
`AttachmentOpener` with its end check (so the figure is the cipher's, not a disk's or
Kafka's). The best
repeat is reported, since on a shared machine noise only ever adds time; the load average
is printed with it. Wall-clock MB/s (10^6 bytes) of plaintext.
"""

from __future__ import annotations

import argparse
import os
import time

from broker.crypto import AttachmentOpener, AttachmentSealer, SealedAttachment
from broker.models import AttachmentKey, AttachmentLocation, AttachmentRef

PIECE = 256 * 1024


def _seal(size: int, chunk_size: int, keep: list[bytes] | None) -> tuple[float, SealedAttachment]:
    block = os.urandom(PIECE)
    sealer = AttachmentSealer(sender="ind", media_type="application/pdf", chunk_size=chunk_size)
    start = time.perf_counter()
    left = size
    while left > 0:
        piece = block if left >= PIECE else block[:left]
        chunks = sealer.update(piece)
        if keep is not None:
            keep += chunks
        left -= len(piece)
    last, sealed = sealer.finish()
    if keep is not None:
        keep.append(last)
    return time.perf_counter() - start, sealed


def run(size: int, chunk_size: int) -> tuple[float, float]:
    """(seconds to seal, seconds to open) one document of ``size`` bytes. The sealing run
    hands its chunks on at once, as to the transport; the opening run opens chunks sealed
    before it (their memory is touched already, as a consumer's fetched records are)."""
    sealed_s, _ = _seal(size, chunk_size, None)
    chunks: list[bytes] = []
    _, sealed = _seal(size, chunk_size, chunks)
    ref = AttachmentRef(
        attachment_id=sealed.attachment_id, media_type=sealed.media_type, size=sealed.size,
        sha256=sealed.sha256, chunk_size=sealed.chunk_size, chunk_count=sealed.chunk_count,
        salt=sealed.salt, keys=(AttachmentKey(recipient="gemeente-utrecht", key_id="0" * 16, wrapped=b""),),
        location=AttachmentLocation.RECIPIENT_TOPIC,
    )  # fmt: skip
    start = time.perf_counter()
    opener = AttachmentOpener(ref, sender="ind", key=sealed.key)
    for chunk in chunks:
        opener.open_chunk(chunk)
    opener.finish()
    return sealed_s, time.perf_counter() - start


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.attachments", description=__doc__)
    parser.add_argument("--mb", type=int, default=100, help="document size in MB (default 100)")
    parser.add_argument(
        "--chunk-kib", type=int, default=1024, help="chunk size in KiB (default 1024)"
    )
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    size = args.mb * 1_000_000
    best = [
        min(pair)
        for pair in zip(
            *(run(size, args.chunk_kib * 1024) for _ in range(args.repeats)), strict=True
        )
    ]
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    print(
        f"attachment of {args.mb} MB in {args.chunk_kib} KiB chunks, best of {args.repeats}, load average {load}"
    )
    print(f"  seal  {size / best[0] / 1e6:8.1f} MB/s  ({best[0]:.3f} s)")
    print(
        f"  open  {size / best[1] / 1e6:8.1f} MB/s  ({best[1]:.3f} s)  verify, decrypt, end check"
    )


if __name__ == "__main__":
    main()
