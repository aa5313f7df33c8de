"""A bounded pre-check of Avro binary data, run before fastavro decodes untrusted bytes.

fastavro trusts length prefixes and counts: a few bytes claiming two million array items
make it build two million objects. The skimmer walks the same bytes against the schema
without building anything, in time linear in the input and memory linear in the schema's
depth, and refuses input that

- is truncated or has trailing bytes;
- claims more array items or map entries in total than the caller allows;
- is not in canonical form (Avro spec, "Binary Encoding"): a varint with redundant bytes, a
  negative (sized) block count, an array split into several blocks, a boolean other than
  0 or 1, an int outside 32 bits, a union or enum index out of range, a uuid not in its
  lowercase 36-character form.

Input it accepts decodes to the same bytes it came from, so a signature over the bytes and
a check of the decoded values speak about the same thing.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from broker.contract.binary import INT32 as _INT32
from broker.contract.binary import INT64 as _INT64
from broker.contract.binary import read_varint
from broker.errors import DecodeError

Skipper = Callable[["_Cursor"], None]

_FIXED_WIDTH = {"null": 0, "float": 4, "double": 8}


class _Cursor:
    __slots__ = ("data", "items_left", "pos")

    def __init__(self, data: bytes, max_items: int) -> None:
        self.data = data
        self.pos = 0
        self.items_left = max_items

    def take(self, n: int) -> int:
        """Advance over ``n`` bytes; returns where they start."""
        start = self.pos
        if n < 0 or start + n > len(self.data):
            raise DecodeError(f"truncated at byte {start}: {n} more bytes claimed")
        self.pos = start + n
        return start

    def varint(self, bounds: tuple[int, int]) -> int:
        """A zigzag varint in canonical (shortest) form within ``bounds``."""
        value, self.pos = read_varint(self.data, self.pos, bounds)
        return value


def compile_schema(schema: Any) -> Skipper:
    """A function that skims one datum of the (self-contained, parsed-JSON) ``schema``."""
    named: dict[str, Skipper] = {}

    def build(node: Any, namespace: str | None) -> Skipper:
        if isinstance(node, list):
            branches = [build(b, namespace) for b in node]
            return _union(branches)
        if isinstance(node, str):
            if node in named:
                return named[node]
            full = node if "." in node or not namespace else f"{namespace}.{node}"
            if full in named:
                return lambda c: named[full](c)
            return _primitive(node)
        kind = node["type"]
        if kind in ("record", "error"):
            ns = node.get("namespace", namespace)
            full = node["name"] if "." in node["name"] else f"{ns}.{node['name']}"
            fields: list[Skipper] = []

            def record(c: _Cursor) -> None:
                for skip in fields:
                    skip(c)

            named[full] = named[node["name"]] = record
            fields.extend(build(f["type"], ns) for f in node["fields"])
            return record
        if kind == "enum":
            ns = node.get("namespace", namespace)
            count = len(node["symbols"])

            def enum(c: _Cursor) -> None:
                c.varint((0, count - 1))

            named[f"{ns}.{node['name']}"] = named[node["name"]] = enum
            return enum
        if kind == "fixed":
            ns = node.get("namespace", namespace)
            size = node["size"]

            def fixed(c: _Cursor) -> None:
                c.take(size)

            named[f"{ns}.{node['name']}"] = named[node["name"]] = fixed
            return fixed
        if kind == "array":
            return _blocks([build(node["items"], namespace)])
        if kind == "map":
            return _blocks([_primitive("string"), build(node["values"], namespace)])
        if kind == "string" and node.get("logicalType") == "uuid":
            return _uuid
        return build(kind, namespace)  # other logical types: their underlying type

    return build(schema, None)


def _primitive(kind: str) -> Skipper:
    def fixed_width(c: _Cursor) -> None:
        c.take(_FIXED_WIDTH[kind])

    def boolean(c: _Cursor) -> None:
        if c.data[c.take(1)] > 1:
            raise DecodeError(f"boolean byte other than 0 or 1 at {c.pos - 1}")

    def int32(c: _Cursor) -> None:
        c.varint(_INT32)

    def int64(c: _Cursor) -> None:
        c.varint(_INT64)

    def length_prefixed(c: _Cursor) -> None:
        c.take(c.varint((0, len(c.data))))

    if kind in _FIXED_WIDTH:
        return fixed_width
    found = {"boolean": boolean, "int": int32, "long": int64}.get(kind)
    if found is None and kind in ("bytes", "string"):
        found = length_prefixed
    if found is None:
        raise DecodeError(f"unknown Avro type {kind!r}")
    return found


_UUID = re.compile(rb"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def _uuid(c: _Cursor) -> None:
    """A uuid in the one form that re-encodes to itself: 36 lowercase characters."""
    length = c.varint((0, len(c.data)))
    start = c.take(length)
    if not _UUID.fullmatch(c.data, start, start + length):
        raise DecodeError(f"uuid not in canonical lowercase form at byte {start}")


def _union(branches: list[Skipper]) -> Skipper:
    def union(c: _Cursor) -> None:
        branches[c.varint((0, len(branches) - 1))](c)

    return union


def _blocks(parts: list[Skipper]) -> Skipper:
    """Arrays and maps: canonically one block of a positive count, then a zero."""

    def blocks(c: _Cursor) -> None:
        count = c.varint((0, len(c.data)))
        if count == 0:
            return
        c.items_left -= count
        if c.items_left < 0:
            raise DecodeError("more array items or map entries than allowed")
        for _ in range(count):
            for skip in parts:
                skip(c)
        c.varint((0, 0))  # the end marker; a second block's count is out of range

    return blocks


def skim(skipper: Skipper, data: bytes, *, max_items: int) -> None:
    """Raise `DecodeError` unless ``data`` is exactly one canonical datum within limits."""
    cursor = _Cursor(data, max_items)
    skipper(cursor)
    if cursor.pos != len(data):
        raise DecodeError(f"{len(data) - cursor.pos} trailing bytes")
