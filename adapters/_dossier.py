"""What IND and DT&V share: each keeps its own system's exports by V-number and, after an
intake, delivers its part of the dossier to the local partners (step 2 of the case flow)."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Generic, TypeVar

from adapters._base import Adapter, Clock, GatewayClient, Network, Received, utc_now
from adapters._register import CaseRecord
from broker import models as m
from broker.errors import LocalError


class UnknownPerson(LocalError):
    """The party's own system holds no export for that V-number."""

    reason = "UNKNOWN_PERSON"


@dataclass(frozen=True)
class DossierCase(CaseRecord):
    v_number: str | None = None
    dossier_id: uuid.UUID | None = None
    identity_status: m.IdentityStatus = m.IdentityStatus.UNKNOWN


DossierCaseT = TypeVar("DossierCaseT", bound=DossierCase)
ExportT = TypeVar("ExportT")


class DossierService(Adapter[DossierCaseT], Generic[DossierCaseT, ExportT]):
    """An adapter that delivers dossiers from exports of its own system. With
    ``auto_deliver`` an intake for a V-number the system knows is answered at once: the
    agreement asks for delivery as soon as possible after intake."""

    def __init__(
        self,
        party_id: str,
        client: GatewayClient,
        *,
        exports: Iterable[ExportT] = (),
        auto_deliver: bool = False,
        network: Network,
        clock: Clock = utc_now,
    ) -> None:
        super().__init__(party_id, client, network=network, clock=clock)
        self.auto_deliver = auto_deliver
        self.exports: dict[str, ExportT] = {}
        for export in exports:
            self.load(export)

    def v_number_of(self, export: ExportT) -> str:
        raise NotImplementedError

    def dossier_of(self, export: ExportT, case_id: uuid.UUID, at: datetime) -> m.DossierDelivered:
        """The party's part of the dossier for ``case_id``, mapped from ``export``."""
        raise NotImplementedError

    def load(self, export: ExportT) -> None:
        """Take in (or replace) the system's export for one person."""
        self.exports[self.v_number_of(export)] = export

    def lookup(self, v_number: str | None) -> ExportT:
        if v_number is None or v_number not in self.exports:
            raise UnknownPerson(f"no export for V-number {v_number}")
        return self.exports[v_number]

    async def deliver_dossier(
        self,
        case_id: uuid.UUID,
        export: ExportT | None = None,
        *,
        to: Sequence[str] | None = None,
        causation_id: uuid.UUID | None = None,
    ) -> m.DossierDelivered:
        """Deliver the dossier of ``export`` (default: the export of the case's V-number) to
        ``to`` (default: the case's municipality and guiding NGO)."""
        record = self.register[case_id]
        export = export if export is not None else self.lookup(record.v_number)
        recipients = to or [self._municipality_of(case_id), *([record.ngo] if record.ngo else [])]
        now = self.clock()
        dossier = self.dossier_of(export, case_id, now)
        await self._send(dossier, recipients, at=now, causation_id=causation_id)
        self.register.put(
            replace(
                self.register[case_id],
                dossier_id=dossier.dossier_id,
                v_number=dossier.person.v_number or record.v_number,
            )
        )
        return dossier

    async def on_intake_registered(self, message: m.IntakeRegistered, received: Received) -> None:
        v_number = message.person.v_number
        self.register.put(
            replace(
                self.register[message.case_id],
                municipality=message.municipality,
                ngo=message.guiding_ngo,
                v_number=v_number,
            )
        )
        if self.auto_deliver and v_number in self.exports:
            await self.deliver_dossier(message.case_id, causation_id=received.message_id)

    async def on_identity_report(self, message: m.IdentityReport, received: Received) -> None:
        record = self.register[message.case_id]
        found = message.established_identity
        self.register.put(
            replace(
                record,
                identity_status=message.identity_status,
                v_number=record.v_number or (found.v_number if found else None),
            )
        )
