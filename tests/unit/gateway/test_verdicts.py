"""One verdict per envelope and per (sender, message id) (docs/ENVELOPE.md §6.4), on the
embedded log: a copy of a refused envelope gets no new receipt, audit event or dead letter;
a time-window refusal is never turned into a delivery later; a receipt's reason is a code of
the contract and free text never reaches an audit chain; receipts count only for the bytes
sent; and the verifier names a message refused as a replay of nothing.
"""

from __future__ import annotations

import hashlib
import uuid
from datetime import timedelta

import pytest
from prometheus_client import generate_latest

from broker.audit import Finding, read_audit, verify_stream
from broker.contract import default_codec
from broker.errors import RejectReason
from broker.gateway.metrics import PrometheusObserver
from broker.models import AuditAction, DeliveryReceipt, DossierDelivered, PartyRole, ReceiptOutcome
from broker.topics import DEFAULT_PREFIX, dlq, inbox
from broker.transport import Record
from demo.examples import example
from tests.crypto_net import NOW, A, Net
from tests.embedded_gateways import EmbeddedNetwork, sent_status
from tests.stores import rejection_followup
from tests.support import example_of

NET = Net()
IND, MUNI = A[PartyRole.IND], A[PartyRole.MUNICIPALITY]
MARKER = "Jan-Jansen-V1234567890-medisch"
"""Personal data that exists only in these tests: it must never reach an audit chain."""


async def audit_records(lvv: EmbeddedNetwork) -> list[Record]:
    return await read_audit(lvv.log, NET.directory, DEFAULT_PREFIX)


async def events_of(lvv: EmbeddedNetwork, party: str) -> list[AuditAction]:
    from broker.audit import decode_event

    return [
        decode_event(r.value).action for r in await audit_records(lvv) if r.key == party.encode()
    ]


def headers(record: Record) -> dict[str, str]:
    return {name: value.decode() for name, value in record.headers}


# --- copies of a refused envelope ------------------------------------------------------------


async def test_a_copy_of_a_refused_envelope_gets_no_new_receipt_event_or_dead_letter(
    lvv: EmbeddedNetwork,
) -> None:
    await lvv.gateway(IND)
    observer = PrometheusObserver(MUNI)
    muni = await lvv.gateway(MUNI, observer=observer)
    early = NET.forge(example("DossierDelivered"), IND, [MUNI], now=NOW + timedelta(hours=1))
    for _ in range(3):  # the refused envelope, then two copies re-injected
        await lvv.inject(inbox(MUNI), early)
    for record in await lvv.records(inbox(MUNI)):
        await muni.handle(record)

    (dead,) = await lvv.records(dlq(MUNI))
    assert headers(dead)["lvv-reason"] == RejectReason.FROM_FUTURE.value
    (answer,) = await lvv.records(inbox(IND))  # one signed REJECTED receipt, not three
    receipt = NET.open(answer.value, IND).message
    assert isinstance(receipt, DeliveryReceipt)
    assert (receipt.outcome, receipt.reason) == (ReceiptOutcome.REJECTED, "FROM_FUTURE")
    assert await events_of(lvv, MUNI) == [AuditAction.REJECTED, AuditAction.RECEIPT_SENT]
    assert muni.store.rejection_reasons() == [RejectReason.FROM_FUTURE.value]
    scraped = generate_latest(observer.registry).decode()
    assert f'lvv_envelope_copies_total{{party="{MUNI}"}} 2.0' in scraped


async def test_an_envelope_refused_from_the_future_is_never_delivered_when_it_comes_again(
    lvv: EmbeddedNetwork,
) -> None:
    """Refused FROM_FUTURE (and answered so), the same bytes come again once the clock
    caught up, and another envelope of the same sender and id too: neither is delivered, so
    the sender's REJECTED receipt stays true."""
    await lvv.gateway(IND)
    clock = [NOW]
    muni = await lvv.gateway(MUNI, clock=lambda: clock[0])
    message_id = uuid.uuid4()
    later = NOW + timedelta(hours=1)
    early = NET.forge(example("DossierDelivered"), IND, [MUNI], now=later, message_id=message_id)
    first = await lvv.inject(inbox(MUNI), early)
    (record,) = await lvv.records(inbox(MUNI))
    await muni.handle(record)

    clock[0] = later  # now it is in time
    await lvv.inject(inbox(MUNI), early)
    other = NET.forge(example("DossierDelivered"), IND, [MUNI], now=later, message_id=message_id)
    await lvv.inject(inbox(MUNI), other)
    for record in await lvv.records(inbox(MUNI)):
        if record.offset != first.offset:
            await muni.handle(record)

    assert muni.store.inbox(limit=10) == []
    assert muni.store.rejection_reasons() == [
        RejectReason.FROM_FUTURE.value,
        RejectReason.REPLAY.value,
    ]
    reasons = [headers(r)["lvv-reason"] for r in await lvv.records(dlq(MUNI))]
    assert reasons == [RejectReason.FROM_FUTURE.value, RejectReason.REPLAY.value]
    (answer,) = await lvv.records(inbox(IND))  # the one answer, REJECTED
    receipt = NET.open(answer.value, IND).message
    assert isinstance(receipt, DeliveryReceipt) and receipt.outcome is ReceiptOutcome.REJECTED


# --- receipts: codes only, and about the bytes sent ------------------------------------------


def _receipt(message_id: uuid.UUID, digest: bytes, reason: str | None) -> DeliveryReceipt:
    return DeliveryReceipt(
        receipt_id=uuid.uuid4(), message_id=message_id, message_type="nl.lvv.v1.DossierDelivered",
        case_id=example_of(DossierDelivered).case_id,
        received_by=MUNI, received_at=NOW, envelope_sha256=digest,
        outcome=ReceiptOutcome.REJECTED if reason else ReceiptOutcome.ACCEPTED, reason=reason,
    )  # fmt: skip


def _version_1_receipt(receipt: DeliveryReceipt, reason: str) -> bytes:
    """A receipt sealed by a party of the earlier contract, whose reason was a free string."""
    codec = default_codec()  # version 1, as docs/ENVELOPE.md §2.2 lists it
    old = codec.by_fingerprint(
        bytes.fromhex("020b623b707c254b8c7bb2cdf96a1f9d450488d0e92b1c9b4ad8d92f939e7004")
    )
    record = {**receipt.model_copy(update={"reason": None}).to_avro(), "reason": reason}
    payload = codec.encode(old, record)
    return NET.forge(receipt, MUNI, [IND], payload=payload,
                     header_overrides={"payload_fingerprint": old.fingerprint})  # fmt: skip


async def test_free_text_in_a_receipt_reason_is_refused_and_never_reaches_the_audit_chain(
    lvv: EmbeddedNetwork,
) -> None:
    ind = await lvv.gateway(IND)
    await lvv.gateway(MUNI)
    message_id = await ind.send(example("DossierDelivered"), [MUNI])
    (sent,) = await lvv.records(inbox(MUNI))
    digest = hashlib.sha256(sent.value).digest()
    hostile = _version_1_receipt(_receipt(message_id, digest, None), f"refused: {MARKER}")
    await lvv.inject(inbox(IND), hostile)
    (record,) = await lvv.records(inbox(IND))
    await ind.handle(record)

    assert ind.store.rejection_reasons() == [RejectReason.PAYLOAD_INVALID.value]
    assert sent_status(ind, message_id) == "SENT"
    for audit_record in await audit_records(lvv):
        assert MARKER.encode() not in audit_record.value


async def test_a_receipt_reason_is_a_code_of_the_contract(lvv: EmbeddedNetwork) -> None:
    ind = await lvv.gateway(IND)
    await lvv.gateway(MUNI)
    message_id = await ind.send(example("DossierDelivered"), [MUNI])
    (sent,) = await lvv.records(inbox(MUNI))
    digest = hashlib.sha256(sent.value).digest()
    await lvv.inject(
        inbox(IND), NET.forge(_receipt(message_id, digest, "DECRYPT_FAILED"), MUNI, [IND])
    )
    (record,) = await lvv.records(inbox(IND))
    await ind.handle(record)

    status = ind.store.sent_status(message_id)
    assert status is not None and status.status == "REJECTED"
    assert status.receipts[MUNI]["reason"] == "DECRYPT_FAILED"
    with pytest.raises(ValueError):
        _receipt(message_id, digest, MARKER)  # the model takes codes only


async def test_a_receipt_about_other_bytes_under_the_id_does_not_count(
    lvv: EmbeddedNetwork,
) -> None:
    """The receipt of another party's message that reused our id is not ours."""
    ind = await lvv.gateway(IND)
    await lvv.gateway(MUNI)
    message_id = await ind.send(example("DossierDelivered"), [MUNI])
    other_bytes = hashlib.sha256(b"another envelope under the same id").digest()
    await lvv.inject(inbox(IND), NET.forge(_receipt(message_id, other_bytes, None), MUNI, [IND]))
    (record,) = await lvv.records(inbox(IND))
    await ind.handle(record)

    assert sent_status(ind, message_id) == "SENT"
    assert ind.store.receipted_records() == 0


# --- the verifier ----------------------------------------------------------------------------


async def test_the_verifier_names_a_message_refused_as_a_replay_of_nothing(
    lvv: EmbeddedNetwork,
) -> None:
    """What a gateway keyed by message id alone did: the real message refused REPLAY because
    a co-recipient had used its id first. The verifier calls it SUPPRESSED."""
    ind = await lvv.gateway(IND)
    muni = await lvv.gateway(MUNI)
    message_id = await ind.send(example("DossierDelivered"), [MUNI])
    # the guard holds the id for every sender, as a layout-0 store's migrated entries do
    claims = muni.store.staged_claims()
    claims.claims.append(("*", message_id, NOW + timedelta(days=1)))
    muni.store.record_rejection("elsewhere/0/0", b"\x00" * 32, None,
                                rejection_followup(RejectReason.MALFORMED), claims=claims, now=NOW)  # fmt: skip
    (record,) = await lvv.records(inbox(MUNI))
    await muni.handle(record)
    assert muni.store.rejection_reasons()[-1] == RejectReason.REPLAY.value

    report = verify_stream(await audit_records(lvv), NET.directory, now=NOW + timedelta(hours=1))
    (suppressed,) = report.errors
    assert (suppressed.kind, suppressed.message_id, suppressed.gateway) == (
        Finding.SUPPRESSED,
        message_id,
        IND,
    )
    assert MUNI in suppressed.detail


def test_the_receipt_reasons_of_the_contract_are_the_reject_reasons() -> None:
    """The contract's enum (`ReceiptReason`, in the .avsc) and the opener's codes
    (`RejectReason`, docs/ENVELOPE.md §6.2) are one closed set, with UNKNOWN for a newer writer."""
    from broker.models import ReceiptReason

    assert [r.value for r in ReceiptReason] == ["UNKNOWN", *(r.value for r in RejectReason)]
