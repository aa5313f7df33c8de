"""Records shared by several messages: the person, documents, plan steps."""

from __future__ import annotations

from datetime import date
from typing import Annotated
from uuid import UUID

from pydantic import Field, StringConstraints

from broker.limits import (
    ATTACHMENT_SALT_BYTES,
    MAX_ATTACHMENT_BYTES,
    MAX_ATTACHMENT_CHUNK_BYTES,
    MAX_ATTACHMENT_CHUNKS,
    MIN_ATTACHMENT_CHUNK_BYTES,
)
from broker.models._base import (
    AvroModel,
    CountryCode,
    Int32,
    Int64,
    LanguageCode,
    PartyId,
    Sha256,
    VNumber,
)
from broker.models._enums import (
    AttachmentLocation,
    DocumentHolder,
    DocumentKind,
    Gender,
    IdentityStatus,
    PartyRole,
    PlanStepStatus,
    PublicOrderKind,
)

__all__ = [
    "AttachmentKey",
    "AttachmentRef",
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


MEDIA_TYPE_PATTERN = r"^[a-z0-9][a-z0-9!#$&^_.+-]{0,126}/[a-z0-9][a-z0-9!#$&^_.+-]{0,126}$"
"""type/subtype as RFC 6838 §4.2 restricted names, lowercase (one spelling of each media
type), no parameters: e.g. `application/pdf`."""

MediaType = Annotated[str, StringConstraints(pattern=MEDIA_TYPE_PATTERN)]


class AttachmentKey(AvroModel):
    """The attachment key, wrapped for one recipient with HPKE (RFC 9180)."""

    avro_name = "nl.lvv.v1.AttachmentKey"

    recipient: PartyId
    key_id: str
    wrapped: bytes


class AttachmentRef(AvroModel):
    """A document sent with a message: what it is, how it is encrypted, where its chunks are
    (docs/ENVELOPE.md §11). The chunk layout's consistency and the limits per message are
    the policy's (`broker.policy.check_attachments`)."""

    avro_name = "nl.lvv.v1.AttachmentRef"

    attachment_id: UUID
    media_type: MediaType
    size: Annotated[Int64, Field(ge=0, le=MAX_ATTACHMENT_BYTES)]
    sha256: Sha256
    chunk_size: Annotated[int, Field(ge=MIN_ATTACHMENT_CHUNK_BYTES, le=MAX_ATTACHMENT_CHUNK_BYTES)]
    chunk_count: Annotated[int, Field(ge=1, le=MAX_ATTACHMENT_CHUNKS)]
    salt: Annotated[
        bytes, Field(min_length=ATTACHMENT_SALT_BYTES, max_length=ATTACHMENT_SALT_BYTES)
    ]
    keys: tuple[AttachmentKey, ...]
    location: AttachmentLocation
