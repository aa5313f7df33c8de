"""What the client sends and what the API answers, as frozen models (the API's OpenAPI
description at /openapi.json is the reference; these read only what a back office uses)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping, Sequence
from typing import Any, TypedDict, Unpack

from pydantic import BaseModel, ConfigDict, Field

from broker.api_contract import (
    Accepted,
    BatchAnswer,
    BatchItem,
    Body,
    Inbox,
    InboxEntry,
    MessageStatus,
    is_idempotency_key,
)
from broker.errors import LocalError
from broker.models import AvroModel

_Answer = Body
"""What the API answers (`broker.api_contract`): a newer gateway may answer more fields; the
client reads what it knows and keeps working."""


def check_idempotency_key(key: str) -> str:
    """``key`` if the API takes it as an idempotency key; `LocalError` otherwise."""
    if not is_idempotency_key(key):
        raise LocalError("an idempotency key is 1 to 255 printable ASCII characters",
                         reason="INVALID_IDEMPOTENCY_KEY")  # fmt: skip
    return key


class SendFields(TypedDict, total=False):
    """A send's fields besides the message and its recipients (those of `Outgoing`)."""

    message_type: str | None
    correlation_id: uuid.UUID | None
    causation_id: uuid.UUID | None
    idempotency_key: str | None
    traceparent: str | None


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
    traceparent: str | None = None
    """W3C Trace Context of the caller's processing: the send joins its trace (sent as the
    ``traceparent`` header; the gateway refuses a malformed one, 422 BAD_TRACEPARENT)."""

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


class Overdue(_Answer):
    overdue: list[uuid.UUID]


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
