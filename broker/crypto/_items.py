"""The sender's side of the recipients' item limit.

A recipient decodes a payload only within `MAX_PAYLOAD_ITEMS` array items and map entries in
all (`broker.contract._skim`); a payload over it is refused by every recipient as PAYLOAD_INVALID. A
sender checks the same bound, with the same skimmer, before it seals — so a back office
learns at once (`TOO_MANY_ITEMS`) rather than from a REJECTED receipt per recipient.

Skimming costs about as much as encoding, so it is skipped where it cannot fail: when every
array item of the schema takes at least one byte, a payload of at most ``max_items`` bytes
cannot hold more than ``max_items`` items (map entries always take a byte, their key's
length). `zero_width_items` tells which schemas need the count whatever their size.
"""

from __future__ import annotations

import sys
from functools import cache
from typing import Any

from broker.contract import SchemaInfo, default_codec, skim
from broker.errors import DecodeError, LocalError

_FIXED_WIDTH = {"null": 0, "float": 4, "double": 8}
"""Encoded sizes of the primitives that are not a varint or length-prefixed (those take ≥ 1)."""


def check_item_limit(info: SchemaInfo, payload: bytes, *, max_items: int) -> None:
    """Raise `LocalError` (``TOO_MANY_ITEMS``) if a recipient decoding ``payload`` within
    ``max_items`` would refuse it for its item count."""
    if len(payload) <= max_items and not _needs_count(info.name):
        return
    try:
        skim(info.skipper, payload, max_items=max_items)
    except DecodeError:
        try:  # over the limit, or not canonical at all (our own encoding: a bug)
            skim(info.skipper, payload, max_items=sys.maxsize)
        except DecodeError as exc:
            raise LocalError(
                f"{info.name} does not encode canonically: {exc}", reason="PAYLOAD_INVALID"
            ) from exc
        raise LocalError(
            f"{info.name} has more than {max_items} array items in all, more than any "
            "recipient accepts",
            reason="TOO_MANY_ITEMS",
        ) from None


@cache
def _needs_count(name: str) -> bool:
    return zero_width_items(default_codec().info(name).schema)


def zero_width_items(schema: Any) -> bool:
    """Whether an array of the (self-contained, parsed-JSON) ``schema`` may hold items that
    encode to no bytes (null, an empty record, a zero-size fixed). A name it cannot
    resolve counts as such: the answer may err only towards counting."""
    widths: dict[str, int] = {}
    zero = False

    def width(node: Any, namespace: str | None) -> int:
        """The fewest bytes ``node`` encodes to (registering named types on the way)."""
        nonlocal zero
        if isinstance(node, list):
            for branch in node:
                width(branch, namespace)
            return 1  # the branch index
        if isinstance(node, str):
            full = node if "." in node or not namespace else f"{namespace}.{node}"
            if node in widths or full in widths:
                return widths.get(full, widths.get(node, 0))
            if node in ("boolean", "int", "long", "bytes", "string") or node in _FIXED_WIDTH:
                return _FIXED_WIDTH.get(node, 1)
            return 0  # unknown name: the worst case
        kind = node["type"]
        ns = node.get("namespace", namespace)
        name = node.get("name", "")
        full = name if "." in name else f"{ns}.{name}"
        if kind in ("record", "error"):
            widths[name] = widths[full] = 1  # a self-reference is only reachable via a union
            total = sum(width(f["type"], ns) for f in node["fields"])
            widths[name] = widths[full] = total
            return total
        if kind in ("enum", "fixed"):
            widths[name] = widths[full] = 1 if kind == "enum" else int(node["size"])
            return widths[full]
        if kind == "array":
            if width(node["items"], namespace) == 0:
                zero = True
            return 1  # the block count
        if kind == "map":
            width(node["values"], namespace)
            return 1
        return width(kind, namespace)  # a logical type: its underlying type

    width(schema, None)
    return zero


__all__ = ["check_item_limit", "zero_width_items"]
