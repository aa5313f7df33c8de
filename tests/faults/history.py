"""A history of operations against the exchange, and its checker. Pure: no I/O, no clock.

The recorder takes three kinds of operation, as a back office and an operator see them:

- a **send**: who sent what (sender, recipients, case id, message type), the send's place in
  its case (``seq``), and its outcome — ``OK`` (the gateway acknowledged it with a message
  id), ``FAILED`` (the gateway said nothing was sent) or ``UNKNOWN`` (no answer, e.g. a
  timeout: it may or may not have been written);
- a **delivery**: a message appearing in a party's back-office inbox, in the order it was
  read (a message shown again before its acknowledgement went through is no new delivery —
  the reader records it once);
- a **dead letter**: an entry in a party's DLQ, with the message id when it is known.

After the final full read, `check` reports, each as an `Anomaly`:

| kind | meaning |
| --- | --- |
| LOST | an acknowledged send not delivered to one of its recipients |
| UNACCOUNTED | ... and not dead-lettered there either: dropped silently |
| DUPLICATE | a message delivered to the same back office more than once (any outcome), or a second message of an acknowledged send (a retry that sent anew) |
| ORDER | for one sender → recipient and case, acknowledged sends delivered out of send order |
| MISDELIVERED | an acknowledged message delivered to a party that is not a recipient |
| FAILED_DELIVERED | a message of a send the gateway said had failed was delivered after all |
| PHANTOM | a delivered message that no send (of any outcome) explains |
| PARTIAL | a send of unknown outcome delivered to some of its recipients, not all |

A send retried with its idempotency key is one send, recorded once with its final outcome: a
message of its route (sender, case, type, recipient) that is not the one it was acknowledged
with is a DUPLICATE — the retry sent it twice.

A send of unknown outcome may arrive or not: neither counts against the system — but at all of
its recipients or at none, since a send is one Kafka transaction over their inboxes. Its message
id is unknown, so a delivery is matched to it by (sender, case, type, recipient), at most one
delivered message per such send.
"""

from __future__ import annotations

import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class Outcome(StrEnum):
    OK = "ok"
    FAILED = "failed"
    UNKNOWN = "unknown"


class AnomalyKind(StrEnum):
    LOST = "lost"
    UNACCOUNTED = "unaccounted"
    DUPLICATE = "duplicate"
    ORDER = "order"
    MISDELIVERED = "misdelivered"
    FAILED_DELIVERED = "failed_delivered"
    PHANTOM = "phantom"
    PARTIAL = "partial"


@dataclass(frozen=True, slots=True)
class SendOp:
    sender: str
    recipients: tuple[str, ...]
    case_id: uuid.UUID
    message_type: str
    seq: int
    """The send's place among its case's sends (0, 1, ...), in the order they were issued."""
    outcome: Outcome
    message_id: uuid.UUID | None = None
    """Known for OK sends only: the gateway hands it out when it accepts the message."""
    detail: str = ""
    scenario: str = ""


@dataclass(frozen=True, slots=True)
class DeliveryOp:
    party: str
    message_id: uuid.UUID
    sender: str
    case_id: uuid.UUID
    message_type: str
    scenario: str = ""


@dataclass(frozen=True, slots=True)
class DeadLetterOp:
    party: str
    message_id: uuid.UUID | None
    reason: str


@dataclass(frozen=True, slots=True)
class Anomaly:
    kind: AnomalyKind
    party: str
    message_id: uuid.UUID | None
    case_id: uuid.UUID | None
    detail: str = ""
    scenario: str = ""

    def as_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind.value, "party": self.party, "scenario": self.scenario,
            "message_id": str(self.message_id) if self.message_id else None,
            "case_id": str(self.case_id) if self.case_id else None, "detail": self.detail,
        }  # fmt: skip


FAILING = frozenset(AnomalyKind)
"""Every kind fails a run: each one is a message lost, doubled, reordered or let through."""


@dataclass
class History:
    """The recorder: append operations as they happen (one event loop, no locking needed)."""

    sends: list[SendOp] = field(default_factory=list)
    deliveries: list[DeliveryOp] = field(default_factory=list)
    dead_letters: list[DeadLetterOp] = field(default_factory=list)
    scenario: str = ""
    """Tag for what is recorded from now on (the fault scenario running)."""

    def send(self, sender: str, recipients: tuple[str, ...], case_id: uuid.UUID,
             message_type: str, seq: int, outcome: Outcome, message_id: uuid.UUID | None = None,
             detail: str = "") -> None:  # fmt: skip
        if outcome is Outcome.OK and message_id is None:
            raise ValueError("an acknowledged send has a message id")
        self.sends.append(SendOp(sender, recipients, case_id, message_type, seq, outcome,
                                 message_id, detail, self.scenario))  # fmt: skip

    def delivered(self, party: str, message_id: uuid.UUID, sender: str, case_id: uuid.UUID,
                  message_type: str) -> None:  # fmt: skip
        self.deliveries.append(
            DeliveryOp(party, message_id, sender, case_id, message_type, self.scenario)
        )

    def dead_lettered(self, party: str, message_id: uuid.UUID | None, reason: str) -> None:
        self.dead_letters.append(DeadLetterOp(party, message_id, reason))


@dataclass(frozen=True)
class Verdict:
    anomalies: list[Anomaly]
    sends: Counter[str]
    """Sends by outcome."""
    deliveries: int
    dead_letters: Counter[str]
    """DLQ entries by reason."""
    unknown_delivered: int
    """Deliveries explained by a send of unknown outcome: allowed, shown for the record."""

    @property
    def counts(self) -> Counter[str]:
        return Counter(a.kind.value for a in self.anomalies)

    @property
    def ok(self) -> bool:
        return not any(a.kind in FAILING for a in self.anomalies)

    def as_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "sends": dict(self.sends),
            "deliveries": self.deliveries,
            "unknown_delivered": self.unknown_delivered,
            "dead_letters": dict(self.dead_letters),
            "anomalies": {k.value: self.counts.get(k.value, 0) for k in AnomalyKind},
            "examples": [a.as_json() for a in _examples(self.anomalies)],
        }


EXAMPLES_PER_KIND = 10
"""Anomalies of one kind listed in full in a report; the counts cover the rest."""


def _examples(anomalies: list[Anomaly]) -> list[Anomaly]:
    shown: Counter[AnomalyKind] = Counter()
    out = []
    for a in anomalies:
        if shown[a.kind] < EXAMPLES_PER_KIND:
            shown[a.kind] += 1
            out.append(a)
    return out


def check(history: History) -> Verdict:
    """Every anomaly of the module docstring's table in ``history``, after the final read."""
    acked = {
        s.message_id: s
        for s in history.sends
        if s.outcome is Outcome.OK and s.message_id is not None
    }
    anomalies: list[Anomaly] = []
    first: dict[tuple[str, uuid.UUID], DeliveryOp] = {}
    for d in history.deliveries:
        key = (d.party, d.message_id)
        if key in first:
            anomalies.append(Anomaly(AnomalyKind.DUPLICATE, d.party, d.message_id, d.case_id,
                                     f"from {d.sender}", d.scenario))  # fmt: skip
        else:
            first[key] = d
    anomalies += _missing(history, acked, first)
    anomalies += _misdelivered(acked, first)
    unexplained, unknown_delivered = _unexplained(history, acked, first)
    anomalies += unexplained
    anomalies += _order(history, acked, first)
    anomalies += _partial(history, acked, first)
    return Verdict(
        anomalies,
        Counter(s.outcome.value for s in history.sends),
        len(history.deliveries),
        Counter(e.reason for e in history.dead_letters),
        unknown_delivered,
    )


def _missing(history: History, acked: dict[uuid.UUID, SendOp],
             first: dict[tuple[str, uuid.UUID], DeliveryOp]) -> list[Anomaly]:  # fmt: skip
    dead = {(e.party, e.message_id) for e in history.dead_letters if e.message_id is not None}
    out = []
    for message_id, s in acked.items():
        for r in s.recipients:
            if (r, message_id) in first:
                continue
            out.append(Anomaly(AnomalyKind.LOST, r, message_id, s.case_id,
                               f"{s.message_type} from {s.sender}", s.scenario))  # fmt: skip
            if (r, message_id) not in dead:
                out.append(Anomaly(AnomalyKind.UNACCOUNTED, r, message_id, s.case_id,
                                   "neither delivered nor dead-lettered", s.scenario))  # fmt: skip
    return out


def _misdelivered(acked: dict[uuid.UUID, SendOp],
                  first: dict[tuple[str, uuid.UUID], DeliveryOp]) -> list[Anomaly]:  # fmt: skip
    return [
        Anomaly(
            AnomalyKind.MISDELIVERED,
            d.party,
            d.message_id,
            d.case_id,
            f"sent to {', '.join(s.recipients)}",
            d.scenario,
        )
        for (party, message_id), d in first.items()
        if (s := acked.get(message_id)) is not None and party not in s.recipients
    ]


_Route = tuple[str, uuid.UUID, str, str]
"""sender, case id, message type, recipient: what identifies a send whose id is unknown"""


def _unexplained(history: History, acked: dict[uuid.UUID, SendOp],
                 first: dict[tuple[str, uuid.UUID], DeliveryOp]) -> tuple[list[Anomaly], int]:  # fmt: skip
    """Deliveries of messages no acknowledged send names: each must be explained by a send
    of unknown outcome to that party (one message each), else it is FAILED_DELIVERED (only
    failed sends fit), DUPLICATE (a send acknowledged with another message id fits: it was
    sent twice) or PHANTOM (nothing fits)."""
    unknown: Counter[_Route] = Counter()
    failed: set[_Route] = set()
    acknowledged: set[_Route] = set()
    for s in history.sends:
        for r in s.recipients:
            key = (s.sender, s.case_id, s.message_type, r)
            if s.outcome is Outcome.UNKNOWN:
                unknown[key] += 1
            elif s.outcome is Outcome.FAILED:
                failed.add(key)
            else:
                acknowledged.add(key)
    out, explained = [], 0
    for (party, message_id), d in first.items():
        if message_id in acked:
            continue
        key = (d.sender, d.case_id, d.message_type, party)
        if unknown[key] > 0:
            unknown[key] -= 1
            explained += 1
        elif key in failed:
            out.append(Anomaly(AnomalyKind.FAILED_DELIVERED, party, message_id, d.case_id,
                               f"{d.message_type} from {d.sender}: its send failed", d.scenario))  # fmt: skip
        elif key in acknowledged:
            out.append(Anomaly(AnomalyKind.DUPLICATE, party, message_id, d.case_id,
                               f"{d.message_type} from {d.sender}: a second message of an "
                               "acknowledged send", d.scenario))  # fmt: skip
        else:
            out.append(Anomaly(AnomalyKind.PHANTOM, party, message_id, d.case_id,
                               f"{d.message_type} from {d.sender}: never sent", d.scenario))  # fmt: skip
    return out, explained


def _order(history: History, acked: dict[uuid.UUID, SendOp],
           first: dict[tuple[str, uuid.UUID], DeliveryOp]) -> list[Anomaly]:  # fmt: skip
    """Per (sender, recipient, case): the acknowledged sends' ``seq`` must rise in delivery
    order. A delivery with a lower ``seq`` than one delivered before it is a violation."""
    highest: dict[tuple[str, str, uuid.UUID], int] = defaultdict(lambda: -1)
    out = []
    for d in history.deliveries:
        s = acked.get(d.message_id)
        if s is None or first.get((d.party, d.message_id)) is not d or d.party not in s.recipients:
            continue  # not acknowledged, a duplicate, or misdelivered: reported elsewhere
        stream = (s.sender, d.party, s.case_id)
        if s.seq < highest[stream]:
            out.append(Anomaly(AnomalyKind.ORDER, d.party, d.message_id, s.case_id,
                               f"send {s.seq} from {s.sender} after send {highest[stream]}", s.scenario))  # fmt: skip
        highest[stream] = max(highest[stream], s.seq)
    return out


def _partial(history: History, acked: dict[uuid.UUID, SendOp],
             first: dict[tuple[str, uuid.UUID], DeliveryOp]) -> list[Anomaly]:  # fmt: skip
    """Sends of unknown outcome that reached some of their recipients and not the others.
    Such a send is matched to its deliveries by (sender, case, type); where two sends not
    acknowledged share those, which delivery is whose is ambiguous and they are left out."""
    Route = tuple[str, uuid.UUID, str]
    unacked: Counter[Route] = Counter(
        (s.sender, s.case_id, s.message_type) for s in history.sends if s.outcome is not Outcome.OK
    )
    reached: dict[Route, set[str]] = defaultdict(set)
    for (party, message_id), d in first.items():
        if message_id not in acked:
            reached[(d.sender, d.case_id, d.message_type)].add(party)
    out = []
    for s in history.sends:
        route = (s.sender, s.case_id, s.message_type)
        if s.outcome is not Outcome.UNKNOWN or unacked[route] > 1:
            continue
        got = reached.get(route, set()) & set(s.recipients)
        missing = [r for r in s.recipients if r not in got]
        if got and missing:
            out.append(Anomaly(AnomalyKind.PARTIAL, ", ".join(missing), None, s.case_id,
                               f"{s.message_type} from {s.sender} reached {', '.join(sorted(got))} only",
                               s.scenario))  # fmt: skip
    return out
