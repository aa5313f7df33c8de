"""`lvvx topics apply`: the broker's side of DESIGN §2 — topics and ACLs from the signed
directory and the policy, so a party that cannot decrypt a message cannot read its topic
either (defence in depth).

Each party ``P`` (principal ``User:P``, from its client certificate) may:

- write the inboxes of the parties it may send anything to under the policy (its case
  messages, and receipts back to whoever may write to it);
- read only its own inbox, with its own consumer group;
- write the attachment topics of the parties it may send a message with attachments to
  (docs/ENVELOPE.md §11.8), and read only its own;
- write its own dead-letter topic; write and read its own audit topic (it takes up its
  chain from there after a restart) — and no other party's;
- use its own transactional id (atomic multi-recipient sends);
- read the directory topic.

DT&V, the supervisor, also reads every audit topic (a prefix) with its verifier's groups.
Everything is scoped to the network's topic prefix: applying again with a party removed from
the directory removes that party's ACLs; other prefixes are left alone.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable
from dataclasses import dataclass, field

from broker import policy, topics
from broker.crypto import MAX_CLOCK_SKEW, MAX_TTL, Directory
from broker.errors import TransportTimeout
from broker.models import PartyRole
from broker.transport import TopicSpec
from broker.transport.kafka import KafkaTransport
from broker.transport.kafka_acl import (
    Acl,
    Operation,
    PatternType,
    ResourceType,
    create_acls,
    delete_acls,
    describe_acls,
)

ACLS_IN_FORCE_TIMEOUT_S = 30.0

AUDIT_TOPIC_CONFIG = {"retention.ms": "-1", "retention.bytes": "-1"}
"""Audit records are never deleted by the broker (its default keeps a week)."""

ATTACHMENT_RETENTION = MAX_TTL + MAX_CLOCK_SKEW
"""How long the broker keeps chunks: as long as an envelope that references them can still
be opened, so a gateway that was down for an envelope's whole lifetime finds its documents;
the receiving gateway keeps its own (encrypted) copy from the moment it fetched them."""

ATTACHMENT_TOPIC_CONFIG = {
    "retention.ms": str(int(ATTACHMENT_RETENTION.total_seconds() * 1000)),
    "retention.bytes": "-1",
}

SUPER_USERS = frozenset({"User:broker", "User:admin"})
"""Principals the brokers trust for everything (deploy/kafka): never ours to manage."""

Op, T, G, X = Operation, ResourceType.TOPIC, ResourceType.GROUP, ResourceType.TRANSACTIONAL_ID


@dataclass(frozen=True)
class Layout:
    """How the network's topics are made."""

    prefix: str = topics.DEFAULT_PREFIX
    partitions: int = 3
    replication_factor: int | None = None  # the cluster's default
    min_insync_replicas: int | None = None


@dataclass
class Plan:
    topics_to_create: list[TopicSpec] = field(default_factory=list)
    acls_to_add: list[Acl] = field(default_factory=list)
    acls_to_remove: list[Acl] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not (self.topics_to_create or self.acls_to_add or self.acls_to_remove)

    def lines(self) -> list[str]:
        return (
            [f"create topic {t.name} ({t.partitions} partitions, RF {t.replication_factor or 'default'})" for t in self.topics_to_create]
            + [f"add    {a}" for a in self.acls_to_add]
            + [f"remove {a}" for a in self.acls_to_remove]
        )  # fmt: skip


def desired_topics(directory: Directory, layout: Layout) -> list[TopicSpec]:
    extra = (
        {"min.insync.replicas": str(layout.min_insync_replicas)}
        if layout.min_insync_replicas
        else {}
    )
    p, rf = layout.prefix, layout.replication_factor
    specs = [
        TopicSpec(
            topics.directory(p),
            topics.DIRECTORY_PARTITIONS,
            rf,
            {**extra, **topics.DIRECTORY_CONFIG},
        )
    ]
    for party in sorted(directory.parties):
        specs += [
            TopicSpec(topics.inbox(party, p), layout.partitions, rf, extra),
            TopicSpec(topics.dlq(party, p), 1, rf, extra),
            TopicSpec(
                topics.attachments(party, p),
                layout.partitions,
                rf,
                {**extra, **ATTACHMENT_TOPIC_CONFIG},
            ),
            # one line: one partition; kept forever — the verifier checks every chain from its
            # first event, and a gateway takes up its chain from the topic after a restart
            TopicSpec(topics.audit(party, p), 1, rf, {**extra, **AUDIT_TOPIC_CONFIG}),
        ]
    return specs


def _allow(principal: str, resource: ResourceType, name: str, *ops: Operation,
           pattern: PatternType = PatternType.LITERAL) -> set[Acl]:  # fmt: skip
    return {Acl(principal, resource, name, pattern, op) for op in ops}


def desired_acls(directory: Directory, prefix: str) -> set[Acl]:
    roles = {party: entry.role for party, entry in directory.parties.items()}
    acls: set[Acl] = set()
    for party, role in sorted(roles.items()):
        who = f"User:{party}"
        for other, other_role in roles.items():
            if other != party and policy.may_send_to(role, other_role):
                acls |= _allow(who, T, topics.inbox(other, prefix), Op.WRITE, Op.DESCRIBE)
            if other != party and policy.may_attach_to(role, other_role):
                acls |= _allow(who, T, topics.attachments(other, prefix), Op.WRITE, Op.DESCRIBE)
        acls |= _allow(who, T, topics.inbox(party, prefix), Op.READ, Op.DESCRIBE)
        acls |= _allow(who, T, topics.attachments(party, prefix), Op.READ, Op.DESCRIBE)
        acls |= _allow(who, G, topics.gateway_group(party, prefix), Op.READ)
        acls |= _allow(who, T, topics.dlq(party, prefix), Op.WRITE, Op.DESCRIBE)
        acls |= _allow(who, T, topics.audit(party, prefix), Op.WRITE, Op.READ, Op.DESCRIBE)
        acls |= _allow(who, X, topics.gateway_group(party, prefix), Op.WRITE, Op.DESCRIBE)
        acls |= _allow(who, T, topics.directory(prefix), Op.READ, Op.DESCRIBE)
        if role is PartyRole.DTV:  # the supervisor reads every gateway's audit chain
            acls |= _allow(
                who,
                T,
                topics.audit_prefix(prefix),
                Op.READ,
                Op.DESCRIBE,
                pattern=PatternType.PREFIXED,
            )
            acls |= _allow(
                who, G, topics.verifier_group_prefix(prefix), Op.READ, pattern=PatternType.PREFIXED
            )
    return acls


def _ours(acl: Acl, prefix: str) -> bool:
    """An ACL this network manages: a party's, on a resource of this prefix."""
    return (
        acl.principal.startswith("User:")
        and acl.principal not in SUPER_USERS
        and acl.resource_name.startswith(prefix + ".")
    )


async def plan(transport: KafkaTransport, directory: Directory, layout: Layout) -> Plan:
    """What `apply` would change."""
    existing_topics = set(
        await transport.end_offsets([t.name for t in desired_topics(directory, layout)])
    )
    present = {tp.topic for tp in existing_topics}
    desired = desired_acls(directory, layout.prefix)
    current = {a for a in await describe_acls(transport) if _ours(a, layout.prefix)}
    return Plan(
        topics_to_create=[t for t in desired_topics(directory, layout) if t.name not in present],
        acls_to_add=sorted(desired - current),
        acls_to_remove=sorted(current - desired),
    )


async def apply(
    transport: KafkaTransport, directory: Directory, layout: Layout, *, dry_run: bool = False
) -> Plan:
    """Bring the cluster to the directory's topics and ACLs; idempotent."""
    todo = await plan(transport, directory, layout)
    if not dry_run:
        await transport.ensure_topics(todo.topics_to_create)
        await create_acls(transport, todo.acls_to_add)
        await delete_acls(transport, todo.acls_to_remove)
        await _until_in_force(transport, desired_acls(directory, layout.prefix), layout.prefix)
    return todo


async def _until_in_force(transport: KafkaTransport, desired: set[Acl], prefix: str) -> None:
    """ACL changes reach the brokers' authorizers through the metadata log, a moment after
    the controller took them: wait until the broker answering shows exactly the plan."""
    deadline = time.monotonic() + ACLS_IN_FORCE_TIMEOUT_S
    while {a for a in await describe_acls(transport) if _ours(a, prefix)} != desired:
        if time.monotonic() > deadline:
            raise TransportTimeout("the brokers did not show the new ACLs in time")
        await asyncio.sleep(0.1)


def acls_of(acls: Iterable[Acl], party: str) -> list[Acl]:
    return sorted(a for a in acls if a.principal == f"User:{party}")
