"""COA's adapter. COA answers transfer requests from its capacity: places per facility, a
request accepted while a facility of the asked kind has room for the household, refused
with the reason otherwise. The answer goes to the requester and to DT&V (supervision)."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import date

from pydantic import BaseModel, ConfigDict, Field

from adapters._base import Adapter, Clock, GatewayClient, Network, Received, type_names, utc_now
from adapters._register import CaseRecord
from broker import models as m
from broker.caseflow import CaseState, Step
from broker.errors import LocalError


class Facility(BaseModel):
    """A reception location and its places for LVV transfers."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    name: str
    municipality: str
    kind: m.FacilityKind
    places: int = Field(ge=0)


@dataclass(frozen=True, slots=True)
class Transfer:
    """COA's answer to one request, as it keeps it."""

    transfer_id: uuid.UUID
    requester: str
    facility_kind: m.FacilityKind
    household_size: int
    accepted: bool
    facility: str | None
    transfer_date: date | None
    refusal_reason: str | None


@dataclass(frozen=True)
class CoaCase(CaseRecord):
    transfers: tuple[Transfer, ...] = ()


class CoaAdapter(Adapter[CoaCase]):
    ROLE = m.PartyRole.COA
    SENDS = type_names(m.TransferConfirmed)
    RECEIVES = type_names(m.TransferRequest, m.ScenarioDecision, m.CaseClosed)
    NEW_CASE_STATE = CaseState(step=Step.REST_PERIOD)

    def __init__(
        self,
        party_id: str,
        client: GatewayClient,
        *,
        facilities: Iterable[Facility] = (),
        network: Network,
        clock: Clock = utc_now,
    ) -> None:
        super().__init__(party_id, client, network=network, clock=clock)
        self.facilities = {f.name: f for f in facilities}
        self.occupied: dict[str, int] = dict.fromkeys(self.facilities, 0)

    def new_record(self, case_id: uuid.UUID) -> CoaCase:
        return CoaCase(case_id)

    def free_places(self, kind: m.FacilityKind) -> int:
        return sum(self._free(f) for f in self.facilities.values() if f.kind is kind)

    def _free(self, facility: Facility) -> int:
        return facility.places - self.occupied[facility.name]

    def release(self, facility_name: str, places: int = 1) -> None:
        """Places free up when residents leave (outside the LVV flow)."""
        if self.occupied.get(facility_name, 0) < places:
            raise LocalError(f"{facility_name} has fewer than {places} occupied", reason="CAPACITY")
        self.occupied[facility_name] -= places

    def _decide(self, request: m.TransferRequest, requester: str) -> Transfer:
        """The facility of the asked kind with the most room, or a refusal (nothing booked)."""
        size = request.household_size
        fitting = [
            f
            for f in self.facilities.values()
            if f.kind is request.facility_kind and self._free(f) >= size
        ]
        if not fitting:
            reason = f"no {request.facility_kind.value} place free for a household of {size}"
            return Transfer(
                request.transfer_id, requester, request.facility_kind, size,
                accepted=False, facility=None, transfer_date=None, refusal_reason=reason,
            )  # fmt: skip
        best = max(fitting, key=self._free)
        return Transfer(
            request.transfer_id, requester, request.facility_kind, size, accepted=True,
            facility=best.name, transfer_date=max(request.desired_date, self.clock().date()),
            refusal_reason=None,
        )  # fmt: skip

    async def on_transfer_request(self, message: m.TransferRequest, received: Received) -> None:
        record = self.register[message.case_id]
        earlier = [t for t in record.transfers if t.transfer_id == message.transfer_id]
        # a request asked again gets the same answer, not a second booking
        transfer = earlier[0] if earlier else self._decide(message, received.sender)
        facility = self.facilities.get(transfer.facility or "")
        now = self.clock()
        answer = m.TransferConfirmed(
            case_id=message.case_id, transfer_id=message.transfer_id, confirmed_at=now,
            accepted=transfer.accepted, facility_name=transfer.facility,
            facility_municipality=facility.municipality if facility else None,
            transfer_date=transfer.transfer_date, refusal_reason=transfer.refusal_reason,
        )  # fmt: skip
        to = [received.sender, self.network.only(m.PartyRole.DTV)]
        # booked before the answer goes out, so a request arriving meanwhile cannot take
        # the same place, and given back if it cannot go out
        booked = facility.name if facility is not None and not earlier else None
        if booked:
            self.occupied[booked] += transfer.household_size
        try:
            await self._send(answer, to, at=now, causation_id=received.message_id)
        except BaseException:
            if booked:
                self.occupied[booked] -= transfer.household_size
            raise
        if not earlier:
            record = self.register[message.case_id]
            self.register.put(replace(record, transfers=(*record.transfers, transfer)))
