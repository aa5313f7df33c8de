"""Avro codec: the `.avsc` contract parsed once, fingerprints, encode and decode.

Every top-level schema (a message, the envelope, the directory, the audit event) is made
self-contained by inlining the shared named types it references, so that its fingerprint
— SHA-256 of the Avro Parsing Canonical Form (Avro spec, "Schema Fingerprints") — covers
every field it can carry, and a reader in another language computes the same value from
the same files.
"""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, TypeVar

import fastavro
from fastavro.schema import to_parsing_canonical_form

from broker.contract._skim import Skipper, compile_schema, skim
from broker.errors import DecodeError, SchemaError, UnknownSchema

NAMESPACE = "nl.lvv.v1"

_T = TypeVar("_T")

Schema = dict[str, Any]
AvroRecord = dict[str, Any]

_PRIMITIVES = frozenset({"null", "boolean", "int", "long", "float", "double", "bytes", "string"})


@dataclass(frozen=True, slots=True)
class SchemaInfo:
    """One top-level schema: its full name, self-contained JSON form and fingerprint."""

    name: str
    schema: Schema
    parsed: Any
    canonical_form: str
    fingerprint: bytes
    skipper: Skipper

    @property
    def short_name(self) -> str:
        return self.name.rsplit(".", 1)[-1]


def by_type_name(table: Mapping[str, _T], name: str) -> _T | None:
    """The entry of ``table`` (keyed by full names) for a type named in full
    (``nl.lvv.v1.CaseClosed``) or short (``CaseClosed``): the one place where both forms
    of a type's name are resolved."""
    return table.get(name) or table.get(f"{NAMESPACE}.{name}")


def fingerprint_of(schema: Schema) -> bytes:
    """SHA-256 of the schema's Parsing Canonical Form."""
    return hashlib.sha256(to_parsing_canonical_form(schema).encode()).digest()


def _full_name(name: str, namespace: str | None) -> str:
    return name if "." in name or not namespace else f"{namespace}.{name}"


def _inline(node: Any, namespace: str | None, types: Mapping[str, Schema], seen: set[str]) -> Any:
    """Copy ``node`` replacing references to shared types by their definition (first use
    only; later uses stay references, as Avro requires)."""
    if isinstance(node, str):
        if node in _PRIMITIVES:
            return node
        full = _full_name(node, namespace)
        if full in seen or full not in types:
            if full not in seen:
                raise SchemaError(f"reference to unknown type {full!r}")
            return full
        seen.add(full)
        return _inline(types[full], NAMESPACE, types, seen)
    if isinstance(node, list):
        return [_inline(branch, namespace, types, seen) for branch in node]
    if isinstance(node, dict):
        kind = node.get("type")
        out = dict(node)
        if kind in ("record", "error", "enum", "fixed"):
            ns = node.get("namespace", namespace)
            seen.add(_full_name(node["name"], ns))
            if kind in ("record", "error"):
                out["fields"] = [
                    {**f, "type": _inline(f["type"], ns, types, seen)} for f in node["fields"]
                ]
            return out
        if kind == "array":
            out["items"] = _inline(node["items"], namespace, types, seen)
        elif kind == "map":
            out["values"] = _inline(node["values"], namespace, types, seen)
        else:
            out["type"] = _inline(kind, namespace, types, seen)
        return out
    raise SchemaError(f"not a schema node: {node!r}")


def _info(schema: Schema) -> SchemaInfo:
    try:
        parsed = fastavro.parse_schema(schema)
        canonical = to_parsing_canonical_form(schema)
    except Exception as exc:  # fastavro raises several unrelated types
        raise SchemaError(f"invalid schema {schema.get('name')!r}: {exc}") from exc
    return SchemaInfo(
        name=_full_name(schema["name"], schema.get("namespace")),
        schema=schema,
        parsed=parsed,
        canonical_form=canonical,
        fingerprint=hashlib.sha256(canonical.encode()).digest(),
        skipper=compile_schema(schema),
    )


def _collect_named(node: Any, namespace: str, out: dict[str, Schema]) -> None:
    """Index every named type defined inside an expanded schema."""
    if isinstance(node, list):
        for branch in node:
            _collect_named(branch, namespace, out)
    elif isinstance(node, dict):
        kind = node.get("type")
        if kind in ("record", "error", "enum", "fixed"):
            namespace = node.get("namespace", namespace)
            out.setdefault(_full_name(node["name"], namespace), node)
            for f in node.get("fields", ()):
                _collect_named(f["type"], namespace, out)
        elif kind == "array":
            _collect_named(node["items"], namespace, out)
        elif kind == "map":
            _collect_named(node["values"], namespace, out)
        else:
            _collect_named(kind, namespace, out)


def _read_json(path: Path) -> Schema:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise SchemaError(f"{path.name}: cannot read schema: {exc}") from exc
    if not isinstance(data, dict) or "name" not in data:
        raise SchemaError(f"{path.name}: a schema file holds one named type")
    return data


class Codec:
    """The parsed contract. Build it once (see `default_codec`) and share it."""

    def __init__(self, top_level: Iterable[Path], shared_types: Iterable[Path],
                 earlier: Iterable[Path] = ()) -> None:  # fmt: skip
        types = {}
        for path in shared_types:
            schema = _read_json(path)
            types[_full_name(schema["name"], schema.get("namespace"))] = schema
        self._by_name: dict[str, SchemaInfo] = {}
        self._by_fingerprint: dict[bytes, SchemaInfo] = {}
        self._named: dict[str, Schema] = {}
        self._earlier_records: dict[tuple[bytes, str], SchemaInfo] = {}
        for path in sorted(top_level):
            info = self.register(_inline(_read_json(path), NAMESPACE, types, set()))
            _collect_named(info.schema, NAMESPACE, self._named)
        for path in sorted(earlier):  # readable by fingerprint only, never current
            info = _info(_inline(_read_json(path), NAMESPACE, types, set()))
            self._by_fingerprint.setdefault(info.fingerprint, info)

    def register(self, schema: Schema) -> SchemaInfo:
        """Add a self-contained schema. A later version of a known name replaces it as the
        current one; the earlier stays reachable by fingerprint (for reading old data)."""
        name = _full_name(schema["name"], schema.get("namespace"))
        info = _info(schema)
        self._by_name[name] = info
        self._by_fingerprint.setdefault(info.fingerprint, info)
        return info

    @cache  # noqa: B019 - codecs live as long as the process
    def record_info(self, name: str) -> SchemaInfo:
        """A named record used inside a top-level schema (e.g. ``EnvelopeHeader``), as a
        schema of its own; it must be self-contained (define every type it uses)."""
        return _info(self.named_type(name))

    def record_info_in(self, top: SchemaInfo, name: str) -> SchemaInfo:
        """A named record used inside ``top`` — an earlier version's too (the header of a
        format-1 envelope) — as a schema of its own, like `record_info`."""
        key = (top.fingerprint, name)
        found = self._earlier_records.get(key)
        if found is None:
            named: dict[str, Schema] = {}
            _collect_named(top.schema, NAMESPACE, named)
            schema = by_type_name(named, name)
            if schema is None:
                raise UnknownSchema(f"no named type {name!r} in {top.name}")
            found = self._earlier_records[key] = _info(schema)
        return found

    def named_type(self, name: str) -> Schema:
        """The definition of any named type (record, enum, fixed) used by the contract."""
        found = by_type_name(self._named, name)
        if found is None:
            raise UnknownSchema(f"no named type {name!r}")
        return found

    @property
    def names(self) -> list[str]:
        return sorted(self._by_name)

    def info(self, name: str) -> SchemaInfo:
        """Look a schema up by full name (``nl.lvv.v1.CaseClosed``) or short name."""
        found = by_type_name(self._by_name, name)
        if found is None:
            raise UnknownSchema(f"no schema named {name!r}")
        return found

    def by_fingerprint(self, fingerprint: bytes) -> SchemaInfo:
        found = self._by_fingerprint.get(bytes(fingerprint))
        if found is None:
            raise UnknownSchema(f"no schema with fingerprint {bytes(fingerprint).hex()[:16]}…")
        return found

    def encode(
        self, name: str | SchemaInfo, record: Mapping[str, Any], *, exact: bool = False
    ) -> bytes:
        """Avro binary (no container, no schema) of ``record`` under schema ``name``.

        A record must hold every field without a default and no other field. ``exact=True``
        says the caller guarantees that (a model's dump: `AvroModel.avro_bytes`), which
        skips fastavro's field check, about half of its writing cost."""
        info = name if isinstance(name, SchemaInfo) else self.info(name)
        out = io.BytesIO()
        try:
            fastavro.schemaless_writer(out, info.parsed, record, strict_allow_default=not exact)
        except Exception as exc:  # ValueError, TypeError, AttributeError, KeyError...
            raise SchemaError(f"record does not fit {info.name}: {exc}") from exc
        return out.getvalue()

    def decode(
        self,
        name: str | SchemaInfo,
        data: bytes,
        *,
        writer: SchemaInfo | None = None,
        max_items: int | None = None,
    ) -> AvroRecord:
        """Decode bytes written with ``writer`` (default: the current schema ``name``) into a
        record of the current schema ``name`` (Avro schema resolution). Every byte must be
        consumed: trailing bytes mean the data is not what it claims to be.

        For untrusted bytes pass ``max_items``: the data is first skimmed (`broker.contract._skim`)
        so it must be canonical and may hold at most that many array items in all, and
        decoding then costs time and memory in proportion to the input."""
        reader = name if isinstance(name, SchemaInfo) else self.info(name)
        writer = writer or reader
        if max_items is not None:
            skim(writer.skipper, data, max_items=max_items)
        buf = io.BytesIO(data)
        try:
            record = fastavro.schemaless_reader(
                buf, writer.parsed, reader.parsed if writer is not reader else None
            )
        except Exception as exc:  # EOFError, UnicodeDecodeError, SchemaResolutionError...
            raise DecodeError(f"bytes do not decode as {writer.name}: {exc}") from exc
        if buf.tell() != len(data):
            raise DecodeError(f"{len(data) - buf.tell()} trailing bytes after {writer.name}")
        if not isinstance(record, dict):
            raise DecodeError(f"{writer.name} did not decode to a record")
        return record


@cache
def default_codec() -> Codec:
    """The codec of the schemas shipped in the `schemas` package, parsed once."""
    from schemas import AVRO_DIR, HISTORY_DIR, TYPES_DIR

    return Codec(AVRO_DIR.glob("*.avsc"), TYPES_DIR.glob("*.avsc"), HISTORY_DIR.glob("*.avsc"))
