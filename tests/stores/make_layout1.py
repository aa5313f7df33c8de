"""Makes ``layout1.db``: a gateway store of layout 1, written by the gateway of commit
63597d4 (the last one of that layout), for the migration test
(`tests/unit/gateway/test_at_rest.py::test_a_store_of_layout_1_made_by_its_own_gateway_is_migrated_and_recovers`).
It must run on that commit's code, not on today's, so that the file holds what that gateway
wrote, not what today's thinks it wrote:

    git worktree add --detach /tmp/layout1-code 63597d4
    PYTHONPATH=/tmp/layout1-code .venv/bin/python tests/stores/make_layout1.py tests/stores
    git worktree remove /tmp/layout1-code

The store is the municipality's (the pilot network of `tests.crypto_net`, its seeded keys
and content key), its inbox topic holding five records, each handled by its gateway:

- ``acknowledged``: a dossier delivered, its follow-up published, acknowledged;
- ``delivered``: a dossier delivered, its follow-up (receipt, audit event) still pending;
- ``refused-answered``: an envelope from the future (FROM_FUTURE), authenticated, so its
  follow-up pending is a dead letter and a REJECTED receipt;
- ``refused-unanswered``: bytes that are no envelope (UNSUPPORTED_VERSION: their first
  byte is no format known), nobody to answer;
- ``receipt``: the IND's receipt for an intake the municipality sent, its event pending.

"Pending" as after a crash between storing a decision and publishing what follows it. The
records themselves go to ``layout1.records.json`` (position, label and bytes): the test
plays them to today's gateway as the log would deliver them again after that crash.
"""

from __future__ import annotations

import asyncio
import base64
import json
import shutil
import sys
import tempfile
import uuid
from datetime import timedelta
from pathlib import Path

import broker
from broker.gateway import _store
from broker.gateway._gateway import Decided
from broker.models import PartyRole
from broker.topics import inbox
from broker.transport import Record
from demo.examples import example
from tests.crypto_net import NOW, A, Net
from tests.embedded_gateways import EmbeddedNetwork

NET = Net()
IND, MUNI = A[PartyRole.IND], A[PartyRole.MUNICIPALITY]
LABELS = ("acknowledged", "delivered", "refused-answered", "refused-unanswered", "receipt")


async def make(folder: Path) -> list[dict[str, object]]:
    """The municipality's store in ``folder``; its inbox's records, labelled."""
    lvv = EmbeddedNetwork(folder, NET)
    try:
        ind = await lvv.gateway(IND)
        muni = await lvv.gateway(MUNI)
        acknowledged = await ind.send(example("DossierDelivered"), [MUNI])
        delivered = await ind.send(example("DossierDelivered"), [MUNI])
        future = NET.forge(example("DossierDelivered"), IND, [MUNI], message_id=uuid.uuid4(),
                           now=NOW + timedelta(hours=1))  # fmt: skip
        await lvv.inject(inbox(MUNI), future)
        await lvv.inject(inbox(MUNI), b"not an envelope")
        await muni.send(example("IntakeRegistered"), [IND])
        (intake,) = await lvv.records(inbox(IND))
        await ind.handle(intake)  # delivered there, and its receipt into the municipality's inbox

        def label(r: Record) -> str:
            sent = dict(r.headers).get("lvv-message-id", b"").decode()
            known = {str(acknowledged): "acknowledged", str(delivered): "delivered"}
            if sent:
                return known[sent]
            return {future: "refused-answered", b"not an envelope": "refused-unanswered"}.get(
                r.value, "receipt"
            )

        records = {label(r): r for r in await lvv.records(inbox(MUNI))}
        assert sorted(records) == sorted(LABELS), records
        await muni.handle(records["acknowledged"])
        assert muni.store.ack(acknowledged, NOW)
        decided: list[Decided] = []
        for name in LABELS[1:]:
            await muni.handle(records[name], decided)  # stored, its follow-up not published
        return [
            {"label": name, "topic": r.topic, "partition": r.partition, "offset": r.offset,
             "value": base64.b64encode(r.value).decode()}
            for name, r in ((name, records[name]) for name in LABELS)
        ]  # fmt: skip
    finally:
        await lvv.aclose()


def main(out: Path) -> None:
    if _store.SCHEMA_VERSION != 1:
        sys.exit(f"this is the code of layout {_store.SCHEMA_VERSION} ({broker.__file__}): "
                 "run on commit 63597d4's, as the docstring says")  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        records = asyncio.run(make(Path(tmp)))
        shutil.copyfile(Path(tmp) / f"{MUNI}.db", out / "layout1.db")  # closed: no WAL left
    (out / "layout1.records.json").write_text(json.dumps(records, indent=1) + "\n")
    print(f"wrote {out / 'layout1.db'} and {out / 'layout1.records.json'} with {broker.__file__}")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
