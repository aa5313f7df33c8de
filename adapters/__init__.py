"""Adapters: one per party kind, between a back office and its gateway. Each maps the back
office's own data to LVV messages, sends them through a `GatewayClient`, and handles what
arrives, keeping the party's local `CaseRegister`. `RecordingClient` is an in-memory
gateway so back-office services and tests run without Kafka or keys."""

from typing import Any

from adapters._base import (
    Adapter,
    GatewayClient,
    Network,
    Received,
    UnexpectedMessage,
    check_against_policy,
)
from adapters._dossier import DossierCase, UnknownPerson
from adapters._recording import RecordingClient, Sent
from adapters._register import CaseRecord, CaseRegister, UnknownCase
from adapters._runtime import AdapterRuntime, InboxClient, RuntimeCounts, TooManyParked
from adapters.avim import AvimAdapter
from adapters.coa import CoaAdapter
from adapters.dtv import DtvAdapter
from adapters.escalation import EscalationAdapter
from adapters.ind import IndAdapter
from adapters.municipality import MunicipalityAdapter
from adapters.ngo import NgoAdapter

ADAPTERS: tuple[type[Adapter[Any]], ...] = (
    MunicipalityAdapter,
    NgoAdapter,
    IndAdapter,
    DtvAdapter,
    AvimAdapter,
    CoaAdapter,
    EscalationAdapter,
)
"""One adapter per party kind, in the order of DESIGN §1's table."""

__all__ = [
    "ADAPTERS",
    "Adapter",
    "AdapterRuntime",
    "AvimAdapter",
    "CaseRecord",
    "CaseRegister",
    "CoaAdapter",
    "DossierCase",
    "DtvAdapter",
    "EscalationAdapter",
    "GatewayClient",
    "InboxClient",
    "IndAdapter",
    "MunicipalityAdapter",
    "Network",
    "NgoAdapter",
    "Received",
    "RecordingClient",
    "RuntimeCounts",
    "Sent",
    "TooManyParked",
    "UnexpectedMessage",
    "UnknownCase",
    "UnknownPerson",
    "check_against_policy",
]
