"""The adapter interface: a party's back office on one side, its gateway on the other.

An adapter maps its back office's own data to LVV messages and sends them through a
`GatewayClient`; what arrives comes in through `Adapter.receive`, which dispatches on the
message's type to the subclass's ``on_<message>`` handler. Each adapter keeps a
`CaseRegister` (`adapters._register`): the party's local view of its cases.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, ClassVar, Generic, Protocol

from pydantic import BaseModel, ConfigDict

from adapters._register import CaseRegister, RecordT
from broker import models as m
from broker import policy
from broker.caseflow import CaseState
from broker.crypto import Directory
from broker.errors import LocalError, PolicyDenied, RemoteError, UnknownParty

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


class UnexpectedMessage(RemoteError):
    """The policy let the message through but this party's back office has no use for its
    type; the gateway dead-letters it rather than drop it silently."""

    reason = "UNEXPECTED_MESSAGE"


class GatewayClient(Protocol):
    """The gateway's send, as the back office sees it (`broker.gateway.Gateway.send`)."""

    async def send(
        self,
        message: m.AvroModel,
        recipients: Sequence[str],
        *,
        correlation_id: uuid.UUID | None = None,
        causation_id: uuid.UUID | None = None,
    ) -> uuid.UUID: ...


class Network(BaseModel):
    """The part of the key directory a back office needs to address messages: party ids and
    their roles. The national parties (IND, DT&V, AVIM, COA, the desk) are one each."""

    model_config = ConfigDict(frozen=True)

    roles: dict[str, m.PartyRole]

    @classmethod
    def of(cls, directory: Directory) -> Network:
        """The parties of a signed key directory (`broker.crypto.load_directory`)."""
        return cls(roles={p.party_id: p.role for p in directory.parties.values()})

    def role(self, party_id: str) -> m.PartyRole:
        try:
            return self.roles[party_id]
        except KeyError:
            raise UnknownParty(f"{party_id!r} is not in the network") from None

    def only(self, role: m.PartyRole) -> str:
        """The one party of a national ``role``."""
        found = [p for p, r in self.roles.items() if r is role]
        if len(found) != 1:
            raise LocalError(f"expected one {role.value}, found {found}", reason="NETWORK")
        return found[0]

    def of_roles(self, parties: Sequence[str], roles: frozenset[m.PartyRole]) -> tuple[str, ...]:
        """``parties`` that are known and have one of ``roles``, in order, without repeats."""
        return tuple(p for p in dict.fromkeys(parties) if self.roles.get(p) in roles)


def case_id_of(message: m.AvroModel) -> uuid.UUID:
    case_id = getattr(message, "case_id", None)
    if not isinstance(case_id, uuid.UUID):
        raise LocalError(f"{message.avro_name} has no case id", reason="NO_CASE_ID")
    return case_id


def merged_vulnerability(
    known: m.VulnerabilityFlags | None, new: m.VulnerabilityFlags
) -> m.VulnerabilityFlags:
    """A vulnerability any dossier names counts: guidance must not miss it."""
    if known is None:
        return new
    fields = m.VulnerabilityFlags.model_fields
    return m.VulnerabilityFlags(**{f: getattr(known, f) or getattr(new, f) for f in fields})


def type_names(*models: type[m.AvroModel]) -> frozenset[str]:
    """The Avro full names of ``models``, for `Adapter.SENDS` and `Adapter.RECEIVES`."""
    return frozenset(model.avro_name for model in models)


def handler_name(message_type: str) -> str:
    """``nl.lvv.v1.DossierDelivered`` → ``on_dossier_delivered``."""
    short = message_type.rsplit(".", 1)[-1]
    return "on_" + re.sub(r"(?<!^)(?=[A-Z])", "_", short).lower()


# --- the adapter -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Received:
    """How a message reached this party (from the gateway's envelope header)."""

    sender: str
    message_id: uuid.UUID
    at: datetime


class Adapter(Generic[RecordT]):
    """One party's adapter. Subclasses set `ROLE`, `SENDS` and `RECEIVES` (Avro full names),
    build their `CaseRecord` in `new_record`, and handle each type of `RECEIVES` in an
    ``on_<message>`` method taking the message and a `Received`."""

    ROLE: ClassVar[m.PartyRole]
    SENDS: ClassVar[frozenset[str]] = frozenset()
    RECEIVES: ClassVar[frozenset[str]] = frozenset()
    NEW_CASE_STATE: ClassVar[CaseState] = CaseState()
    """The state of a case this party first hears of. Parties the policy never tells of
    intakes or dossiers (AVIM, COA, the desk) assume both, so their registers warn only of
    irregularities they could have seen."""

    def __init__(
        self,
        party_id: str,
        client: GatewayClient,
        *,
        network: Network,
        clock: Clock = utc_now,
    ) -> None:
        self.party_id = party_id
        self.client = client
        self.network = network
        self.clock = clock
        self.register: CaseRegister[RecordT] = CaseRegister(self._open_record)

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "ROLE" in vars(cls):
            check_against_policy(cls)

    def new_record(self, case_id: uuid.UUID) -> RecordT:
        """An empty record of this party kind's `CaseRecord` subclass."""
        raise NotImplementedError

    def _open_record(self, case_id: uuid.UUID) -> RecordT:
        return replace(self.new_record(case_id), state=self.NEW_CASE_STATE)

    async def receive(
        self,
        message: m.AvroModel,
        *,
        sender: str,
        message_id: uuid.UUID,
        received_at: datetime,
    ) -> None:
        """Take in a message the gateway delivered: advance the register, then handle it.
        If the handler fails the case is put back as it was, so the gateway's retry of the
        message does not count twice."""
        name = message.avro_name
        if name not in self.RECEIVES:
            raise UnexpectedMessage(f"a {self.ROLE.value} adapter does not handle {name}")
        case_id = case_id_of(message)
        before = self.register.get(case_id)
        self.register.note(case_id, name, received_at, (sender,))
        handler = getattr(self, handler_name(name))
        try:
            await handler(message, Received(sender, message_id, received_at))
        except BaseException:
            self.register.restore(case_id, before)
            raise

    async def _send(
        self,
        message: m.AvroModel,
        recipients: Sequence[str],
        *,
        at: datetime,
        correlation_id: uuid.UUID | None = None,
        causation_id: uuid.UUID | None = None,
    ) -> uuid.UUID:
        """Send through the gateway, then advance the register (only once the gateway took
        the message: a refused send leaves the case as it was)."""
        name = message.avro_name
        if name not in self.SENDS:
            raise LocalError(f"a {self.ROLE.value} adapter does not send {name}", reason="SENDS")
        names = tuple(dict.fromkeys(recipients))
        message_id = await self.client.send(
            message, names, correlation_id=correlation_id, causation_id=causation_id
        )
        self.register.note(case_id_of(message), name, at, names)
        return message_id

    def _municipality_of(self, case_id: uuid.UUID) -> str:
        record = self.register[case_id]
        if record.municipality is None:
            raise LocalError(f"municipality of case {case_id} not known", reason="NO_RECIPIENT")
        return record.municipality

    # Handlers several party kinds share; subclasses extend them with super().

    async def on_scenario_decision(self, message: m.ScenarioDecision, received: Received) -> None:
        record = self.register[message.case_id]
        self.register.put(
            replace(
                record,
                municipality=message.decided_by,
                scenario=message.scenario,
                decision_id=message.decision_id,
            )
        )

    async def on_escalation_decision(
        self, message: m.EscalationDecision, received: Received
    ) -> None:
        record = self.register[message.case_id]
        self.register.put(replace(record, scenario=message.scenario or record.scenario))

    async def on_case_closed(self, message: m.CaseClosed, received: Received) -> None:
        record = self.register[message.case_id]
        self.register.put(replace(record, outcome=message.outcome, municipality=message.closed_by))


def check_against_policy(cls: type[Adapter[Any]]) -> None:
    """Raise `broker.errors.PolicyDenied` unless the adapter sends and receives only what
    `broker.policy` lets its role send and receive (a wrong adapter fails at import)."""
    role = cls.ROLE
    for name in cls.SENDS:
        policy.check(name, role, ())
    for name in cls.RECEIVES:
        rule = policy.POLICY.get(name)
        if rule is None or role not in rule.recipients:
            raise PolicyDenied(f"a {role.value} may not receive {name}")
        if not callable(getattr(cls, handler_name(name), None)):
            raise TypeError(f"{cls.__name__} has no {handler_name(name)} for {name}")
