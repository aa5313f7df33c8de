"""Gateway store files and rows for the tests of the store.

- ``layout1.db`` and ``layout1.records.json``: a store of layout 1 with rows still pending,
  and the records it holds decisions about, made by the gateway of commit 63597d4
  (``make_layout1.py`` says how, and how to make them again);
- `delivery_followup`, `rejection_followup`: follow-ups for rows a test writes by hand.
"""

from __future__ import annotations

import base64
import json
import uuid
from pathlib import Path

from broker.gateway._followup_models import (
    DeliveryFollowUp,
    EnvelopeFacts,
    RefusalReason,
    RejectionFollowUp,
)
from broker.transport import Record

HERE = Path(__file__).parent
LAYOUT_1 = HERE / "layout1.db"


def layout_1_records() -> dict[str, Record]:
    """The records of ``layout1.db``'s inbox topic by label, as the log would give them again."""
    found = {}
    for r in json.loads((HERE / "layout1.records.json").read_text()):
        value = base64.b64decode(r["value"])
        found[r["label"]] = Record(r["topic"], r["partition"], r["offset"], None, value, (), 0)
    return found


def delivery_followup(
    sender: str, message_id: uuid.UUID, *, recipient: str = "gemeente-amsterdam",
    digest: bytes = bytes(32),
) -> DeliveryFollowUp:  # fmt: skip
    facts = EnvelopeFacts(message_id=message_id, message_type="nl.lvv.v1.DossierDelivered",
                          sender=sender, recipients=(recipient,), case_id=uuid.uuid4(),
                          correlation_id=None)  # fmt: skip
    return DeliveryFollowUp(version=1, digest=digest, envelope=facts)


def rejection_followup(reason: RefusalReason, *, digest: bytes = bytes(32)) -> RejectionFollowUp:
    """The follow-up of a refusal of bytes that were not authenticated: nobody answered."""
    return RejectionFollowUp(version=1, digest=digest, envelope=None, reason=reason, answer=False)
