"""Records shared by several messages: the person, documents, plan steps."""

from __future__ import annotations

from datetime import date

from broker.models._base import (
    AvroModel,
    CountryCode,
    Int32,
    LanguageCode,
    PartyId,
    VNumber,
)
from broker.models._enums import (
    DocumentHolder,
    DocumentKind,
    Gender,
    IdentityStatus,
    PartyRole,
    PlanStepStatus,
    PublicOrderKind,
)

__all__ = [
    "IdentityDocument",
    "Person",
    "PlanStep",
    "PublicOrderNote",
]


class IdentityDocument(AvroModel):
    """An identity or travel document known for the person."""

    avro_name = "nl.lvv.v1.IdentityDocument"

    kind: DocumentKind
    number: str | None = None
    issuing_country: CountryCode
    valid_until: date | None = None
    held_by: DocumentHolder
    verified: bool = False


class Person(AvroModel):
    """The person the case is about, as far as the sending party knows them."""

    avro_name = "nl.lvv.v1.Person"

    v_number: VNumber | None = None
    family_name: str
    given_names: str
    aliases: tuple[str, ...] = ()
    birth_date: date | None = None
    birth_date_approximate: bool = False
    birth_place: str | None = None
    gender: Gender = Gender.UNKNOWN
    nationalities: tuple[CountryCode, ...] = ()
    languages: tuple[LanguageCode, ...] = ()
    documents: tuple[IdentityDocument, ...] = ()
    identity_status: IdentityStatus = IdentityStatus.UNKNOWN


class PublicOrderNote(AvroModel):
    """A public-order or national-security contra-indication (contra-indicatie openbare orde)."""

    avro_name = "nl.lvv.v1.PublicOrderNote"

    kind: PublicOrderKind
    since: date | None = None
    until: date | None = None
    description: str


class PlanStep(AvroModel):
    """One step of a guidance plan (trajectplan)."""

    avro_name = "nl.lvv.v1.PlanStep"

    step_no: Int32
    description: str
    owner: PartyId
    owner_role: PartyRole = PartyRole.UNKNOWN
    due_date: date
    status: PlanStepStatus = PlanStepStatus.UNKNOWN
