"""The demo's back offices: each pulls its gateway's inbox, hands every message to its
party's adapter, acknowledges it, and keeps what it saw so the demo can check the run.

An idle back office costs nothing: in process it waits on its gateway's inbox signal
(`broker.gateway._inbox_signal`, the one that wakes the API's long polls), over HTTP it
long-polls (`AdapterRuntime`); nothing runs on a short timer (`lvvx demo --serve` idles)."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable
from datetime import datetime
from typing import Any

from adapters import Adapter, AdapterRuntime, CoaAdapter, GatewayClient, Network
from adapters.coa import Facility
from adapters.service import BY_ROLE
from broker.caseflow import event_time
from broker.client import AsyncGatewayClient, InboxEntry
from broker.gateway import Gateway, utc_now
from broker.models import AvroModel, FacilityKind, PartyRole, model_for
from demo.casebook import Party

log = logging.getLogger("lvvx.demo")

IDLE_WAIT_S = 30.0
"""Longest wait on the inbox signal before the inbox is read again anyway: the signal
misses nothing (`InboxSignal.generation`), so this is only a backstop."""

CLOSED_WAIT_S = 0.05
"""How often a back office whose gateway is stopping (its signal set for good) looks again."""


# COA's back office answers transfer requests itself, from its capacity (adapters/coa.py)
DEMO_FACILITIES = (
    Facility(name="VBL Ter Apel", municipality="Westerwolde",
             kind=FacilityKind.FREEDOM_RESTRICTING_LOCATION, places=10_000),
    Facility(name="AZC Budel-Cranendonck", municipality="Cranendonck",
             kind=FacilityKind.ASYLUM_SEEKERS_CENTRE, places=10_000),
)  # fmt: skip


def make_adapter(
    party: Party,
    client: GatewayClient,
    network: Network,
    clock: Callable[[], datetime] = utc_now,
) -> Adapter[Any]:
    """The adapter of ``party``'s kind, its back office sending through ``client`` (its
    in-process gateway, or that gateway's API) to the parties of ``network``; it dates
    what it writes by ``clock`` (the demo's calendar)."""
    if party.role is PartyRole.COA:
        return CoaAdapter(party.party_id, client, facilities=DEMO_FACILITIES, network=network,
                          clock=clock)  # fmt: skip
    return BY_ROLE[party.role](party.party_id, client, network=network, clock=clock)


class BackOffice:
    """With ``client`` it reads its inbox over the gateway's API (`AdapterRuntime`: long
    poll, handle, ack); without, from the gateway's store in this process."""

    def __init__(
        self, gateway: Gateway, adapter: Adapter[Any], client: AsyncGatewayClient | None = None
    ) -> None:
        self.gateway = gateway
        self.adapter = adapter
        self.client = client
        self.duplicates = 0
        self.adapter_errors = 0
        self._seen: Counter[uuid.UUID] = Counter()
        self._arrived: dict[uuid.UUID, asyncio.Event] = defaultdict(asyncio.Event)
        self._by_case: dict[uuid.UUID, list[AvroModel]] = defaultdict(list)
        self._news: dict[uuid.UUID, asyncio.Event] = defaultdict(asyncio.Event)  # per case
        self._stopping = asyncio.Event()

    def stop(self) -> None:
        self._stopping.set()

    async def wait_for(self, message_id: uuid.UUID) -> None:
        await self._arrived[message_id].wait()

    def note_sent(self, message: AvroModel) -> None:
        """The party's own messages belong to its view of a case too."""
        self._by_case[message.case_id].append(message)  # type: ignore[attr-defined]
        self._news[message.case_id].set()  # type: ignore[attr-defined]

    async def wait_for_type(self, case_id: uuid.UUID, message_type: type[AvroModel]) -> None:
        """Until a message of ``message_type`` about the case reached this back office."""
        while True:
            news = self._news[case_id]
            news.clear()  # before looking: a message taken after the look sets it again
            if any(isinstance(m, message_type) for m in self._by_case[case_id]):
                return
            await news.wait()

    def messages(self, case_id: uuid.UUID) -> list[AvroModel]:
        return list(self._by_case[case_id])

    def case_messages(self, case_id: uuid.UUID) -> list[tuple[str, datetime]]:
        return [
            (m.avro_name, t) for m in self._by_case[case_id] if (t := event_time(m)) is not None
        ]

    def _took(self, message_id: uuid.UUID, case_id: uuid.UUID, message: AvroModel) -> None:
        self._seen[message_id] += 1
        if self._seen[message_id] > 1:
            self.duplicates += 1
        self._by_case[case_id].append(message)
        self._news[case_id].set()

    def _over_http(self, entry: InboxEntry, message: AvroModel) -> None:
        self._took(entry.message_id, entry.case_id, message)
        self._arrived[entry.message_id].set()

    async def run(self) -> None:
        if self.client is None:
            await self._run_in_process()
            return
        runtime = AdapterRuntime(self.adapter, self.client, on_handled=self._over_http)
        try:
            await runtime.run(self._stopping)
        finally:
            self.adapter_errors += runtime.counts.failures

    async def _run_in_process(self) -> None:
        signal = self.gateway.inbox_signal
        while not self._stopping.is_set():
            generation = signal.generation()  # before the read: a delivery after it wakes us
            items = await asyncio.to_thread(self.gateway.store.inbox, limit=200)
            for item in items:
                message = model_for(item.message_type).model_validate(item.message)
                self._took(item.message_id, item.case_id, message)
                if self.adapter is not None:
                    try:
                        await self.adapter.receive(message, sender=item.sender, message_id=item.message_id,
                                                   received_at=item.received_at)  # fmt: skip
                    except Exception:
                        self.adapter_errors += 1
                        log.exception(
                            "adapter of %s failed on %s", self.gateway.party_id, item.message_type
                        )
                await self.gateway.ack(item.message_id, sender=item.sender)
                self._arrived[item.message_id].set()
            if not items:
                # a stopping gateway's signal stays set: then look again only now and then
                await self._idle(self._stopping if signal.closed else generation,
                                 CLOSED_WAIT_S if signal.closed else IDLE_WAIT_S)  # fmt: skip

    async def _idle(self, generation: asyncio.Event, timeout_s: float) -> None:
        """Until the gateway made messages visible, the back office stops, or ``timeout_s``."""
        waits = {asyncio.ensure_future(generation.wait()),
                 asyncio.ensure_future(self._stopping.wait())}  # fmt: skip
        try:
            await asyncio.wait(waits, timeout=timeout_s, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in waits:
                task.cancel()
