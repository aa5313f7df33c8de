"""Known-answer vectors pin the reference to envelope formats 1 and 2
(tests/spec/vectors/envelope-v1.json, envelope-v2.json; docs/ENVELOPE.md §10).

A change that breaks these tests changes the wire format: that needs a new format version
(docs/ENVELOPE.md §9), not new vectors. A payload schema that evolved since a vector was
sealed (docs/ENVELOPE.md §2.2, earlier versions) does not: its envelope still opens, to the
current model, and sealing again writes the payload as the vector's header names it. `tests/spec/test_envelope_spec.py` checks the same files
against a clean-room implementation of the document.
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

from broker.contract import default_codec
from broker.crypto import AnchorKey, Directory, load_directory, open_envelope
from broker.crypto._batchsig import envelope_leaf, signed_statement
from broker.crypto._envelope import (
    SIGNATURE_TAG,
    WRAP_INFO_TAG,
    SealRequest,
    prepare_envelope,
    seal_v1_from_parts,
    seal_v2_batch,
)
from broker.crypto._epoch import SenderEpochs, epoch_wrap_info
from broker.crypto._keys import NewParty, generate_party, key_id
from broker.crypto._wire import decode_envelope
from broker.merkle import root_and_proofs
from broker.models import KeyAlgorithm, PartyRole, SecureEnvelope, model_for
from broker.replay import MemoryReplayGuard
from tests.crypto_net import ANCHOR, signed_directory
from tests.support import envelope_record

VECTORS = json.loads((Path(__file__).parent / "vectors" / "envelope-v1.json").read_text())[
    "vectors"
]
V2 = json.loads((Path(__file__).parent / "vectors" / "envelope-v2.json").read_text())
V3 = json.loads((Path(__file__).parent / "vectors" / "envelope-v3.json").read_text())
BATCHES = [
    {**v, "format_version": f["format_version"], "name": f"v{f['format_version']}-{v['name']}"}
    for f in (V2, V3)
    for v in f["vectors"]
]
"""Formats 2 and 3 (format 2 with a traceparent in the header): batches, checked alike."""


def _as_written(message: Any, fingerprint: bytes) -> bytes:
    """The message's payload in the schema version of ``fingerprint`` (the vector's)."""
    codec = default_codec()
    writer = codec.by_fingerprint(fingerprint)
    record = message.to_avro()
    known = {f["name"] for f in writer.schema["fields"]}
    assert all(not record[name] for name in set(record) - known)  # added since, left empty
    return codec.encode(writer, {name: record[name] for name in known})


def _network(v: dict[str, Any]) -> tuple[NewParty, list[NewParty], Directory, datetime]:
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
    stored = SecureEnvelope.from_avro(envelope_record(bytes.fromhex(v["envelope"])))
    fingerprint = stored.header.payload_fingerprint
    again = seal_v1_from_parts(
        message, sender=sender.keys, recipients=[r.keys.party_id for r in recipients], directory=directory,
        now=now, ttl=timedelta(days=v["ttl_days"]), correlation_id=None, causation_id=None,
        message_id=uuid.UUID(v["message_id"]), payload_key=bytes.fromhex(v["payload_key"]),
        nonce=bytes.fromhex(v["nonce"]), payload=_as_written(message, fingerprint),
        header_overrides={"payload_fingerprint": fingerprint},
    )  # fmt: skip
    fresh = SecureEnvelope.from_avro(envelope_record(again))
    assert fresh.header == stored.header
    assert (fresh.nonce, fresh.ciphertext) == (stored.nonce, stored.ciphertext)
    assert [(w.recipient, w.key_id, w.kem) for w in fresh.wrapped_keys] == [
        (w.recipient, w.key_id, w.kem) for w in stored.wrapped_keys
    ]


@pytest.mark.parametrize("v", VECTORS, ids=lambda v: v["name"])
def test_the_wraps_hold_the_payload_key_under_the_documented_info(v: dict[str, Any]) -> None:
    _, recipients, _, _ = _network(v)
    stored = SecureEnvelope.from_avro(envelope_record(bytes.fromhex(v["envelope"])))
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


# --- format 2: a batch per vector ----------------------------------------------------------


def _v2_request(e: dict[str, Any]) -> SealRequest:
    def optional(text: str | None) -> uuid.UUID | None:
        return None if text is None else uuid.UUID(text)

    message = model_for(e["message_type"]).model_validate(e["message_json"])
    return SealRequest(message, tuple(e["recipients"]), uuid.UUID(e["message_id"]),
                       optional(e["correlation_id"]), optional(e["causation_id"]),
                       timedelta(days=e["ttl_days"]), e.get("traceparent"))  # fmt: skip


def test_the_v2_file_is_format_2_and_the_v3_file_format_3() -> None:
    assert (V2["format_version"], V3["format_version"]) == (2, 3)
    assert {len(v["envelopes"]) for v in V2["vectors"]} >= {1, 3}
    traces = [e.get("traceparent") for v in V3["vectors"] for e in v["envelopes"]]
    assert None in traces and any(traces)  # with and without a traceparent
    assert not any("traceparent" in e for v in V2["vectors"] for e in v["envelopes"])


@pytest.mark.parametrize("v", BATCHES, ids=lambda v: v["name"])
def test_v2_keys_are_the_ones_the_vector_names(v: dict[str, Any]) -> None:
    test_the_keys_are_the_ones_the_vector_names(v)


@pytest.mark.parametrize("v", BATCHES, ids=lambda v: v["name"])
def test_every_v2_envelope_opens_for_each_of_its_recipients(v: dict[str, Any]) -> None:
    _, recipients, directory, now = _network(v)
    keys = {r.keys.party_id: r.keys for r in recipients}
    for e in v["envelopes"]:
        data = bytes.fromhex(e["envelope"])
        expected = model_for(e["message_type"]).model_validate(e["message_json"])
        for name in e["recipients"]:
            opened = open_envelope(data, me=keys[name], directory=directory,
                                   replay_guard=MemoryReplayGuard(), now=now)  # fmt: skip
            assert opened.message == expected
            assert opened.header.format_version == v["format_version"]
            assert opened.header.traceparent == e.get("traceparent")
            assert opened.header.message_id == uuid.UUID(e["message_id"])
            assert opened.envelope_sha256 == hashlib.sha256(data).digest()


@pytest.mark.parametrize("v", BATCHES, ids=lambda v: v["name"])
def test_v2_sealing_the_same_parts_gives_the_same_bytes_but_for_the_hpke_wraps(
    v: dict[str, Any],
) -> None:
    sender, _, directory, now = _network(v)
    keys = iter(bytes.fromhex(epoch["epoch_key"]) for epoch in v["epochs"])
    epochs = SenderEpochs(sender.keys.party_id, random=lambda n: next(keys)[:n])
    prepared = []
    for e in v["envelopes"]:
        request = _v2_request(e)
        header, _ = prepare_envelope(request, sender=sender.keys, directory=directory, now=now,
                                     format_version=v["format_version"])  # fmt: skip
        fingerprint = decode_envelope(
            bytes.fromhex(e["envelope"]), max_items=1000
        ).header.payload_fingerprint
        header = header.model_copy(update={"payload_fingerprint": fingerprint})
        prepared.append((header, _as_written(request.message, fingerprint)))
    again = seal_v2_batch(prepared, sender=sender.keys, directory=directory, now=now, epochs=epochs)
    for e, data in zip(v["envelopes"], again, strict=True):
        stored = decode_envelope(bytes.fromhex(e["envelope"]), max_items=1000)
        fresh = decode_envelope(data, max_items=1000)
        assert data[: fresh.header_end].hex() == e["header"]
        assert (fresh.nonce.hex(), fresh.ciphertext) == (e["nonce"], stored.ciphertext)
        assert [w[:3] for w in fresh.wrapped_keys] == [w[:3] for w in stored.wrapped_keys]
        assert fresh.batch_proof is not None and stored.batch_proof is not None
        assert fresh.batch_proof[:2] == stored.batch_proof[:2]  # index and size; paths differ


@pytest.mark.parametrize("v", BATCHES, ids=lambda v: v["name"])
def test_v2_leaves_root_statement_and_signature(v: dict[str, Any]) -> None:
    sender, _, _, _ = _network(v)
    sealed = [bytes.fromhex(e["envelope"]) for e in v["envelopes"]]
    wires = [decode_envelope(data, max_items=1000) for data in sealed]
    leaves = [envelope_leaf(d[: w.body_end]) for d, w in zip(sealed, wires, strict=True)]
    assert [leaf.hex() for leaf in leaves] == [e["leaf"] for e in v["envelopes"]]
    root, paths = root_and_proofs(leaves)
    statement = signed_statement(len(leaves), root)
    assert (root.hex(), statement.hex(), v["batch_size"]) == (
        v["root"],
        v["statement"],
        len(leaves),
    )
    for i, wire in enumerate(wires):
        assert wire.batch_proof is not None
        assert (wire.batch_proof.leaf_index, wire.batch_proof.batch_size) == (i, len(leaves))
        assert list(wire.batch_proof.path) == paths[i]
        assert wire.signature.hex() == v["signature"]
    # Ed25519 is deterministic: the batch's signature is reproducible from the statement
    assert sender.keys.signing_key.sign(statement).hex() == v["signature"]


@pytest.mark.parametrize("v", BATCHES, ids=lambda v: v["name"])
def test_v2_wraps_hold_the_epoch_key_under_the_documented_info(v: dict[str, Any]) -> None:
    _, recipients, _, _ = _network(v)
    keys = {r.keys.party_id: r.keys for r in recipients}
    for e in v["envelopes"]:
        epoch = v["epochs"][e["epoch"]]
        assert epoch["recipients"] == e["recipients"]
        wire = decode_envelope(bytes.fromhex(e["envelope"]), max_items=1000)
        for name, wrapped in zip(e["recipients"], wire.wrapped_keys, strict=True):
            kem = hpke.KEM.X25519 if wrapped.kem.value == "X25519" else hpke.KEM.MLKEM768_X25519
            suite = hpke.Suite(kem, hpke.KDF.HKDF_SHA256, hpke.AEAD.AES_256_GCM)
            [key] = keys[name].decryption_keys.values()
            info = epoch_wrap_info(v["sender"]["party_id"], name)
            assert (
                suite.decrypt(wrapped.wrapped, key.private_key, info=info).hex()
                == epoch["epoch_key"]
            )
