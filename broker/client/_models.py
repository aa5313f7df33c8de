"""What the client sends and what the API answers, as frozen models (the API's OpenAPI
description at /openapi.json is the reference; these read only what a back office uses)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, Literal, TypedDict, Unpack

from pydantic import BaseModel, ConfigDict, Field

from broker.errors import LocalError
from broker.models import AvroModel, model_for

MAX_IDEMPOTENCY_KEY_CHARS = 255
"""The API's limit on ``Idempotency-Key`` (1–255 printable ASCII characters)."""


class _Answer(BaseModel):
    # a newer gateway may answer more fields: read what is known, keep working
    model_config = ConfigDict(frozen=True, extra="ignore")


def check_idempotency_key(key: str) -> str:
    """``key`` if the API takes it as an idempotency key; `LocalError` otherwise."""
    if not 1 <= len(key) <= MAX_IDEMPOTENCY_KEY_CHARS or not all(" " <= c <= "~" for c in key):
        raise LocalError("an idempotency key is 1 to 255 printable ASCII characters",
                         reason="BAD_IDEMPOTENCY_KEY")  # fmt: skip
    return key


class SendFields(TypedDict, total=False):
    """A send's fields besides the message and its recipients (those of `Outgoing`)."""

    message_type: str | None
    correlation_id: uuid.UUID | None
    causation_id: uuid.UUID | None
    idempotency_key: str | None


class Outgoing(BaseModel):
    """One message to send: an Avro model, or its JSON form as a dict with ``message_type``
    naming its type (short, ``DossierDelivered``, or full). ``idempotency_key`` is set by
    the client when not given; give your own to make a send safe across your restarts."""

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    message: AvroModel | Mapping[str, Any]
    recipients: tuple[str, ...] = Field(min_length=1)
    message_type: str | None = None
    correlation_id: uuid.UUID | None = None
    causation_id: uuid.UUID | None = None
    idempotency_key: str | None = None

    @classmethod
    def of(
        cls,
        message: AvroModel | Mapping[str, Any],
        recipients: Sequence[str],
        **fields: Unpack[SendFields],
    ) -> Outgoing:
        return cls(message=message, recipients=tuple(recipients), **fields)

    def body(self) -> dict[str, Any]:
        """The body of ``POST /v1/messages`` (without the idempotency key). The type goes as
        given: the gateway, not the client, decides which names it knows."""
        if isinstance(self.message, AvroModel):
            name, content = self.message.avro_name, json.loads(self.message.model_dump_json())
        elif self.message_type is None:
            raise LocalError("a message given as a dict needs message_type", reason="NO_TYPE")
        else:
            name, content = self.message_type, dict(self.message)
        body: dict[str, Any] = {
            "type": name, "recipients": list(self.recipients), "message": content,
        }  # fmt: skip
        for field in ("correlation_id", "causation_id"):
            if (value := getattr(self, field)) is not None:
                body[field] = str(value)
        return body


class Accepted(_Answer):
    message_id: uuid.UUID
    status: Literal["SENT"] = "SENT"


class BatchItem(_Answer):
    status: int
    message_id: uuid.UUID | None = None
    reason: str | None = None
    detail: Any = None


class BatchAnswer(_Answer):
    items: list[BatchItem]


class MessageStatus(_Answer):
    """A sent message: ``SENT`` until every recipient's receipt came, then ``RECEIPTED``
    (all accepted) or ``REJECTED``; ``receipts`` by recipient."""

    message_id: uuid.UUID
    type: str
    case_id: uuid.UUID
    recipients: list[str]
    sent_at: datetime
    status: Literal["SENT", "RECEIPTED", "REJECTED"]
    overdue: bool
    receipts: dict[str, dict[str, Any]]


class Overdue(_Answer):
    overdue: list[uuid.UUID]


class InboxEntry(_Answer):
    """A delivered message not yet acknowledged; ``message`` is its JSON form."""

    message_id: uuid.UUID
    type: str
    sender: str
    case_id: uuid.UUID
    created_at: datetime
    received_at: datetime
    message: dict[str, Any]

    def model(self) -> AvroModel:
        """The message as its Avro model (`broker.models`); `UnknownSchema` for a type this
        version of the package does not know."""
        return model_for(self.type).model_validate(self.message)


class Inbox(_Answer):
    items: list[InboxEntry]


class Health(_Answer):
    status: str
    party: str


class Readiness(_Answer):
    status: str


__all__ = [
    "Accepted",
    "BatchAnswer",
    "BatchItem",
    "Health",
    "Inbox",
    "InboxEntry",
    "MessageStatus",
    "Outgoing",
    "Overdue",
    "Readiness",
    "SendFields",
    "check_idempotency_key",
]
