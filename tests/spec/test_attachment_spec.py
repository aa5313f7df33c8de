"""docs/ENVELOPE.md §11 is implementable: a clean-room attachment opener written from it.

Nothing here uses `broker/crypto/_stream.py`: the reference's rules, the key's HPKE info,
the stream key's HKDF, each chunk's nonce and associated data, the record key and the
checks of §11.5 in their order are computed from the text, with primitives from
`cryptography` and `hashlib`, and the clean-room Avro reader, HPKE and vector keys of
`tests/spec/test_envelope_spec.py` (the same clean room, written from §2–§10). The
reference implementation is the other side: both open the known-answer vectors
(tests/spec/vectors/attachment-v1.json) as each recipient, and both refuse the hostile
cases with the same codes. The section's tables are read from the document and checked
against the code.
"""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from datetime import datetime
from importlib import import_module
from pathlib import Path
from typing import Any

import pytest
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from broker.contract import default_codec
from broker.crypto import AttachmentOpener, generate_party
from broker.errors import AttachmentCheck, AttachmentRejected
from broker.models import AttachmentRef, KeyAlgorithm, PartyRole
from broker.policy import ATTACHMENT_RULES
from tests.spec.test_envelope_spec import (
    SPEC,
    Receiver,
    Rejected,
    _vector_receiver,
    decode,
    hpke_open,
    self_contained,
)

VECTORS = json.loads((Path(__file__).parent / "vectors" / "attachment-v1.json").read_text())[
    "vectors"
]
SECTION = SPEC[SPEC.index("## 11. Attachments") :]

# --- §11.2, §11.3, §11.4, §11.7: from the text -----------------------------------------------

WRAP_TAG = b"LVVX-ATTACHMENT-KEY-V1\x00"
STREAM_TAG = b"LVVX-ATTACHMENT-STREAM-V1\x00"
CHUNK_TAG = b"LVVX-ATTACHMENT-CHUNK-V1\x00"
RECORD_SIG_TAG = b"LVVX-ATTACHMENT-RECORD-V1\x00"
MEDIA_TYPE = re.compile(r"[a-z0-9][a-z0-9!#$&^_.+-]{0,126}/[a-z0-9][a-z0-9!#$&^_.+-]{0,126}")
MAX_SIZE = 134_217_728
MIN_CHUNK, MAX_CHUNK = 4096, 1_048_576
REFERENCE = self_contained("types/nl.lvv.v1.AttachmentRef")


def clean_chunk_count(size: int, chunk_size: int) -> int:
    return max(1, -(-size // chunk_size))


def clean_lengths(ref: dict[str, Any]) -> list[int]:
    """len(P_i) for every chunk (§11.4)."""
    n, cs = ref["chunk_count"], ref["chunk_size"]
    return [cs] * (n - 1) + [ref["size"] - (n - 1) * cs]


def clean_nonce(i: int, last: bool) -> bytes:
    return i.to_bytes(11, "big") + (b"\x01" if last else b"\x00")


def clean_aad(attachment_id: str, i: int, last: bool) -> bytes:
    return (
        CHUNK_TAG
        + uuid.UUID(attachment_id).bytes
        + i.to_bytes(4, "big")
        + (b"\x01" if last else b"\x00")
    )


def clean_stream_key(key: bytes, salt: bytes, attachment_id: str, sender: str) -> bytes:
    info = STREAM_TAG + uuid.UUID(attachment_id).bytes + sender.encode()
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=salt, info=info).derive(key)


def clean_record_key(sender: str, attachment_id: str, i: int) -> bytes:
    return sender.encode() + b"\x00" + uuid.UUID(attachment_id).bytes + i.to_bytes(4, "big")


def clean_open_attachment(
    ref: dict[str, Any], sender: str, me: Receiver, chunks: list[bytes]
) -> bytes:
    """§11.5, step by step: the document, or `Rejected` with its code."""
    if not (  # 1
        MEDIA_TYPE.fullmatch(ref["media_type"])
        and 0 <= ref["size"] <= MAX_SIZE
        and MIN_CHUNK <= ref["chunk_size"] <= MAX_CHUNK
        and ref["chunk_count"] == clean_chunk_count(ref["size"], ref["chunk_size"])
        and len(ref["salt"]) == 16
        and ref["location"] == "RECIPIENT_TOPIC"
    ):
        raise Rejected("REFERENCE_INVALID")
    mine = [k for k in ref["keys"] if k["recipient"] == me.party_id]  # 2
    if len(mine) != 1 or mine[0]["key_id"] not in me.private_keys:
        raise Rejected("KEY_INVALID")
    algorithm, parts = me.private_keys[mine[0]["key_id"]]
    info = (
        WRAP_TAG
        + uuid.UUID(ref["attachment_id"]).bytes
        + sender.encode()
        + b"\x00"
        + me.party_id.encode()
    )
    try:
        key = hpke_open(algorithm, parts, mine[0]["wrapped"], info)
    except (InvalidTag, ValueError):
        raise Rejected("KEY_INVALID") from None
    if len(key) != 32:
        raise Rejected("KEY_INVALID")
    aead = AESGCM(clean_stream_key(key, ref["salt"], ref["attachment_id"], sender))
    lengths, n = clean_lengths(ref), ref["chunk_count"]
    digest, out = hashlib.sha256(), bytearray()
    for i, chunk in enumerate(chunks):
        if i >= n:  # 3
            raise Rejected("TOO_MANY_CHUNKS")
        if len(chunk) != lengths[i] + 16:  # 4
            raise Rejected("CHUNK_SIZE")
        last = i == n - 1
        try:  # 5
            plain = aead.decrypt(
                clean_nonce(i, last), chunk, clean_aad(ref["attachment_id"], i, last)
            )
        except InvalidTag:
            raise Rejected("CHUNK_INVALID") from None
        digest.update(plain)
        out += plain  # spooled, not released
    if len(chunks) != n:  # 6
        raise Rejected("TRUNCATED")
    if digest.digest() != ref["sha256"]:  # 7
        raise Rejected("DIGEST_MISMATCH")
    return bytes(out)  # released only now


def clean_reference(v: dict[str, Any]) -> dict[str, Any]:
    ref, _ = decode(REFERENCE, bytes.fromhex(v["reference_avro"]), 1000)
    return ref


def hostile_chunks(v: dict[str, Any], case: dict[str, Any]) -> list[bytes]:
    stored = [bytes.fromhex(c["chunk"]) for c in v["chunks"]]
    out = []
    for item in case["chunks"]:
        chunk = bytearray(stored[item["chunk"]])
        if "flip" in item:
            chunk[item["flip"]] ^= 1
        if "cut" in item:
            del chunk[-item["cut"] :]
        out.append(bytes(chunk))
    return out


# --- the clean room against the vectors -------------------------------------------------------


@pytest.mark.parametrize("v", VECTORS, ids=lambda v: v["name"])
def test_clean_room_opens_every_vector_as_each_recipient(v: dict[str, Any]) -> None:
    ref = clean_reference(v)
    plaintext = bytes.fromhex(v["plaintext"])
    assert ref["sha256"].hex() == v["plaintext_sha256"] == hashlib.sha256(plaintext).hexdigest()
    assert [k["recipient"] for k in ref["keys"]] == [r["party_id"] for r in v["recipients"]]
    chunks = [bytes.fromhex(c["chunk"]) for c in v["chunks"]]
    for me in v["recipients"]:
        receiver = _vector_receiver(v, me)
        assert clean_open_attachment(ref, v["sender"]["party_id"], receiver, chunks) == plaintext


@pytest.mark.parametrize("v", VECTORS, ids=lambda v: v["name"])
def test_clean_room_chunks_from_the_parts_are_the_stored_bytes(v: dict[str, Any]) -> None:
    sender, aid = v["sender"]["party_id"], v["attachment_id"]
    key = clean_stream_key(
        bytes.fromhex(v["attachment_key"]), bytes.fromhex(v["salt"]), aid, sender
    )
    assert key.hex() == v["stream_key"]
    plaintext, cs = bytes.fromhex(v["plaintext"]), v["chunk_size"]
    n = clean_chunk_count(len(plaintext), cs)
    assert len(v["chunks"]) == n
    for i, stored in enumerate(v["chunks"]):
        last = i == n - 1
        piece = plaintext[i * cs : min((i + 1) * cs, len(plaintext))]
        assert (stored["index"], stored["last"]) == (i, last)
        assert stored["nonce"] == clean_nonce(i, last).hex()
        assert stored["aad"] == clean_aad(aid, i, last).hex()
        assert stored["record_key"] == clean_record_key(sender, aid, i).hex()
        assert (
            stored["chunk"]
            == AESGCM(key).encrypt(clean_nonce(i, last), piece, clean_aad(aid, i, last)).hex()
        )


@pytest.mark.parametrize("v", VECTORS, ids=lambda v: v["name"])
def test_clean_room_unwraps_the_vector_key_and_refuses_another_recipients_wrap(
    v: dict[str, Any],
) -> None:
    ref = clean_reference(v)
    sender = v["sender"]["party_id"]
    for me in v["recipients"]:
        receiver = _vector_receiver(v, me)
        # the stored key, under the info of §11.3
        [mine] = [k for k in ref["keys"] if k["recipient"] == me["party_id"]]
        algorithm, parts = receiver.private_keys[mine["key_id"]]
        info = (
            WRAP_TAG
            + uuid.UUID(ref["attachment_id"]).bytes
            + sender.encode()
            + b"\x00"
            + me["party_id"].encode()
        )
        assert hpke_open(algorithm, parts, mine["wrapped"], info).hex() == v["attachment_key"]
        # another sender's claim to it
        chunks = [bytes.fromhex(c["chunk"]) for c in v["chunks"]]
        with pytest.raises(Rejected, match="KEY_INVALID"):
            clean_open_attachment(
                ref, "ngo-perspectief" if sender != "ngo-perspectief" else "ind", receiver, chunks
            )


def _reference_opener(
    v: dict[str, Any], me: dict[str, Any], ref: AttachmentRef
) -> AttachmentOpener:
    start = datetime.fromisoformat(v["key_start"])
    keys = generate_party(me["party_id"], PartyRole(me["role"]), now=start, kem=KeyAlgorithm(me["kem"]),
                          seed=me["seed"].encode()).keys  # fmt: skip
    return AttachmentOpener.for_recipient(ref, sender=v["sender"]["party_id"], me=keys)


def _reference_open(
    v: dict[str, Any], me: dict[str, Any], ref: AttachmentRef, chunks: list[bytes]
) -> bytes:
    o = _reference_opener(v, me, ref)
    out = b"".join(o.open_chunk(c) for c in chunks)
    o.finish()
    return out


@pytest.mark.parametrize("v", VECTORS, ids=lambda v: v["name"])
def test_the_reference_opens_every_vector_and_its_reference_is_the_stored_bytes(
    v: dict[str, Any],
) -> None:
    ref = AttachmentRef.model_validate(v["reference_json"])
    codec = default_codec()
    assert (
        codec.encode(codec.record_info(AttachmentRef.avro_name), ref.to_avro()).hex()
        == v["reference_avro"]
    )
    chunks = [bytes.fromhex(c["chunk"]) for c in v["chunks"]]
    for me in v["recipients"]:
        assert _reference_open(v, me, ref, chunks) == bytes.fromhex(v["plaintext"])


HOSTILE = [(v, case) for v in VECTORS for case in v["hostile"]]


def test_the_vectors_have_hostile_cases_for_every_chunk_check() -> None:
    codes = {case["code"] for _, case in HOSTILE}
    assert codes == {
        "CHUNK_INVALID",
        "CHUNK_SIZE",
        "TOO_MANY_CHUNKS",
        "TRUNCATED",
        "DIGEST_MISMATCH",
    }


@pytest.mark.parametrize(
    ("v", "case"), HOSTILE, ids=lambda x: x.get("name", "") if isinstance(x, dict) else ""
)
def test_hostile_streams_get_the_same_code_from_both_implementations(
    v: dict[str, Any], case: dict[str, Any]
) -> None:
    chunks = hostile_chunks(v, case)
    clean_ref = clean_reference(v)
    ref = AttachmentRef.model_validate(v["reference_json"])
    if "sha256" in case:
        clean_ref["sha256"] = bytes.fromhex(case["sha256"])
        ref = ref.model_copy(update={"sha256": bytes.fromhex(case["sha256"])})
    for me in v["recipients"]:
        with pytest.raises(Rejected) as clean:
            clean_open_attachment(
                clean_ref, v["sender"]["party_id"], _vector_receiver(v, me), chunks
            )
        with pytest.raises(AttachmentRejected) as reference:
            _reference_open(v, me, ref, chunks)
        assert clean.value.code == reference.value.check.value == case["code"]


# --- the section's tables against the code ----------------------------------------------------


def _rows(start: str, end: str) -> list[list[str]]:
    text = SECTION[SECTION.index(start) : SECTION.index(end, SECTION.index(start))]
    return [
        [cell.strip().strip("`") for cell in line.strip().strip("|").split("|")]
        for line in text.splitlines()
        if line.startswith("|") and not line.startswith("| ---")
    ]


def test_constants_table_matches_the_code() -> None:
    checked = 0
    for row in _rows("### 11.7", "### 11.8"):
        if len(row) == 5 and row[1].isdigit():
            name, value, _unit, where, _why = row
            module = import_module(where.removesuffix(".py").replace("/", "."))
            assert getattr(module, name) == int(value), f"§11.7 says {name} = {value}"
            checked += 1
    assert checked == 10


def test_tags_match_the_code_and_the_text() -> None:
    from broker.crypto import _chunk_record, _stream

    tags = {
        row[0]: bytes.fromhex(row[1])
        for row in _rows("### 11.7", "### 11.8")
        if row[0].endswith("_TAG")
    }
    assert tags == {
        "ATTACHMENT_WRAP_INFO_TAG": WRAP_TAG,
        "STREAM_KEY_INFO_TAG": STREAM_TAG,
        "CHUNK_AAD_TAG": CHUNK_TAG,
        "CHUNK_RECORD_SIG_TAG": RECORD_SIG_TAG,
    }
    for name, value in tags.items():
        assert getattr(_stream if hasattr(_stream, name) else _chunk_record, name) == value


def test_policy_table_matches_the_code() -> None:
    table = {row[0]: (int(row[1]), int(row[2])) for row in _rows("### 11.8", "A dossier is")[1:]}
    assert table == {name: (r.max_count, r.max_total_bytes) for name, r in ATTACHMENT_RULES.items()}


def test_the_codes_are_the_closed_set_of_the_code() -> None:
    codes = {row[-1] for row in _rows("### 11.5", "What the cases look like")[1:] if row[-1]}
    assert codes == {c.value for c in AttachmentCheck}


def test_the_media_type_pattern_is_the_models() -> None:
    from broker.models import MEDIA_TYPE_PATTERN

    assert f"`{MEDIA_TYPE_PATTERN}`" in SECTION
    assert MEDIA_TYPE.pattern == MEDIA_TYPE_PATTERN.removeprefix("^").removesuffix("$")


# --- §11.6: a chunk record, read from the text ----------------------------------------------


def clean_read_record(
    key: bytes, value: bytes, signing_keys: dict[str, bytes]
) -> tuple[str, bytes]:
    """(sender, chunk) of a record by §11.6, its signer's raw key found in ``signing_keys``
    (key id → raw Ed25519 public key); raises on any failed rule."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    sender, tail = key[:-21], key[-21:]
    assert tail[0] == 0 and re.fullmatch(rb"[a-z0-9][a-z0-9-]{1,62}", sender)
    assert int.from_bytes(tail[17:], "big") < 32768
    signer, signature, chunk = value[:8], value[8:72], value[72:]
    assert 16 <= len(chunk) <= MAX_CHUNK + 16
    raw = signing_keys[signer.hex()]
    Ed25519PublicKey.from_public_bytes(raw).verify(
        signature, RECORD_SIG_TAG + key + hashlib.sha256(chunk).digest()
    )
    return sender.decode(), chunk


def test_a_chunk_record_of_the_reference_reads_by_the_text() -> None:
    import uuid

    from broker.crypto import chunk_record
    from tests.crypto_net import A, Net

    net = Net()
    ind = net.keys(A[PartyRole.IND])
    raw = {k.key_id: k.public_key for k in net.directory.party(ind.party_id).signing_keys}
    aid, chunk = uuid.uuid4(), bytes(range(256)) * 20
    key, value = chunk_record(ind, aid, 7, chunk)
    assert key == ind.party_id.encode() + b"\x00" + aid.bytes + (7).to_bytes(4, "big")
    assert clean_read_record(key, value, raw) == (ind.party_id, chunk)
