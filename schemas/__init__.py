"""The inter-agency contract: Avro schemas (``.avsc``) of every LVV message.

The files are the source of truth for the wire format; Python reads them from here.
"""

from __future__ import annotations

from pathlib import Path

AVRO_DIR = Path(__file__).resolve().parent / "avro"
"""Top-level schemas (messages, envelope, directory, audit event)."""

TYPES_DIR = AVRO_DIR / "types"
"""Named types shared by the top-level schemas."""

HISTORY_DIR = AVRO_DIR / "history"
"""Earlier versions of top-level schemas (``<full name>.<version>.avsc``), still read: data
written by a party that has not upgraded yet names them by fingerprint."""

__all__ = ["AVRO_DIR", "HISTORY_DIR", "TYPES_DIR"]
