"""A gateway's side of the audit stream: its hash chain of signed events.

The gateway appends events in the same atomic write as the records they describe (the
message in the recipients' inboxes, the receipt, the dead letter), so an event exists if
and only if what it records happened, and nothing is sent or delivered without its event
(fail closed, as X-Road and FSC do). The chain only advances once that write succeeded:
`prepare` makes the records, `commit` takes them as the new head.

The events of one `prepare` — one atomic write — are signed together: one Ed25519 signature
over the Merkle root of the batch, each event carrying its path to it (V2, docs/AUDIT.md), so
a message's few events cost one signature, not one each. Since that signature depends on the
whole batch, each event's chain hash and checkpoint leaf are over its signed part.

Every `CHECKPOINT_EVERY_EVENTS` events, or `CHECKPOINT_EVERY_S` seconds with new events, the
gateway appends a CHECKPOINT event: the RFC 6962 tree head over all its events so far.

After a restart the head is recovered from the topic, never from memory or a local file:
the topic is what the supervisor reads.
"""

from __future__ import annotations

import hashlib
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from broker.audit import _events as ev
from broker.crypto import SigningKey, VerifyKey
from broker.merkle import Frontier, leaf_hash
from broker.models import AuditAction, AuditCheckpoint, AuditOutcome
from broker.transport import OutgoingRecord, Transport

CHECKPOINT_EVERY_EVENTS = 64
"""A tree head at least every 64 events: proofs stay short-lived and cheap to check."""

CHECKPOINT_EVERY_S = 10.0
"""…and at most 10 s after the last new event, so a quiet gateway's events get covered."""


@dataclass(frozen=True, slots=True)
class EventSpec:
    """What an event says, before the chain gives it a place and a signature."""

    action: AuditAction
    outcome: AuditOutcome = AuditOutcome.OK
    message_id: uuid.UUID | None = None
    message_type: str | None = None
    sender: str | None = None
    recipients: tuple[str, ...] = ()
    case_id: uuid.UUID | None = None
    envelope_sha256: bytes | None = None
    reason: str | None = None
    traceparent: str | None = None
    """This step's W3C traceparent (canonical: `broker.tracecontext`)."""
    parent_span_id: str | None = None
    """The span id of the step that caused this one, if known."""


@dataclass
class _Head:
    next_seq: int = 0
    head_hash: bytes = ev.GENESIS_HASH
    frontier: Frontier = field(default_factory=Frontier)
    since_checkpoint: int = 0


@dataclass(frozen=True)
class Pending:
    """Records of events made but not yet known to be written."""

    records: list[OutgoingRecord]
    leaves: list[bytes]
    last_hash: bytes
    since_checkpoint: int


class AuditChain:
    def __init__(
        self, party: str, key: SigningKey, topic: str, clock: Callable[[], datetime], *,
        key_at: Callable[[datetime], SigningKey] | None = None,
        own_keys: Callable[[], Sequence[VerifyKey]] | None = None,
    ) -> None:  # fmt: skip
        """``key_at`` chooses the signing key for a moment (a gateway's key ring, which
        changes keys at a rotation's activation); without it every event is signed with
        ``key``. ``own_keys`` are every public key the party's events may be signed with,
        old ones included: `recover` takes up the chain whichever signed its last event."""
        self.party = party
        self._key = key
        self._key_at = key_at
        self._own_keys = own_keys
        self.topic = topic
        self._clock = clock
        self._head = _Head()
        self._last_checkpoint = time.monotonic()

    @property
    def size(self) -> int:
        return self._head.next_seq

    async def recover(self, transport: Transport) -> None:
        """Take up the chain where the topic says it ends."""
        head = _Head()
        publics = [self._key.public_key(), *(self._own_keys() if self._own_keys else ())]
        batches = ev.VerifiedBatches()
        mine = [r for r in await transport.read_topic(self.topic) if r.key == self.party.encode()]
        for record in mine:
            try:
                event = ev.decode(record.value)
            except ev.BadAuditEvent:
                continue  # garbage: the verifier reports it, the chain goes on
            if not any(ev.signed_by(event, record.value, p, batches) for p in publics):
                continue  # a forgery: the verifier reports it, the chain goes on
            if (
                event.gateway != self.party
                or event.seq != head.next_seq
                or event.prev_hash != head.head_hash
            ):
                continue  # a copy, or not the next link of our own chain
            head.frontier.append(ev.chain_leaf(event, record.value))
            head.next_seq, head.head_hash = event.seq + 1, ev.event_hash(event, record.value)
            head.since_checkpoint = (
                0 if event.action is AuditAction.CHECKPOINT else head.since_checkpoint + 1
            )
        self._head = head

    def prepare(self, specs: Sequence[EventSpec], *, checkpoint: bool = False) -> Pending:
        """Events for ``specs``, with a checkpoint after every `CHECKPOINT_EVERY_EVENTS`
        events (also inside a large batch) and at the end if asked for — all of them signed
        as one batch (V2): each event's signed part is made and chained first, then the batch
        is signed once."""
        h = self._head
        first = seq = h.next_seq
        prev = h.head_hash
        frontier = h.frontier.copy()
        signed: list[bytes] = []
        leaves: list[bytes] = []
        since = h.since_checkpoint
        now = self._clock()

        def append(spec: EventSpec, head: AuditCheckpoint | None) -> None:
            nonlocal seq, prev
            part = ev.unsigned_part(self._event(seq, prev, now, spec, head))
            signed.append(part)
            leaves.append(leaf_hash(part))  # V2: leaf and chain hash over the signed part
            frontier.append(leaves[-1])
            seq, prev = seq + 1, hashlib.sha256(part).digest()

        for spec in specs:
            append(spec, None)
            since += 1
            if since >= CHECKPOINT_EVERY_EVENTS:
                append(
                    EventSpec(AuditAction.CHECKPOINT),
                    AuditCheckpoint(tree_size=frontier.size, root_hash=frontier.root()),
                )
                since = 0
        if checkpoint and since:
            append(
                EventSpec(AuditAction.CHECKPOINT),
                AuditCheckpoint(tree_size=frontier.size, root_hash=frontier.root()),
            )
            since = 0
        key = self._key_at(now) if self._key_at is not None else self._key
        encoded = ev.sign_batch(signed, self.party, first, key) if signed else []
        records = [self._record(e, first + i) for i, e in enumerate(encoded)]
        return Pending(records, leaves, prev, since)

    def commit(self, pending: Pending) -> None:
        """The records of ``pending`` were written: they are the chain now."""
        for leaf in pending.leaves:
            self._head.frontier.append(leaf)
        self._head.next_seq += len(pending.leaves)
        self._head.head_hash = pending.last_hash
        if pending.since_checkpoint == 0 and pending.leaves:
            self._last_checkpoint = time.monotonic()  # (a checkpoint was among the records)
        self._head.since_checkpoint = pending.since_checkpoint

    @property
    def uncovered(self) -> int:
        """Events since the last checkpoint."""
        return self._head.since_checkpoint

    def checkpoint_due(self) -> bool:
        """New events have waited `CHECKPOINT_EVERY_S` for a tree head."""
        return (
            self._head.since_checkpoint > 0
            and time.monotonic() - self._last_checkpoint >= CHECKPOINT_EVERY_S
        )

    def _event(self, seq: int, prev: bytes, now: datetime, spec: EventSpec,
               checkpoint: AuditCheckpoint | None) -> bytes:  # fmt: skip
        """The event encoded with an empty signature."""
        # the record straight from our own values (no model validation on this hot path);
        # its fields are those of nl.lvv.v1.AuditEvent, in order
        record = {
            "event_id": uuid.uuid4(), "gateway": self.party, "seq": seq, "prev_hash": prev,
            "action": spec.action.value, "occurred_at": now, "message_id": spec.message_id,
            "message_type": spec.message_type, "sender": spec.sender, "recipients": list(spec.recipients),
            "case_id": spec.case_id, "envelope_sha256": spec.envelope_sha256, "outcome": spec.outcome.value,
            "reason": spec.reason, "checkpoint": checkpoint.to_avro() if checkpoint else None,
            "traceparent": spec.traceparent, "parent_span_id": spec.parent_span_id, "signature": b"",
        }  # fmt: skip
        return ev.encode_record(record)

    def _record(self, encoded: bytes, seq: int) -> OutgoingRecord:
        """Keyed by gateway: one gateway's chain stays in one partition, in order."""
        return OutgoingRecord(
            self.topic, encoded, self.party.encode(), (("lvv-audit-seq", str(seq).encode()),)
        )
