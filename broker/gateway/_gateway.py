"""The per-party gateway: seals and sends for its back office, opens and delivers what
arrives, answers with signed receipts, and puts what it refuses in its dead-letter topic.

Receiving a record, step by step (each step survives a crash before the next):

1. a record handled before (same envelope digest) was redelivered after a crash: only a
   receipt that may not have gone out is sent again;
2. open the envelope; if refused, write the original bytes with the reason to
   ``lvv.v1.dlq.<party>``, and answer an authenticated sender with a REJECTED receipt;
3. deliver: inbox, replay guard and digest in one store transaction (exactly once);
4. send the signed ACCEPTED receipt to the sender;
5. commit the offset (after the batch).

An error in one record never stops the loop: a broker that is down is waited out (the
record stays uncommitted and is retried); any other failure is retried a few times and then
dead-lettered as PROCESSING_FAILED, so one poisonous record cannot block its partition.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import time
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from broker._errors import EnvelopeRejected, RejectReason, TransportError
from broker.crypto import Directory, PartyKeys, open_envelope, seal
from broker.gateway._observer import GatewayObserver, NullObserver
from broker.gateway._store import GatewayStore
from broker.models import AvroModel, DeliveryReceipt, EnvelopeHeader, ReceiptOutcome
from broker.topics import DEFAULT_PREFIX, dlq, inbox
from broker.transport import (
    Consumer,
    OutgoingRecord,
    Producer,
    Record,
    TopicPartition,
    TopicSpec,
    Transport,
)

log = logging.getLogger("lvvx.gateway")

POLL_TIMEOUT_MS = 200
"""How long one poll waits for records: bounds how quickly a stop request is noticed."""

POLL_MAX_RECORDS = 200

MAX_ATTEMPTS = 5
"""Tries of one record that fails for a reason other than the broker being unreachable."""

RETRY_BACKOFF_S = (0.1, 0.3, 1.0, 3.0)
"""Waits between tries; the last one repeats while the broker stays unreachable."""

DEFAULT_RECEIPT_TIMEOUT = timedelta(minutes=5)
"""A sent message without a receipt after this long is shown as overdue."""

PROCESSING_FAILED = "PROCESSING_FAILED"
"""DLQ reason for a record this gateway could not handle (a fault of ours, not the sender's)."""

# Rejections after which the sender is authenticated and addressed us, so it may be told.
_ANSWERABLE = frozenset(RejectReason) - {
    RejectReason.TOO_LARGE, RejectReason.MALFORMED, RejectReason.UNSUPPORTED_VERSION,
    RejectReason.UNKNOWN_SENDER, RejectReason.SENDER_KEY_INVALID, RejectReason.BAD_SIGNATURE,
    RejectReason.NOT_A_RECIPIENT, RejectReason.REPLAY,
}  # fmt: skip


def _answer_for(rejection: EnvelopeRejected, digest: bytes) -> dict[str, Any] | None:
    """The REJECTED receipt owed to the sender, if one is: only to an authenticated sender
    that addressed us, and never for a receipt (that could loop between two gateways)."""
    h = rejection.authenticated_header
    if rejection.reject_reason not in _ANSWERABLE or h is None:
        return None
    if h.message_type == DeliveryReceipt.avro_name:
        return None
    return {
        "to": h.sender, "message_id": str(h.message_id), "message_type": h.message_type,
        "case_id": str(h.case_id), "digest": digest.hex(), "reason": rejection.reject_reason.value,
        "correlation_id": str(h.correlation_id) if h.correlation_id else None,
    }  # fmt: skip


def utc_now() -> datetime:
    return datetime.now(UTC)


class Gateway:
    """One party's gateway. Configure it at the edge (`broker.gateway.settings`); the core
    takes explicit collaborators so tests can hand it any transport, store and clock."""

    def __init__(
        self,
        *,
        keys: PartyKeys,
        directory: Directory,
        transport: Transport,
        store: GatewayStore,
        prefix: str = DEFAULT_PREFIX,
        clock: Callable[[], datetime] = utc_now,
        observer: GatewayObserver | None = None,
        receipt_timeout: timedelta = DEFAULT_RECEIPT_TIMEOUT,
    ) -> None:
        self.keys = keys
        self.directory = directory
        self.transport = transport
        self.store = store
        self.prefix = prefix
        self.clock = clock
        self.observer = observer or NullObserver()
        self.receipt_timeout = receipt_timeout
        self._producer: Producer | None = None
        self._consumer: Consumer | None = None
        self._stopping = asyncio.Event()
        self.ready = False

    @property
    def party_id(self) -> str:
        return self.keys.party_id

    # --- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        """Create this party's topics if missing, then connect producer and consumer."""
        me = self.party_id
        await self.transport.ensure_topics(
            [TopicSpec(inbox(me, self.prefix)), TopicSpec(dlq(me, self.prefix))]
        )
        self._producer = self.transport.producer(transactional_id=f"lvvx-gateway.{me}")
        await self._producer.start()
        self._consumer = self.transport.consumer(f"lvvx-gateway.{me}", [inbox(me, self.prefix)])
        await self._consumer.start()
        self.ready = True

    def stop(self) -> None:
        """Ask `run` to finish the record in hand, commit and return (e.g. on SIGTERM)."""
        self._stopping.set()

    async def close(self) -> None:
        self.ready = False
        for client in (self._consumer, self._producer):
            if client is not None:
                await client.close()
        self._consumer = self._producer = None

    def update_directory(self, directory: Directory) -> None:
        """Take a newer directory (its serial must not be lower than the current one's)."""
        if directory.serial < self.directory.serial:
            raise ValueError(f"directory serial {directory.serial} < {self.directory.serial}")
        self.directory = directory

    # --- sending ---------------------------------------------------------------------------

    async def send(
        self,
        message: AvroModel,
        recipients: Sequence[str],
        *,
        correlation_id: uuid.UUID | None = None,
        causation_id: uuid.UUID | None = None,
    ) -> uuid.UUID:
        """Seal ``message`` and put it in every recipient's inbox, all or none.

        Raises `PolicyDenied`, `UnknownParty` or `RecordTooLarge` before anything is sent,
        and a `TransportError` if the log refused it (then nothing was stored)."""
        producer = self._live_producer()
        message_id = uuid.uuid4()
        names = tuple(dict.fromkeys(recipients))
        started = time.perf_counter()
        envelope = seal(
            message, sender=self.keys, recipients=names, directory=self.directory, now=self.clock(),
            correlation_id=correlation_id, causation_id=causation_id, message_id=message_id,
        )  # fmt: skip
        self.observer.sealed(time.perf_counter() - started)
        case_id: uuid.UUID = message.case_id  # type: ignore[attr-defined]
        headers = (
            ("lvv-message-id", str(message_id).encode()),
            ("lvv-sender", self.party_id.encode()),
        )
        records = [
            OutgoingRecord(inbox(r, self.prefix), envelope, case_id.bytes, headers) for r in names
        ]
        if not isinstance(message, DeliveryReceipt):
            self.store.record_sent(message_id, message.avro_name, case_id, names, self.clock())
        try:
            await producer.send_atomic(records)
        except BaseException:
            self.store.forget_sent(message_id)
            raise
        self.observer.sent(message.avro_name, names)
        return message_id

    def _live_producer(self) -> Producer:
        if self._producer is None:
            raise TransportError("gateway is not started")
        return self._producer

    # --- receiving -------------------------------------------------------------------------

    async def run(self) -> None:
        """Consume this party's inbox until `stop` is called."""
        consumer = self._consumer
        if consumer is None:
            raise TransportError("gateway is not started")
        while not self._stopping.is_set():
            try:
                records = await consumer.poll(
                    timeout_ms=POLL_TIMEOUT_MS, max_records=POLL_MAX_RECORDS
                )
            except TransportError as exc:
                self._not_ready(exc)
                await self._pause(RETRY_BACKOFF_S[-1])
                continue
            self.ready = True
            done: dict[TopicPartition, int] = {}
            for record in records:
                if not await self._handle_with_retries(record):
                    break  # stopping: the rest stays uncommitted and comes again
                done[record.topic_partition] = record.offset + 1
            if done:
                await self._commit(consumer, done)

    async def _commit(self, consumer: Consumer, offsets: dict[TopicPartition, int]) -> None:
        try:
            await consumer.commit(offsets)
        except TransportError as exc:  # records come again; redelivery is recognised
            log.warning("commit failed for %s: %s", self.party_id, exc)

    def _not_ready(self, exc: Exception) -> None:
        if self.ready:
            log.warning("gateway %s lost its log: %s", self.party_id, exc)
        self.ready = False

    async def _pause(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), seconds)

    async def _handle_with_retries(self, record: Record) -> bool:
        """Handle one record; False if the gateway stopped before it was done."""
        attempt, failures = 0, 0
        while not self._stopping.is_set():
            try:
                if failures >= MAX_ATTEMPTS:  # give up on the record, not on the partition
                    await self._dead_letter(record, PROCESSING_FAILED, None)
                else:
                    await self.handle(record)
                return True
            except TransportError as exc:  # the broker is away: wait for it, keep order
                self._not_ready(exc)
            except Exception:
                failures += 1
                log.exception(
                    "record %s/%s/%s failed", record.topic, record.partition, record.offset
                )
            await self._pause(RETRY_BACKOFF_S[min(attempt, len(RETRY_BACKOFF_S) - 1)])
            attempt += 1
        return False

    async def handle(self, record: Record) -> None:
        """Steps 1–4 of the module docstring for one record."""
        source = f"{record.topic}/{record.partition}/{record.offset}"
        earlier = self.store.handled_at(source)
        if earlier is not None:  # the log delivered this record again after a restart
            if (
                earlier.receipt_pending
                and earlier.outcome == "DELIVERED"
                and earlier.message_id
                and earlier.sender
            ):
                await self._resend_receipt(source, uuid.UUID(earlier.message_id), earlier.sender)
            elif earlier.receipt_pending and earlier.answer:  # refused; the sender not yet told
                await self._answer(source, earlier.answer)
            self.observer.redelivered()
            return
        digest = hashlib.sha256(record.value).digest()
        if self.store.delivered_elsewhere(digest):  # the same bytes again: a replay
            self.observer.rejected(RejectReason.REPLAY.value)
            await self._dead_letter(record, RejectReason.REPLAY.value, None)
            return
        claims = self.store.staged_claims()
        now = self.clock()
        started = time.perf_counter()
        try:
            opened = open_envelope(
                record.value, me=self.keys, directory=self.directory, replay_guard=claims, now=now
            )
        except EnvelopeRejected as exc:
            self.observer.rejected(exc.reject_reason.value)
            answer = _answer_for(exc, digest)
            await self._dead_letter(
                record, exc.reject_reason.value, exc.authenticated_header, answer
            )
            if answer:
                await self._answer(source, answer)
            return
        self.observer.opened(time.perf_counter() - started)
        h, message = opened.header, opened.message
        if isinstance(message, DeliveryReceipt):
            known = self.store.record_receipt(
                source=source, claims=claims, envelope_sha256=digest, message_id=message.message_id,
                recipient=h.sender, outcome=message.outcome.value, reason=message.reason, now=now,
            )  # fmt: skip
            self.observer.receipt_received(message.outcome.value, known)
            return
        self.store.record_delivery(
            source=source, claims=claims, envelope_sha256=digest, message_id=h.message_id,
            message_type=h.message_type, sender=h.sender, case_id=h.case_id, created_at=h.created_at,
            message_json=message.model_dump_json(), now=now,
        )  # fmt: skip
        self.observer.delivered(h.message_type, h.sender, (now - h.created_at).total_seconds())
        await self._send_receipt(
            to=h.sender, message_id=h.message_id, message_type=h.message_type,
            case_id=h.case_id, digest=digest, correlation_id=h.correlation_id,
        )  # fmt: skip
        self.store.receipt_sent(source)

    async def _send_receipt(
        self,
        *,
        to: str,
        message_id: uuid.UUID,
        message_type: str,
        case_id: uuid.UUID,
        digest: bytes,
        outcome: ReceiptOutcome = ReceiptOutcome.ACCEPTED,
        reason: str | None = None,
        correlation_id: uuid.UUID | None = None,
    ) -> None:
        receipt = DeliveryReceipt(
            receipt_id=uuid.uuid4(), message_id=message_id, message_type=message_type,
            case_id=case_id, received_by=self.party_id, received_at=self.clock(),
            envelope_sha256=digest, outcome=outcome, reason=reason,
        )  # fmt: skip
        await self.send(receipt, [to], causation_id=message_id, correlation_id=correlation_id)

    async def _resend_receipt(self, source: str, message_id: uuid.UUID, sender: str) -> None:
        """After a crash between delivery and receipt: the receipt, made from the inbox."""
        item = self.store.inbox_item(message_id)
        if item is not None:
            await self._send_receipt(
                to=sender, message_id=message_id, message_type=item.message_type,
                case_id=item.case_id, digest=item.envelope_sha256,
            )  # fmt: skip
        self.store.receipt_sent(source)

    async def _answer(self, source: str, answer: dict[str, Any]) -> None:
        """Tell an authenticated sender its message was refused, and why (the reason code
        only), with the details noted when the record was dead-lettered."""
        correlation = answer["correlation_id"]
        try:
            await self._send_receipt(
                to=answer["to"], message_id=uuid.UUID(answer["message_id"]),
                message_type=answer["message_type"], case_id=uuid.UUID(answer["case_id"]),
                digest=bytes.fromhex(answer["digest"]), outcome=ReceiptOutcome.REJECTED,
                reason=answer["reason"], correlation_id=uuid.UUID(correlation) if correlation else None,
            )  # fmt: skip
        except (ValueError, LookupError) as exc:  # e.g. the sender left the directory
            log.info("cannot answer refused message %s: %s", answer["message_id"], exc)
        self.store.receipt_sent(source)

    async def _dead_letter(
        self,
        record: Record,
        reason: str,
        header: EnvelopeHeader | None,
        answer: dict[str, Any] | None = None,
    ) -> None:
        """Put the record in this party's DLQ, then note it handled (with ``answer``: the
        REJECTED receipt still to send, so a crash before it goes out does not lose it)."""
        digest = hashlib.sha256(record.value).digest()
        source = f"{record.topic}/{record.partition}/{record.offset}"
        key = header.message_id.bytes if header is not None else digest
        headers = (
            ("lvv-reason", reason.encode()),
            ("lvv-rejected-at", self.clock().isoformat().encode()),
            ("lvv-source", source.encode()),
            ("lvv-gateway", self.party_id.encode()),
            ("lvv-envelope-sha256", digest.hex().encode()),
        )
        await self._live_producer().send(
            dlq(self.party_id, self.prefix), record.value, key=key, headers=headers
        )
        self.store.record_rejection(source, digest, reason, answer=answer)
