"""An in-memory `GatewayClient`: records every send and refuses what the real gateway would,
so adapters, services and tests run without keys or Kafka."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TypeVar

from broker import models as m
from broker import policy
from broker.contract import default_codec
from broker.crypto import MAX_RECIPIENTS
from broker.errors import LocalError, UnknownParty

MessageT = TypeVar("MessageT", bound=m.AvroModel)


@dataclass(frozen=True, slots=True)
class Sent:
    """One message the client accepted, with its Avro encoding as it would travel."""

    message_id: uuid.UUID
    sender: str
    recipients: tuple[str, ...]
    message: m.AvroModel
    payload: bytes
    correlation_id: uuid.UUID | None
    causation_id: uuid.UUID | None


class RecordingClient:
    """Sends nowhere, records everything. Checks each send as `broker.crypto.seal` does:
    1 to `MAX_RECIPIENTS` known recipients, the policy, the payload naming its true sender,
    a case id, and an encoding that fits the contract; raises the same errors
    (`PolicyDenied`, `UnknownParty`, `SchemaError`)."""

    def __init__(self, party_id: str, roles: Mapping[str, m.PartyRole]) -> None:
        self.party_id = party_id
        self.roles = dict(roles)
        self.sent: list[Sent] = []

    def _role(self, party_id: str) -> m.PartyRole:
        try:
            return self.roles[party_id]
        except KeyError:
            raise UnknownParty(f"{party_id!r} is not in the key directory") from None

    async def send(
        self,
        message: m.AvroModel,
        recipients: Sequence[str],
        *,
        correlation_id: uuid.UUID | None = None,
        causation_id: uuid.UUID | None = None,
    ) -> uuid.UUID:
        names = tuple(dict.fromkeys(recipients))
        if not 0 < len(names) <= MAX_RECIPIENTS:
            raise LocalError(
                f"an envelope has 1 to {MAX_RECIPIENTS} recipients", reason="RECIPIENTS"
            )
        role = self._role(self.party_id)
        policy.check(message.avro_name, role, tuple(self._role(r) for r in names))
        policy.check_sender_fields(message, self.party_id, role)
        if not isinstance(getattr(message, "case_id", None), uuid.UUID):
            raise LocalError(f"{message.avro_name} has no case id", reason="NO_CASE_ID")
        payload = default_codec().encode(message.avro_name, message.to_avro())
        sent = Sent(
            uuid.uuid4(), self.party_id, names, message, payload, correlation_id, causation_id
        )
        self.sent.append(sent)
        return sent.message_id

    def of_type(self, model: type[MessageT]) -> list[MessageT]:
        """The messages of one type sent so far, in order."""
        return [s.message for s in self.sent if isinstance(s.message, model)]

    def last(self) -> Sent:
        if not self.sent:
            raise LocalError("nothing was sent", reason="NOTHING_SENT")
        return self.sent[-1]
