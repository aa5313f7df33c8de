"""The audit stream: each gateway's signed hash chain with Merkle checkpoints, and the
tools DT&V uses to verify it, prove inclusion, and follow cases."""

from broker.audit._cases import CaseView, broken_rules, case_views, summary
from broker.audit._chain import CHECKPOINT_EVERY_EVENTS, CHECKPOINT_EVERY_S, AuditChain, EventSpec
from broker.audit._events import BadAuditEvent
from broker.audit._events import decode as decode_event
from broker.audit._follow import follow
from broker.audit._ldv import Register, RegisterInvalid, ldv_record
from broker.audit._prove import check_proof, prove
from broker.audit._verify import DEFAULT_GRACE, Finding, Issue, Report, verify_stream
from broker.crypto import Directory
from broker.topics import audit
from broker.transport import Record, Transport


def audit_topics(directory: Directory, prefix: str) -> list[str]:
    """The audit topic of every gateway of the directory."""
    return [audit(party, prefix) for party in sorted(directory.parties)]


async def read_audit(transport: Transport, directory: Directory, prefix: str) -> list[Record]:
    """Every audit event of every gateway of the directory, chain by chain in order."""
    records: list[Record] = []
    for topic in audit_topics(directory, prefix):
        records += await transport.read_topic(topic)
    return records


__all__ = [
    "CHECKPOINT_EVERY_EVENTS",
    "CHECKPOINT_EVERY_S",
    "DEFAULT_GRACE",
    "AuditChain",
    "BadAuditEvent",
    "CaseView",
    "EventSpec",
    "Finding",
    "Issue",
    "Register",
    "RegisterInvalid",
    "Report",
    "audit_topics",
    "broken_rules",
    "case_views",
    "check_proof",
    "decode_event",
    "follow",
    "ldv_record",
    "prove",
    "read_audit",
    "summary",
    "verify_stream",
]
