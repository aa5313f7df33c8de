"""Topic names of the network (DESIGN §2, Topics). Party ids are already restricted to
lowercase letters, digits and dashes, so they are safe inside topic names."""

from __future__ import annotations

DEFAULT_PREFIX = "lvv.v1"


def inbox(party: str, prefix: str = DEFAULT_PREFIX) -> str:
    """Where messages to ``party`` go; read only by that party's gateway."""
    return f"{prefix}.inbox.{party}"


def dlq(party: str, prefix: str = DEFAULT_PREFIX) -> str:
    """Where ``party``'s gateway puts envelopes it rejected, with the reason."""
    return f"{prefix}.dlq.{party}"


def audit(prefix: str = DEFAULT_PREFIX) -> str:
    """The audit stream every gateway appends to and DT&V reads."""
    return f"{prefix}.audit"


def directory(prefix: str = DEFAULT_PREFIX) -> str:
    """The signed key directory (compacted), written by the trust anchor."""
    return f"{prefix}.directory"
