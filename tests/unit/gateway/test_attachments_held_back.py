"""Until the gateway carries attachments' chunks, a message that references attachments is
never delivered without its documents: a send is refused before anything is written, and a
received one is refused ATTACHMENT_INVALID with a dead letter and a signed REJECTED receipt
(the contract's all-or-nothing rule, docs/ENVELOPE.md §11)."""

from __future__ import annotations

import pytest

from broker.crypto import AttachmentSealer, attachment_reference
from broker.errors import PolicyDenied, RejectReason
from broker.limits import MIN_ATTACHMENT_CHUNK_BYTES
from broker.models import AvroModel, DeliveryReceipt, PartyRole, ReceiptOutcome
from broker.topics import dlq, inbox
from demo.examples import example
from tests.crypto_net import NOW, A, Net
from tests.embedded_gateways import EmbeddedNetwork

NET = Net()
IND, MUNI = A[PartyRole.IND], A[PartyRole.MUNICIPALITY]


def dossier_with_a_document() -> AvroModel:
    sealer = AttachmentSealer(
        sender=IND, media_type="application/pdf", chunk_size=MIN_ATTACHMENT_CHUNK_BYTES
    )
    sealer.update(b"%PDF-1.7 a scanned decision" * 100)
    _, sealed = sealer.finish()
    ref = attachment_reference(sealed, [MUNI], NET.directory, NOW)
    return example("DossierDelivered").model_copy(update={"attachments": [ref]})


async def test_a_send_that_references_attachments_is_refused_before_anything_is_written(
    lvv: EmbeddedNetwork,
) -> None:
    ind = await lvv.gateway(IND)
    with pytest.raises(PolicyDenied, match="attachments"):
        await ind.send(dossier_with_a_document(), [MUNI])
    assert await lvv.records(inbox(MUNI)) == []


async def test_a_received_message_with_attachments_is_refused_not_delivered_without_them(
    lvv: EmbeddedNetwork,
) -> None:
    await lvv.gateway(IND)
    muni = await lvv.gateway(MUNI)
    await lvv.inject(inbox(MUNI), NET.forge(dossier_with_a_document(), IND, [MUNI]))
    for record in await lvv.records(inbox(MUNI)):
        await muni.handle(record)

    assert muni.store.inbox(limit=10, include_acked=True) == []
    (dead,) = await lvv.records(dlq(MUNI))
    assert dict(dead.headers)["lvv-reason"] == RejectReason.ATTACHMENT_INVALID.value.encode()
    (answer,) = await lvv.records(inbox(IND))
    receipt = NET.open(answer.value, IND).message
    assert isinstance(receipt, DeliveryReceipt)
    assert (receipt.outcome, receipt.reason) == (ReceiptOutcome.REJECTED, "ATTACHMENT_INVALID")
