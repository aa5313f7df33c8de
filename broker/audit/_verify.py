"""Verifying the audit stream, as DT&V does: pure — records, directory and clock in, a report
out.

Per gateway chain: every event signed by that gateway's key (alone, or in a batch whose one
signature is checked once: docs/AUDIT.md); sequence numbers without gaps,
forks or reordering; each ``prev_hash`` the hash of the event before; each checkpoint the
RFC 6962 tree head over the events before it (and so consistent with the heads before it).
Across chains: every SENT has, at each recipient, a DELIVERED or REJECTED of the same
sender, message id and envelope SHA-256 within a grace period, and every receipt sent was
received — so a lost or suppressed message shows. Matching by message id alone would let a
co-recipient hide a suppression: it reuses the id for a message of its own, the victim's
gateway handles that one, and a DELIVERED with the right id stands where the real message's
should. An event of the same sender and id about other bytes is ENVELOPE_MISMATCH; a
message refused as a REPLAY where nothing of that sender and id was accepted first is
SUPPRESSED (what a gateway keyed by id alone did to the real message); an id
used by two senders is MESSAGE_ID_REUSED, a notice (ids are the sender's: the protocol
allows it, and delivers both), which names what happened without making the report unclean.

When a message is judged (LOST, RECEIPT_LOST): only once the chain that should answer it is
known past the message's time plus the grace period (``horizons``: per party, how far its
chain is known, by event time). `lvvx audit verify` reads every topic to its end now, so for
it every chain is known up to ``now``; `lvvx audit follow` knows each chain only as far as it
has read it (`broker.audit._follow`), and a message whose answering chain it has not read
that far yet is pending, not lost. Each finding about a message names both its parties: the
gateway whose chain holds the event (``gateway``) and the other party (``peer``); a message
missing at two recipients is two findings, so each resolves on its own.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from broker.audit import _events as ev
from broker.crypto import Directory
from broker.merkle import Frontier
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
    ENVELOPE_MISMATCH = "ENVELOPE_MISMATCH"  # other bytes handled under that sender's id
    SUPPRESSED = "SUPPRESSED"  # refused as a replay of a message the recipient never accepted
    RECEIPT_LOST = "RECEIPT_LOST"  # a receipt sent but never received
    MESSAGE_ID_REUSED = "MESSAGE_ID_REUSED"  # two senders used one message id (a notice)


NOTICES = frozenset({Finding.MESSAGE_ID_REUSED})
"""Findings that describe what happened without being a fault of the chains or a loss."""

_ABOUT_MESSAGES = frozenset({Finding.LOST, Finding.RECEIPT_LOST, Finding.ENVELOPE_MISMATCH,
                             Finding.SUPPRESSED, *NOTICES})  # fmt: skip
"""Findings about messages, not about the chain they were found in."""


FindingKey = tuple[str, str | None, int | None, uuid.UUID | None, str | None]
"""A finding's kind, gateway, seq, message id and peer (`Issue.key`)."""


@dataclass(frozen=True, slots=True)
class Issue:
    kind: Finding
    gateway: str | None
    detail: str
    seq: int | None = None
    message_id: uuid.UUID | None = None
    peer: str | None = None
    """The other party of a finding about a message: the recipient of a SENT, the receiver
    of a receipt (the message's sender)."""

    @property
    def key(self) -> FindingKey:
        """What makes two findings the same one, pass after pass (`follow` reports each
        once, and again as resolved when it is gone): not the wording of its detail."""
        return (self.kind.value, self.gateway, self.seq, self.message_id, self.peer)

    @property
    def notice(self) -> bool:
        return self.kind in NOTICES

    def as_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind.value, "gateway": self.gateway, "seq": self.seq,
            "message_id": str(self.message_id) if self.message_id else None, "peer": self.peer,
            "detail": self.detail,
            "severity": "notice" if self.notice else "error",
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
    latest: datetime | None = None
    """The latest event time in the chain (`follow`: how far the chain is known)."""

    def add(self, event: AuditEvent, value: bytes) -> None:
        self.events[event.seq] = (event, value)
        self.size = max(self.size, event.seq + 1)
        if self.latest is None or event.occurred_at > self.latest:
            self.latest = event.occurred_at

    def leaves(self) -> list[bytes] | None:
        """Leaf hashes of the whole chain, or None if it has gaps."""
        if len(self.events) != self.size:
            return None
        return [ev.chain_leaf(*self.events[s]) for s in range(self.size)]


@dataclass
class Report:
    chains: dict[str, Chain]
    issues: list[Issue]
    sent: int = 0
    accounted: int = 0
    pending: int = 0
    horizons: dict[str, datetime] = field(default_factory=dict)
    """Per party, how far its chain was known when the messages were judged."""

    @property
    def clean(self) -> bool:
        """No finding but notices."""
        return not self.errors

    @property
    def errors(self) -> list[Issue]:
        return [i for i in self.issues if not i.notice]

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
                  grace: timedelta = DEFAULT_GRACE, batches: ev.VerifiedBatches | None = None,
                  former: Mapping[str, Directory] | None = None,
                  horizons: Mapping[str, datetime] | None = None) -> Report:  # fmt: skip
    """The report on ``records``; ``batches`` remembers batch signatures verified before
    (`follow` keeps one across its passes), else a fresh one per call. ``former`` gives, for
    a party ``directory`` no longer lists, the newest directory that did: its events are
    checked with the keys it had there (`follow`: a removed party's chain stays verified).
    ``horizons``: see `judge`."""
    taken = Taken()
    taken.take(records, directory, former or {}, batches or ev.VerifiedBatches())
    return judge(taken, now=now, grace=grace, horizons=horizons)


@dataclass
class Taken:
    """The records read so far, each decoded and its signature checked once: what `take`
    found stays, so `follow` takes only the records new since its last pass (decoding and
    signatures were three quarters of a pass). Taking records in topic order, in steps,
    gives what taking them at once does."""

    chains: dict[str, Chain] = field(default_factory=dict)
    issues: list[Issue] = field(default_factory=list)

    def take(self, records: list[Record], directory: Directory,
             former: Mapping[str, Directory], batches: ev.VerifiedBatches) -> None:  # fmt: skip
        for record in records:  # topic order: per partition, offset order
            _take(record, directory, former, self.chains, self.issues, batches)


def judge(taken: Taken, *, now: datetime, grace: timedelta = DEFAULT_GRACE,
          horizons: Mapping[str, datetime] | None = None) -> Report:  # fmt: skip
    """The report on what was taken. A message is judged against a chain only once that
    chain is known past the message's time plus ``grace``: ``horizons[party]`` says how far
    it is known; without ``horizons`` (every topic read to its end now), and for a party
    ``horizons`` does not name (a chain nobody reads: no party of the directory), up to
    ``now``."""
    issues = list(taken.issues)
    chains = {g: Chain(g, dict(c.events), size=c.size, latest=c.latest)
              for g, c in taken.chains.items()}  # fmt: skip
    for chain in chains.values():
        _gaps(chain, issues)
        _links(chain, issues)
        _checkpoints(chain, issues)
    known = dict(horizons) if horizons is not None else {}
    report = Report(chains, issues, horizons=known)
    _match(report, lambda party: known.get(party, now), grace)
    for issue in issues:
        if issue.gateway in chains and issue.kind not in _ABOUT_MESSAGES:
            chains[issue.gateway].ok = False
    return report


def _take(record: Record, directory: Directory, former: Mapping[str, Directory],
          chains: dict[str, Chain], issues: list[Issue], batches: ev.VerifiedBatches) -> None:  # fmt: skip
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
    if gateway not in directory.parties:
        directory = former.get(gateway, directory)
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
            ev.verify(event, record.value, public, batches)
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
        # one event is what the chain hash covers: a V2 event is its signed part
        known, known_value = chain.events[event.seq]
        if ev.event_hash(known, known_value) != ev.event_hash(event, record.value):
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
            expected = ev.event_hash(*before)
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
            frontier.append(ev.chain_leaf(event, value))


@dataclass(frozen=True, slots=True)
class _Seen:
    """One DELIVERED or REJECTED event, as far as matching needs it."""

    digest: bytes | None
    replay: bool  # refused as a REPLAY


Handled = dict[tuple[str, uuid.UUID], list[_Seen]]
"""At one gateway: (sender, message id) → what it did with envelopes of that pair."""


def _match(report: Report, known: Callable[[str], datetime], grace: timedelta) -> None:
    """Every SENT accounted for at each recipient; every receipt sent, received. What a
    party did not do is judged once its chain is ``known(party)`` past the grace."""
    handled: dict[str, Handled] = defaultdict(lambda: defaultdict(list))
    refused_unread: dict[str, set[bytes]] = defaultdict(set)  # refused before the sender was known
    receipts_in: dict[str, set[tuple[uuid.UUID, str]]] = defaultdict(set)
    senders_of: dict[uuid.UUID, set[str]] = defaultdict(set)
    for gateway, chain in report.chains.items():
        for event, _ in chain.events.values():
            if event.action in (AuditAction.DELIVERED, AuditAction.REJECTED):
                if event.message_id is not None and event.sender:
                    replay = event.action is AuditAction.REJECTED and event.reason == "REPLAY"
                    handled[gateway][(event.sender, event.message_id)].append(
                        _Seen(event.envelope_sha256, replay)
                    )
                    senders_of[event.message_id].add(event.sender)
                elif event.envelope_sha256 is not None:
                    refused_unread[gateway].add(event.envelope_sha256)
            elif event.action is AuditAction.SENT and event.message_id is not None:
                senders_of[event.message_id].add(gateway)
            elif event.action is AuditAction.RECEIPT_RECEIVED and event.sender and event.message_id:
                receipts_in[gateway].add((event.message_id, event.sender))
    for gateway, chain in sorted(report.chains.items()):
        for event, _ in sorted(chain.events.values(), key=lambda e: e[0].seq):
            if event.message_id is None:
                continue
            due = event.occurred_at + grace
            if event.action is AuditAction.SENT:
                _match_sent(report, gateway, event, handled, refused_unread, known, due)
            elif event.action is AuditAction.RECEIPT_SENT:
                for to in event.recipients:
                    if (event.message_id, gateway) not in receipts_in[to] and known(to) > due:
                        report.issues.append(Issue(Finding.RECEIPT_LOST, gateway, f"receipt never received by {to}",
                                                   event.seq, event.message_id, to))  # fmt: skip
    for message_id, senders in sorted(senders_of.items()):
        if len(senders) > 1:
            report.issues.append(Issue(Finding.MESSAGE_ID_REUSED, None,
                                       f"message id used by {len(senders)} senders: {', '.join(sorted(senders))}",
                                       None, message_id))  # fmt: skip


def _match_sent(report: Report, gateway: str, event: AuditEvent, handled: dict[str, Handled],
                refused_unread: dict[str, set[bytes]], known: Callable[[str], datetime],
                due: datetime) -> None:  # fmt: skip
    """One SENT against the events of each recipient: one finding per recipient at fault."""
    assert event.message_id is not None
    report.sent += 1
    digest, pair = event.envelope_sha256, (gateway, event.message_id)
    found: list[Issue] = []
    waiting = False
    for r in event.recipients:
        seen = handled[r].get(pair, [])
        decided = [s for s in seen if not s.replay]  # a verdict on an envelope of the pair
        if any(s.digest == digest for s in decided):
            continue
        if decided:
            found.append(Issue(Finding.ENVELOPE_MISMATCH, gateway,
                               f"{r} handled other envelope bytes under this sender's id",
                               event.seq, event.message_id, r))  # fmt: skip
        elif seen:  # only REPLAY refusals: a replay of nothing this sender had accepted
            found.append(Issue(Finding.SUPPRESSED, gateway,
                               f"refused as a replay at {r}, which had accepted nothing of this sender and id",
                               event.seq, event.message_id, r))  # fmt: skip
        elif digest is not None and digest in refused_unread[r]:
            continue
        elif known(r) > due:  # its chain is known past the grace: no answer came
            found.append(Issue(Finding.LOST, gateway, f"never delivered or refused at {r}",
                               event.seq, event.message_id, r))  # fmt: skip
        else:
            waiting = True
    report.issues += found
    if not found and not waiting:
        report.accounted += 1
    elif not found:
        report.pending += 1
