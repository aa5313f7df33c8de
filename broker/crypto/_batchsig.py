"""Batch signatures (envelope format 2, docs/ENVELOPE.md §5.5): one Ed25519 signature over
the Merkle root of a batch of envelopes, each envelope carrying its inclusion path, so that
every envelope is verifiable on its own while a batch costs one signature. Receivers
remember the roots they verified, so a batch's later envelopes cost hashes, not a verify.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from broker.crypto._wire import Proof
from broker.merkle import leaf_hash, root_and_proofs, root_from_inclusion

BATCH_TAG = b"LVVX-ENVELOPE-BATCH-V2\x00"
LEAF_TAG = b"LVVX-ENVELOPE-LEAF-V2\x00"
"""Domain separation: what a batch signature signs, and the content of a batch's leaf."""

MAX_BATCH_SIZE = 1024
"""Envelopes under one signature at most: an inclusion path has at most 10 hashes."""

MAX_VERIFIED_ROOTS = 4096
"""Verified batch signatures a receiver remembers."""


def envelope_leaf(body: bytes) -> bytes:
    """The leaf hash of an envelope whose bytes before the batch proof are ``body``."""
    return leaf_hash(LEAF_TAG + body)


def signed_statement(batch_size: int, root: bytes) -> bytes:
    """The bytes a batch signature signs: the tag, the batch size and the root."""
    return BATCH_TAG + batch_size.to_bytes(8, "big") + root


def sign_batch(bodies: Sequence[bytes], key: Ed25519PrivateKey) -> tuple[list[Proof], bytes]:
    """Each body's proof and the one signature over the batch."""
    if not 0 < len(bodies) <= MAX_BATCH_SIZE:
        raise ValueError(f"a batch has 1 to {MAX_BATCH_SIZE} envelopes")
    root, paths = root_and_proofs([envelope_leaf(b) for b in bodies])
    proofs = [Proof(i, len(bodies), tuple(path)) for i, path in enumerate(paths)]
    return proofs, key.sign(signed_statement(len(bodies), root))


def statement_of(body: bytes, proof: Proof) -> bytes:
    """What the signature must sign for this envelope to be in a signed batch; raises
    `broker.merkle.ProofError` if the path cannot lead to any root."""
    root = root_from_inclusion(envelope_leaf(body), proof.leaf_index, proof.batch_size, proof.path)
    return signed_statement(proof.batch_size, root)


class VerifiedStatements:
    """Batch signatures this receiver has verified, by signer key, statement and signature.
    Bounded; least recently used out. A hit stands for exactly the verification it saves."""

    def __init__(self, capacity: int = MAX_VERIFIED_ROOTS) -> None:
        self.capacity = capacity
        self._seen: OrderedDict[tuple[str, str, bytes, bytes], None] = OrderedDict()

    def verify(self, signer: tuple[str, str], key: Ed25519PublicKey, statement: bytes,
               signature: bytes) -> None:  # fmt: skip
        """Raise `InvalidSignature` unless ``signature`` is ``key``'s over ``statement``."""
        ident = (*signer, statement, signature)
        if ident in self._seen:
            self._seen.move_to_end(ident)
            return
        key.verify(signature, statement)
        self._seen[ident] = None
        while len(self._seen) > self.capacity:
            self._seen.popitem(last=False)
