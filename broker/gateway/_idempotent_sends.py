"""The gateway's side of idempotent sends: which keys are in flight, and settling the keys
whose send has no known outcome (rules: `broker.gateway._idempotency`).

A key's send is in one of three states: in flight in this process (a retry waits: 409
IN_PROGRESS); taken by the log (a retry gets the first answer); or unsettled — the process
died, or the log's answer timed out, between noting the send (with its key, in one store
transaction) and hearing whether the log took it. An unsettled send is settled from the
gateway's own audit topic, which holds a SENT event for the message exactly if the atomic
write that carried the message was committed: found, the key is confirmed; not found, the
send is forgotten (the key is free, the retry sends anew). Settling waits until no atomic
write of this producer is unfinished (`Producer.settle`); at start the producer's fencing of
its previous incarnation has made every earlier write final.

Confirming a key after the log took its message is group-committed and not waited for: if
the confirmation is lost in a crash, the send is unsettled and is settled as above. Until
it is written, this process answers a retry from memory.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime

from broker.audit import BadAuditEvent, decode_event
from broker.gateway._coalesce import Coalescer
from broker.gateway._idempotency import KEEP_KEYS_FOR, Claim, Recorded, decide
from broker.gateway._store import GatewayStore
from broker.models import AuditAction
from broker.transport import Record

log = logging.getLogger("lvvx.gateway")

CONFIRM_GATHER_S = 0.25
"""Confirmations wait this long to share one write (one fsync): nobody waits on them, a
retry meanwhile is answered from memory, and one lost in a crash is settled from the audit
topic. Without it every keyed send at a low rate cost a second fsync."""


class IdempotentSends:
    """Keys of one gateway. ``read_audit`` reads its audit topic to the end once every
    earlier atomic write is final; ``clock`` is the gateway's."""

    def __init__(
        self,
        store: GatewayStore,
        *,
        party: str,
        read_audit: Callable[[], Awaitable[list[Record]]],
        clock: Callable[[], datetime],
    ) -> None:
        self._store, self._party, self._read_audit = store, party, read_audit
        self._clock = clock
        self._in_flight: dict[bytes, uuid.UUID] = {}
        """Keys of sends in flight here, and their messages."""
        self._answered: dict[bytes, tuple[Recorded, datetime]] = {}
        """Confirmed here, the confirmation not yet written; with the moment the key expires
        (a key is kept `KEEP_KEYS_FOR` from its send, in memory as in the store)."""
        self._confirms: Coalescer[uuid.UUID, None] = Coalescer(
            self._confirm_all, gather_s=CONFIRM_GATHER_S
        )
        self._confirming: set[asyncio.Task[None]] = set()
        self._settling: asyncio.Task[None] | None = None

    async def begin(self, claim: Claim, message_id: uuid.UUID) -> uuid.UUID | None:
        """Before sending ``message_id`` with ``claim``: the first answer's message id if
        it repeats a send the log took (send nothing), else None, and the key is in flight
        until `taken` or `failed`. Raises `IdempotencyConflict` or `IdempotencyInProgress`."""
        key = claim.key_sha256
        recorded = self._remembered(key) or self._store.idempotent_send(key, self._clock())
        if recorded is not None and not recorded.confirmed and key not in self._in_flight:
            await self.settle()  # unsettled: a crash or a timeout; settle it, then decide
            recorded = self._remembered(key) or self._store.idempotent_send(key, self._clock())
        replay = decide(claim, recorded, in_flight=key in self._in_flight)
        if replay is None:
            self._in_flight[key] = message_id
        return replay

    def taken(self, claim: Claim, message_id: uuid.UUID) -> None:
        """The log took the message sent under ``claim``."""
        key = claim.key_sha256
        self._in_flight.pop(key, None)
        expires = self._clock() + KEEP_KEYS_FOR
        self._answered[key] = (Recorded(message_id, claim.body_sha256, confirmed=True), expires)
        task = asyncio.create_task(self._confirm(key, message_id))
        self._confirming.add(task)
        task.add_done_callback(self._confirming.discard)

    def _remembered(self, key: bytes) -> Recorded | None:
        found = self._answered.get(key)
        return found[0] if found is not None and self._clock() <= found[1] else None

    def failed(self, claim: Claim) -> None:
        """The send under ``claim`` ended without the log's answer: forgotten (nothing was
        sent) or unsettled (the outcome is unknown); either way no longer in flight."""
        self._in_flight.pop(claim.key_sha256, None)

    async def _confirm(self, key: bytes, message_id: uuid.UUID) -> None:
        try:
            await self._confirms.submit(message_id)
        except Exception as exc:  # left unconfirmed: settled later from the audit topic
            log.warning("gateway %s: an idempotency key was not confirmed: %s", self._party, exc)
        finally:
            self._answered.pop(key, None)

    def _confirm_all(self, message_ids: Sequence[uuid.UUID]) -> list[None]:
        self._store.confirm_sent(message_ids)
        return [None] * len(message_ids)

    async def settle(self) -> None:
        """Settle every unsettled send from the audit topic; one settling at a time, which
        callers that arrive meanwhile share. Raises a `TransportError` if the log is away."""
        if self._settling is None or self._settling.done():
            self._settling = asyncio.create_task(self._settle())
        await asyncio.shield(self._settling)

    async def _settle(self) -> None:
        # a send in flight here, or taken and being confirmed, is not unsettled
        busy = {*self._in_flight.values(), *(r.message_id for r, _ in self._answered.values())}
        open_ = [m for m in self._store.unconfirmed_sends() if m not in busy]
        if not open_:
            return
        records = await self._read_audit()
        sent = self._sent_ids(records)
        taken = [m for m in open_ if m in sent]
        lost = [m for m in open_ if m not in sent]
        if taken:
            await asyncio.to_thread(self._store.confirm_sent, taken)
        for message_id in lost:
            await asyncio.to_thread(self._store.forget_sent, message_id)
        log.info("gateway %s settled %d sends of unknown outcome: %d taken, %d not sent",
                 self._party, len(open_), len(taken), len(lost))  # fmt: skip

    def _sent_ids(self, records: Sequence[Record]) -> set[uuid.UUID]:
        """Messages with a SENT event of this gateway in its audit topic. The topic is
        written by this gateway alone (ACLs), so no signature is checked here; the audit
        verifier checks every one."""
        sent: set[uuid.UUID] = set()
        for record in records:
            if record.key != self._party.encode():
                continue
            try:
                event = decode_event(record.value)
            except BadAuditEvent:
                continue
            mine = event.action is AuditAction.SENT and event.gateway == self._party
            if mine and event.message_id is not None:
                sent.add(event.message_id)
        return sent
