"""Known-answer vectors pin envelope format 1 (tests/vectors/envelope-v1.json).

A change that breaks these tests changes the wire format: that needs a new format version
(docs/ENVELOPE.md §9), not new vectors.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import hpke

from broker._codec import default_codec
from broker.crypto import AnchorKey, load_directory, open_envelope
from broker.crypto._envelope import SIGNATURE_TAG, WRAP_INFO_TAG, _seal_from_parts
from broker.crypto._keys import generate_party, key_id
from broker.models import KeyAlgorithm, PartyRole, SecureEnvelope, model_for
from broker.replay import MemoryReplayGuard
from tests.crypto_net import ANCHOR, signed_directory

VECTORS = json.loads((Path(__file__).parent / "vectors" / "envelope-v1.json").read_text())[
    "vectors"
]


def _network(v: dict[str, Any]):  # type: ignore[no-untyped-def]
    start = datetime.fromisoformat(v["key_start"])
    sender = generate_party(v["sender"]["party_id"], PartyRole(v["sender"]["role"]), now=start,
                            seed=v["sender"]["seed"].encode())  # fmt: skip
    recipients = [
        generate_party(
            r["party_id"],
            PartyRole(r["role"]),
            now=start,
            kem=KeyAlgorithm(r["kem"]),
            seed=r["seed"].encode(),
        )
        for r in v["recipients"]
    ]
    now = datetime.fromisoformat(v["now"])
    anchor = AnchorKey(key_id(ANCHOR.public_key().public_bytes_raw()), ANCHOR.public_key())
    entries = [sender.entry, *(r.entry for r in recipients)]
    directory = load_directory(signed_directory(entries, now=now), anchor=anchor, now=now)
    return sender, recipients, directory, now


@pytest.mark.parametrize("v", VECTORS, ids=lambda v: v["name"])
def test_the_keys_are_the_ones_the_vector_names(v: dict[str, Any]) -> None:
    sender, recipients, _, _ = _network(v)
    assert sender.entry.signing_keys[0].public_key.hex() == v["sender"]["signing_public"]
    for r, expected in zip(recipients, v["recipients"], strict=True):
        assert r.entry.encryption_keys[0].public_key.hex() == expected["encryption_public"]


@pytest.mark.parametrize("v", VECTORS, ids=lambda v: v["name"])
def test_the_stored_envelope_opens_to_the_stored_message(v: dict[str, Any]) -> None:
    _, recipients, directory, now = _network(v)
    envelope = bytes.fromhex(v["envelope"])
    expected = model_for(v["message_type"]).model_validate(v["message_json"])
    for r in recipients:
        opened = open_envelope(
            envelope, me=r.keys, directory=directory, replay_guard=MemoryReplayGuard(), now=now
        )
        assert opened.message == expected
        assert opened.header.message_id == uuid.UUID(v["message_id"])
        assert opened.envelope_sha256 == hashlib.sha256(envelope).digest()


@pytest.mark.parametrize("v", VECTORS, ids=lambda v: v["name"])
def test_sealing_the_same_parts_gives_the_same_bytes_but_for_the_hpke_wraps(
    v: dict[str, Any],
) -> None:
    sender, recipients, directory, now = _network(v)
    message = model_for(v["message_type"]).model_validate(v["message_json"])
    again = _seal_from_parts(
        message, sender=sender.keys, recipients=[r.keys.party_id for r in recipients], directory=directory,
        now=now, ttl=timedelta(days=v["ttl_days"]), correlation_id=None, causation_id=None,
        message_id=uuid.UUID(v["message_id"]), payload_key=bytes.fromhex(v["payload_key"]),
        nonce=bytes.fromhex(v["nonce"]),
    )  # fmt: skip
    codec = default_codec()
    stored = SecureEnvelope.from_avro(
        codec.decode(SecureEnvelope.avro_name, bytes.fromhex(v["envelope"]))
    )
    fresh = SecureEnvelope.from_avro(codec.decode(SecureEnvelope.avro_name, again))
    assert fresh.header == stored.header
    assert (fresh.nonce, fresh.ciphertext) == (stored.nonce, stored.ciphertext)
    assert [(w.recipient, w.key_id, w.kem) for w in fresh.wrapped_keys] == [
        (w.recipient, w.key_id, w.kem) for w in stored.wrapped_keys
    ]


@pytest.mark.parametrize("v", VECTORS, ids=lambda v: v["name"])
def test_the_wraps_hold_the_payload_key_under_the_documented_info(v: dict[str, Any]) -> None:
    _, recipients, _, _ = _network(v)
    codec = default_codec()
    stored = SecureEnvelope.from_avro(
        codec.decode(SecureEnvelope.avro_name, bytes.fromhex(v["envelope"]))
    )
    message_id = uuid.UUID(v["message_id"])
    for r, wrapped in zip(recipients, stored.wrapped_keys, strict=True):
        kem = hpke.KEM.X25519 if wrapped.kem.value == "X25519" else hpke.KEM.MLKEM768_X25519
        suite = hpke.Suite(kem, hpke.KDF.HKDF_SHA256, hpke.AEAD.AES_256_GCM)
        info = WRAP_INFO_TAG + message_id.bytes + r.keys.party_id.encode()
        [key] = r.keys.decryption_keys.values()
        assert suite.decrypt(wrapped.wrapped, key.private_key, info=info) == bytes.fromhex(
            v["payload_key"]
        )


@pytest.mark.parametrize("v", VECTORS, ids=lambda v: v["name"])
def test_the_signature_covers_every_byte_before_the_signature_field(v: dict[str, Any]) -> None:
    sender, _, _, _ = _network(v)
    envelope = bytes.fromhex(v["envelope"])
    signature = envelope[-64:]
    assert envelope[-66:-64] == b"\x80\x01"  # Avro length prefix of 64 bytes
    sender.keys.signing_key.public_key().verify(signature, SIGNATURE_TAG + envelope[:-66])
