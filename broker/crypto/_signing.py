"""Ed25519 signatures for the layers outside the security core — the audit chain, its
proofs, the examples' fixed keys — so that no other package imports ``cryptography``.

Every signature is made over a domain-separation tag and the data (``tag || data``): a
signature made for one purpose never verifies for another."""

from __future__ import annotations

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from broker.errors import RemoteError

SigningKey = Ed25519PrivateKey
"""A party's (or the anchor's) private signing key."""

VerifyKey = Ed25519PublicKey
"""A public signing key, as the directory gives it (`Directory.signing_key`)."""


def sign_tagged(key: SigningKey, tag: bytes, data: bytes) -> bytes:
    return key.sign(tag + data)


class SignatureInvalid(RemoteError):
    """A signature that is not the key's over the data (or over another tag)."""

    reason = "BAD_SIGNATURE"


def verify_tagged(key: VerifyKey, signature: bytes, tag: bytes, data: bytes) -> None:
    """Raise `SignatureInvalid` unless ``signature`` is ``key``'s over ``tag || data``."""
    try:
        key.verify(signature, tag + data)
    except InvalidSignature:
        raise SignatureInvalid("the signature does not verify") from None


def signing_key_from_seed(seed: bytes) -> SigningKey:
    """The Ed25519 key of a 32-byte seed. For fixed test and example keys only: a real
    key comes from `KeyStore` (random, encrypted at rest)."""
    return Ed25519PrivateKey.from_private_bytes(seed)


def raw_public_key(key: SigningKey | VerifyKey) -> bytes:
    """The 32 raw bytes of a signing key's public half, as key ids are made of."""
    public = key.public_key() if isinstance(key, Ed25519PrivateKey) else key
    return public.public_bytes_raw()
