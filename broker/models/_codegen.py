"""Avro encoders and decoders generated from the contract and the models, for the hot path.

The reference path stays as it is: a model dumped to a dict and written by fastavro; bytes
skimmed (`broker.contract._skim`), read by fastavro, then validated by pydantic. For a
top-level model this module writes, once per process and on first use, the Python source of
two functions and compiles it:

- an **encoder**: the model's attributes straight to bytes, field after field, no dict;
- a **checked decoder**: one pass over untrusted bytes that enforces, inline, every rule of
  the skim (docs/ENVELOPE.md §2.1: canonical varints, ranges, lengths within the input, one
  block per array, the item limit, booleans, enum and union indexes, no trailing bytes, the
  uuid form), every rule of fastavro's reading (strict UTF-8, the date and timestamp ranges)
  and every rule the model's validation makes (a pattern, a length, a range, an enum symbol
  the model knows) — and builds the models without validating them again.

Why generated at import time rather than a generated module checked in: the `.avsc` files
and the models stay the one source of truth, nothing can go stale, and schemas registered
at run time get the same treatment. The source is kept (`source_of`) and registered with
`linecache`, so tracebacks and profilers show the generated lines.

Nothing is guessed: a model whose fields use anything the generator does not know (another
validator or constraint, a union other than ``X | None``, a map, a float, a field order or
name differing from its schema, a model with validators of its own) raises `Unsupported`,
and its messages keep the reference path (`encoder_for`/`decoder_for` return None).
``tests/unit/contract/test_codegen.py`` holds both functions to the reference path: the same
bytes, the same models, and the same refusals.
"""

from __future__ import annotations

import dataclasses
import linecache
import re
import types
import typing
import uuid
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from enum import Enum
from typing import Any

import annotated_types
from pydantic import AfterValidator, AwareDatetime, BaseModel, StringConstraints
from pydantic.fields import FieldInfo

from broker.contract import default_codec
from broker.contract.binary import INT32, INT64, ONE_BYTE_VALUES, read_varint, write_long
from broker.errors import DecodeError, SchemaError, UnknownSchema

Encoder = Callable[[Any], bytes]
Decoder = Callable[[bytes, int], Any]

ONE_BYTE_MAX = 64
"""Enum symbols and union branches up to here have indexes of one varint byte (zig-zag
0..126): the decoder compares that byte instead of reading a varint."""

_DAYS_SHIFT = date(1970, 1, 1).toordinal()
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_UUID_BYTES = re.compile(rb"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_LENGTH = tuple(write_long(n) for n in range(ONE_BYTE_MAX))
"""The encoded length prefix of 0..63 bytes: one byte each."""


class Unsupported(Exception):
    """The generator does not know how to make this model's checks exactly; use the
    reference path."""


def _timestamp_validator(value: Any) -> bool:
    """`broker.models.Timestamp`'s validator (named, not imported: _base imports this module)."""
    func = getattr(value, "func", None)
    return (
        isinstance(value, AfterValidator)
        and getattr(func, "__module__", None) == "broker.models._base"
        and getattr(func, "__qualname__", None) == "to_utc_millis"
    )


@dataclasses.dataclass
class _Leaf:
    """A model's type with its constraints, taken apart."""

    base: Any
    pattern: str | None = None
    min_len: int | None = None
    max_len: int | None = None
    ge: int | None = None
    le: int | None = None
    timestamp: bool = False


def _leaf(annotation: Any, metadata: list[Any]) -> _Leaf:
    leaf = _Leaf(annotation)
    for item in metadata:
        if isinstance(item, FieldInfo):
            for inner in item.metadata:
                _constrain(leaf, inner)
        elif isinstance(item, StringConstraints):
            known = {"pattern", "min_length", "max_length"}
            extra = [f.name for f in dataclasses.fields(item)
                     if f.name not in known and getattr(item, f.name) is not None]  # fmt: skip
            if extra:
                raise Unsupported(f"string constraints {extra}")
            if item.pattern is not None:
                _pattern(leaf, item.pattern)
            if item.min_length is not None:
                _constrain(leaf, annotated_types.MinLen(item.min_length))
            if item.max_length is not None:
                _constrain(leaf, annotated_types.MaxLen(item.max_length))
        else:
            _constrain(leaf, item)
    return leaf


def _constrain(leaf: _Leaf, item: Any) -> None:
    if isinstance(item, annotated_types.Ge) and isinstance(item.ge, int):
        leaf.ge = item.ge
    elif isinstance(item, annotated_types.Le) and isinstance(item.le, int):
        leaf.le = item.le
    elif isinstance(item, annotated_types.MinLen):
        leaf.min_len = item.min_length
    elif isinstance(item, annotated_types.MaxLen):
        leaf.max_len = item.max_length
    elif _timestamp_validator(item) and leaf.base is AwareDatetime:
        leaf.timestamp = True
    elif type(item).__name__ == "_PydanticGeneralMetadata" and _only_pattern(item):
        _pattern(leaf, item.pattern)
    else:
        raise Unsupported(f"constraint {item!r}")


def _only_pattern(item: Any) -> bool:
    fields = {k: v for k, v in vars(item).items() if v is not None}
    return set(fields) == {"pattern"}


def _pattern(leaf: _Leaf, pattern: Any) -> None:
    # pydantic matches with Rust's regex, where `$` is the end of the text only (Python's
    # `$` also matches before a final newline); an anchored pattern matched with `fullmatch`
    # means the same in both
    if not (isinstance(pattern, str) and pattern.startswith("^") and pattern.endswith("$")):
        raise Unsupported(f"pattern {pattern!r} is not anchored at both ends")
    if leaf.pattern is not None:
        raise Unsupported("two patterns")
    leaf.pattern = pattern


def _split(annotation: Any) -> tuple[Any, list[Any]]:
    metadata: list[Any] = []
    while typing.get_origin(annotation) is typing.Annotated:
        annotation, *extra = typing.get_args(annotation)
        metadata += extra
    return annotation, metadata


def _is_model(t: Any) -> bool:
    return isinstance(t, type) and issubclass(t, BaseModel) and hasattr(t, "avro_name")


def _check_model(cls: type[BaseModel], schema: dict[str, Any]) -> None:
    """The model must be a plain frozen record of exactly the schema's fields, in order,
    with no validation of its own beyond its field types."""
    decorators = cls.__pydantic_decorators__
    if any(getattr(decorators, f.name) for f in dataclasses.fields(decorators)):
        raise Unsupported(f"{cls.__name__} has validators or serializers of its own")
    if cls.__private_attributes__ or cls.__pydantic_post_init__ or cls.__pydantic_root_model__:
        raise Unsupported(f"{cls.__name__} has private attributes or a post-init")
    if cls.model_config.get("extra") == "allow":
        raise Unsupported(f"{cls.__name__} allows extra fields")
    names = [f["name"] for f in schema["fields"]]
    if list(cls.model_fields) != names:
        raise Unsupported(f"{cls.__name__}'s fields differ from {schema['name']}'s")
    for name, info in cls.model_fields.items():
        if info.alias or info.validation_alias or info.serialization_alias:
            raise Unsupported(f"{cls.__name__}.{name} has an alias")


class _Source:
    """Lines of Python being written, and the constants they refer to."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.constants: dict[str, Any] = {}
        self._serial = 0

    def name(self, prefix: str) -> str:
        self._serial += 1
        return f"{prefix}{self._serial}"

    def constant(self, value: Any, prefix: str = "_K") -> str:
        for key, known in self.constants.items():
            if known is value:
                return key
        key = self.name(prefix)
        self.constants[key] = value
        return key

    def add(self, indent: int, line: str) -> None:
        self.lines.append("    " * indent + line)


def _resolve(node: Any, named: dict[str, Any]) -> Any:
    """A schema node with a reference to an earlier-defined named type replaced by it."""
    if isinstance(node, str) and node in named:
        return named[node]
    return node


def _register(node: Any, named: dict[str, Any]) -> None:
    if isinstance(node, dict) and node.get("type") in ("record", "enum", "fixed"):
        ns = node.get("namespace", "")
        full = node["name"] if "." in node["name"] else f"{ns}.{node['name']}"
        if named.get(full) is node:
            return  # a reference to it, resolved
        if full in named or node["name"] in named:
            raise Unsupported(f"{full} defined twice")
        named[full] = named[node["name"]] = node


def _optional(annotation: Any) -> Any | None:
    """X for ``X | None``, else None."""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(args) == 1 and len(typing.get_args(annotation)) == 2:
            return args[0]
    return None


# --- decoding --------------------------------------------------------------------------------


class _Decoding:
    """Writes the checked decoder of one top-level model."""

    def __init__(self, src: _Source) -> None:
        self.src = src
        self.named: dict[str, Any] = {}
        self.depth = 0  # records being written, to catch a recursive schema

    def varint(self, i: int, target: str, bounds: tuple[int, int | str], what: str) -> None:
        """A canonical varint within ``bounds`` into ``target``; an upper bound ``"size"``
        is the input's length (a length or a count)."""
        s = self.src
        s.add(i, "b = data[pos]")
        s.add(i, "if b < 128:")
        if bounds[0] >= 0:  # a one-byte varint of a negative value is refused here
            s.add(i + 1, "if b & 1:")
            s.add(i + 2, f'raise DecodeError(f"negative {what} at byte {{pos}}")')
            s.add(i + 1, f"{target} = b >> 1")
        else:
            s.add(i + 1, f"{target} = _ZIGZAG[b]")
        s.add(i + 1, "pos += 1")
        s.add(i, "else:")
        s.add(i + 1, f"{target}, pos = _read_varint(data, pos, ({bounds[0]}, {bounds[1]}))")

    def length(self, i: int, target: str) -> None:
        """Read a length and take that many bytes into ``target``."""
        s = self.src
        self.varint(i, "n", (0, "size"), "length")
        s.add(i, "end = pos + n")
        s.add(i, "if end > size:")
        s.add(i + 1, 'raise DecodeError(f"truncated at byte {pos}: {n} more bytes claimed")')
        s.add(i, f"{target} = data[pos:end]")
        s.add(i, "pos = end")

    def index(self, i: int, target: str, count: int, what: str) -> None:
        """An enum or union index into ``target`` (a plain int)."""
        s = self.src
        if count <= ONE_BYTE_MAX:
            s.add(i, "b = data[pos]")
            s.add(i, f"if b & 1 or b >= {2 * count}:")
            s.add(i + 1, f'raise DecodeError(f"{what} index out of range at byte {{pos}}")')
            s.add(i, f"{target} = b >> 1")
            s.add(i, "pos += 1")
        else:
            self.varint(i, target, (0, count - 1), what)

    def value(self, i: int, node: Any, annotation: Any, target: str) -> None:
        s = self.src
        node = _resolve(node, self.named)
        annotation, metadata = _split(annotation)
        inner = _optional(annotation)
        if isinstance(node, list):
            if inner is None or len(node) != 2 or "null" not in node:
                raise Unsupported(f"union {node!r} for {annotation!r}")
            null = node.index("null")
            s.add(i, "b = data[pos]")
            s.add(i, "pos += 1")
            s.add(i, f"if b == {2 * null}:")
            s.add(i + 1, f"{target} = None")
            s.add(i, f"elif b == {2 * (1 - null)}:")
            self.value(i + 1, node[1 - null], _annotated(inner, metadata), target)
            s.add(i, "else:")
            s.add(i + 1, 'raise DecodeError(f"union index out of range at byte {pos - 1}")')
            return
        if inner is not None:
            raise Unsupported(f"{annotation!r} for the non-union {node!r}")
        if isinstance(node, dict) and node["type"] in ("record", "enum", "fixed"):
            _register(node, self.named)
        kind = node if isinstance(node, str) else node["type"]
        logical = node.get("logicalType") if isinstance(node, dict) else None
        leaf = _leaf(annotation, metadata)
        if kind == "record":
            self.record(i, node, leaf.base, target)
        elif kind == "array":
            if typing.get_origin(leaf.base) is not tuple or metadata:
                raise Unsupported(f"array as {annotation!r}")
            item, ellipsis = typing.get_args(leaf.base)
            if ellipsis is not Ellipsis:
                raise Unsupported(f"array as {annotation!r}")
            count, items, one = s.name("c"), s.name("a"), s.name("v")
            self.varint(i, count, (0, "size"), "count")
            s.add(i, f"if {count} > size:  # a one-byte count")
            s.add(i + 1, f'raise DecodeError(f"count {{{count}}} larger than the input")')
            s.add(i, f"if {count}:")
            s.add(i + 1, f"left -= {count}")
            s.add(i + 1, "if left < 0:")
            s.add(i + 2, 'raise DecodeError("more array items or map entries than allowed")')
            s.add(i + 1, f"{items} = []")
            s.add(i + 1, f"for _ in range({count}):")
            self.value(i + 2, node["items"], item, one)
            s.add(i + 2, f"{items}.append({one})")
            s.add(i + 1, "if data[pos]:  # the end marker; a second block is not canonical")
            s.add(i + 2, 'raise DecodeError(f"array not in one block at byte {pos}")')
            s.add(i + 1, "pos += 1")
            s.add(i + 1, f"{target} = tuple({items})")
            s.add(i, "else:")
            s.add(i + 1, f"{target} = ()")
        elif kind == "enum":
            self.enum(i, node, leaf, target)
        elif kind == "fixed":
            if leaf.base is not bytes:
                raise Unsupported(f"fixed as {annotation!r}")
            s.add(i, f"end = pos + {int(node['size'])}")
            s.add(i, "if end > size:")
            s.add(i + 1, 'raise DecodeError(f"truncated at byte {pos}")')
            s.add(i, f"{target} = data[pos:end]")
            s.add(i, "pos = end")
            self.lengths(i, leaf, target, int(node["size"]))
        elif kind == "string" and logical == "uuid":
            if leaf.base is not uuid.UUID or metadata:
                raise Unsupported(f"uuid as {annotation!r}")
            s.add(i, "end = pos + 37")
            s.add(
                i,
                "if data[pos] != 72 or end > size or not _UUID_BYTES.fullmatch(data, pos + 1, end):",
            )
            s.add(i + 1, 'raise DecodeError(f"uuid not in canonical lowercase form at byte {pos}")')
            s.add(i, f"{target} = _UUID(data[pos + 1 : end].decode())")
            s.add(i, "pos = end")
        elif kind == "string" and logical is None:
            if leaf.base is not str:
                raise Unsupported(f"string as {annotation!r}")
            self.length(i, target)
            s.add(i, f"{target} = {target}.decode()")
            if leaf.pattern is not None:
                pattern = s.constant(re.compile(leaf.pattern), "_P")
                s.add(i, f"if {pattern}.fullmatch({target}) is None:")
                s.add(i + 1, f'raise DecodeError(f"{{{target}[:80]!r}} not in its required form")')
            self.lengths(i, leaf, target, None)
        elif kind == "bytes" and logical is None:
            if leaf.base is not bytes:
                raise Unsupported(f"bytes as {annotation!r}")
            self.length(i, target)
            self.lengths(i, leaf, target, None)
        elif kind == "boolean" and logical is None:
            if leaf.base is not bool or metadata:
                raise Unsupported(f"boolean as {annotation!r}")
            s.add(i, "b = data[pos]")
            s.add(i, "if b > 1:")
            s.add(i + 1, 'raise DecodeError(f"boolean byte other than 0 or 1 at {pos}")')
            s.add(i, f"{target} = b == 1")
            s.add(i, "pos += 1")
        elif kind == "int" and logical == "date":
            if leaf.base is not date or metadata:
                raise Unsupported(f"date as {annotation!r}")
            self.varint(i, target, INT32, "date")
            s.add(i, f"{target} = _fromordinal({target} + {_DAYS_SHIFT})")
        elif kind == "long" and logical == "timestamp-millis":
            if leaf.base is not AwareDatetime or not leaf.timestamp or len(metadata) != 1:
                raise Unsupported(f"timestamp as {annotation!r}")
            self.varint(i, target, INT64, "timestamp")
            s.add(i, f"{target} = _EPOCH + _timedelta(milliseconds={target})")
        elif kind in ("int", "long") and logical is None:
            if leaf.base is not int or leaf.min_len is not None or leaf.max_len is not None:
                raise Unsupported(f"{kind} as {annotation!r}")
            bounds = INT32 if kind == "int" else INT64
            self.varint(i, target, bounds, kind)
            low = bounds[0] if leaf.ge is None else max(bounds[0], leaf.ge)
            high = bounds[1] if leaf.le is None else min(bounds[1], leaf.le)
            if (low, high) != bounds:
                s.add(i, f"if not {low} <= {target} <= {high}:")
                s.add(i + 1, f'raise DecodeError(f"{{{target}}} out of range")')
        else:
            raise Unsupported(f"Avro {node!r}")

    def lengths(self, i: int, leaf: _Leaf, target: str, fixed: int | None) -> None:
        s = self.src
        if leaf.ge is not None or leaf.le is not None or leaf.timestamp:
            raise Unsupported(f"constraints {leaf!r} on a string or bytes")
        low, high = leaf.min_len, leaf.max_len
        if fixed is not None and (low or 0) <= fixed and (high is None or fixed <= high):
            return  # the fixed size already satisfies them
        if low is not None:
            s.add(i, f"if len({target}) < {low}:")
            s.add(i + 1, f'raise DecodeError("shorter than {low}")')
        if high is not None:
            s.add(i, f"if len({target}) > {high}:")
            s.add(i + 1, f'raise DecodeError("longer than {high}")')

    def enum(self, i: int, node: dict[str, Any], leaf: _Leaf, target: str) -> None:
        s = self.src
        cls = leaf.base
        if not (isinstance(cls, type) and issubclass(cls, Enum)) or leaf != _Leaf(cls):
            raise Unsupported(f"enum {node['name']} as {cls!r}")
        by_value = {m.value: m for m in cls}
        members = tuple(by_value.get(symbol) for symbol in node["symbols"])
        table = s.constant(members, "_E")
        self.index(i, target, len(members), "enum")
        s.add(i, f"{target} = {table}[{target}]")
        if None in members:  # a symbol of the schema the model does not know: it refuses it
            s.add(i, f"if {target} is None:")
            s.add(i + 1, f'raise DecodeError("enum symbol unknown to {cls.__name__}")')

    def record(self, i: int, node: dict[str, Any], cls: Any, target: str) -> None:
        s = self.src
        if not _is_model(cls):
            raise Unsupported(f"record {node['name']} as {cls!r}")
        _check_model(cls, node)
        self.depth += 1
        if self.depth > 32:
            raise Unsupported(f"{node['name']} nests too deep (recursive?)")
        values = []
        for field in node["fields"]:
            var = s.name("f")
            self.value(i, field["type"], cls.model_fields[field["name"]].rebuild_annotation(), var)
            values.append(f"{field['name']!r}: {var}")
        self.depth -= 1
        model = s.constant(cls, "_M")
        names = s.constant(frozenset(cls.model_fields), "_N")
        s.add(i, f"{target} = _new({model})")
        s.add(i, f"_set({target}, '__dict__', {{{', '.join(values)}}})")
        s.add(i, f"_set({target}, '__pydantic_fields_set__', set({names}))")
        s.add(i, f"_set({target}, '__pydantic_extra__', None)")
        s.add(i, f"_set({target}, '__pydantic_private__', None)")


def _annotated(base: Any, metadata: list[Any]) -> Any:
    return typing.Annotated[(base, *metadata)] if metadata else base


_DECODER_GLOBALS: dict[str, Any] = {
    "DecodeError": DecodeError,
    "_ZIGZAG": ONE_BYTE_VALUES,
    "_read_varint": read_varint,
    "_UUID_BYTES": _UUID_BYTES,
    "_UUID": uuid.UUID,
    "_fromordinal": date.fromordinal,
    "_EPOCH": _EPOCH,
    "_timedelta": timedelta,
    "_new": object.__new__,
    "_set": object.__setattr__,
}


def _decoder_source(cls: type[BaseModel], schema: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    src = _Source()
    body = _Decoding(src)
    body.record(2, schema, cls, "result")
    head = [
        f"def decode_{cls.__name__}(data, max_items):",
        f'    """Decode a {schema["name"]} from untrusted bytes, checked (generated)."""',
        "    size = len(data)",
        "    pos = 0",
        "    left = max_items",
        "    try:",
    ]
    tail = [
        "    except (IndexError, ValueError, OverflowError) as exc:  # truncated, UTF-8, range",
        f'        raise DecodeError(f"bytes do not decode as {cls.__name__}: {{exc!r}}") from None',
        "    if pos != size:",
        '        raise DecodeError(f"{size - pos} trailing bytes")',
        "    return result",
    ]
    return "\n".join([*head, *src.lines, *tail]) + "\n", src.constants


# --- encoding --------------------------------------------------------------------------------


class _Encoding:
    """Writes the encoder of one top-level model: attributes to bytes, appended to ``out``."""

    def __init__(self, src: _Source) -> None:
        self.src = src
        self.named: dict[str, Any] = {}

    def length_prefixed(self, i: int, value: str) -> None:
        s = self.src
        s.add(i, f"n = len({value})")
        s.add(i, "w(_LENGTH[n] if n < 64 else _write_long(n))")
        s.add(i, f"w({value})")

    def value(self, i: int, node: Any, annotation: Any, value: str) -> None:
        s = self.src
        node = _resolve(node, self.named)
        annotation, metadata = _split(annotation)
        if isinstance(node, list):
            inner = _optional(annotation)
            if inner is None or len(node) != 2 or "null" not in node:
                raise Unsupported(f"union {node!r}")
            null = node.index("null")
            s.add(i, f"if {value} is None:")
            s.add(i + 1, f"w({bytes([2 * null])!r})")
            s.add(i, "else:")
            s.add(i + 1, f"w({bytes([2 * (1 - null)])!r})")
            self.value(i + 1, node[1 - null], _annotated(inner, metadata), value)
            return
        if isinstance(node, dict) and node["type"] in ("record", "enum", "fixed"):
            _register(node, self.named)
        kind = node if isinstance(node, str) else node["type"]
        logical = node.get("logicalType") if isinstance(node, dict) else None
        if kind == "record":
            if not _is_model(annotation):
                raise Unsupported(f"record {node['name']}")
            _check_model(annotation, node)
            for field in node["fields"]:
                var = s.name("f")
                s.add(i, f"{var} = {value}.{field['name']}")
                inner_annotation = annotation.model_fields[field["name"]].rebuild_annotation()
                self.value(i, field["type"], inner_annotation, var)
        elif kind == "array":
            (item, _) = typing.get_args(annotation)
            one = s.name("v")
            s.add(i, f"if {value}:")
            s.add(i + 1, f"w(_write_long(len({value})))")
            s.add(i + 1, f"for {one} in {value}:")
            self.value(i + 2, node["items"], item, one)
            s.add(i, 'w(b"\\x00")')
        elif kind == "enum":
            table = s.constant({symbol: write_long(k) for k, symbol in enumerate(node["symbols"])})
            s.add(i, f"w({table}[{value}])")
        elif kind == "fixed":
            s.add(i, f"if len({value}) != {int(node['size'])}:")
            s.add(i + 1, f'raise ValueError("{node["name"]} is {int(node["size"])} bytes")')
            s.add(i, f"w({value})")
        elif kind == "string" and logical == "uuid":
            s.add(i, f"{value} = _uuid_text({value}).encode()")
            self.length_prefixed(i, value)
        elif kind == "string":
            s.add(i, f"{value} = {value}.encode()")
            self.length_prefixed(i, value)
        elif kind == "bytes":
            self.length_prefixed(i, value)
        elif kind == "boolean":
            s.add(i, f'w(b"\\x01" if {value} else b"\\x00")')
        elif kind == "int" and logical == "date":
            s.add(i, f"w(_write_int32({value}.toordinal() - {_DAYS_SHIFT}))")
        elif kind == "long" and logical == "timestamp-millis":
            s.add(i, f"w(_write_long(_millis({value})))")
        elif kind == "int":
            s.add(i, f"w(_write_int32({value}))")
        elif kind == "long":
            s.add(i, f"w(_write_int64({value}))")
        else:
            raise Unsupported(f"Avro {node!r}")


def _uuid_text(value: Any) -> str:
    if isinstance(value, uuid.UUID | str):  # fastavro writes a str as it is, too
        return str(value)
    raise TypeError(f"not a uuid: {value!r}")


def _millis(moment: datetime) -> int:
    """fastavro's conversion of an aware datetime (integer arithmetic, as it does)."""
    if moment.tzinfo is None:
        raise ValueError("a timestamp without a time zone")
    delta = moment - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1000 + delta.microseconds // 1000


def _write_int32(n: int) -> bytes:
    if not INT32[0] <= n <= INT32[1]:
        raise ValueError(f"{n} does not fit an Avro int")
    return write_long(n)


def _write_int64(n: int) -> bytes:
    if not INT64[0] <= n <= INT64[1]:
        raise ValueError(f"{n} does not fit an Avro long")
    return write_long(n)


_ENCODER_GLOBALS: dict[str, Any] = {
    "SchemaError": SchemaError,
    "_LENGTH": _LENGTH,
    "_write_long": write_long,
    "_write_int32": _write_int32,
    "_write_int64": _write_int64,
    "_uuid_text": _uuid_text,
    "_millis": _millis,
}


def _encoder_source(cls: type[BaseModel], schema: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    src = _Source()
    _Encoding(src).value(2, schema, cls, "m")
    head = [
        f"def encode_{cls.__name__}(m):",
        f'    """The Avro binary of a {schema["name"]} model (generated)."""',
        "    out = []",
        "    w = out.append",
        "    try:",
    ]
    tail = [
        "    except (AttributeError, TypeError, KeyError, IndexError, ValueError, OverflowError) as exc:",
        f'        raise SchemaError(f"record does not fit {schema["name"]}: {{exc!r}}") from exc',
        '    return b"".join(out)',
    ]
    return "\n".join([*head, *src.lines, *tail]) + "\n", src.constants


# --- compiling -------------------------------------------------------------------------------

_SOURCES: dict[str, str] = {}
_ENCODERS: dict[type, Encoder | None] = {}
_DECODERS: dict[type, Decoder | None] = {}


def _compile(name: str, source: str, namespace: dict[str, Any]) -> Any:
    filename = f"<broker.models codegen: {name}>"
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    _SOURCES[name] = source
    code = compile(source, filename, "exec")
    exec(code, namespace)
    return namespace[name]


def source_of(name: str) -> str:
    """The generated source of ``encode_<Model>`` or ``decode_<Model>``, once made."""
    return _SOURCES[name]


def build_encoder(cls: type[BaseModel]) -> Encoder:
    """The generated encoder of top-level model ``cls``; `Unsupported` if there is none."""
    schema = default_codec().info(cls.avro_name).schema  # type: ignore[attr-defined]
    source, constants = _encoder_source(cls, schema)
    return _compile(f"encode_{cls.__name__}", source, {**_ENCODER_GLOBALS, **constants})  # type: ignore[no-any-return]


def build_decoder(cls: type[BaseModel]) -> Decoder:
    """The generated checked decoder of top-level model ``cls``; `Unsupported` if none."""
    schema = default_codec().info(cls.avro_name).schema  # type: ignore[attr-defined]
    source, constants = _decoder_source(cls, schema)
    return _compile(f"decode_{cls.__name__}", source, {**_DECODER_GLOBALS, **constants})  # type: ignore[no-any-return]


def encoder_for(cls: type[BaseModel]) -> Encoder | None:
    """The encoder of ``cls``, made on first use; None if the generator cannot make it."""
    try:
        return _ENCODERS[cls]
    except KeyError:
        pass
    try:  # the decoder's generation checks the model against the schema: made first
        found: Encoder | None = build_encoder(cls) if decoder_for(cls) else None
    except (Unsupported, UnknownSchema):  # not a top-level record: the reference path
        found = None
    _ENCODERS[cls] = found
    return found


def decoder_for(cls: type[BaseModel]) -> Decoder | None:
    """The checked decoder of ``cls``, made on first use; None if the generator cannot."""
    try:
        return _DECODERS[cls]
    except KeyError:
        pass
    try:
        found: Decoder | None = build_decoder(cls)
    except (Unsupported, UnknownSchema):  # not a top-level record: the reference path
        found = None
    _DECODERS[cls] = found
    return found


__all__ = [
    "Unsupported",
    "build_decoder",
    "build_encoder",
    "decoder_for",
    "encoder_for",
    "source_of",
]
