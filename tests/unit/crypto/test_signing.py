"""The signatures the security core makes for the other layers (`broker.crypto.sign_tagged`):
the audit chain's events are signed through them, so no other package imports cryptography."""

from __future__ import annotations

import pytest

from broker.crypto import (
    SignatureInvalid,
    SigningKey,
    raw_public_key,
    sign_tagged,
    signing_key_from_seed,
    verify_tagged,
)

KEY = signing_key_from_seed(b"\x07" * 32)
OTHER = signing_key_from_seed(b"\x08" * 32)
TAG = b"LVVX-TEST-V1\x00"


def test_a_signature_verifies_under_its_key_and_tag() -> None:
    verify_tagged(KEY.public_key(), sign_tagged(KEY, TAG, b"data"), TAG, b"data")


@pytest.mark.parametrize(
    ("key", "tag", "data"),
    [(OTHER, TAG, b"data"), (KEY, b"LVVX-OTHER-V1\x00", b"data"), (KEY, TAG, b"datA")],
    ids=["another key", "another purpose", "other data"],
)
def test_a_signature_does_not_verify_for_anything_else(
    key: SigningKey, tag: bytes, data: bytes
) -> None:
    signature = sign_tagged(KEY, TAG, b"data")
    with pytest.raises(SignatureInvalid) as refused:
        verify_tagged(key.public_key(), signature, tag, data)
    assert refused.value.reason == "BAD_SIGNATURE"


def test_a_seeded_key_is_the_same_key_each_time() -> None:
    assert raw_public_key(signing_key_from_seed(b"\x07" * 32)) == raw_public_key(KEY)
    assert raw_public_key(KEY) == raw_public_key(KEY.public_key()) != raw_public_key(OTHER)
