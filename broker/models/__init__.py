"""Frozen pydantic models of every record of the Avro contract.

`MESSAGE_MODELS` maps each top-level schema's full name to its model; nested records and
enums are exported too, so adapters can build messages with type checking.
"""

from __future__ import annotations

from broker.models import _case, _common, _enums, _system
from broker.models._base import (
    AVRO_FULL_NAME_PATTERN,
    PARTY_ID_PATTERN,
    TRACEPARENT_PATTERN,
    AvroFullName,
    AvroModel,
    CountryCode,
    LanguageCode,
    PartyId,
    Sha256,
    SpanId,
    Timestamp,
    Traceparent,
    VNumber,
    to_utc_millis,
)
from broker.models._case import *  # noqa: F403
from broker.models._common import *  # noqa: F403
from broker.models._common import MEDIA_TYPE_PATTERN, MediaType
from broker.models._enums import *  # noqa: F403
from broker.models._system import *  # noqa: F403

CASE_MESSAGES: tuple[type[AvroModel], ...] = (
    _case.IntakeRegistered,
    _case.DossierDelivered,
    _case.ScenarioDecision,
    _case.ScenarioResponse,
    _case.EscalationRequest,
    _case.EscalationDecision,
    _case.IdentityReport,
    _case.TransferRequest,
    _case.TransferConfirmed,
    _case.CaseClosed,
)
"""The messages of the LVV case flow (DESIGN §1), in the order of the flow."""

_NETWORK_RECORDS: tuple[type[AvroModel], ...] = (
    _system.DeliveryReceipt,
    _system.AuditEvent,
    _system.PartyDirectory,
    _system.SecureEnvelope,
    _system.SignedDirectory,
)

MESSAGE_MODELS: dict[str, type[AvroModel]] = {
    model.avro_name: model for model in (*CASE_MESSAGES, *_NETWORK_RECORDS)
}
"""Every top-level schema's model, by Avro full name."""

ALL_MODELS: tuple[type[AvroModel], ...] = tuple(
    obj
    for module in (_common, _case, _system)
    for obj in (getattr(module, name) for name in module.__all__)
)
"""Every record model, nested ones included."""


def model_for(name: str) -> type[AvroModel]:
    """The model of a top-level schema, by full (``nl.lvv.v1.CaseClosed``) or short name."""
    from broker.contract import by_type_name
    from broker.errors import UnknownSchema

    found = by_type_name(MESSAGE_MODELS, name)
    if found is None:
        raise UnknownSchema(f"no message type {name!r}")
    return found


__all__ = [
    "ALL_MODELS",
    "AVRO_FULL_NAME_PATTERN",
    "CASE_MESSAGES",
    "MEDIA_TYPE_PATTERN",
    "MESSAGE_MODELS",
    "PARTY_ID_PATTERN",
    "TRACEPARENT_PATTERN",
    "AvroFullName",
    "AvroModel",
    "CountryCode",
    "LanguageCode",
    "MediaType",
    "PartyId",
    "Sha256",
    "SpanId",
    "Timestamp",
    "Traceparent",
    "VNumber",
    "model_for",
    "to_utc_millis",
]
__all__ += _enums.__all__
__all__ += _common.__all__
__all__ += _case.__all__
__all__ += _system.__all__
