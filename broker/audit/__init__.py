"""The audit stream: each gateway's signed hash chain with Merkle checkpoints, and the
tools DT&V uses to verify it, prove inclusion, and follow cases."""

from broker.audit._chain import CHECKPOINT_EVERY_EVENTS, CHECKPOINT_EVERY_S, AuditChain, EventSpec

__all__ = ["CHECKPOINT_EVERY_EVENTS", "CHECKPOINT_EVERY_S", "AuditChain", "EventSpec"]
