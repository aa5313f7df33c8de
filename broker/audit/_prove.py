"""Inclusion proofs: that an audit event about a message is in its gateway's chain under a
signed checkpoint — checkable by anyone holding the gateway's public key, without the rest
of the stream.

A proof names the event (its bytes), the checkpoint event that covers it (its bytes) and
the RFC 6962 audit path from the event's leaf to the checkpoint's tree head. Each of the two
events carries its own signature — alone (V1) or with its path to its batch's signed root
(V2) — and the leaf is over what the chain covers of it (docs/AUDIT.md).
"""

from __future__ import annotations

import base64
import uuid
from collections.abc import Iterable
from typing import Any

from broker.audit import _events as ev
from broker.audit._verify import Report
from broker.crypto import VerifyKey
from broker.merkle import ProofError, inclusion_proof, verify_inclusion
from broker.models import AuditAction


def prove(report: Report, message_id: uuid.UUID) -> dict[str, Any]:
    """Proofs for every event about ``message_id`` that a checkpoint covers already."""
    proofs, waiting = [], []
    for gateway, chain in sorted(report.chains.items()):
        leaves = chain.leaves()
        for seq, (event, data) in sorted(chain.events.items()):
            if event.message_id != message_id:
                continue
            cover = next(
                (s for s, (e, _) in sorted(chain.events.items())
                 if e.action is AuditAction.CHECKPOINT and e.checkpoint and e.checkpoint.tree_size > seq),
                None,
            )  # fmt: skip
            if cover is None or leaves is None:
                waiting.append({"gateway": gateway, "seq": seq, "action": event.action.value})
                continue
            checkpoint, checkpoint_data = chain.events[cover]
            assert checkpoint.checkpoint is not None
            size = checkpoint.checkpoint.tree_size
            proofs.append({
                "gateway": gateway, "action": event.action.value, "seq": seq,
                "event": base64.b64encode(data).decode(),
                "checkpoint": {"seq": cover, "tree_size": size, "root_hash": checkpoint.checkpoint.root_hash.hex(),
                               "event": base64.b64encode(checkpoint_data).decode()},
                "path": [h.hex() for h in inclusion_proof(seq, leaves[:size])],
            })  # fmt: skip
    return {"message_id": str(message_id), "proofs": proofs, "not_yet_covered": waiting}


def check_proof(
    proof: dict[str, Any], keys: Iterable[VerifyKey], message_id: uuid.UUID | None = None
) -> None:
    """Raise `ProofError` unless the event is signed by the gateway (one of ``keys``), is
    about ``message_id`` (if given), and is included in the tree head of a checkpoint the
    gateway signed — and every label of the proof says what the signed events say."""
    candidates = list(keys)
    batches = ev.VerifiedBatches()
    try:
        data = base64.b64decode(proof["event"], validate=True)
        cp = proof["checkpoint"]
        cp_data = base64.b64decode(cp["event"], validate=True)
        event, checkpoint = ev.decode(data), ev.decode(cp_data)
        path = [bytes.fromhex(h) for h in proof["path"]]
    except (KeyError, ValueError, TypeError, ev.BadAuditEvent) as exc:
        raise ProofError(f"not a proof: {exc}") from exc
    for signed, signed_data in ((event, data), (checkpoint, cp_data)):
        if not any(ev.signed_by(signed, signed_data, k, batches) for k in candidates):
            raise ProofError(f"event {signed.seq} is not signed by the gateway's key")
    if event.gateway != checkpoint.gateway or checkpoint.checkpoint is None:
        raise ProofError("the checkpoint is not a checkpoint of the same gateway")
    head = checkpoint.checkpoint
    if head.tree_size != checkpoint.seq or head.tree_size <= event.seq:
        raise ProofError("the checkpoint does not cover the event")
    if (proof.get("gateway"), proof.get("seq")) != (event.gateway, event.seq):
        raise ProofError("the proof's labels do not match its event")
    if (cp.get("seq"), cp.get("tree_size"), cp.get("root_hash")) != (
        checkpoint.seq,
        head.tree_size,
        head.root_hash.hex(),
    ):
        raise ProofError("the proof's checkpoint labels do not match the signed checkpoint")
    if message_id is not None and event.message_id != message_id:
        raise ProofError("the event is about another message")
    verify_inclusion(ev.chain_leaf(event, data), event.seq, head.tree_size, path, head.root_hash)
