"""`lvvx envelope inspect`: what an envelope says about itself, and whether its signature
holds, without decrypting anything."""

from __future__ import annotations

from typing import Any

from cryptography.exceptions import InvalidSignature

from broker.crypto._directory import Directory
from broker.crypto._envelope import _decode, _version, verify_signature
from broker.errors import EnvelopeRejected
from broker.merkle import ProofError


def inspect_envelope(data: bytes, directory: Directory | None) -> dict[str, Any]:
    try:
        _version(data)
        envelope = _decode(data)
    except EnvelopeRejected as exc:
        return {"bytes": len(data), "malformed": exc.reject_reason.value}
    h = envelope.header
    if directory is None:
        status = "not checked (no directory given)"
    elif h.sender not in directory.parties:
        status = "unknown sender"
    elif (key := directory.signing_key(h.sender, h.sender_key_id, h.created_at)) is None:
        status = "sender key not valid at created_at"
    else:
        try:
            verify_signature(envelope, data, key)
            status = "valid"
        except (InvalidSignature, ProofError):
            status = "INVALID"
    return {
        "bytes": len(data),
        "header": h.model_dump(mode="json"),
        "wrapped_keys": [
            {
                "recipient": w.recipient,
                "key_id": w.key_id,
                "kem": w.kem.value,
                "bytes": len(w.wrapped),
            }
            for w in envelope.wrapped_keys
        ],
        "ciphertext_bytes": len(envelope.ciphertext),
        "signature": status,
    }
