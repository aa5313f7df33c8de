"""Verifying the audit stream, as DT&V does: pure — records, directory and clock in, a report
out.

Per gateway chain: every event signed by that gateway's key; sequence numbers without gaps,
forks or reordering; each ``prev_hash`` the hash of the event before; each checkpoint the
RFC 6962 tree head over the events before it (and so consistent with the heads before it).
Across chains: every SENT has, at each recipient, a DELIVERED or REJECTED within a grace
period, and every receipt sent was received — so a lost or suppressed message shows.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from broker._merkle import Frontier, leaf_hash
from broker.audit import _events as ev
from broker.crypto import Directory
from broker.models import AuditAction, AuditEvent
from broker.transport import Record

DEFAULT_GRACE = timedelta(seconds=60)
"""How long a message may take from SENT to DELIVERED/REJECTED before it counts as lost."""


class Finding(StrEnum):
    BAD_EVENT = "BAD_EVENT"  # a record that is not an audit event
    UNKNOWN_GATEWAY = "UNKNOWN_GATEWAY"  # an event of a party not in the directory
    BAD_SIGNATURE = "BAD_SIGNATURE"  # edited or forged: not signed by the gateway
    GAP = "GAP"  # events missing from a chain
    REORDER = "REORDER"  # an event after one with a higher sequence number
    FORK = "FORK"  # two different events with one sequence number
    BROKEN_LINK = "BROKEN_LINK"  # prev_hash is not the hash of the event before
    BAD_CHECKPOINT = "BAD_CHECKPOINT"  # a tree head that does not match the events
    LOST = "LOST"  # SENT, but never delivered or refused at a recipient
    RECEIPT_LOST = "RECEIPT_LOST"  # a receipt sent but never received


@dataclass(frozen=True, slots=True)
class Issue:
    kind: Finding
    gateway: str | None
    detail: str
    seq: int | None = None
    message_id: uuid.UUID | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind.value, "gateway": self.gateway, "seq": self.seq,
            "message_id": str(self.message_id) if self.message_id else None, "detail": self.detail,
        }  # fmt: skip


@dataclass
class Chain:
    """One gateway's events, as found on the topic (only those with a valid signature)."""

    gateway: str
    events: dict[int, tuple[AuditEvent, bytes]] = field(
        default_factory=dict
    )  # seq → (event, bytes)
    checkpoints: int = 0
    ok: bool = True
    size: int = 0
    """One past the highest sequence number seen (kept as events are added: a chain of
    tens of thousands of events must not be scanned per event)."""

    def add(self, event: AuditEvent, value: bytes) -> None:
        self.events[event.seq] = (event, value)
        self.size = max(self.size, event.seq + 1)

    def leaves(self) -> list[bytes] | None:
        """Leaf hashes of the whole chain, or None if it has gaps."""
        if len(self.events) != self.size:
            return None
        return [leaf_hash(self.events[s][1]) for s in range(self.size)]


@dataclass
class Report:
    chains: dict[str, Chain]
    issues: list[Issue]
    sent: int = 0
    accounted: int = 0
    pending: int = 0

    @property
    def clean(self) -> bool:
        return not self.issues

    def as_json(self) -> dict[str, Any]:
        return {
            "clean": self.clean,
            "chains": {
                g: {"events": len(c.events), "checkpoints": c.checkpoints, "ok": c.ok}
                for g, c in sorted(self.chains.items())
            },
            "messages": {"sent": self.sent, "accounted": self.accounted, "pending": self.pending},
            "findings": [i.as_json() for i in self.issues],
        }


def verify_stream(records: list[Record], directory: Directory, *, now: datetime,
                  grace: timedelta = DEFAULT_GRACE) -> Report:  # fmt: skip
    issues: list[Issue] = []
    chains: dict[str, Chain] = {}
    for record in records:  # topic order: per partition, offset order
        _take(record, directory, chains, issues)
    for chain in chains.values():
        _gaps(chain, issues)
        _links(chain, issues)
        _checkpoints(chain, issues)
    report = Report(chains, issues)
    _match(report, now, grace)
    for issue in issues:
        if issue.gateway in chains and issue.kind not in (Finding.LOST, Finding.RECEIPT_LOST):
            chains[issue.gateway].ok = False
    return report


def _take(
    record: Record, directory: Directory, chains: dict[str, Chain], issues: list[Issue]
) -> None:
    try:
        event = ev.decode(record.value)
    except ev.BadAuditEvent:
        issues.append(
            Issue(
                Finding.BAD_EVENT,
                None,
                f"record {record.partition}/{record.offset} does not decode",
            )
        )
        return
    gateway = event.gateway
    in_own_topic = record.topic.endswith(f".audit.{gateway}") and record.key == gateway.encode()
    if gateway not in directory.parties or not in_own_topic:
        issues.append(
            Issue(
                Finding.UNKNOWN_GATEWAY,
                gateway,
                "not a party of the directory, or in another gateway's topic",
                event.seq,
            )
        )
        return
    keys = [k for k in directory.parties[gateway].signing_keys]
    signed = False
    for k in keys:
        public = directory.signing_key(gateway, k.key_id, event.occurred_at)
        if public is None:
            continue
        try:
            ev.verify(event, public)
            signed = True
            break
        except ev.BadAuditEvent:
            continue
    if not signed:
        issues.append(
            Issue(
                Finding.BAD_SIGNATURE,
                gateway,
                "not signed by the gateway (edited or forged)",
                event.seq,
            )
        )
        return
    chain = chains.setdefault(gateway, Chain(gateway))
    if event.seq in chain.events:
        if chain.events[event.seq][1] != record.value:
            issues.append(
                Issue(
                    Finding.FORK,
                    gateway,
                    "two different events with this sequence number",
                    event.seq,
                )
            )
        return  # an identical copy (a retried write) is harmless
    if event.seq < chain.size:
        issues.append(Issue(Finding.REORDER, gateway, f"after event {chain.size - 1}", event.seq))
    chain.add(event, record.value)


def _gaps(chain: Chain, issues: list[Issue]) -> None:
    """Sequence numbers missing from the chain, found after all of it was read: an event
    that merely came late is a reorder, not a gap."""
    runs: list[list[int]] = []
    for seq in sorted(set(range(chain.size)) - set(chain.events)):
        if runs and runs[-1][-1] == seq - 1:
            runs[-1].append(seq)
        else:
            runs.append([seq])
    for run in runs:
        label = f"{run[0]}..{run[-1]}" if len(run) > 1 else str(run[0])
        issues.append(Issue(Finding.GAP, chain.gateway, f"events {label} missing", run[-1] + 1))


def _links(chain: Chain, issues: list[Issue]) -> None:
    for seq, (event, _) in sorted(chain.events.items()):
        before = chain.events.get(seq - 1)
        if seq == 0:
            expected = ev.GENESIS_HASH
        elif before is None:
            continue  # the gap is reported already
        else:
            expected = ev.event_hash(before[1])
        if event.prev_hash != expected:
            issues.append(
                Issue(
                    Finding.BROKEN_LINK,
                    chain.gateway,
                    "prev_hash is not the hash of the event before",
                    seq,
                )
            )


def _checkpoints(chain: Chain, issues: list[Issue]) -> None:
    """Each checkpoint's tree head against the events before it, in one pass over the chain:
    the heads of its prefixes come from a `Frontier` (O(log n) per event), not from a tree
    built per checkpoint, which made verifying a long chain quadratic. Two heads that each
    match the events they cover are consistent with each other by construction, so with the
    whole chain at hand no consistency proof is needed."""
    complete = len(chain.events) == chain.size  # with a gap the heads cannot be recomputed
    frontier = Frontier()
    for seq, (event, value) in sorted(chain.events.items()):
        if event.action is AuditAction.CHECKPOINT and event.checkpoint is not None:
            chain.checkpoints += 1
            size, head = event.checkpoint.tree_size, event.checkpoint.root_hash
            if size != seq:
                issues.append(Issue(Finding.BAD_CHECKPOINT, chain.gateway,
                                    f"covers {size} events, not the {seq} before it", seq))  # fmt: skip
            elif complete and frontier.root() != head:
                issues.append(Issue(Finding.BAD_CHECKPOINT, chain.gateway,
                                    "tree head does not match the events", seq))  # fmt: skip
        if complete:
            frontier.append(leaf_hash(value))


def _match(report: Report, now: datetime, grace: timedelta) -> None:
    """Every SENT accounted for at each recipient; every receipt sent, received."""
    handled: dict[str, set[uuid.UUID]] = defaultdict(set)
    receipts_in: dict[str, set[tuple[uuid.UUID, str]]] = defaultdict(set)
    for gateway, chain in report.chains.items():
        for event, _ in chain.events.values():
            if event.message_id is None:
                continue
            if event.action in (AuditAction.DELIVERED, AuditAction.REJECTED):
                handled[gateway].add(event.message_id)
            elif event.action is AuditAction.RECEIPT_RECEIVED and event.sender:
                receipts_in[gateway].add((event.message_id, event.sender))
    for gateway, chain in sorted(report.chains.items()):
        for event, _ in sorted(chain.events.values(), key=lambda e: e[0].seq):
            if event.message_id is None:
                continue
            overdue = now - event.occurred_at > grace
            if event.action is AuditAction.SENT:
                report.sent += 1
                missing = [r for r in event.recipients if event.message_id not in handled[r]]
                if not missing:
                    report.accounted += 1
                elif not overdue:
                    report.pending += 1
                else:
                    report.issues.append(Issue(Finding.LOST, gateway, f"never delivered or refused at {', '.join(missing)}",
                                               event.seq, event.message_id))  # fmt: skip
            elif event.action is AuditAction.RECEIPT_SENT and overdue:
                for to in event.recipients:
                    if (event.message_id, gateway) not in receipts_in[to]:
                        report.issues.append(Issue(Finding.RECEIPT_LOST, gateway, f"receipt never received by {to}",
                                                   event.seq, event.message_id))  # fmt: skip
