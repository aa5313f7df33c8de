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


def attachments(party: str, prefix: str = DEFAULT_PREFIX) -> str:
    """Where the chunks of the attachments sent to ``party`` go (docs/ENVELOPE.md §11.6);
    read only by that party's gateway, beside its inbox so that a 100 MB document never
    queues the messages behind it."""
    return f"{prefix}.attachments.{party}"


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
    network and the anchor that signed it (`directory_key`), so compaction keeps the
    newest per network and anchor."""
    return f"{prefix}.directory"


DIRECTORY_PARTITIONS = 1
"""One partition: the directory's versions stay in publishing order."""

DIRECTORY_CONFIG = {"cleanup.policy": "compact"}
"""Compaction keeps the newest directory per key, however long the network runs."""


def directory_key(network: str, anchor_key_id: str) -> bytes:
    """The directory topic's record key: one per network and signing anchor. During an
    anchor rollover the programme office publishes the same directory signed by the old
    anchor and by the new one (docs/OPERATING.md): under one key compaction would keep only
    the later, and gateways pinning the other anchor would lose theirs."""
    return f"{network}/{anchor_key_id}".encode()


def other_anchors_directory(key: bytes | None, network: str, anchor_key_id: str) -> bool:
    """A record the topic keys as ``network``'s directory signed by another anchor than
    ``anchor_key_id``: not for a gateway pinning that one, and no refusal either."""
    return (
        key is not None
        and key.startswith(f"{network}/".encode())
        and key != directory_key(network, anchor_key_id)
    )


def gateway_group(party: str, prefix: str = DEFAULT_PREFIX) -> str:
    """The consumer group of ``party``'s gateway (and its transactional id)."""
    return f"{prefix}.gateway.{party}"


def verifier_group_prefix(prefix: str = DEFAULT_PREFIX) -> str:
    """Consumer groups of DT&V's `lvvx audit follow` start with this."""
    return f"{prefix}.audit-follow."
