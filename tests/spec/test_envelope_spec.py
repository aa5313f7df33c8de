"""docs/ENVELOPE.md is implementable: a clean-room opener (and sealer) written from the spec.

Nothing here uses the envelope code of `broker.crypto` (nor `broker.merkle`): the Avro
canonical-form reader, the schema inlining and fingerprints, key ids, key acceptance, the
directory check, HPKE (RFC 9180 with DHKEM(X25519) and X-Wing), the AAD, the HPKE info, the
signed bytes and — format 2 — epoch keys, counter nonces, RFC 6962 Merkle trees, batch
proofs and statements are computed from the text of the spec (and of the RFCs it cites),
with only primitives from `cryptography`, `hashlib` and fastavro's Avro writer and Parsing
Canonical Form. The reference implementation is used as the other side:
it builds the keys and the signed directory, seals what the clean-room code opens, opens what
the clean-room code seals, and must reject the same envelopes with the same reason codes.

The tables of the spec (fingerprints, tags, constants, policy) are read from the document and
checked against the code, so the document cannot silently drift from it.
"""

from __future__ import annotations

import hashlib
import hmac
import io
import json
import os
import re
import struct
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cache
from importlib import import_module
from pathlib import Path
from typing import Any

import fastavro
import pytest
from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives import hpke
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.mlkem import MLKEM768PrivateKey, MLKEM768PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from fastavro.schema import to_parsing_canonical_form

from broker.contract import default_codec
from broker.crypto import (
    AnchorKey,
    Opened,
    Opener,
    Sealer,
    SealRequest,
    build_directory,
    key_id,
    load_directory,
    open_envelope,
    seal,
    sign_directory,
)
from broker.crypto._keys import NewParty, generate_party
from broker.errors import EnvelopeRejected
from broker.models import DossierDelivered, KeyAlgorithm, PartyRole
from broker.policy import POLICY
from broker.replay import MemoryReplayGuard
from demo.examples import example
from tests.support import example_of

ROOT = Path(__file__).resolve().parents[2]
SPEC = (ROOT / "docs" / "ENVELOPE.md").read_text(encoding="utf-8")
AVRO_DIR = ROOT / "schemas" / "avro"

# --- the spec's constants (§4.5, §7) ---------------------------------------------------------

SIGNATURE_TAG = b"LVVX-ENVELOPE-SIG-V1\x00"
AAD_TAG = b"LVVX-ENVELOPE-AAD-V1\x00"
WRAP_INFO_TAG = b"LVVX-ENVELOPE-KEY-V1\x00"
AAD_TAG_V2 = b"LVVX-ENVELOPE-AAD-V2\x00"
EPOCH_WRAP_INFO_TAG = b"LVVX-ENVELOPE-EPOCH-KEY-V2\x00"
LEAF_TAG = b"LVVX-ENVELOPE-LEAF-V2\x00"
BATCH_TAG = b"LVVX-ENVELOPE-BATCH-V2\x00"
DIRECTORY_SIGNATURE_TAG = b"LVVX-DIRECTORY-V1\x00"
DIRECTORY_SIGNATURE_TAG_V2 = b"LVVX-DIRECTORY-V2\x00"
DIRECTORY_FORMATS = {
    1: (DIRECTORY_SIGNATURE_TAG, "history/nl.lvv.v1.PartyDirectory.1"),
    2: (DIRECTORY_SIGNATURE_TAG_V2, "nl.lvv.v1.PartyDirectory"),
}
"""§3.4: per directory format, its signature tag and the schema its signed bytes are in."""

MAX_ENVELOPE_BYTES = 2_080_768
MAX_PAYLOAD_BYTES = 2_054_272
MAX_RECIPIENTS = 16
MAX_ENVELOPE_ITEMS = 112
MAX_PAYLOAD_ITEMS = 10_000
MAX_DIRECTORY_BYTES = 4 * 1024 * 1024
SKEW_MS = 2 * 60 * 1000
MAX_TTL_MS = 30 * 24 * 3600 * 1000
EPOCH_MAX_MESSAGES = 10_000
EPOCH_MAX_AGE_MS = 10 * 60 * 1000
MAX_BATCH_SIZE = 1024

PARTY_ID = re.compile(r"[a-z0-9][a-z0-9-]{1,62}")
AVRO_FULL_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*")
UUID_TEXT = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


class Rejected(Exception):
    """The clean-room opener's one failure: a reason code of §6.2 and nothing else."""

    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code


class NotCanonical(Exception):
    pass


# --- §2.1: Avro binary, canonical form enforced while reading --------------------------------

PRIMITIVES = {"null", "boolean", "int", "long", "float", "double", "bytes", "string"}
INT = (-(2**31), 2**31 - 1)
LONG = (-(2**63), 2**63 - 1)
MS_RANGE = (-62_135_596_800_000, 253_402_300_799_999)
DAY_RANGE = (-719_162, 2_932_896)


def named_types(schema: Any, out: dict[str, Any] | None = None, ns: str = "") -> dict[str, Any]:
    """Every named type defined in a (self-contained) schema, by full and short name."""
    out = {} if out is None else out
    if isinstance(schema, list):
        for branch in schema:
            named_types(branch, out, ns)
    elif isinstance(schema, dict):
        kind = schema["type"]
        if kind in ("record", "enum", "fixed"):
            ns = schema.get("namespace", ns)
            name = schema["name"]
            out[name if "." in name else f"{ns}.{name}"] = out[name.rsplit(".")[-1]] = schema
            for f in schema.get("fields", ()):
                named_types(f["type"], out, ns)
        elif kind == "array":
            named_types(schema["items"], out, ns)
        elif kind == "map":
            named_types(schema["values"], out, ns)
        elif isinstance(kind, dict | list):
            named_types(kind, out, ns)
    return out


class Reader:
    def __init__(self, data: bytes, max_items: int, names: dict[str, Any]) -> None:
        self.data, self.pos, self.items_left, self.names = data, 0, max_items, names

    def take(self, n: int) -> bytes:
        if n < 0 or self.pos + n > len(self.data):
            raise NotCanonical("truncated")
        self.pos += n
        return self.data[self.pos - n : self.pos]

    def varint(self, lo: int, hi: int) -> int:
        start, shift, acc = self.pos, 0, 0
        while True:
            (byte,) = self.take(1)
            acc |= (byte & 0x7F) << shift
            if not byte & 0x80:
                break
            shift += 7
            if shift > 63:
                raise NotCanonical("varint longer than 10 bytes")
        if byte == 0 and self.pos - start > 1:
            raise NotCanonical("redundant varint byte")
        value = (acc >> 1) ^ -(acc & 1)
        if not lo <= value <= hi:
            raise NotCanonical("integer out of range")
        return value

    def blocks(self, item: Callable[[], Any]) -> list[Any]:
        count = self.varint(0, len(self.data))
        if count == 0:
            return []
        self.items_left -= count
        if self.items_left < 0:
            raise NotCanonical("too many items")
        items = [item() for _ in range(count)]
        self.varint(0, 0)  # exactly one block
        return items

    def read(self, node: Any) -> Any:
        if isinstance(node, list):
            return self.read(node[self.varint(0, len(node) - 1)])
        if isinstance(node, str):
            return self.primitive(node) if node in PRIMITIVES else self.read(self.names[node])
        kind = node["type"]
        if kind == "record":
            return {f["name"]: self.read(f["type"]) for f in node["fields"]}
        if kind == "enum":
            return node["symbols"][self.varint(0, len(node["symbols"]) - 1)]
        if kind == "fixed":
            return self.take(node["size"])
        if kind == "array":
            return self.blocks(lambda: self.read(node["items"]))
        if kind == "map":
            return dict(self.blocks(lambda: (self.primitive("string"), self.read(node["values"]))))
        value = self.read(kind)
        logical = node.get("logicalType")
        if logical == "uuid" and not UUID_TEXT.fullmatch(value):
            raise NotCanonical("uuid not in lowercase 8-4-4-4-12 form")
        if logical in ("timestamp-millis", "date"):
            lo, hi = MS_RANGE if logical == "timestamp-millis" else DAY_RANGE
            if not lo <= value <= hi:
                raise NotCanonical("moment outside years 1 to 9999")
        return value

    def primitive(self, kind: str) -> Any:
        if kind == "null":
            return None
        if kind == "boolean":
            (byte,) = self.take(1)
            if byte > 1:
                raise NotCanonical("boolean")
            return byte == 1
        if kind in ("int", "long"):
            return self.varint(*(INT if kind == "int" else LONG))
        if kind in ("float", "double"):
            return struct.unpack(
                "<f" if kind == "float" else "<d", self.take(4 if kind == "float" else 8)
            )[0]
        raw = self.take(self.varint(0, len(self.data)))
        if kind == "bytes":
            return raw
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise NotCanonical("not UTF-8") from exc


def decode(
    schema: dict[str, Any], data: bytes, max_items: int
) -> tuple[dict[str, Any], dict[str, int]]:
    """A canonical record, and where each of its fields starts in ``data``."""
    reader = Reader(data, max_items, named_types(schema))
    record, starts = {}, {}
    for f in schema["fields"]:
        starts[f["name"]] = reader.pos
        record[f["name"]] = reader.read(f["type"])
    if reader.pos != len(data):
        raise NotCanonical("trailing bytes")
    return record, starts


def encode(schema: dict[str, Any], record: dict[str, Any]) -> bytes:
    out = io.BytesIO()
    fastavro.schemaless_writer(out, fastavro.parse_schema(schema, _write_hint=False), record)
    return out.getvalue()


# --- §2.2: self-contained schemas and fingerprints -------------------------------------------


def _full(name: str, ns: str | None) -> str:
    return name if "." in name or not ns else f"{ns}.{name}"


@cache
def self_contained(name: str, file: str | None = None) -> dict[str, Any]:
    """The top-level schema with each shared type inlined at its first use (§2.2); ``file``
    names an earlier version under ``history/`` (§2.2, §9)."""
    shared = {}
    for path in (AVRO_DIR / "types").glob("*.avsc"):
        schema = json.loads(path.read_text(encoding="utf-8"))
        shared[_full(schema["name"], schema.get("namespace"))] = schema
    seen: set[str] = set()

    def walk(node: Any, ns: str | None) -> Any:
        if isinstance(node, list):
            return [walk(branch, ns) for branch in node]
        if isinstance(node, str):
            if node in PRIMITIVES:
                return node
            full = _full(node, ns)
            if full in shared and full not in seen:
                seen.add(full)
                definition = shared[full]
                return walk(definition, definition.get("namespace", ns))
            return full
        out, kind = dict(node), node["type"]
        if kind in ("record", "enum", "fixed"):
            ns = node.get("namespace", ns)
            seen.add(_full(node["name"], ns))
            if kind == "record":
                out["fields"] = [{**f, "type": walk(f["type"], ns)} for f in node["fields"]]
        elif kind == "array":
            out["items"] = walk(node["items"], ns)
        elif kind == "map":
            out["values"] = walk(node["values"], ns)
        else:
            out["type"] = walk(kind, ns)
        return out

    path = AVRO_DIR / "history" / file if file else AVRO_DIR / f"{name}.avsc"
    top = json.loads(path.read_text(encoding="utf-8"))
    inlined: dict[str, Any] = walk(top, top.get("namespace"))
    return inlined


def fingerprint(name: str) -> bytes:
    return hashlib.sha256(to_parsing_canonical_form(self_contained(name)).encode()).digest()


def field_schema(record_schema: dict[str, Any], name: str) -> dict[str, Any]:
    found: dict[str, Any] = next(f["type"] for f in record_schema["fields"] if f["name"] == name)
    return found


ENVELOPE = self_contained("nl.lvv.v1.SecureEnvelope")  # version 3 on (§4.2: traceparent)
HEADER = field_schema(ENVELOPE, "header")  # self-contained: it defines every type it uses
ENVELOPE_V1 = self_contained("nl.lvv.v1.SecureEnvelope", "nl.lvv.v1.SecureEnvelope.1.avsc")
HEADER_V1 = field_schema(ENVELOPE_V1, "header")  # versions 1 and 2: no traceparent
TRACEPARENT = re.compile(r"00-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}")


def envelope_schema(version: int) -> dict[str, Any]:
    """§9: the schema an envelope of ``version`` is written with."""
    return ENVELOPE if version >= 3 else ENVELOPE_V1


# --- the spec's tables, read from the document -----------------------------------------------


def spec_rows(start: str, end: str) -> list[list[str]]:
    text = SPEC[SPEC.index(start) : SPEC.index(end, SPEC.index(start))]
    rows = [
        [cell.strip().strip("`") for cell in line.strip().strip("|").split("|")]
        for line in text.splitlines()
        if line.startswith("|") and not line.startswith("| ---")
    ]
    return rows[1:]  # without the heading row


def spec_policy() -> dict[str, tuple[frozenset[str], frozenset[str]]]:
    def roles(cell: str) -> frozenset[str]:
        return frozenset(r.strip() for r in cell.split(","))

    return {row[0]: (roles(row[1]), roles(row[2])) for row in spec_rows("## 8. Policy", "### 8.1")}


POLICY_TABLE = spec_policy()
# §8.1: message type -> (field, "the sender" or "the sender's role")
SENDER_FIELDS = {f"nl.lvv.v1.{r[0]}": (r[1], r[2]) for r in spec_rows("### 8.1", "## 9.")}
# §2.2's earlier versions, still read by fingerprint: full name -> (version, fingerprint)
EARLIER = [
    (m[1], int(m[2]), bytes.fromhex(m[3]))
    for m in re.finditer(
        r"- `(nl\.lvv\.v1\.\w+)` version (\d+), fingerprint\s+`([0-9a-f]{64})`",
        SPEC[SPEC.index("Earlier versions a receiver still reads") : SPEC.index("### 2.3")],
    )
]
# what may travel (§6 step 14): fingerprint -> (full name, schema file)
KNOWN_SCHEMAS = {fingerprint(name): (name, name) for name in POLICY_TABLE} | {
    fp: (name, f"history/{name}.{version}") for name, version, fp in EARLIER if name in POLICY_TABLE
}

# --- §2.3, §3.2, §3.3: keys ------------------------------------------------------------------

P = 2**255 - 19
D = -121665 * pow(121666, P - 2, P) % P
ED25519_SMALL_ORDER = {
    bytes.fromhex(h)
    for h in (
        "0100000000000000000000000000000000000000000000000000000000000000",
        "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
        "0000000000000000000000000000000000000000000000000000000000000000",
        "0000000000000000000000000000000000000000000000000000000000000080",
        "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05",
        "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc85",
        "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a",
        "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac03fa",
    )
}
X25519_SMALL_ORDER = {
    0,
    1,
    P - 1,
    325606250916557431795983626356110631294008115727848805560023387167927233504,
    39382357235489614581723060781553021112529911719440698176882885853963445705823,
}


def clean_key_id(raw_public_key: bytes) -> str:
    return hashlib.sha256(raw_public_key).hexdigest()[:16]


def ed25519_decodes(raw: bytes) -> bool:
    """RFC 8032 §5.1.3: the bytes encode a curve point."""
    if len(raw) != 32:
        return False
    y, sign = int.from_bytes(raw, "little") & ((1 << 255) - 1), raw[31] >> 7
    if y >= P:
        return False
    u, v = (y * y - 1) % P, (D * y * y + 1) % P
    x = u * pow(v, 3, P) * pow(u * pow(v, 7, P), (P - 5) // 8, P) % P
    if (v * x * x - u) % P:
        x = x * pow(2, (P - 1) // 4, P) % P
        if (v * x * x - u) % P:
            return False
    return not (x == 0 and sign)


def ed25519_ok(raw: bytes) -> bool:
    return ed25519_decodes(raw) and raw not in ED25519_SMALL_ORDER


def x25519_ok(raw: bytes) -> bool:
    if len(raw) != 32 or raw[31] & 0x80:
        return False
    u = int.from_bytes(raw, "little")
    return u < P and u not in X25519_SMALL_ORDER


def hybrid_ok(raw: bytes) -> bool:
    if len(raw) != 1216 or not x25519_ok(raw[1184:]):
        return False
    try:
        MLKEM768PublicKey.from_public_bytes(raw[:1184])  # FIPS 203 §7.2 input checks
    except ValueError:
        return False
    return True


def valid_at(key: dict[str, Any], t_ms: int) -> bool:
    """§3.6."""
    if not key["valid_from"] <= t_ms < key["valid_until"]:
        return False
    if key["status"] == "ACTIVE":
        return True
    return key["status"] == "REVOKED" and key["revoked_at"] is not None and t_ms < key["revoked_at"]


# --- §3.4, §3.5: the signed directory --------------------------------------------------------


def clean_load_directory(
    data: bytes, *, anchor_raw: bytes, anchor_key_id: str, now_ms: int, network: str
) -> dict[str, dict[str, Any]]:
    """The parties of a signed directory, by id; raises ValueError saying which check failed."""
    if len(data) > MAX_DIRECTORY_BYTES:
        raise ValueError("too large")
    signed, _ = decode(self_contained("nl.lvv.v1.SignedDirectory"), data, 0)
    if signed["format_version"] not in DIRECTORY_FORMATS:
        raise ValueError("format")
    tag, schema = DIRECTORY_FORMATS[signed["format_version"]]
    if signed["anchor_key_id"] != anchor_key_id:
        raise ValueError("anchor")
    try:
        Ed25519PublicKey.from_public_bytes(anchor_raw).verify(
            signed["signature"], tag + signed["directory"]
        )
    except InvalidSignature:
        raise ValueError("signature") from None
    document, _ = decode(self_contained(schema), signed["directory"], 100_000)
    if now_ms >= document["expires_at"] or document["network"] != network:
        raise ValueError("expired or another network")
    parties: dict[str, dict[str, Any]] = {}
    for entry in document["parties"]:
        if entry["party_id"] in parties or not PARTY_ID.fullmatch(entry["party_id"]):
            raise ValueError("party id")
        if entry["role"] == "UNKNOWN" or not entry["signing_keys"] or not entry["encryption_keys"]:
            raise ValueError("role or keys")
        for kind, keys in (
            ("signing", entry["signing_keys"]),
            ("encryption", entry["encryption_keys"]),
        ):
            for key in keys:
                usable = {
                    ("signing", "ED25519"): ed25519_ok,
                    ("encryption", "X25519"): x25519_ok,
                    ("encryption", "MLKEM768_X25519"): hybrid_ok,
                }.get((kind, key["algorithm"]))
                if usable is None or not usable(key["public_key"]):
                    raise ValueError("key not usable")
                if key["key_id"] != clean_key_id(key["public_key"]):
                    raise ValueError("key id")
                if not key["valid_from"] < key["valid_until"]:
                    raise ValueError("validity")
        parties[entry["party_id"]] = entry
    return parties


# --- §2.4: HPKE, base mode, single shot, HKDF-SHA256 / AES-256-GCM ---------------------------

KEM_ID = {"X25519": 0x0020, "MLKEM768_X25519": 0x647A}
XWING_LABEL = bytes.fromhex("5c2e2f2f5e5c")


def hkdf_extract(salt: bytes, ikm: bytes) -> bytes:
    return hmac.new(salt or bytes(32), ikm, hashlib.sha256).digest()


def hkdf_expand(prk: bytes, info: bytes, length: int) -> bytes:
    out, block, i = b"", b"", 1
    while len(out) < length:
        block = hmac.new(prk, block + info + bytes([i]), hashlib.sha256).digest()
        out, i = out + block, i + 1
    return out[:length]


def labeled_extract(suite_id: bytes, salt: bytes, label: bytes, ikm: bytes) -> bytes:
    return hkdf_extract(salt, b"HPKE-v1" + suite_id + label + ikm)


def labeled_expand(suite_id: bytes, prk: bytes, label: bytes, info: bytes, length: int) -> bytes:
    return hkdf_expand(
        prk, length.to_bytes(2, "big") + b"HPKE-v1" + suite_id + label + info, length
    )


@dataclass(frozen=True)
class KeyNonce:
    key: bytes
    nonce: bytes


def key_schedule(kem_id: int, shared_secret: bytes, info: bytes) -> KeyNonce:
    suite_id = b"HPKE" + kem_id.to_bytes(2, "big") + b"\x00\x01\x00\x02"
    ctx = (
        b"\x00"
        + labeled_extract(suite_id, b"", b"psk_id_hash", b"")
        + labeled_extract(suite_id, b"", b"info_hash", info)
    )
    secret = labeled_extract(suite_id, shared_secret, b"secret", b"")
    return KeyNonce(
        labeled_expand(suite_id, secret, b"key", ctx, 32),
        labeled_expand(suite_id, secret, b"base_nonce", ctx, 12),
    )


def dhkem_shared_secret(dh: bytes, enc: bytes, pk_r: bytes) -> bytes:
    suite_id = b"KEM\x00\x20"
    eae_prk = labeled_extract(suite_id, b"", b"eae_prk", dh)
    return labeled_expand(suite_id, eae_prk, b"shared_secret", enc + pk_r, 32)


def xwing_shared_secret(ss_m: bytes, ss_x: bytes, ct_x: bytes, pk_x: bytes) -> bytes:
    if ss_x == bytes(32):
        raise ValueError("all-zero X25519 secret")
    return hashlib.sha3_256(ss_m + ss_x + ct_x + pk_x + XWING_LABEL).digest()


def hpke_seal(kem: str, pk_raw: bytes, info: bytes, plaintext: bytes) -> bytes:
    ephemeral = X25519PrivateKey.generate()
    ct_x = ephemeral.public_key().public_bytes_raw()
    if kem == "X25519":
        enc = ct_x
        ss = dhkem_shared_secret(
            ephemeral.exchange(X25519PublicKey.from_public_bytes(pk_raw)), enc, pk_raw
        )
    else:
        pk_m, pk_x = pk_raw[:1184], pk_raw[1184:]
        ss_m, ct_m = MLKEM768PublicKey.from_public_bytes(pk_m).encapsulate()
        ss_x = ephemeral.exchange(X25519PublicKey.from_public_bytes(pk_x))
        enc, ss = ct_m + ct_x, xwing_shared_secret(ss_m, ss_x, ct_x, pk_x)
    k = key_schedule(KEM_ID[kem], ss, info)
    return enc + AESGCM(k.key).encrypt(k.nonce, plaintext, b"")


def hpke_open(
    kem: str, private_parts: tuple[Any, ...], wrapped: bytes, info: bytes, kem_id: int | None = None
) -> bytes:
    if kem == "X25519":
        (sk,) = private_parts
        enc, ct = wrapped[:32], wrapped[32:]
        dh = sk.exchange(X25519PublicKey.from_public_bytes(enc))
        ss = dhkem_shared_secret(dh, enc, sk.public_key().public_bytes_raw())
    else:
        sk_m, sk_x = private_parts
        enc, ct = wrapped[:1120], wrapped[1120:]
        ct_m, ct_x = enc[:1088], enc[1088:]
        ss_x = sk_x.exchange(X25519PublicKey.from_public_bytes(ct_x))
        pk_x = sk_x.public_key().public_bytes_raw()
        ss = xwing_shared_secret(sk_m.decapsulate(ct_m), ss_x, ct_x, pk_x)
    k = key_schedule(KEM_ID[kem] if kem_id is None else kem_id, ss, info)
    return AESGCM(k.key).decrypt(k.nonce, ct, b"")


# --- §5.5: RFC 6962 Merkle trees, written from RFC 6962 §2.1 and RFC 9162 §2.1.3.2 -----------


class WrongPath(Exception):
    """An inclusion path that leads to no root of a tree of the size it claims."""


def rfc6962_leaf(data: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + data).digest()


def rfc6962_node(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def largest_power_of_two_below(n: int) -> int:
    """RFC 6962 §2.1: "k is the largest power of two smaller than n" (n > 1)."""
    return 1 << ((n - 1).bit_length() - 1)


def mth(leaves: list[bytes]) -> bytes:
    """MTH(D[n]) of RFC 6962 §2.1, over leaf hashes (n ≥ 1: a batch is never empty)."""
    if len(leaves) == 1:
        return leaves[0]
    k = largest_power_of_two_below(len(leaves))
    return rfc6962_node(mth(leaves[:k]), mth(leaves[k:]))


def audit_path(m: int, leaves: list[bytes]) -> list[bytes]:
    """PATH(m, D[n]) of RFC 6962 §2.1.1: the path within m's half, then the other half's MTH."""
    if len(leaves) == 1:
        return []
    k = largest_power_of_two_below(len(leaves))
    if m < k:
        return [*audit_path(m, leaves[:k]), mth(leaves[k:])]
    return [*audit_path(m - k, leaves[k:]), mth(leaves[:k])]


def root_from_path(leaf: bytes, m: int, n: int, path: list[bytes]) -> bytes:
    """The root PATH(m, D[n]) leads to from ``leaf``: PATH's definition run backwards. The
    tree shape of (m, n) fixes how many hashes the path has and on which side each sits."""
    if not 0 <= m < n:
        raise WrongPath("leaf index outside the tree")
    if n == 1:
        if path:
            raise WrongPath("too long")
        return leaf
    if not path:
        raise WrongPath("too short")
    k = largest_power_of_two_below(n)
    if m < k:
        return rfc6962_node(root_from_path(leaf, m, k, path[:-1]), path[-1])
    return rfc6962_node(path[-1], root_from_path(leaf, m - k, n - k, path[:-1]))


def rfc9162_root(leaf: bytes, leaf_index: int, tree_size: int, path: list[bytes]) -> bytes:
    """RFC 9162 §2.1.3.2 steps 1-5, as written there (the algorithm §5.5 names)."""
    if leaf_index >= tree_size:
        raise WrongPath("step 1")
    fn, sn, r = leaf_index, tree_size - 1, leaf
    for p in path:
        if sn == 0:
            raise WrongPath("step 4a")
        if fn % 2 == 1 or fn == sn:
            r = rfc6962_node(p, r)
            if fn % 2 == 0:
                while fn % 2 == 0 and fn != 0:
                    fn, sn = fn // 2, sn // 2
        else:
            r = rfc6962_node(r, p)
        fn, sn = fn // 2, sn // 2
    if sn != 0:
        raise WrongPath("step 5")
    return r


def batch_leaf(body: bytes) -> bytes:
    """§5.5: an envelope's leaf hash, of its bytes before the batch proof."""
    return rfc6962_leaf(LEAF_TAG + body)


def batch_statement(batch_size: int, root: bytes) -> bytes:
    """§5.5: what a batch signature signs."""
    return BATCH_TAG + batch_size.to_bytes(8, "big") + root


# --- §5 and §6: sealing and opening ----------------------------------------------------------


def wrap_info(message_id: str, recipient: str) -> bytes:
    """§5 step 6 (version 1)."""
    return WRAP_INFO_TAG + uuid.UUID(message_id).bytes + recipient.encode()


def epoch_wrap_info(sender: str, recipient: str) -> bytes:
    """§5.4 (version 2)."""
    return EPOCH_WRAP_INFO_TAG + sender.encode() + b"\x00" + recipient.encode()


# §4.6 and §6 step 4a: (key_wrap, signature_scheme, batch proof present) of each version
MODES = {
    1: ("PER_MESSAGE", "ED25519", False),
    2: ("EPOCH", "ED25519_MERKLE_BATCH", True),
    3: ("EPOCH", "ED25519_MERKLE_BATCH", True),
}


@dataclass
class Receiver:
    party_id: str
    parties: dict[str, dict[str, Any]]  # the clean-room directory
    private_keys: dict[str, tuple[str, tuple[Any, ...]]]  # key id -> (algorithm, key parts)
    seen: dict[tuple[str, str], int] = field(default_factory=dict)  # (sender, id) -> keep until


def clean_open(
    data: bytes, me: Receiver, now_ms: int
) -> tuple[dict[str, Any], bytes, dict[str, Any]]:
    """§6.1, step by step: (header, payload bytes, decoded payload) or `Rejected`."""
    if len(data) > MAX_ENVELOPE_BYTES:  # 1
        raise Rejected("TOO_LARGE")
    if not data:  # 2
        raise Rejected("MALFORMED")
    version = None if data[0] & 0x80 else (data[0] >> 1) ^ -(data[0] & 1)
    if version not in MODES:
        raise Rejected("UNSUPPORTED_VERSION")
    try:  # 3
        envelope, starts = decode(envelope_schema(version), data, MAX_ENVELOPE_ITEMS)
    except NotCanonical:
        raise Rejected("MALFORMED") from None
    h = envelope["header"]
    trace = h.get("traceparent")  # §4.2: version 3's canonical form, ids not all zero
    if trace is not None and (
        not TRACEPARENT.fullmatch(trace) or trace[3:35] == "0" * 32 or trace[36:52] == "0" * 16
    ):
        raise Rejected("MALFORMED")
    names = [h["sender"], *h["recipients"], *(w["recipient"] for w in envelope["wrapped_keys"])]
    if not all(PARTY_ID.fullmatch(n) for n in names) or not AVRO_FULL_NAME.fullmatch(
        h["message_type"]
    ):
        raise Rejected("MALFORMED")
    proof = envelope["batch_proof"]
    if (h["key_wrap"], h["signature_scheme"], proof is not None) != MODES[version]:  # 4a
        raise Rejected("UNSUPPORTED_VERSION")
    recipients = h["recipients"]
    if (  # 4b
        not 1 <= len(recipients) <= MAX_RECIPIENTS
        or len(set(recipients)) != len(recipients)
        or [w["recipient"] for w in envelope["wrapped_keys"]] != recipients
        or len(envelope["nonce"]) != 12
    ):
        raise Rejected("MALFORMED")
    if proof is not None and (
        not 0 <= proof["leaf_index"] < proof["batch_size"] <= MAX_BATCH_SIZE
        or int.from_bytes(envelope["nonce"], "big") >= EPOCH_MAX_MESSAGES
    ):
        raise Rejected("MALFORMED")
    sender = me.parties.get(h["sender"])  # 5
    if sender is None:
        raise Rejected("UNKNOWN_SENDER")
    key = next((k for k in sender["signing_keys"] if k["key_id"] == h["sender_key_id"]), None)
    if key is None or not valid_at(key, h["created_at"]):  # 6
        raise Rejected("SENDER_KEY_INVALID")
    if len(envelope["signature"]) != 64:  # 7
        raise Rejected("BAD_SIGNATURE")
    if proof is None:
        signed = SIGNATURE_TAG + data[: starts["signature"]]  # every byte before the signature
    else:
        body = data[: starts["batch_proof"]]
        try:
            root = root_from_path(
                batch_leaf(body), proof["leaf_index"], proof["batch_size"], proof["path"]
            )
        except WrongPath:
            raise Rejected("BAD_SIGNATURE") from None
        signed = batch_statement(proof["batch_size"], root)
    try:
        Ed25519PublicKey.from_public_bytes(key["public_key"]).verify(envelope["signature"], signed)
    except InvalidSignature:
        raise Rejected("BAD_SIGNATURE") from None
    if me.party_id not in recipients:  # 8
        raise Rejected("NOT_A_RECIPIENT")
    rule = POLICY_TABLE.get(h["message_type"])  # 9
    if (
        rule is None
        or sender["role"] not in rule[0]
        or any(r not in me.parties or me.parties[r]["role"] not in rule[1] for r in recipients)
    ):
        raise Rejected("POLICY_DENIED")
    if h["created_at"] > now_ms + SKEW_MS:  # 10
        raise Rejected("FROM_FUTURE")
    lifetime = h["expires_at"] - h["created_at"]
    if now_ms >= h["expires_at"] + SKEW_MS or not 0 < lifetime <= MAX_TTL_MS:  # 11
        raise Rejected("EXPIRED")
    pair = (h["sender"], h["message_id"])  # 12: ids are the sender's
    if me.seen.get(pair, now_ms - 1) >= now_ms:
        raise Rejected("REPLAY")
    me.seen[pair] = h["expires_at"] + SKEW_MS
    header_bytes = data[: starts["wrapped_keys"]]  # 13
    wrapped = next(w for w in envelope["wrapped_keys"] if w["recipient"] == me.party_id)
    algorithm, parts = me.private_keys.get(wrapped["key_id"], ("", ()))
    if algorithm != wrapped["kem"]:
        raise Rejected("DECRYPT_FAILED")
    if version == 1:
        info, aad_tag = wrap_info(h["message_id"], me.party_id), AAD_TAG
    else:
        info, aad_tag = epoch_wrap_info(h["sender"], me.party_id), AAD_TAG_V2
    try:
        payload_key = hpke_open(algorithm, parts, wrapped["wrapped"], info)
        if len(payload_key) != 32:
            raise Rejected("DECRYPT_FAILED")
        payload = AESGCM(payload_key).decrypt(
            envelope["nonce"], envelope["ciphertext"], aad_tag + header_bytes
        )
    except (InvalidTag, ValueError):
        raise Rejected("DECRYPT_FAILED") from None
    writer, writer_file = KNOWN_SCHEMAS.get(h["payload_fingerprint"], (None, ""))  # 14
    if writer != h["message_type"]:
        raise Rejected("UNKNOWN_SCHEMA")
    if len(payload) > MAX_PAYLOAD_BYTES:  # 15
        raise Rejected("PAYLOAD_INVALID")
    try:
        message, _ = decode(self_contained(writer_file), payload, MAX_PAYLOAD_ITEMS)
    except NotCanonical:
        raise Rejected("PAYLOAD_INVALID") from None
    if message.get("case_id") != h["case_id"]:
        raise Rejected("PAYLOAD_INVALID")
    if writer in SENDER_FIELDS:
        name, must_equal = SENDER_FIELDS[writer]
        if message[name] != (h["sender"] if must_equal == "the sender" else sender["role"]):
            raise Rejected("PAYLOAD_INVALID")
    return h, payload, message


def pick_key(parties: dict[str, dict[str, Any]], recipient: str, now_ms: int) -> dict[str, Any]:
    """§3.7: the newest encryption key valid now; the first in directory order of a tie."""
    valid = [k for k in parties[recipient]["encryption_keys"] if valid_at(k, now_ms)]
    return max(valid, key=lambda k: k["valid_from"])  # max keeps the first of equals


def clean_seal(
    message: Any,
    *,
    sender: NewParty,
    recipients: list[str],
    parties: dict[str, dict[str, Any]],
    now_ms: int,
    ttl_ms: int = 7 * 24 * 3600 * 1000,
    header: dict[str, Any] | None = None,
    envelope: dict[str, Any] | None = None,
    payload: bytes | None = None,
    info_for: Callable[[str, str], bytes] = wrap_info,
    aad_header: dict[str, Any] | None = None,
    reverse_wraps: bool = False,
) -> bytes:
    """§5, step by step. The keyword arguments after ``ttl_ms`` make bad envelopes that are
    still signed by the sender: fields replaced, another AAD, wraps in another order."""
    name = message.avro_name
    if payload is None:
        payload = encode(self_contained(name), message.to_avro())
    h = {
        "format_version": 1,
        "message_id": str(uuid.uuid4()),
        "message_type": name,
        "payload_fingerprint": fingerprint(name),
        "sender": sender.entry.party_id,
        "sender_key_id": clean_key_id(sender.entry.signing_keys[0].public_key),
        "recipients": recipients,
        "case_id": str(message.case_id),
        "created_at": now_ms,
        "expires_at": now_ms + ttl_ms,
        "correlation_id": None,
        "causation_id": None,
        "key_wrap": "PER_MESSAGE",
        "signature_scheme": "ED25519",
        **(header or {}),
    }
    payload_key, nonce = os.urandom(32), os.urandom(12)
    aad = AAD_TAG + encode(HEADER_V1, {**h, **(aad_header or {})})
    ciphertext = AESGCM(payload_key).encrypt(nonce, payload, aad)
    wrapped_keys = []
    for r in h["recipients"]:
        key = pick_key(parties, r, now_ms)
        blob = hpke_seal(
            key["algorithm"], key["public_key"], info_for(h["message_id"], r), payload_key
        )
        wrapped_keys.append(
            {"recipient": r, "key_id": key["key_id"], "kem": key["algorithm"], "wrapped": blob}
        )
    if reverse_wraps:
        wrapped_keys.reverse()
    unsigned = encode(
        ENVELOPE_V1,
        {
            "header": h,
            "wrapped_keys": wrapped_keys,
            "nonce": nonce,
            "ciphertext": ciphertext,
            "batch_proof": None,
            "signature": b"",
            **(envelope or {}),
        },
    )
    assert unsigned[-1] == 0
    signed_part = unsigned[:-1]
    return signed_part + b"\x80\x01" + sender.keys.signing_key.sign(SIGNATURE_TAG + signed_part)


# --- §5.3-§5.5: sealing a version-2 batch ----------------------------------------------------

DAY_MS = 86_400_000
# the envelope's last two fields, for §5.3 step 4 (path items are the header's Sha256 type)
_NAMES: dict[str, Any] = {}
fastavro.parse_schema(HEADER, _NAMES, _write_hint=False)
TAIL = fastavro.parse_schema(
    {
        "type": "record",
        "name": "lvvx.spec.EnvelopeTail",
        "fields": [
            field for field in ENVELOPE["fields"] if field["name"] in ("batch_proof", "signature")
        ],
    },
    _NAMES,
)


def encode_tail(batch_proof: dict[str, Any] | None, signature: bytes) -> bytes:
    """`0x02 || Avro(BatchProof) || Avro(signature)` (or `0x00 || ...` without a proof)."""
    out = io.BytesIO()
    fastavro.schemaless_writer(out, TAIL, {"batch_proof": batch_proof, "signature": signature})
    return out.getvalue()


@dataclass
class CleanEpoch:
    key: bytes
    wrapped_keys: list[dict[str, Any]]
    started_ms: int
    used: int = 0


@dataclass
class CleanEpochs:
    """§5.4: a sender's current epoch per exact recipient list, in memory only. ``new_key``
    draws epoch keys (tests fix them); ``info_for`` and ``first_number`` make hostile
    epochs; ``wraps`` gives the wraps of a recipient list instead of drawing new ones (HPKE
    is randomised, so re-deriving a known-answer vector takes its wraps as they are)."""

    sender: str
    parties: dict[str, dict[str, Any]]
    new_key: Callable[[], bytes] = lambda: os.urandom(32)
    info_for: Callable[[str, str], bytes] = epoch_wrap_info
    first_number: int = 0
    wraps: dict[tuple[str, ...], list[dict[str, Any]]] = field(default_factory=dict)
    current: dict[tuple[str, ...], CleanEpoch] = field(default_factory=dict)

    def next(self, recipients: list[str], now_ms: int) -> tuple[CleanEpoch, bytes]:
        """The epoch of the next envelope to ``recipients``, and that envelope's nonce."""
        names = tuple(recipients)
        epoch = self.current.get(names)
        if (
            epoch is None
            or epoch.used >= EPOCH_MAX_MESSAGES
            or now_ms >= epoch.started_ms + EPOCH_MAX_AGE_MS
            or any(
                pick_key(self.parties, w["recipient"], now_ms)["key_id"] != w["key_id"]
                for w in epoch.wrapped_keys
            )
        ):
            epoch = self.current[names] = self._start(names, now_ms)
        nonce = epoch.used.to_bytes(12, "big")
        epoch.used += 1
        return epoch, nonce

    def _start(self, names: tuple[str, ...], now_ms: int) -> CleanEpoch:
        key = self.new_key()
        wrapped = self.wraps.get(names)
        if wrapped is None:
            wrapped = []
            for r in names:
                k = pick_key(self.parties, r, now_ms)
                blob = hpke_seal(
                    k["algorithm"], k["public_key"], self.info_for(self.sender, r), key
                )
                wrapped.append(
                    {"recipient": r, "key_id": k["key_id"], "kem": k["algorithm"], "wrapped": blob}
                )
        return CleanEpoch(key, wrapped, now_ms, self.first_number)


@dataclass(frozen=True)
class Item:
    """One message of a batch; the fields after ``ttl_ms`` play a hostile sender."""

    message: Any
    recipients: tuple[str, ...]
    message_id: str | None = None
    correlation_id: str | None = None
    causation_id: str | None = None
    ttl_ms: int = 7 * DAY_MS
    header: dict[str, Any] | None = None
    payload: bytes | None = None
    aad_header: dict[str, Any] | None = None
    traceparent: str | None = None


@dataclass(frozen=True)
class CleanBatch:
    envelopes: list[bytes]
    headers: list[bytes]  # H of each envelope
    nonces: list[bytes]
    bodies: list[bytes]  # B of each envelope
    leaves: list[bytes]
    root: bytes
    statement: bytes
    signature: bytes


def clean_seal_batch(
    items: list[Item],
    *,
    sender: str,
    signing_key: Ed25519PrivateKey,
    epochs: CleanEpochs,
    now_ms: int,
    aad_tag: bytes = AAD_TAG_V2,
    version: int = 3,
) -> CleanBatch:
    """§5.3 (version 2 or 3), step by step: steps 1-4 of §5 per message, then encrypt under the epoch key,
    the body, the batch signature (§5.5) and the envelopes."""
    assert 1 <= len(items) <= MAX_BATCH_SIZE
    key_id_ = clean_key_id(signing_key.public_key().public_bytes_raw())
    headers, nonces, bodies = [], [], []
    for item in items:
        name = item.message.avro_name
        payload = item.payload
        if payload is None:
            payload = encode(self_contained(name), item.message.to_avro())
        h = {
            "format_version": version,
            "message_id": item.message_id or str(uuid.uuid4()),
            "message_type": name,
            "payload_fingerprint": fingerprint(name),
            "sender": sender,
            "sender_key_id": key_id_,
            "recipients": list(dict.fromkeys(item.recipients)),
            "case_id": str(item.message.case_id),
            "created_at": now_ms,
            "expires_at": now_ms + item.ttl_ms,
            "correlation_id": item.correlation_id,
            "causation_id": item.causation_id,
            "key_wrap": "EPOCH",
            "signature_scheme": "ED25519_MERKLE_BATCH",
            **({"traceparent": item.traceparent} if version >= 3 else {}),
            **(item.header or {}),
        }
        header_schema = HEADER if version >= 3 else HEADER_V1
        header_bytes = encode(header_schema, h)
        epoch, nonce = epochs.next(h["recipients"], now_ms)  # 1
        aad = aad_tag + encode(header_schema, {**h, **(item.aad_header or {})})
        ciphertext = AESGCM(epoch.key).encrypt(nonce, payload, aad)
        unsigned = encode(  # 2: the body is the envelope's encoding up to the batch proof
            envelope_schema(version),
            {
                "header": h,
                "wrapped_keys": epoch.wrapped_keys,
                "nonce": nonce,
                "ciphertext": ciphertext,
                "batch_proof": None,
                "signature": b"",
            },
        )
        assert unsigned.startswith(header_bytes) and unsigned.endswith(b"\x00\x00")
        headers.append(header_bytes)
        nonces.append(nonce)
        bodies.append(unsigned[:-2])
    n = len(bodies)  # 3
    leaves = [batch_leaf(b) for b in bodies]
    root = mth(leaves)
    statement = batch_statement(n, root)
    signature = signing_key.sign(statement)
    envelopes = []
    for i, body in enumerate(bodies):  # 4
        tail = encode_tail(
            {"leaf_index": i, "batch_size": n, "path": audit_path(i, leaves)}, signature
        )
        assert tail[0] == 0x02
        envelopes.append(body + tail)
    return CleanBatch(envelopes, headers, nonces, bodies, leaves, root, statement, signature)


def with_tail(data: bytes, **changes: Any) -> bytes:
    """A version-2 or -3 envelope with its batch proof or signature replaced."""
    envelope, starts = decode(envelope_schema(data[0] >> 1), data, MAX_ENVELOPE_ITEMS)
    tail = {"batch_proof": envelope["batch_proof"], "signature": envelope["signature"], **changes}
    return data[: starts["batch_proof"]] + encode_tail(tail["batch_proof"], tail["signature"])


def proof_of(data: bytes) -> dict[str, Any]:
    schema = envelope_schema(data[0] >> 1)
    proof: dict[str, Any] = decode(schema, data, MAX_ENVELOPE_ITEMS)[0]["batch_proof"]
    return proof


# --- a small network ---------------------------------------------------------------------------

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
NOW_MS = int(NOW.timestamp() * 1000)
ANCHOR = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
ANCHOR_RAW = ANCHOR.public_key().public_bytes_raw()
IND, MUNI, NGO, DTV = "ind", "gemeente-utrecht", "ngo-perspectief", "dtv"


@dataclass(frozen=True)
class Network:
    parties: dict[str, NewParty]
    signed_directory: bytes
    directory: Any  # the reference's checked directory


@cache
def network() -> Network:
    start = NOW - timedelta(days=30)
    roster = [
        (IND, PartyRole.IND, KeyAlgorithm.X25519),
        (MUNI, PartyRole.MUNICIPALITY, KeyAlgorithm.X25519),
        (NGO, PartyRole.NGO, KeyAlgorithm.MLKEM768_X25519),
        (DTV, PartyRole.DTV, KeyAlgorithm.X25519),
    ]
    parties = {
        pid: generate_party(pid, role, now=start, kem=kem, seed=f"spec/{pid}".encode())
        for pid, role, kem in roster
    }
    document = build_directory(
        [p.entry for p in parties.values()],
        serial=7,
        network="lvv-spec",
        now=NOW - timedelta(days=1),
    )
    signed = sign_directory(document, ANCHOR)
    pinned = AnchorKey(key_id(ANCHOR_RAW), ANCHOR.public_key())
    return Network(
        parties, signed, load_directory(signed, anchor=pinned, now=NOW, network="lvv-spec")
    )


@cache
def clean_parties() -> dict[str, dict[str, Any]]:
    return clean_load_directory(
        network().signed_directory,
        anchor_raw=ANCHOR_RAW,
        anchor_key_id=clean_key_id(ANCHOR_RAW),
        now_ms=NOW_MS,
        network="lvv-spec",
    )


def receiver(party_id: str) -> Receiver:
    new = network().parties[party_id]
    published = new.entry.encryption_keys[0]
    parts = tuple(new.encryption_parts)
    return Receiver(
        party_id,
        clean_parties(),
        {clean_key_id(published.public_key): (published.algorithm.value, parts)},
    )


def reference_open(data: bytes, party_id: str, *, now: datetime = NOW, guard: Any = None) -> Any:
    return open_envelope(
        data,
        me=network().parties[party_id].keys,
        directory=network().directory,
        replay_guard=guard or MemoryReplayGuard(),
        now=now,
    )


def reference_code(data: bytes, party_id: str, **kw: Any) -> str:
    try:
        reference_open(data, party_id, **kw)
    except EnvelopeRejected as exc:
        return exc.reject_reason.value
    return "OPENED"


def clean_code(data: bytes, party_id: str, now_ms: int = NOW_MS) -> str:
    try:
        clean_open(data, receiver(party_id), now_ms)
    except Rejected as exc:
        return exc.code
    return "OPENED"


DOSSIER = example_of(DossierDelivered)


def sealed_by_reference(recipients: tuple[str, ...] = (MUNI, NGO)) -> bytes:
    return seal(
        DOSSIER,
        sender=network().parties[IND].keys,
        recipients=recipients,
        directory=network().directory,
        now=NOW,
        format_version=1,
    )


INTAKE = example("IntakeRegistered").model_copy(update={"municipality": MUNI})  # §8.1

# name: (sender, message, recipients): both KEMs (NGO's key is hybrid), one and three recipients
SCENARIOS: dict[str, tuple[str, Any, tuple[str, ...]]] = {
    "x25519-1-recipient": (IND, DOSSIER, (MUNI,)),
    "hybrid-1-recipient": (IND, DOSSIER, (NGO,)),
    "3-recipients-both-kems": (MUNI, INTAKE, (NGO, IND, DTV)),
}
BATCH_SIZES = (1, 2, 3, 7, 64)


def reference_sealer(sender: str) -> Sealer:
    return Sealer(network().parties[sender].keys, network().directory, lambda: NOW)


@cache
def reference_batch(scenario: str, n: int) -> tuple[bytes, ...]:
    """A version-2 batch of ``n`` envelopes sealed by `broker.crypto.Sealer`."""
    sender, message, recipients = SCENARIOS[scenario]
    requests = [SealRequest(message, recipients) for _ in range(n)]
    return tuple(reference_sealer(sender).seal_many(requests))


@cache
def reference_v2(n: int = 3) -> tuple[bytes, ...]:
    """A reference batch of ``n`` dossiers from IND to the municipality and the NGO."""
    return tuple(reference_sealer(IND).seal_many([SealRequest(DOSSIER, (MUNI, NGO))] * n))


def clean_batch(
    items: list[Item],
    *,
    sender: str = IND,
    aad_tag: bytes = AAD_TAG_V2,
    new_key: Callable[[], bytes] = lambda: os.urandom(32),
    info_for: Callable[[str, str], bytes] = epoch_wrap_info,
    first_number: int = 0,
    version: int = 3,
) -> CleanBatch:
    epochs = CleanEpochs(sender, clean_parties(), new_key, info_for, first_number)
    signing_key = network().parties[sender].keys.signing_key
    return clean_seal_batch(
        items,
        sender=sender,
        signing_key=signing_key,
        epochs=epochs,
        now_ms=NOW_MS,
        aad_tag=aad_tag,
        version=version,
    )


def _seal_v2(
    recipients: tuple[str, ...] = (MUNI, NGO),
    *,
    n: int = 1,
    aad_tag: bytes = AAD_TAG_V2,
    new_key: Callable[[], bytes] = lambda: os.urandom(32),
    info_for: Callable[[str, str], bytes] = epoch_wrap_info,
    first_number: int = 0,
    **item: Any,
) -> bytes:
    """The first envelope of a clean-room batch of ``n`` dossiers from IND."""
    items = [Item(DOSSIER, recipients, **item)] * n
    batch = clean_batch(
        items, aad_tag=aad_tag, new_key=new_key, info_for=info_for, first_number=first_number
    )
    return batch.envelopes[0]


# --- the spec's tables match the code ---------------------------------------------------------


def test_fingerprints_follow_the_inlining_rule_and_the_spec_table() -> None:
    codec = default_codec()
    table = {row[0]: bytes.fromhex(row[1]) for row in spec_rows("### 2.2", "### 2.3")}
    assert set(table) <= set(codec.names)
    for name in codec.names:
        assert fingerprint(name) == codec.info(name).fingerprint, name
    stale = {n: codec.info(n).fingerprint.hex() for n, fp in table.items() if fp != fingerprint(n)}
    assert not stale, f"docs/ENVELOPE.md §2.2 is stale; the fingerprints now are {stale}"
    assert set(POLICY_TABLE) <= set(table), "every type that may travel has its fingerprint in §2.2"


def test_tags_match_the_code() -> None:
    from broker.crypto import _batchsig, _directory, _envelope, _epoch

    rows = {row[0]: bytes.fromhex(row[1]) for row in spec_rows("### 4.5", "### 4.6")}
    ours = {
        "SIGNATURE_TAG": SIGNATURE_TAG,
        "AAD_TAG": AAD_TAG,
        "WRAP_INFO_TAG": WRAP_INFO_TAG,
        "AAD_TAG_V2": b"LVVX-ENVELOPE-AAD-V2\x00",
        "EPOCH_WRAP_INFO_TAG": b"LVVX-ENVELOPE-EPOCH-KEY-V2\x00",
        "LEAF_TAG": b"LVVX-ENVELOPE-LEAF-V2\x00",
        "BATCH_TAG": b"LVVX-ENVELOPE-BATCH-V2\x00",
        "DIRECTORY_SIGNATURE_TAG": DIRECTORY_SIGNATURE_TAG,
        "DIRECTORY_SIGNATURE_TAG_V2": DIRECTORY_SIGNATURE_TAG_V2,
    }
    assert rows == ours
    home = {"DIRECTORY_SIGNATURE_TAG": _directory, "DIRECTORY_SIGNATURE_TAG_V2": _directory,
            "EPOCH_WRAP_INFO_TAG": _epoch,
            "LEAF_TAG": _batchsig, "BATCH_TAG": _batchsig}  # fmt: skip
    for name, value in rows.items():
        assert getattr(home.get(name, _envelope), name) == value, name


def test_constants_table_matches_the_code() -> None:
    checked = 0
    for name, value, _unit, where, *_ in spec_rows("## 7. Limits", "## 8."):
        if not value.isdigit():
            continue  # ranges and derived sizes are prose
        module = import_module(where.removesuffix(".py").replace("/", "."))
        actual = getattr(module, name)
        if isinstance(actual, timedelta):
            actual = int(actual.total_seconds())
        assert actual == int(value), f"§7 says {name} = {value}, the code has {actual}"
        checked += 1
    assert checked >= 20
    assert (MAX_ENVELOPE_BYTES, MAX_PAYLOAD_BYTES, MAX_ENVELOPE_ITEMS) == (
        2 * 1024 * 1024 - 16 * 1024,
        2 * 1024 * 1024 - 16 * 1024 - MAX_RECIPIENTS * 1_400 - 4 * 1024,
        3 * MAX_RECIPIENTS + 64,
    )


def test_policy_table_matches_the_code() -> None:
    code = {
        name: (
            frozenset(r.value for r in rule.senders),
            frozenset(r.value for r in rule.recipients),
        )
        for name, rule in POLICY.items()
    }
    assert code == POLICY_TABLE


# --- keys and the directory -------------------------------------------------------------------


def test_clean_room_key_ids_and_directory_check() -> None:
    parties = clean_parties()
    assert set(parties) == {IND, MUNI, NGO, DTV}
    for pid, new in network().parties.items():
        for key in (*new.entry.signing_keys, *new.entry.encryption_keys):
            assert clean_key_id(key.public_key) == key.key_id == key_id(key.public_key)
        assert parties[pid]["role"] == new.entry.role.value
    hybrid = parties[NGO]["encryption_keys"][0]
    assert hybrid["algorithm"] == "MLKEM768_X25519" and len(hybrid["public_key"]) == 1216
    assert clean_key_id(ANCHOR_RAW) == "56475aa75463474c"  # the §3.2 example

    signed = bytearray(network().signed_directory)
    signed[-1] ^= 1  # the last byte of the anchor's signature
    with pytest.raises(ValueError, match="signature"):
        clean_load_directory(
            bytes(signed),
            anchor_raw=ANCHOR_RAW,
            anchor_key_id=clean_key_id(ANCHOR_RAW),
            now_ms=NOW_MS,
            network="lvv-spec",
        )


def test_clean_room_reads_both_directory_formats() -> None:
    """§3.4: format 2 carries each key's revocation reason; format 1, the first schema, has
    none and still loads, in the clean room and in the reference."""
    signed, _ = decode(self_contained("nl.lvv.v1.SignedDirectory"), network().signed_directory, 0)
    assert signed["format_version"] == 2
    document, _ = decode(self_contained("nl.lvv.v1.PartyDirectory"), signed["directory"], 100_000)
    keys = [k for e in document["parties"] for k in (*e["signing_keys"], *e["encryption_keys"])]
    assert {k["revocation_reason"] for k in keys} == {None}
    for key in keys:
        del key["revocation_reason"]
    body = encode(self_contained("history/nl.lvv.v1.PartyDirectory.1"), document)
    old = {"format_version": 1, "anchor_key_id": clean_key_id(ANCHOR_RAW), "directory": body,
           "signature": ANCHOR.sign(DIRECTORY_SIGNATURE_TAG + body)}  # fmt: skip
    data = encode(self_contained("nl.lvv.v1.SignedDirectory"), old)
    parties = clean_load_directory(data, anchor_raw=ANCHOR_RAW, anchor_key_id=clean_key_id(ANCHOR_RAW),
                                   now_ms=NOW_MS, network="lvv-spec")  # fmt: skip
    assert parties == _without_reasons(clean_parties())
    pinned = AnchorKey(key_id(ANCHOR_RAW), ANCHOR.public_key())
    assert load_directory(data, anchor=pinned, now=NOW).document == network().directory.document


def _without_reasons(parties: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    def strip(keys: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [{k: v for k, v in key.items() if k != "revocation_reason"} for key in keys]

    return {pid: {**e, "signing_keys": strip(e["signing_keys"]),
                  "encryption_keys": strip(e["encryption_keys"])} for pid, e in parties.items()}  # fmt: skip


def test_small_order_lists_agree_with_the_reference_point_checks() -> None:
    from broker.crypto._points import ed25519_usable, x25519_usable

    assert len(ED25519_SMALL_ORDER) == 8  # all eight points of small order, one encoding each
    for raw in ED25519_SMALL_ORDER:
        assert ed25519_decodes(raw) and not ed25519_ok(raw) and not ed25519_usable(raw)
    for u in X25519_SMALL_ORDER:
        raw = u.to_bytes(32, "little")
        assert not x25519_ok(raw) and not x25519_usable(raw)
    for _ in range(16):
        ed = Ed25519PrivateKey.generate().public_key().public_bytes_raw()
        x = X25519PrivateKey.generate().public_key().public_bytes_raw()
        assert ed25519_ok(ed) and ed25519_usable(ed) and x25519_ok(x) and x25519_usable(x)
    non_canonical = (P + 1).to_bytes(32, "little")
    assert not x25519_ok(non_canonical) and not x25519_usable(non_canonical)


# --- the clean-room opener opens the reference's envelopes -----------------------------------


@pytest.mark.parametrize("me", [MUNI, NGO], ids=["x25519", "mlkem768-x25519"])
def test_clean_room_opener_verifies_and_decrypts_a_reference_envelope(me: str) -> None:
    data = sealed_by_reference()
    header, payload, message = clean_open(data, receiver(me), NOW_MS)

    assert payload == default_codec().encode("DossierDelivered", DOSSIER.to_avro())
    assert message["case_id"] == str(DOSSIER.case_id) == header["case_id"]
    assert header["sender"] == IND and header["recipients"] == [MUNI, NGO]
    assert header["payload_fingerprint"] == default_codec().info("DossierDelivered").fingerprint
    assert data[0] == 0x02 and data[-66:-64] == b"\x80\x01"  # §4.6
    opened = reference_open(data, me)
    assert opened.message == DOSSIER and str(opened.header.message_id) == header["message_id"]


def test_the_hybrid_kem_is_xwing_with_kem_id_0x647a() -> None:
    """§2.4: X-Wing with the RFC 9180 key schedule under KEM id 0x647A, and under no other id,
    opens what `hpke.KEM.MLKEM768_X25519` seals; and the library opens what we seal."""
    pq, classic = network().parties[NGO].encryption_parts
    assert isinstance(pq, MLKEM768PrivateKey) and isinstance(classic, X25519PrivateKey)
    suite = hpke.Suite(hpke.KEM.MLKEM768_X25519, hpke.KDF.HKDF_SHA256, hpke.AEAD.AES_256_GCM)
    private = hpke.MLKEM768X25519PrivateKey(pq, classic)
    secret, info = os.urandom(32), wrap_info(str(uuid.uuid4()), NGO)
    wrapped = suite.encrypt(secret, private.public_key(), info=info)
    assert len(wrapped) == 1120 + 48 == hpke.KEM.MLKEM768_X25519.enc_length() + 48
    assert hpke_open("MLKEM768_X25519", (pq, classic), wrapped, info) == secret
    for other in (0x0020, 0x0041, 0x0050, 0x6479):  # DHKEM(X25519), ML-KEM-768, ...
        with pytest.raises(InvalidTag):
            hpke_open("MLKEM768_X25519", (pq, classic), wrapped, info, kem_id=other)
    raw = clean_parties()[NGO]["encryption_keys"][0]["public_key"]
    assert raw == pq.public_key().public_bytes_raw() + classic.public_key().public_bytes_raw()
    ours = hpke_seal("MLKEM768_X25519", raw, info, secret)
    assert suite.decrypt(ours, private, info=info) == secret


# --- and the reference opens the clean-room sealer's envelopes -------------------------------


def _seal(**kw: Any) -> bytes:
    base: dict[str, Any] = {
        "sender": network().parties[IND],
        "recipients": [MUNI, NGO],
        "parties": clean_parties(),
        "now_ms": NOW_MS,
    }
    return clean_seal(DOSSIER, **{**base, **kw})


def test_reference_opens_a_clean_room_envelope() -> None:
    data = _seal()
    for me in (MUNI, NGO):
        assert reference_open(data, me).message == DOSSIER
        assert clean_open(data, receiver(me), NOW_MS)[2]["case_id"] == str(DOSSIER.case_id)


# --- version 2: RFC 6962 trees, and batches both ways -----------------------------------------


def test_audit_paths_are_those_of_the_rfc_6962_example_tree() -> None:
    """RFC 6962 §2.1.3: the tree of seven leaves d0..d6 and four of its audit paths."""
    a, b, c, d, e, f, j = (rfc6962_leaf(bytes([i])) for i in range(7))
    g, h, i = rfc6962_node(a, b), rfc6962_node(c, d), rfc6962_node(e, f)
    k, m = rfc6962_node(g, h), rfc6962_node(i, j)
    leaves = [a, b, c, d, e, f, j]
    assert mth(leaves) == rfc6962_node(k, m)
    assert audit_path(0, leaves) == [b, h, m]
    assert audit_path(3, leaves) == [c, g, m]
    assert audit_path(4, leaves) == [f, j, k]
    assert audit_path(6, leaves) == [i, k]


def test_path_following_by_the_tree_shape_agrees_with_rfc_9162() -> None:
    """§5.5: the root is determined by (leaf_index, batch_size, path), and a path of the
    wrong length leads nowhere — by PATH's definition and by RFC 9162 §2.1.3.2 alike."""
    for n in (*range(1, 40), 63, 64, 65, MAX_BATCH_SIZE):
        leaves = [rfc6962_leaf(n.to_bytes(2, "big") + m.to_bytes(2, "big")) for m in range(n)]
        root = mth(leaves)
        for m in range(n) if n < 100 else (0, 1, 511, 512, n - 1):
            path = audit_path(m, leaves)
            assert len(path) <= 10  # §4.4: at most 10 hashes
            for follow in (root_from_path, rfc9162_root):
                assert follow(leaves[m], m, n, path) == root
                for wrong in (path[:-1], [*path, root], [root, *path]):
                    if len(wrong) != len(path):
                        with pytest.raises(WrongPath):
                            follow(leaves[m], m, n, wrong)
    assert len(audit_path(0, [bytes(32)] * MAX_BATCH_SIZE)) == 10


def _check_batch_structure(batch: tuple[bytes, ...] | list[bytes], sender_raw: bytes) -> None:
    """§5.3-§5.5 on a batch to one recipient list: one epoch (the same wraps, nonces 0, 1,
    ...), each proof the RFC 6962 audit path of the clean-room tree, one signature."""
    n = len(batch)
    decoded = [decode(ENVELOPE, data, MAX_ENVELOPE_ITEMS) for data in batch]
    bodies = [
        data[: starts["batch_proof"]] for data, (_, starts) in zip(batch, decoded, strict=True)
    ]
    leaves = [batch_leaf(body) for body in bodies]
    statement = batch_statement(n, mth(leaves))
    Ed25519PublicKey.from_public_bytes(sender_raw).verify(decoded[0][0]["signature"], statement)
    for i, (envelope, _) in enumerate(decoded):
        assert envelope["header"]["format_version"] == 3  # the reference writes 3
        assert envelope["nonce"] == i.to_bytes(12, "big")
        assert envelope["wrapped_keys"] == decoded[0][0]["wrapped_keys"]
        assert envelope["signature"] == decoded[0][0]["signature"]
        proof = envelope["batch_proof"]
        assert (proof["leaf_index"], proof["batch_size"]) == (i, n)
        assert proof["path"] == audit_path(i, leaves)


@pytest.mark.parametrize("size", BATCH_SIZES)
@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_clean_room_opener_opens_every_envelope_of_a_reference_batch(
    scenario: str, size: int
) -> None:
    sender, message, recipients = SCENARIOS[scenario]
    batch = reference_batch(scenario, size)
    assert len(batch) == size
    _check_batch_structure(batch, network().parties[sender].entry.signing_keys[0].public_key)
    expected = encode(self_contained(message.avro_name), message.to_avro())
    for me in recipients:
        opener = receiver(me)
        for data in batch:
            header, payload, _ = clean_open(data, opener, NOW_MS)
            assert payload == expected and header["sender"] == sender


@pytest.mark.parametrize("size", BATCH_SIZES)
@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_reference_opens_every_envelope_of_a_clean_room_batch(scenario: str, size: int) -> None:
    sender, message, recipients = SCENARIOS[scenario]
    batch = clean_batch([Item(message, recipients)] * size, sender=sender).envelopes
    _check_batch_structure(batch, network().parties[sender].entry.signing_keys[0].public_key)
    for me in recipients:
        guard = MemoryReplayGuard()
        for data in batch:
            assert reference_open(data, me, guard=guard).message == message


MIXED = [(MUNI, NGO), (MUNI,), (MUNI, NGO), (NGO,), (MUNI,), (MUNI, NGO)]


def _nonces_count_per_recipient_list(batch: list[bytes], first: dict[tuple[str, ...], int]) -> None:
    """§5.4: one epoch per exact recipient list, numbering its envelopes from ``first``."""
    seen: dict[tuple[str, ...], list[Any]] = {}
    for data in batch:
        envelope, _ = decode(ENVELOPE, data, MAX_ENVELOPE_ITEMS)
        seen.setdefault(tuple(envelope["header"]["recipients"]), []).append(envelope)
    for names, envelopes in seen.items():
        numbers = [int.from_bytes(e["nonce"], "big") for e in envelopes]
        assert numbers == list(range(first.get(names, 0), first.get(names, 0) + len(numbers)))
        assert all(e["wrapped_keys"] == envelopes[0]["wrapped_keys"] for e in envelopes)


def test_a_mixed_batch_keeps_one_epoch_per_recipient_list_both_ways() -> None:
    sealer = reference_sealer(IND)
    first = sealer.seal_many([SealRequest(DOSSIER, names) for names in MIXED])
    again = sealer.seal_many([SealRequest(DOSSIER, names) for names in MIXED])  # epochs go on
    _nonces_count_per_recipient_list(first, {})
    _nonces_count_per_recipient_list(again, {(MUNI, NGO): 3, (MUNI,): 2, (NGO,): 1})
    assert decode(ENVELOPE, first[0], 112)[0]["signature"] != decode(ENVELOPE, again[0], 112)[0]["signature"]  # fmt: skip
    openers = {me: receiver(me) for me in (MUNI, NGO)}
    for data, names in zip([*first, *again], MIXED * 2, strict=True):
        for me in names:
            assert clean_open(data, openers[me], NOW_MS)[2]["case_id"] == str(DOSSIER.case_id)

    clean = clean_batch([Item(DOSSIER, names) for names in MIXED]).envelopes
    _nonces_count_per_recipient_list(clean, {})
    for me in (MUNI, NGO):
        opener = Opener(network().parties[me].keys, network().directory, MemoryReplayGuard(), lambda: NOW)  # fmt: skip
        mine = [data for data, names in zip(clean, MIXED, strict=True) if me in names]
        opened = opener.open_many(mine)
        assert [o.message if isinstance(o, Opened) else o for o in opened] == [DOSSIER] * len(mine)


# --- both openers reject the same envelopes with the same code -------------------------------


def _flip(data: bytes, at: int) -> bytes:
    out = bytearray(data)
    out[at] ^= 1
    return bytes(out)


def _payload_about_another_case() -> bytes:
    other = DOSSIER.model_copy(update={"case_id": uuid.uuid4()})
    return encode(self_contained(other.avro_name), other.to_avro())


BATCH_PROOF = {"leaf_index": 0, "batch_size": 1, "path": [bytes(32)]}

# name: (make the envelope, who opens it, the code of §6.2, the receiver's clock in ms)
CASES: dict[str, tuple[Callable[[], bytes], str, str, int]] = {
    "too large": (lambda: bytes(MAX_ENVELOPE_BYTES + 1), MUNI, "TOO_LARGE", NOW_MS),
    "empty": (lambda: b"", MUNI, "MALFORMED", NOW_MS),
    "version 4": (lambda: b"\x08" + sealed_by_reference()[1:], MUNI, "UNSUPPORTED_VERSION", NOW_MS),
    "two-byte version": (
        lambda: b"\x80\x01" + sealed_by_reference()[1:],
        MUNI,
        "UNSUPPORTED_VERSION",
        NOW_MS,
    ),
    "truncated": (lambda: sealed_by_reference()[:-1], MUNI, "MALFORMED", NOW_MS),
    "trailing byte": (lambda: sealed_by_reference() + b"\x00", MUNI, "MALFORMED", NOW_MS),
    "party id pattern": (lambda: _seal(header={"sender": "IND"}), MUNI, "MALFORMED", NOW_MS),
    "uuid in upper case": (
        lambda: _seal(header={"message_id": "0F1E2D3C-4B5A-4968-8776-A5B4C3D2E1F0"}),
        MUNI,
        "MALFORMED",
        NOW_MS,
    ),
    "EPOCH key wrap": (
        lambda: _seal(header={"key_wrap": "EPOCH"}),
        MUNI,
        "UNSUPPORTED_VERSION",
        NOW_MS,
    ),
    "batch signature": (
        lambda: _seal(header={"signature_scheme": "ED25519_MERKLE_BATCH"}),
        MUNI,
        "UNSUPPORTED_VERSION",
        NOW_MS,
    ),
    "batch proof": (
        lambda: _seal(envelope={"batch_proof": BATCH_PROOF}),
        MUNI,
        "UNSUPPORTED_VERSION",
        NOW_MS,
    ),
    "duplicate recipient": (lambda: _seal(recipients=[MUNI, MUNI]), MUNI, "MALFORMED", NOW_MS),
    "wraps out of order": (lambda: _seal(reverse_wraps=True), MUNI, "MALFORMED", NOW_MS),
    "11-byte nonce": (lambda: _seal(envelope={"nonce": bytes(11)}), MUNI, "MALFORMED", NOW_MS),
    "unknown sender": (lambda: _seal(header={"sender": "coa"}), MUNI, "UNKNOWN_SENDER", NOW_MS),
    "unknown sender key": (
        lambda: _seal(header={"sender_key_id": "0" * 16}),
        MUNI,
        "SENDER_KEY_INVALID",
        NOW_MS,
    ),
    "created before the key": (
        lambda: _seal(header={"created_at": NOW_MS - 40 * DAY_MS}),
        MUNI,
        "SENDER_KEY_INVALID",
        NOW_MS,
    ),
    "altered ciphertext": (
        lambda: _flip(sealed_by_reference(), -100),
        MUNI,
        "BAD_SIGNATURE",
        NOW_MS,
    ),
    "altered signature": (lambda: _flip(sealed_by_reference(), -1), MUNI, "BAD_SIGNATURE", NOW_MS),
    "not a recipient": (sealed_by_reference, DTV, "NOT_A_RECIPIENT", NOW_MS),
    "dossier to DT&V": (lambda: _seal(recipients=[MUNI, DTV]), MUNI, "POLICY_DENIED", NOW_MS),
    "from the future": (sealed_by_reference, MUNI, "FROM_FUTURE", NOW_MS - SKEW_MS - 1),
    "expired": (sealed_by_reference, MUNI, "EXPIRED", NOW_MS + 7 * DAY_MS + SKEW_MS),
    "lifetime over MAX_TTL": (lambda: _seal(ttl_ms=MAX_TTL_MS + 1), MUNI, "EXPIRED", NOW_MS),
    "lifetime zero": (lambda: _seal(ttl_ms=0), MUNI, "EXPIRED", NOW_MS),
    "wrap bound to another recipient": (
        lambda: _seal(info_for=lambda message_id, _r: wrap_info(message_id, NGO)),
        MUNI,
        "DECRYPT_FAILED",
        NOW_MS,
    ),
    "AAD of another header": (
        lambda: _seal(aad_header={"correlation_id": str(uuid.uuid4())}),
        MUNI,
        "DECRYPT_FAILED",
        NOW_MS,
    ),
    "fingerprint of another type": (
        lambda: _seal(header={"payload_fingerprint": fingerprint("nl.lvv.v1.CaseClosed")}),
        MUNI,
        "UNKNOWN_SCHEMA",
        NOW_MS,
    ),
    "payload about another case": (
        lambda: _seal(payload=_payload_about_another_case()),
        MUNI,
        "PAYLOAD_INVALID",
        NOW_MS,
    ),
    "payload not Avro": (lambda: _seal(payload=b"\xff" * 40), MUNI, "PAYLOAD_INVALID", NOW_MS),
}


@pytest.mark.parametrize("case", list(CASES))
def test_both_openers_reject_alike(case: str) -> None:
    make, me, expected, now_ms = CASES[case]
    data = make()
    assert clean_code(data, me, now_ms) == expected
    assert reference_code(data, me, now=NOW + timedelta(milliseconds=now_ms - NOW_MS)) == expected


def test_both_openers_refuse_a_replay() -> None:
    data = sealed_by_reference()
    me = receiver(MUNI)
    clean_open(data, me, NOW_MS)
    with pytest.raises(Rejected, match="REPLAY"):
        clean_open(data, me, NOW_MS + 1000)
    guard = MemoryReplayGuard()
    reference_open(data, MUNI, guard=guard)
    assert reference_code(data, MUNI, guard=guard, now=NOW + timedelta(seconds=1)) == "REPLAY"


# --- the known-answer vectors open with keys derived as §10 says ---------------------------

VECTORS = ROOT / "tests" / "spec" / "vectors" / "envelope-v1.json"
VECTORS_V2 = ROOT / "tests" / "spec" / "vectors" / "envelope-v2.json"
VECTORS_V3 = ROOT / "tests" / "spec" / "vectors" / "envelope-v3.json"


def _derive(seed: str, label: bytes, size: int) -> bytes:
    return hashlib.shake_256(b"LVVX-TEST-KEY\x00" + label + b"\x00" + seed.encode()).digest(size)


def _vector_receiver(vector: dict[str, Any], me: dict[str, Any]) -> Receiver:
    start = int(datetime.fromisoformat(vector["key_start"]).timestamp() * 1000)
    window = {
        "valid_from": start,
        "valid_until": start + 365 * DAY_MS,
        "status": "ACTIVE",
        "revoked_at": None,
    }
    parties: dict[str, dict[str, Any]] = {}
    for p in (vector["sender"], *vector["recipients"]):
        entry = parties.setdefault(
            p["party_id"], {"role": p["role"], "signing_keys": [], "encryption_keys": []}
        )
        if "signing_public" in p:
            raw = bytes.fromhex(p["signing_public"])
            entry["signing_keys"].append({"key_id": clean_key_id(raw), "public_key": raw, **window})
        if "encryption_public" in p:
            raw = bytes.fromhex(p["encryption_public"])
            entry["encryption_keys"].append(
                {"key_id": clean_key_id(raw), "algorithm": p["kem"], "public_key": raw, **window}
            )
    classic = X25519PrivateKey.from_private_bytes(_derive(me["seed"], b"x25519", 32))
    parts: tuple[Any, ...] = (classic,)
    if me["kem"] == "MLKEM768_X25519":
        parts = (MLKEM768PrivateKey.from_seed_bytes(_derive(me["seed"], b"mlkem768", 64)), classic)
    raw = bytes.fromhex(me["encryption_public"])
    assert raw == b"".join(k.public_key().public_bytes_raw() for k in parts)  # §10's derivation
    return Receiver(me["party_id"], parties, {clean_key_id(raw): (me["kem"], parts)})


def as_written(message: Any, envelope: bytes) -> bytes:
    """The message's payload in the schema the envelope's header names: a vector sealed
    before a payload schema evolved (§2.2, earlier versions) carries the earlier one."""
    record, _ = decode(envelope_schema(envelope[0] >> 1), envelope, 1000)
    _, writer_file = KNOWN_SCHEMAS[record["header"]["payload_fingerprint"]]
    schema = self_contained(writer_file)
    record = message.to_avro()
    assert all(not record[f] for f in set(record) - {f["name"] for f in schema["fields"]})
    return encode(schema, {f["name"]: record[f["name"]] for f in schema["fields"]})


def test_earlier_versions_in_the_spec_are_the_history_files() -> None:
    assert len(EARLIER) >= 6
    for name, version, fp in EARLIER:
        assert fingerprint(f"history/{name}.{version}") == fp, (name, version)


def test_clean_room_opener_opens_the_known_answer_vectors() -> None:
    from broker.models import model_for

    vectors = json.loads(VECTORS.read_text(encoding="utf-8"))["vectors"]
    kems = set()
    for vector in vectors:
        sender_seed = vector["sender"]["seed"]
        signing = Ed25519PrivateKey.from_private_bytes(_derive(sender_seed, b"ed25519", 32))
        assert signing.public_key().public_bytes_raw().hex() == vector["sender"]["signing_public"]
        message = model_for(vector["message_type"]).model_validate(vector["message_json"])
        expected = as_written(message, bytes.fromhex(vector["envelope"]))
        now_ms = int(datetime.fromisoformat(vector["now"]).timestamp() * 1000)
        for me in vector["recipients"]:
            kems.add(me["kem"])
            header, payload, _ = clean_open(
                bytes.fromhex(vector["envelope"]), _vector_receiver(vector, me), now_ms
            )
            assert payload == expected, vector["name"]
            assert header["message_id"] == vector["message_id"]
    assert kems == {"X25519", "MLKEM768_X25519"}


@pytest.mark.parametrize("version", [2, 3])
def test_clean_room_opener_opens_the_format_2_and_3_vectors(version: int) -> None:
    from broker.models import model_for

    path = VECTORS_V2 if version == 2 else VECTORS_V3
    vectors = json.loads(path.read_text(encoding="utf-8"))["vectors"]
    opened = 0
    for vector in vectors:
        now_ms = int(datetime.fromisoformat(vector["now"]).timestamp() * 1000)
        parties = {p["party_id"]: p for p in vector["recipients"]}
        for e in vector["envelopes"]:
            message = model_for(e["message_type"]).model_validate(e["message_json"])
            data = bytes.fromhex(e["envelope"])
            expected = as_written(message, data)
            assert batch_leaf(data[: _body_end(data)]).hex() == e["leaf"]
            for name in e["recipients"]:
                header, payload, _ = clean_open(
                    data, _vector_receiver(vector, parties[name]), now_ms
                )
                assert payload == expected, vector["name"]
                assert (header["message_id"], header["format_version"]) == (
                    e["message_id"],
                    version,
                )
                assert header.get("traceparent") == e.get("traceparent")
                opened += 1
    assert opened >= 5


def _body_end(data: bytes) -> int:
    """Where the batch proof starts: the signed body ends there (§5.5)."""
    _, starts = decode(envelope_schema(data[0] >> 1), data, MAX_ENVELOPE_ITEMS)
    return starts["batch_proof"]


# --- where the reference deviates from the spec (docs/ENVELOPE.md §6.4) ----------------------

YEAR_9999 = {"expires_at": 253_402_300_740_000}  # 9999-12-31T23:59:00Z


def test_the_spec_refuses_a_lifetime_ending_in_year_9999() -> None:
    assert clean_code(_seal(header=YEAR_9999), MUNI) == "EXPIRED"


def test_reference_refuses_a_lifetime_ending_in_year_9999() -> None:
    assert reference_code(_seal(header=YEAR_9999), MUNI) == "EXPIRED"


def test_the_sender_fields_table_is_the_codes() -> None:
    from broker.policy import SENDER_FIELDS, SENDER_ROLE_FIELDS

    rows = spec_rows("### 8.1", "## 9.")
    in_spec = {(f"nl.lvv.v1.{r[0]}", r[1], r[2]) for r in rows}
    in_code = {(t, f, "the sender") for t, f in SENDER_FIELDS.items()}
    in_code |= {(t, f, "the sender's role") for t, f in SENDER_ROLE_FIELDS.items()}
    assert in_spec == in_code


# --- version 3: the header's traceparent (§4.2, §9) --------------------------------------------

TRACE = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


def test_both_openers_read_a_version_3_traceparent_from_the_other() -> None:
    [reference] = reference_sealer(IND).seal_many(
        [SealRequest(DOSSIER, (MUNI,), traceparent=TRACE)]
    )
    header, _, _ = clean_open(reference, receiver(MUNI), NOW_MS)
    assert (header["format_version"], header["traceparent"]) == (3, TRACE)
    clean = clean_batch([Item(DOSSIER, (MUNI,), traceparent=TRACE)]).envelopes[0]
    assert reference_open(clean, MUNI).header.traceparent == TRACE
    version_2 = clean_batch([Item(DOSSIER, (MUNI,))], version=2).envelopes[0]
    assert reference_open(version_2, MUNI).header.traceparent is None


def test_both_openers_refuse_a_signed_traceparent_not_in_canonical_form() -> None:
    for bad in (TRACE.upper(), "00-" + "0" * 32 + TRACE[35:], TRACE[:-1]):
        data = clean_batch([Item(DOSSIER, (MUNI,), header={"traceparent": bad})]).envelopes[0]
        assert clean_code(data, MUNI) == reference_code(data, MUNI) == "MALFORMED"
