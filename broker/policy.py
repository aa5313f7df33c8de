"""Who may send which message to whom: one table, checked when sealing and when opening.

Rules, from the case flow of the 2018 agreement (DESIGN §1):

- the municipality runs the local LVV: it opens cases, sets scenarios, asks COA for a
  transfer, escalates and closes; DT&V (and IND) are told of every intake;
- IND and DT&V deliver dossiers to the local partners (municipality, NGO);
- the NGO records the person's answer; the municipality may record it where no NGO guides;
- any local partner or IND/DT&V may escalate to the national desk, which answers all of them;
- AVIM reports identity and public-order findings; COA answers transfer requests;
- every party confirms receipt of what it got (DeliveryReceipt), to whoever sent it: a
  receipt may go only to a role that may send the receipting role something.

A message type missing from the table (the audit event, the directory, the envelope itself)
may not travel inside an envelope at all.

Attachments (docs/ENVELOPE.md §11): the messages that carry documents — a dossier (scanned
identity papers, decisions, medical advice), AVIM's identity report (scans, document
examinations), a scenario decision (the plan, the consultation's report) and an escalation
(what the desk needs to decide) — may reference attachments, each type within its own
count and total size (`ATTACHMENT_RULES`); no other type has the field.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from broker.errors import PolicyDenied
from broker.limits import (
    MAX_ATTACHMENT_BYTES,
    MAX_ATTACHMENT_BYTES_PER_MESSAGE,
    MAX_ATTACHMENTS_PER_MESSAGE,
)
from broker.models import AttachmentLocation, AttachmentRef, AvroModel, PartyRole

R = PartyRole
_ALL = frozenset({R.MUNICIPALITY, R.NGO, R.IND, R.DTV, R.AVIM, R.COA, R.ESCALATION})
_LOCAL = frozenset({R.MUNICIPALITY, R.NGO})


@dataclass(frozen=True, slots=True)
class Rule:
    senders: frozenset[PartyRole]
    recipients: frozenset[PartyRole]


POLICY: dict[str, Rule] = {
    "nl.lvv.v1.IntakeRegistered": Rule(
        frozenset({R.MUNICIPALITY}), frozenset({R.DTV, R.IND, R.NGO})
    ),
    "nl.lvv.v1.DossierDelivered": Rule(frozenset({R.IND, R.DTV}), _LOCAL),
    "nl.lvv.v1.ScenarioDecision": Rule(
        frozenset({R.MUNICIPALITY}), frozenset({R.NGO, R.IND, R.DTV, R.AVIM, R.COA})
    ),
    "nl.lvv.v1.ScenarioResponse": Rule(_LOCAL, frozenset({R.MUNICIPALITY, R.NGO, R.DTV, R.IND})),
    "nl.lvv.v1.EscalationRequest": Rule(
        frozenset({R.MUNICIPALITY, R.NGO, R.IND, R.DTV}), frozenset({R.ESCALATION})
    ),
    "nl.lvv.v1.EscalationDecision": Rule(
        frozenset({R.ESCALATION}), frozenset({R.MUNICIPALITY, R.NGO, R.IND, R.DTV})
    ),
    "nl.lvv.v1.IdentityReport": Rule(
        frozenset({R.AVIM}), frozenset({R.MUNICIPALITY, R.DTV, R.IND})
    ),
    "nl.lvv.v1.TransferRequest": Rule(frozenset({R.MUNICIPALITY, R.DTV}), frozenset({R.COA})),
    "nl.lvv.v1.TransferConfirmed": Rule(frozenset({R.COA}), frozenset({R.MUNICIPALITY, R.DTV})),
    "nl.lvv.v1.CaseClosed": Rule(
        frozenset({R.MUNICIPALITY}), frozenset({R.DTV, R.IND, R.NGO, R.AVIM, R.COA})
    ),
    "nl.lvv.v1.DeliveryReceipt": Rule(_ALL, _ALL),
}


RECEIPT = "nl.lvv.v1.DeliveryReceipt"


def _flows() -> frozenset[tuple[PartyRole, PartyRole]]:
    """(sender role, recipient role) of every case message the table allows."""
    return frozenset(
        (s, r)
        for name, rule in POLICY.items()
        if name != RECEIPT
        for s in rule.senders
        for r in rule.recipients
    )


def may_answer(sender: PartyRole, recipient: PartyRole) -> bool:
    """A receipt from ``sender`` to ``recipient``: only if ``recipient`` may send ``sender``
    something (what a receipt answers)."""
    return (recipient, sender) in _flows()


def may_send_to(sender: PartyRole, recipient: PartyRole) -> bool:
    """Whether ``sender`` may send ``recipient`` anything at all (for the broker's ACLs)."""
    return (sender, recipient) in _flows() or may_answer(sender, recipient)


def check(message_type: str, sender: PartyRole, recipients: tuple[PartyRole, ...]) -> None:
    """Raise `PolicyDenied` unless ``sender`` may send ``message_type`` to every recipient."""
    rule = POLICY.get(message_type)
    if rule is None:
        raise PolicyDenied(f"{message_type} may not be sent in an envelope")
    if sender not in rule.senders:
        raise PolicyDenied(f"a {sender.value} may not send {message_type}")
    for role in recipients:
        if role not in rule.recipients:
            raise PolicyDenied(f"{message_type} may not be sent to a {role.value}")
        if message_type == RECEIPT and not may_answer(sender, role):
            raise PolicyDenied(f"a {sender.value} has nothing to receipt to a {role.value}")


SENDER_FIELDS: dict[str, str] = {
    "nl.lvv.v1.IntakeRegistered": "municipality",
    "nl.lvv.v1.ScenarioDecision": "decided_by",
    "nl.lvv.v1.ScenarioResponse": "recorded_by",
    "nl.lvv.v1.EscalationRequest": "requested_by",
    "nl.lvv.v1.TransferRequest": "requested_by",
    "nl.lvv.v1.CaseClosed": "closed_by",
    "nl.lvv.v1.DeliveryReceipt": "received_by",
}
"""Payload fields that name the party that sends the message: they must be the sender."""

SENDER_ROLE_FIELDS: dict[str, str] = {"nl.lvv.v1.DossierDelivered": "delivered_by"}
"""Payload fields that name the sending party's role."""


def check_sender_fields(message: AvroModel, sender: str, role: PartyRole) -> None:
    """Raise `PolicyDenied` if the payload claims another sender than the one who signed it:
    a municipality cannot send an intake in another municipality's name."""
    name = message.avro_name
    if name in SENDER_FIELDS and getattr(message, SENDER_FIELDS[name]) != sender:
        raise PolicyDenied(f"{name}.{SENDER_FIELDS[name]} must be the sender, {sender}")
    if name in SENDER_ROLE_FIELDS and getattr(message, SENDER_ROLE_FIELDS[name]) != role:
        raise PolicyDenied(
            f"{name}.{SENDER_ROLE_FIELDS[name]} must be the sender's role, {role.value}"
        )


def check_receipt_fields(message: AvroModel) -> None:
    """Raise `PolicyDenied` if a receipt names a message type that is not in the contract:
    what a remote party writes there is copied into the receiving gateway's audit chain, so
    only names of the contract may pass (its reason is an enum of the contract already)."""
    if message.avro_name == RECEIPT and getattr(message, "message_type", None) not in POLICY:
        raise PolicyDenied("a receipt must name a message type of the contract")


def allowed_recipients(sender: PartyRole) -> frozenset[PartyRole]:
    """Every role ``sender`` may send some message to (for broker ACLs)."""
    return frozenset().union(*(r.recipients for r in POLICY.values() if sender in r.senders))


# --- attachments -----------------------------------------------------------------------------

_MIB = 1024 * 1024


@dataclass(frozen=True, slots=True)
class AttachmentRule:
    max_count: int
    """Attachments one message of the type may reference."""
    max_total_bytes: int
    """Their sizes together at most."""


ATTACHMENT_RULES: dict[str, AttachmentRule] = {
    "nl.lvv.v1.DossierDelivered": AttachmentRule(
        MAX_ATTACHMENTS_PER_MESSAGE, MAX_ATTACHMENT_BYTES_PER_MESSAGE
    ),
    "nl.lvv.v1.IdentityReport": AttachmentRule(16, 128 * _MIB),
    "nl.lvv.v1.ScenarioDecision": AttachmentRule(16, 128 * _MIB),
    "nl.lvv.v1.EscalationRequest": AttachmentRule(32, 256 * _MIB),
}
"""The message types that may carry attachments, and how many and how much each: a
dossier is a service's complete picture of the person; the others carry the few documents
their step produces. Every rule stays within `MAX_ATTACHMENTS_PER_MESSAGE` and
`MAX_ATTACHMENT_BYTES_PER_MESSAGE`."""


def may_attach_to(sender: PartyRole, recipient: PartyRole) -> bool:
    """Whether ``sender`` may send ``recipient`` some message that carries attachments (for
    the broker's ACLs on the recipient's attachment topic)."""
    return any(
        sender in POLICY[name].senders and recipient in POLICY[name].recipients
        for name in ATTACHMENT_RULES
    )


def chunk_count_for(size: int, chunk_size: int) -> int:
    """Chunks of a plaintext of ``size`` bytes: ceil(size / chunk_size), and one (empty)
    chunk for an empty document (docs/ENVELOPE.md §11.2)."""
    return max(1, -(-size // chunk_size))


def check_attachment_ref(ref: AttachmentRef) -> None:
    """Raise `PolicyDenied` unless one reference's layout is consistent and its location
    known (the field ranges are the model's)."""
    if ref.size > MAX_ATTACHMENT_BYTES:
        raise PolicyDenied(f"an attachment has at most {MAX_ATTACHMENT_BYTES} bytes")
    if ref.chunk_count != chunk_count_for(ref.size, ref.chunk_size):
        raise PolicyDenied("an attachment's chunk count must follow from its size and chunk size")
    if ref.location is not AttachmentLocation.RECIPIENT_TOPIC:
        raise PolicyDenied("an attachment's location must be known")


def check_attachments(message: AvroModel, recipients: Sequence[str]) -> None:
    """Raise `PolicyDenied` unless the message's attachments keep the rules of its type
    (`ATTACHMENT_RULES`) and of §11.2: distinct ids, consistent layouts, and a wrapped key
    for each of the envelope's ``recipients``, in their order, and for nobody else."""
    refs: tuple[AttachmentRef, ...] = getattr(message, "attachments", ())
    if not refs:
        return
    rule = ATTACHMENT_RULES.get(message.avro_name)
    if rule is None:
        raise PolicyDenied(f"{message.avro_name} may not carry attachments")
    if len(refs) > rule.max_count:
        raise PolicyDenied(f"{message.avro_name} carries at most {rule.max_count} attachments")
    if sum(ref.size for ref in refs) > rule.max_total_bytes:
        raise PolicyDenied(
            f"{message.avro_name}'s attachments have at most {rule.max_total_bytes} bytes"
        )
    if len({ref.attachment_id for ref in refs}) != len(refs):
        raise PolicyDenied("a message references an attachment once")
    for ref in refs:
        check_attachment_ref(ref)
        if tuple(k.recipient for k in ref.keys) != tuple(recipients):
            raise PolicyDenied("an attachment's keys must name the envelope's recipients, in order")
