"""Names on the broker (DESIGN §2, Topics): topics, consumer groups and transactional ids.

Party ids are already restricted to lowercase letters, digits and dashes, so they are safe
inside these names. Everything carries the network's prefix (``lvv.v1``), so two networks —
or two runs of the demo — can share a cluster without reading or fencing each other, and
the broker's ACLs (`broker.provision`) can be written per prefix.
"""

from __future__ import annotations

DEFAULT_PREFIX = "lvv.v1"


def inbox(party: str, prefix: str = DEFAULT_PREFIX) -> str:
    """Where messages to ``party`` go; read only by that party's gateway."""
    return f"{prefix}.inbox.{party}"


def dlq(party: str, prefix: str = DEFAULT_PREFIX) -> str:
    """Where ``party``'s gateway puts envelopes it refused, with the reason."""
    return f"{prefix}.dlq.{party}"


def audit(party: str, prefix: str = DEFAULT_PREFIX) -> str:
    """``party``'s audit chain. One topic per gateway: the broker's ACLs then let a
    gateway write only its own audit records, and DT&V read them all (a prefix)."""
    return f"{prefix}.audit.{party}"


def audit_prefix(prefix: str = DEFAULT_PREFIX) -> str:
    return f"{prefix}.audit."


def directory(prefix: str = DEFAULT_PREFIX) -> str:
    """The signed key directory (compacted), written by the trust anchor, keyed by the
    network's name (`directory_key`), so compaction keeps the newest per network."""
    return f"{prefix}.directory"


DIRECTORY_PARTITIONS = 1
"""One partition: the directory's versions stay in publishing order."""

DIRECTORY_CONFIG = {"cleanup.policy": "compact"}
"""Compaction keeps the newest directory per key, however long the network runs."""


def directory_key(network: str) -> bytes:
    """The directory topic's record key: one per network."""
    return network.encode()


def gateway_group(party: str, prefix: str = DEFAULT_PREFIX) -> str:
    """The consumer group of ``party``'s gateway (and its transactional id)."""
    return f"{prefix}.gateway.{party}"


def verifier_group_prefix(prefix: str = DEFAULT_PREFIX) -> str:
    """Consumer groups of DT&V's `lvvx audit follow` start with this."""
    return f"{prefix}.audit-follow."
