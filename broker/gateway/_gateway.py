"""The per-party gateway: seals and sends for its back office, opens and delivers what
arrives, answers with signed receipts, dead-letters what it refuses, and records every one
of these acts in its signed audit chain.

Receiving a record, step by step (each step survives a crash before the next):

1. a record handled before (same position) came again after a crash: its follow-up is
   published if it was not yet, and nothing else happens;
2. the same envelope bytes at another position are a copy: of a refused envelope, only
   counted (its verdict stands, docs/ENVELOPE.md §6.4); of a delivered one, refused as a
   replay (once: later copies are copies of that refusal);
3. open the envelope, and store the decision — delivered (inbox, replay guard and position
   in one transaction: exactly once), a receipt for a message we sent, or refused — with
   what must follow it; a refusal settles the (sender, message id) for good;
4. publish the follow-up in one atomic write: the receipt to the sender, the dead letter,
   and the audit events; only then does a delivered message become visible to the back
   office, so nothing is delivered without its audit record (fail closed);
5. commit the offset (after the batch).

Durable work is per polled batch, not per record: steps 1–3 run record by record inside one
store transaction (each record in a savepoint of its own, so one that fails is undone
alone), in one worker thread, off the event loop; step 4 is one atomic write (one Kafka
transaction) for the whole batch, and marking its messages visible one more transaction. A
batch of any size costs two fsyncs and one Kafka transaction. Publications that arrive while
one is being written — sends from the back office, say — join the next write (group
commit); so do the `sent` rows of sends and the back office's acknowledgements
(`broker.gateway._coalesce`).

Sending is one atomic write too: the envelope into every recipient's inbox and the SENT
event — if the audit stream cannot be written, nothing is sent and the caller is told.

An error in one record never stops the loop, and a hostile record costs one decision, not
a stall: refusals — the envelope's checks and the store's own rules — are decided once,
without retries. Only faults of the moment are retried: a broker that is down, or a disk
that is away or busy, is waited out (the record stays uncommitted and comes again). Any
other failure is a fault of ours that trying again will not mend: the record is
dead-lettered as PROCESSING_FAILED at once, so it cannot block its partition.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from broker import tracecontext as tc
from broker.audit import AuditChain, EventSpec
from broker.crypto import (
    FORMAT_VERSION,
    MAX_CLOCK_SKEW,
    MAX_ENVELOPE_BYTES,
    MAX_TTL,
    AnchorKey,
    Directory,
    KeyRing,
    OpenCaches,
    PartyKeys,
    Sealer,
    SealRequest,
    open_envelope,
)
from broker.directory_feed import DirectoryFeed
from broker.errors import (
    DirectoryCheck,
    DirectoryRejected,
    EnvelopeRejected,
    KeyStoreError,
    LocalError,
    PolicyDenied,
    RejectReason,
    ReplayDetected,
    TransportError,
    TransportTimeout,
    TransportUnavailable,
)
from broker.gateway import _followup as follow
from broker.gateway import crashpoints as crash
from broker.gateway._coalesce import Coalescer
from broker.gateway._followup_models import (
    PROCESSING_FAILED,
    FollowUp,
    RefusalReason,
    RejectionFollowUp,
)
from broker.gateway._health import OUTAGE_PROBE_EVERY_S, LogHealth
from broker.gateway._idempotency import Claim
from broker.gateway._idempotent_sends import IdempotentSends
from broker.gateway._inbox_signal import InboxSignal
from broker.gateway._observer import GatewayObserver, NullObserver
from broker.gateway._sealing import SealQueue
from broker.gateway._store import (
    TRANSIENT_STORE_FAULTS,
    GatewayStore,
    SentRow,
    StagedClaims,
    Verdict,
)
from broker.log_throttle import Throttle
from broker.models import AuditAction, AvroModel, DeliveryReceipt, ReceiptReason
from broker.topics import (
    DEFAULT_PREFIX,
    DIRECTORY_CONFIG,
    DIRECTORY_PARTITIONS,
    audit,
    dlq,
    gateway_group,
    inbox,
)
from broker.topics import directory as directory_topic
from broker.tracecontext import TraceParent
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
quiet = Throttle(log)
"""Refusals and copies: one line per reason per interval, however hostile the traffic."""

POLL_TIMEOUT_MS = 200
"""How long one poll waits for records: bounds how quickly a stop request is noticed."""

POLL_MAX_RECORDS = 200

RETRY_BACKOFF_S = (0.1, 0.3, 1.0, 3.0)
"""Waits between tries while the broker or the disk is away; the last one repeats."""

DEFAULT_RECEIPT_TIMEOUT = timedelta(minutes=5)
"""A sent message without a receipt after this long is shown as overdue."""

MAX_PUBLICATIONS_PER_WRITE = 256
"""Publications one atomic write takes at most: bounds a Kafka transaction's size."""

AUDIT_TOPIC_CONFIG = {"retention.ms": "-1", "retention.bytes": "-1"}
"""Audit records are kept forever (the verifier reads every chain from its start)."""

AUDIT_PARTITIONS = 1
"""A gateway's audit chain is one line: one partition keeps it in order."""

STOP_WRITE_WAIT_S = 3.0
"""After `Gateway.stop`, how long a write in flight is waited for: one the log takes is done
in milliseconds; past this its publisher is told the outcome is unknown (a send: 503), so a
stop in an outage still ends within the service's stop deadline (`broker.gateway.service`)."""


@dataclass(frozen=True, slots=True)
class Publication:
    """One publisher's part of an atomic write (`Gateway._publish`): what it writes, and the
    future it waits on, resolved once that write is confirmed or has failed."""

    records: tuple[OutgoingRecord, ...]
    events: tuple[EventSpec, ...]
    """The audit events of ``records``, appended to the chain in the same write."""
    checkpoint_wanted: bool
    """Whether the write must carry a checkpoint, a signed tree head over the chain so far
    (`Gateway.checkpoint_if_due` asks for one, with no records or events of its own)."""
    written: asyncio.Future[None]


@dataclass(slots=True)
class _Batch:
    """What deciding about a polled batch (`Gateway._decide_all`) came to."""

    decided: list[Decided]
    """The follow-ups to publish, in the records' order."""
    notes: list[Callable[[], None]]
    """What the event loop does once the batch is stored: metrics, crash points."""
    taken: int
    """Records decided (or recognised), from the first: their offsets may be committed."""
    fault: Exception | None
    """The fault of the moment that ended the batch early, at record ``taken``."""


@dataclass(frozen=True, slots=True)
class Decided:
    """A record decided about, its decision stored, and what must follow it, to publish."""

    record: Record
    source: str
    """The record's position (topic/partition/offset), its key in the store."""
    followup: FollowUp


def utc_now() -> datetime:
    return datetime.now(UTC)


def _position(record: Record) -> str:
    return f"{record.topic}/{record.partition}/{record.offset}"


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
        anchor: AnchorKey | None = None,
        key_ring: KeyRing | None = None,
        reload_keys: Callable[[KeyRing], KeyRing] | None = None,
        envelope_format: int = FORMAT_VERSION,
    ) -> None:
        """``key_ring`` is every private key of the party (``keys`` is then only its party);
        the gateway signs with the one the ring chooses under the directory in use, so it
        changes keys at a rotation's activation without a restart. ``reload_keys`` reads the
        key folder again (new files only): called when a directory lists a key of the party
        that the ring lacks — the key a rotation just made."""
        self.ring = key_ring or KeyRing.of(keys)
        self._reload_keys = reload_keys
        self.anchor = anchor
        """The pinned trust anchor: with it, the gateway follows the directory topic and
        takes each newer directory it signed (`broker.directory_feed`)."""
        self.directory = directory
        self.transport = transport
        self.store = store
        self.prefix = prefix
        self.clock = clock
        self.observer = observer or NullObserver()
        self.receipt_timeout = receipt_timeout
        self.sealer = Sealer(keys, directory, clock, ring=self.ring, format_version=envelope_format)
        self._seals = SealQueue(self.sealer)
        self._sent_rows: Coalescer[SentRow, None] = Coalescer(self._record_sent)
        self._acks: Coalescer[tuple[uuid.UUID, str | None], bool] = Coalescer(self._ack_all)
        self.idempotent = IdempotentSends(store, party=keys.party_id, read_audit=self._read_own_audit,
                                          clock=clock)  # fmt: skip
        self.inbox_signal = InboxSignal()
        """Set when deliveries become visible: wakes the API's long polls."""
        self._open_caches = OpenCaches()
        self.audit = AuditChain(
            keys.party_id, keys.signing_key, audit(keys.party_id, prefix), clock,
            key_at=lambda at: self.ring.keys_at(self.directory, at).signing_key,
            own_keys=lambda: [*self.ring.verification_keys(), *self.directory.signing_keys_of(self.party_id)],
        )  # fmt: skip
        self._producer: Producer | None = None
        self._consumer: Consumer | None = None
        self._stopping = asyncio.Event()
        # publications waiting for the next atomic write, and the task writing them: one
        # audit append at a time, since the chain is a line
        self._queue: list[Publication] = []
        self._flusher: asyncio.Task[None] | None = None
        self._audit_head_uncertain = False
        self._ready = False
        self.audit_writable = True
        # the log's health, watched from `start` on; the write in flight and the stop's
        # give-up timer, so a stop in an outage ends in a bounded time
        self._health: LogHealth | None = None
        self._health_watch: asyncio.Task[None] | None = None
        self._writing: Sequence[Publication] = ()
        self._give_up: asyncio.TimerHandle | None = None
        self._writes_abandoned = False
        self.directory_feed: DirectoryFeed | None = None
        self._directory_follow: asyncio.Task[None] | None = None

    @property
    def ready(self) -> bool:
        """Started, consuming, and no outage of the log known (/readyz, the ready gauge)."""
        return self._ready and self.outage is None

    @ready.setter
    def ready(self, value: bool) -> None:
        self._ready = value

    @property
    def outage(self) -> TransportError | None:
        """Why the log is known to be away (`broker.gateway._health`); None while it answers."""
        return self._health.outage if self._health is not None else None

    async def check_log(self) -> bool:
        """Probe the log now — during a known outage within a second — and take in the
        answer; True if it answered (/readyz asks this)."""
        if self._health is None:
            return False
        return await self._health.check(quick=self._health.outage is not None)

    @property
    def keys(self) -> PartyKeys:
        """The keys in use now: the ring's choice under the directory in use."""
        return self.ring.keys_at(self.directory, self.clock())

    @property
    def party_id(self) -> str:
        return self.ring.party_id

    @property
    def consumer_group(self) -> str:
        return gateway_group(self.party_id, self.prefix)

    # --- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        """Create this party's topics if missing, take up its audit chain, connect."""
        me = self.party_id
        await self.transport.ensure_topics([
            TopicSpec(inbox(me, self.prefix)), TopicSpec(dlq(me, self.prefix)),
            TopicSpec(audit(me, self.prefix), partitions=AUDIT_PARTITIONS, config=AUDIT_TOPIC_CONFIG),
            TopicSpec(directory_topic(self.prefix), partitions=DIRECTORY_PARTITIONS, config=DIRECTORY_CONFIG),
        ])  # fmt: skip
        await self.audit.recover(self.transport)
        self._producer = self.transport.producer(transactional_id=self.consumer_group)
        await self._producer.start()  # fences an earlier run: its writes are final now
        await self._settle_sends()
        self._consumer = self.transport.consumer(self.consumer_group, [inbox(me, self.prefix)])
        await self._consumer.start()
        self._health = LogHealth(self.transport, me)
        self._health_watch = asyncio.create_task(self._health.watch(self._stopping))
        self._writes_abandoned = False
        await self._follow_directory()
        self.ready = True

    async def _settle_sends(self) -> None:
        """Settle the idempotent sends an earlier run left without a known outcome (a
        crash between noting a send and hearing from the log), before the API serves; if
        the audit topic cannot be read now, a retry of such a key settles it later."""
        try:
            await self.idempotent.settle()
        except TransportError as exc:
            log.warning("gateway %s: sends of unknown outcome not settled yet: %s",
                        self.party_id, exc)  # fmt: skip

    async def _read_own_audit(self) -> list[Record]:
        """This gateway's audit topic to its end, once no atomic write is unfinished."""
        await self._live_producer().settle()
        return await self.transport.read_topic(audit(self.party_id, self.prefix))

    async def _follow_directory(self) -> None:
        """With a pinned anchor: read the directory topic to its end (taking the newest
        directory that passes), then follow it in a task next to the receive loop."""
        if self.anchor is None:
            return
        self.directory_feed = feed = DirectoryFeed(
            transport=self.transport, topic=directory_topic(self.prefix), anchor=self.anchor,
            network=self.directory.document.network, in_use=lambda: self.directory,
            take=self._take_directory, refused=self.observer.directory_refused, clock=self.clock,
            party=self.party_id,
        )  # fmt: skip
        self._directory_follow = asyncio.create_task(feed.run(self._stopping))
        caught_up = asyncio.create_task(feed.caught_up.wait())
        await asyncio.wait({caught_up, self._directory_follow}, return_when=asyncio.FIRST_COMPLETED)
        caught_up.cancel()

    async def _take_directory(self, directory: Directory) -> None:
        # the store's write off the event loop: a batch may hold the store in its thread
        await asyncio.to_thread(self.update_directory, directory)
        self.observer.directory_taken(directory.serial)

    def stop(self) -> None:
        """Ask `run` to finish the record in hand, commit and return (e.g. on SIGTERM). A
        write still in flight `STOP_WRITE_WAIT_S` later is given up (`_abandon_writes`)."""
        self._stopping.set()
        self.inbox_signal.close()  # long polls answer now, with what the inbox holds
        if self._health is not None:
            self._health.stop()
        if self._give_up is None:
            with contextlib.suppress(RuntimeError):  # no loop running: no write can be waiting
                loop = asyncio.get_running_loop()
                self._give_up = loop.call_later(STOP_WRITE_WAIT_S, self._abandon_writes)

    def _abandon_writes(self) -> None:
        """Stop waiting for writes: each publisher still waiting is told now — the write in
        flight may still land (outcome unknown), the queued ones were never sent — and no
        new write is taken."""
        self._writes_abandoned = True
        writing, queued, self._queue = self._writing, self._queue, []
        for publications, exc in (
            (writing, TransportTimeout("the gateway stopped before the write was confirmed; its outcome is unknown")),
            (queued, TransportError("the gateway is stopping; nothing was sent", reason="STOPPING")),
        ):  # fmt: skip
            for publication in publications:
                if not publication.written.done():
                    publication.written.set_exception(exc)

    async def close(self) -> None:
        """Release the log's clients, in a bounded time whatever the log's state: writes
        still waited for are given up, an unfinished transaction is aborted (the
        transport's closes are bounded too)."""
        self.ready = False
        if self._health is not None:
            self._health.stop()
        self._abandon_writes()
        if self._give_up is not None:
            self._give_up.cancel()
            self._give_up = None
        for task in (self._flusher, self._health_watch, self._directory_follow):
            if task is not None and not task.done():
                task.cancel()  # in a transport call, which ends at once (or bounded) on that
                await asyncio.wait({task}, timeout=STOP_WRITE_WAIT_S)
        clients = [c for c in (self._consumer, self._producer) if c is not None]
        self._consumer = self._producer = None
        closed = await asyncio.gather(*(c.close() for c in clients), return_exceptions=True)
        for result in closed:  # each client closed, whatever the other did
            if isinstance(result, BaseException):
                raise result

    def update_directory(self, directory: Directory) -> None:
        """Take a newer directory (its serial must not be lower than the current one's), and
        remember its serial, so that a restart cannot go back to an older one either."""
        if directory.serial < max(self.directory.serial, self.store.directory_serial()):
            raise DirectoryRejected(
                f"directory serial {directory.serial} is older than the one in use ({self.directory.serial})",
                check=DirectoryCheck.OLDER_SERIAL,
            )
        self.store.use_directory_serial(directory.serial)
        if self._reload_keys is not None and self.ring.missing_from(directory, self.clock()):
            self._take_new_keys()
        self.directory = directory
        self.sealer.directory = directory

    def _take_new_keys(self) -> None:
        """Read the key folder's new files into the ring. A key the directory lists but the
        folder lacks is logged, not fatal: the gateway goes on with the keys it has (what is
        sealed to the missing key is refused DECRYPT_FAILED until it is there)."""
        assert self._reload_keys is not None
        try:
            ring = self._reload_keys(self.ring)
        except KeyStoreError as exc:
            log.error("gateway %s: cannot read its new keys: %s", self.party_id, exc.message)
            return
        if added := sorted(set(ring.files.values()) - set(self.ring.files.values())):
            log.info("gateway %s: took its new keys %s", self.party_id, ", ".join(added))
        self.ring = self.sealer.ring = ring

    # --- publishing: records and their audit events, all or none -------------------------

    async def _publish(self, records: Sequence[OutgoingRecord], events: Sequence[EventSpec],
                       *, checkpoint: bool = False) -> None:  # fmt: skip
        """Write ``records`` and their audit events atomically. Publications that arrive
        while one is being written are written together in the next atomic write (group
        commit): each waits for its own, and each fails if that write fails.

        Refused at once while an outage of the log is known, or once a stop gave up on
        writes: nothing is queued then."""
        self._live_producer()
        if self.outage is not None:
            raise TransportUnavailable("the message log is unreachable; nothing was written")
        if self._writes_abandoned:
            raise TransportError("the gateway is stopping; nothing was written", reason="STOPPING")
        written: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queue.append(Publication(tuple(records), tuple(events), checkpoint, written))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._write_queue())
        await written

    async def _write_queue(self) -> None:
        producer = self._live_producer()
        while self._queue:
            batch, self._queue = (
                self._queue[:MAX_PUBLICATIONS_PER_WRITE],
                self._queue[MAX_PUBLICATIONS_PER_WRITE:],
            )
            if self.outage is not None:  # queued behind a write the outage held up
                self._fail(batch, TransportUnavailable("the message log is unreachable"))
                continue
            self._writing = batch
            try:
                await self._audit_head_known(producer)
            except BaseException as exc:
                self._fail(batch, exc)
                if not isinstance(exc, Exception):
                    raise
                continue
            pending = self.audit.prepare([e for p in batch for e in p.events],
                                         checkpoint=any(p.checkpoint_wanted for p in batch))  # fmt: skip
            try:
                await producer.send_atomic(
                    [*(r for p in batch for r in p.records), *pending.records]
                )
            except BaseException as exc:
                # a timed-out write may still land: read the chain's head before the next
                self._audit_head_uncertain = isinstance(exc, TransportTimeout)
                self._fail(batch, exc)
                if not isinstance(exc, Exception):
                    raise
                continue
            crash.reached("after_audit")
            self.audit_writable = True
            self.audit.commit(pending)
            self._writing = ()
            if self._health is not None:
                self._health.answered()
            for publication in batch:
                if not publication.written.done():
                    publication.written.set_result(None)

    def _fail(self, batch: Sequence[Publication], exc: BaseException) -> None:
        self._writing = ()
        self.audit_writable = False
        self.observer.audit_failed()
        if isinstance(exc, TransportUnavailable | TransportTimeout) and self._health is not None:
            self._health.probe_soon()  # is the log away? (sends are refused at once if so)
        for publication in batch:
            if not publication.written.done():
                publication.written.set_exception(
                    exc if isinstance(exc, Exception) else TransportError("stopped")
                )

    async def _audit_head_known(self, producer: Producer) -> None:
        """After a write whose outcome is unknown: wait until it is final, then take the
        chain's head from the topic, so a write that landed late is never forked."""
        if self._audit_head_uncertain:
            await producer.settle()
            await self.audit.recover(self.transport)
            self._audit_head_uncertain = False

    async def checkpoint_if_due(self, *, now: bool = False) -> None:
        """A tree head over the chain when events have waited long enough for one (or,
        with ``now``, whenever some have none yet: on a graceful stop)."""
        if self.audit.checkpoint_due() or (now and self.audit.uncovered):
            await self._publish([], [], checkpoint=True)

    def _live_producer(self) -> Producer:
        if self._producer is None:
            raise TransportError("gateway is not started")
        return self._producer

    # --- sending ---------------------------------------------------------------------------

    async def send(
        self,
        message: AvroModel,
        recipients: Sequence[str],
        *,
        correlation_id: uuid.UUID | None = None,
        causation_id: uuid.UUID | None = None,
        idempotency: Claim | None = None,
        traceparent: TraceParent | None = None,
    ) -> uuid.UUID:
        """Seal ``message`` and put it in every recipient's inbox with its SENT event, all
        or none.

        With ``idempotency`` (`broker.gateway._idempotency`), a repeat of a send the log
        took returns its message id and sends nothing; the key is noted in the transaction
        that notes the send. Raises `IdempotencyConflict` or `IdempotencyInProgress`.

        Raises `PolicyDenied`, `UnknownParty` or `RecordTooLarge` before anything is sent,
        and a `TransportError` if the log or the audit stream refused it (nothing stored):
        `TransportUnavailable` at once, before any work, while an outage is known. After a
        `TransportTimeout` the outcome is unknown; a send with a key keeps it unsettled, so
        that its retry learns the outcome (`broker.gateway._idempotent_sends`).

        ``traceparent`` is the back office's request's; this gateway's send is a new span in
        its trace (a new trace without one), carried by the envelope and the SENT event."""
        _refuse_attachments_to_send(message)
        message_id = uuid.uuid4()
        if idempotency is not None:  # a repeat is answered also while the log is away
            replay = await self.idempotent.begin(idempotency, message_id)
            if replay is not None:
                return replay
        try:
            if self.outage is not None:
                raise TransportUnavailable("the message log is unreachable; nothing was sent")
            await self._send(message, recipients, message_id, correlation_id, causation_id,
                             idempotency, traceparent)  # fmt: skip
        except BaseException:
            if idempotency is not None:
                self.idempotent.failed(idempotency)
            raise
        if idempotency is not None:
            self.idempotent.taken(idempotency, message_id)
        crash.reached("after_send")
        return message_id

    async def _send(self, message: AvroModel, recipients: Sequence[str], message_id: uuid.UUID,
                    correlation_id: uuid.UUID | None, causation_id: uuid.UUID | None,
                    idempotency: Claim | None, traceparent: TraceParent | None = None) -> None:  # fmt: skip
        names = tuple(dict.fromkeys(recipients))
        started = time.perf_counter()
        span = traceparent.child() if traceparent is not None else tc.start()
        request = SealRequest(
            message, names, message_id, correlation_id, causation_id, traceparent=str(span)
        )
        envelope = await self._seals.seal(request)
        self.observer.sealed(time.perf_counter() - started)
        case_id: uuid.UUID = message.case_id  # type: ignore[attr-defined]
        headers = (
            ("lvv-message-id", str(message_id).encode()),
            ("lvv-sender", self.party_id.encode()),
        )
        records = [
            OutgoingRecord(inbox(r, self.prefix), envelope, case_id.bytes, headers) for r in names
        ]
        digest = hashlib.sha256(envelope).digest()
        event = EventSpec(
            AuditAction.SENT, message_id=message_id, message_type=message.avro_name, sender=self.party_id,
            recipients=names, case_id=case_id, envelope_sha256=digest, traceparent=str(span),
            parent_span_id=traceparent.span_id if traceparent is not None else None,
        )  # fmt: skip
        await self._sent_rows.submit(
            SentRow(
                message_id, message.avro_name, case_id, names, self.clock(), digest, idempotency
            )
        )
        try:
            await self._publish(records, [event])
        except TransportTimeout:
            if idempotency is None:  # (with a key: unsettled, until its retry settles it)
                await asyncio.to_thread(self.store.forget_sent, message_id)
            raise
        except BaseException:
            await asyncio.to_thread(self.store.forget_sent, message_id)
            raise
        self.observer.sent(message.avro_name, names)

    def _seal_receipts(self, answers: Sequence[follow.Answer]) -> list[OutgoingRecord | None]:
        """The receipts that give ``answers``, each to its sender's inbox, sealed as one
        batch; None where a sender can no longer be written to (it left the directory)."""
        requests = []
        for answer in answers:
            e = answer.envelope
            receipt = DeliveryReceipt(
                receipt_id=uuid.uuid4(), message_id=e.message_id, message_type=e.message_type,
                case_id=e.case_id, received_by=self.party_id, received_at=self.clock(),
                envelope_sha256=answer.digest, outcome=answer.outcome,
                reason=ReceiptReason(answer.reason) if answer.reason else None,
            )  # fmt: skip
            requests.append(SealRequest(receipt, (e.sender,), causation_id=e.message_id,
                                        correlation_id=e.correlation_id,
                                        traceparent=str(follow.receipt_span(e, answer.digest, self.party_id))))  # fmt: skip
        out: list[OutgoingRecord | None] = []
        for answer, sealed in zip(answers, self.sealer.seal_each(requests), strict=True):
            e = answer.envelope
            if isinstance(sealed, LocalError):
                log.info("cannot answer %s: %s", e.message_id, sealed)
                out.append(None)
                continue
            out.append(OutgoingRecord(inbox(e.sender, self.prefix), sealed, e.case_id.bytes,
                                      (("lvv-sender", self.party_id.encode()),)))  # fmt: skip
        return out

    def _dead_letter(self, record: Record, f: RejectionFollowUp) -> OutgoingRecord:
        """The refused record, as it came, with the reason and where it came from."""
        source = _position(record)
        key = f.envelope.message_id.bytes if f.envelope is not None else f.digest
        headers: tuple[tuple[str, bytes], ...] = (
            ("lvv-reason", f.reason.encode()),
            ("lvv-rejected-at", self.clock().isoformat().encode()),
            ("lvv-source", source.encode()),
            ("lvv-gateway", self.party_id.encode()),
            ("lvv-envelope-sha256", f.digest.hex().encode()),
        )
        value = record.value
        if len(value) > MAX_ENVELOPE_BYTES:  # cut: whole, it may not fit a record with our headers
            value = value[:MAX_ENVELOPE_BYTES]  # (the whole record stays in the inbox)
            headers += (("lvv-original-bytes", str(len(record.value)).encode()),)
        return OutgoingRecord(dlq(self.party_id, self.prefix), value, key, headers)

    def _record_sent(self, rows: Sequence[SentRow]) -> list[None]:
        """The sends that arrived together, noted in one store transaction (blocking)."""
        self.store.record_sent_many(rows)
        return [None] * len(rows)

    # --- the back office's acknowledgements ------------------------------------------------

    async def ack(self, message_id: uuid.UUID, *, sender: str | None = None) -> bool:
        """The back office has taken a delivered message (`GatewayStore.ack`); False if
        unknown. Acknowledgements that arrive together are written in one transaction."""
        return await self._acks.submit((message_id, sender))

    def _ack_all(self, acks: Sequence[tuple[uuid.UUID, str | None]]) -> list[bool | Exception]:
        return list(self.store.ack_many(acks, self.clock()))

    # --- receiving -------------------------------------------------------------------------

    async def run(self) -> None:
        """Consume this party's inbox until `stop` is called."""
        consumer = self._consumer
        if consumer is None:
            raise TransportError("gateway is not started")
        while not self._stopping.is_set():
            try:
                # the checkpoint before the poll: records polled and then dropped because a
                # write failed would be skipped, as the consumer's position has passed them
                await self.checkpoint_if_due()
                records = await consumer.poll(
                    timeout_ms=POLL_TIMEOUT_MS, max_records=POLL_MAX_RECORDS
                )
            except TransportError as exc:
                self._not_ready(exc)
                await self._pause(RETRY_BACKOFF_S[-1])
                continue
            self.ready = True
            if records and not await self._take(consumer, records):
                break  # stopping: what is not done stays uncommitted and comes again
        with contextlib.suppress(TransportError):  # stopping: cover the last events too
            await self.checkpoint_if_due(now=True)

    async def _take(self, consumer: Consumer, records: Sequence[Record]) -> bool:
        """Steps 1–5 for a polled batch, in order: its decisions stored in one transaction,
        their follow-ups published in one atomic write, then the offsets committed. A fault
        of the moment at a record (the disk away or busy) ends the batch there: what was
        decided before it goes on, and that record is tried again after a pause. False if
        the gateway stopped first."""
        waiting, attempt = list(records), 0
        while waiting:
            if self._stopping.is_set():
                return False
            try:
                batch = await asyncio.to_thread(self._decide_all, waiting, contain_faults=True)
            except TRANSIENT_STORE_FAULTS as exc:  # the commit failed: none of it is stored
                batch = _Batch([], [], 0, exc)
            for note in batch.notes:
                note()
            if batch.decided and not await self._follow_up_all(batch.decided):
                return False  # stopping: decided but not published; redelivery will publish it
            if batch.taken:
                done: dict[TopicPartition, int] = {}
                for record in waiting[: batch.taken]:
                    done[record.topic_partition] = record.offset + 1
                await self._commit(consumer, done)
                crash.reached("after_commit")
                del waiting[: batch.taken]
            if batch.fault is not None:
                self._not_ready(batch.fault)
                await self._pause(RETRY_BACKOFF_S[min(attempt, len(RETRY_BACKOFF_S) - 1)])
                attempt += 1
        return True

    async def _commit(self, consumer: Consumer, offsets: dict[TopicPartition, int]) -> None:
        try:
            await consumer.commit(offsets)
        except TransportError as exc:  # records come again; redelivery is recognised
            log.warning("commit failed for %s: %s", self.party_id, exc)

    def _not_ready(self, exc: Exception) -> None:
        if self.ready:
            quiet.warning(("lost-log", self.party_id), "gateway %s lost its log: %s",
                          self.party_id, exc)  # fmt: skip
        self.ready = False
        if isinstance(exc, TransportUnavailable | TransportTimeout) and self._health is not None:
            self._health.probe_soon()  # is the log away? (sends are refused at once if so)

    async def _pause(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), seconds)

    def _decide_all(self, records: Sequence[Record], *, contain_faults: bool) -> _Batch:
        """Steps 1–3 for ``records``, in order, in one store transaction (one fsync), each
        record in a savepoint of its own. Blocking: runs in a worker thread, where the
        replay guard's lookups and the opening happen too, off the event loop.

        With ``contain_faults`` (the loop), a failure that is no fault of the moment is a
        fault of ours that trying again will not mend: the record is refused as
        PROCESSING_FAILED at once, so it cannot block its partition. A fault of the moment
        ends the batch at that record (`_Batch.fault`). Without it, any failure is raised,
        and nothing of the batch is stored."""
        batch = _Batch([], [], 0, None)
        with self.store.batch():
            for record in records:
                if contain_faults and self._stopping.is_set() and batch.taken:
                    break  # stopping: finish what is decided; the rest comes again
                kept = len(batch.decided), len(batch.notes)
                try:
                    with self.store.savepoint():
                        self._decide(record, batch)
                except TRANSIENT_STORE_FAULTS as exc:
                    if not contain_faults:
                        raise
                    del batch.decided[kept[0] :], batch.notes[kept[1] :]
                    batch.fault = exc
                    break
                except Exception:
                    if not contain_faults:
                        raise
                    del batch.decided[kept[0] :], batch.notes[kept[1] :]
                    log.exception("record %s failed; dead-lettered as %s", _position(record),
                                  PROCESSING_FAILED)  # fmt: skip
                    try:
                        with self.store.savepoint():
                            digest = hashlib.sha256(record.value).digest()
                            self._refuse(record, digest, PROCESSING_FAILED, None, batch)
                    except Exception as exc:  # even that failed: try the record again later
                        log.exception("record %s could not be dead-lettered", _position(record))
                        del batch.decided[kept[0] :], batch.notes[kept[1] :]
                        batch.fault = exc
                        break
                batch.taken += 1
        return batch

    async def handle(self, record: Record, decided: list[Decided] | None = None) -> None:
        """Steps 1–4 of the module docstring for one record, any failure raised. With
        ``decided``, step 4 is left to the caller: the follow-up joins that list, to be
        published with others."""
        batch = await asyncio.to_thread(self._decide_all, [record], contain_faults=False)
        for note in batch.notes:
            note()
        if decided is not None:
            decided.extend(batch.decided)
        elif batch.decided:
            await self._publish_follow_ups(batch.decided)

    def _decide(self, record: Record, batch: _Batch) -> None:
        """Steps 1–3 for one record (blocking: in the store's batch, in a worker thread).
        What must be done on the event loop once the batch is stored — the metrics, the
        crash point after a delivery — joins ``batch.notes``."""
        source = _position(record)
        earlier = self.store.handled_at(source)
        if earlier is not None:  # the log delivered this record again after a restart
            if earlier.pending:
                batch.decided.append(Decided(record, source, earlier.followup))
            batch.notes.append(self.observer.redelivered)
            return
        digest = hashlib.sha256(record.value).digest()  # once: every step below takes this one
        verdict = self.store.earlier_verdict(digest)
        if verdict is Verdict.REFUSED:  # a copy of a refused envelope: its verdict stands
            batch.notes.append(self.observer.copy_received)
            quiet.info("copy", "a copy of a refused envelope at %s: counted, nothing sent", source)
            return
        if verdict is Verdict.ACCEPTED:  # the same bytes again: a replay
            self._refuse(record, digest, RejectReason.REPLAY, None, batch)
            return
        claims = self.store.staged_claims()
        now = self.clock()
        started = time.perf_counter()
        try:
            opened = open_envelope(record.value, me=self.keys, directory=self.directory,
                                   replay_guard=claims, now=now, caches=self._open_caches)  # fmt: skip
        except EnvelopeRejected as exc:
            self._refuse(record, digest, exc.reject_reason, exc, batch, claims)
            return
        took = time.perf_counter() - started
        batch.notes.append(lambda: self.observer.opened(took))
        crash.reached("after_open")
        h, message = opened.header, opened.message
        if _carries_attachments(message):  # not delivered without its documents (see below)
            held = EnvelopeRejected(RejectReason.ATTACHMENT_INVALID)
            held.authenticated_header = h
            self._refuse(record, digest, RejectReason.ATTACHMENT_INVALID, held, batch, claims)
            return
        f: FollowUp
        try:
            if isinstance(message, DeliveryReceipt):
                f = follow.receipt_received(h, message, digest)
                known = self.store.record_receipt(
                    source=source, claims=claims, envelope_sha256=digest, message_id=message.message_id,
                    recipient=h.sender, outcome=message.outcome.value,
                    reason=message.reason.value if message.reason else None, followup=f, now=now,
                    receipted_sha256=message.envelope_sha256,
                )  # fmt: skip
                outcome = message.outcome.value
                batch.notes.append(lambda: self.observer.receipt_received(outcome, known))
            else:
                f = follow.delivered(h, digest)
                self.store.record_delivery(
                    source=source, claims=claims, envelope_sha256=digest, message_id=h.message_id,
                    message_type=h.message_type, sender=h.sender, case_id=h.case_id, created_at=h.created_at,
                    message_json=message.model_dump_json(), followup=f, now=now,
                    traceparent=str(follow.delivery_span(f.envelope, digest, self.party_id)),
                )  # fmt: skip
                age = (now - h.created_at).total_seconds()
                batch.notes.append(lambda: self.observer.delivered(h.message_type, h.sender, age))
                batch.notes.append(lambda: crash.reached("after_deliver"))
        except ReplayDetected:  # the store's own rule: this sender used this id before
            rejection = EnvelopeRejected(RejectReason.REPLAY)
            rejection.authenticated_header = h
            self._refuse(record, digest, RejectReason.REPLAY, rejection, batch)
            return
        batch.decided.append(Decided(record, source, f))

    def _refuse(self, record: Record, digest: bytes, reason: RefusalReason,
                rejection: EnvelopeRejected | None, batch: _Batch,
                claims: StagedClaims | None = None) -> None:  # fmt: skip
        """Store a refusal of the record whose SHA-256 is ``digest``, with what must follow
        it. An authenticated envelope's refusal also settles its (sender, message id) for
        good (docs/ENVELOPE.md §6.4), through ``claims``: a later envelope of that pair is a
        replay, never delivered."""
        source = _position(record)
        quiet.warning(("refused", reason), "refused the record at %s: %s", source, reason)
        f = follow.rejected(reason, rejection, digest)
        message_id = f.envelope.message_id if f.envelope is not None else None
        now = self.clock()
        h = rejection.authenticated_header if rejection is not None else None
        if h is not None and reason != RejectReason.REPLAY:
            claims = claims or self.store.staged_claims()
            if not any((s, m) == (h.sender, h.message_id) for s, m, _ in claims.claims):
                keep_until = min(h.expires_at, now + MAX_TTL) + MAX_CLOCK_SKEW
                claims.claims.append((h.sender, h.message_id, keep_until))
        else:
            claims = None
        self.store.record_rejection(source, digest, message_id, f, claims=claims, now=now)
        batch.notes.append(lambda: self.observer.rejected(reason))
        batch.decided.append(Decided(record, source, f))

    async def _publish_follow_ups(self, decided: Sequence[Decided]) -> None:
        """Publish what follows each decided record — all in one atomic write — and only
        then mark them done (which makes delivered messages visible)."""
        answers = [follow.receipt_wanted(d.followup) for d in decided]
        sealed = iter(self._seal_receipts([a for a in answers if a is not None]))
        records: list[OutgoingRecord] = []
        events: list[EventSpec] = []
        for d, answer in zip(decided, answers, strict=True):
            receipt = next(sealed) if answer is not None else None
            r, e = follow.publication(d.followup, d.record, me=self.party_id,
                                      dead_letter=self._dead_letter, receipt=receipt)  # fmt: skip
            records += r
            events += e
        await self._publish(records, events)
        crash.reached("after_receipt")
        await asyncio.to_thread(self.store.followups_done, [d.source for d in decided])
        self.inbox_signal.notify()  # after the commit: what a woken long poll reads is there
        crash.reached("after_visible")
        for event in events:
            if event.action is AuditAction.RECEIPT_SENT:
                self.observer.sent(DeliveryReceipt.avro_name, event.recipients)

    async def _follow_up_all(self, decided: list[Decided]) -> bool:
        """Publish a batch's follow-ups — also when a stop was asked for meanwhile: that is
        finishing the work in hand — waiting out a broker outage unless stopping.

        A failure of our own (the store, a bug) is retried the same way, not let out of the
        loop: the decisions are stored, so trying again is what a restart would do too (a
        follow-up published twice is recognised as such); meanwhile /readyz says not ready."""
        attempt = 0
        while True:
            try:
                await self._publish_follow_ups(decided)
                return True
            except TransportError as exc:
                self._not_ready(exc)
            except Exception:
                log.exception("follow-ups of %d records failed", len(decided))
                self.ready = False
            if self._stopping.is_set():
                return False
            if self.outage is not None:  # the log is away: wait until a probe finds it back
                while self.outage is not None and not self._stopping.is_set():
                    await self._pause(OUTAGE_PROBE_EVERY_S)
                continue
            await self._pause(RETRY_BACKOFF_S[min(attempt, len(RETRY_BACKOFF_S) - 1)])
            attempt += 1


# --- attachments: referenced by the contract, not carried yet ---------------------------------
#
# The contract and the stream cipher of attachments exist (docs/ENVELOPE.md §11), but this
# gateway neither publishes chunks nor fetches and verifies them. A message is delivered with
# all its documents or not at all, so until then a message that references attachments is
# refused at both ends: its sender is told at once, and a recipient answers ATTACHMENT_INVALID
# (a dead letter and a signed REJECTED receipt) rather than delivering a dossier without them.


def _carries_attachments(message: AvroModel) -> bool:
    return bool(getattr(message, "attachments", ()))


def _refuse_attachments_to_send(message: AvroModel) -> None:
    if _carries_attachments(message):
        raise PolicyDenied(
            f"{message.avro_name} references attachments, which this gateway does not carry "
            "yet: send it without them"
        )
