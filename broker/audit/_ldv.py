"""Audit events as Logboek Dataverwerkingen records (LDV 1.0, Logius).

The standard (https://gitdocumentatie.logius.nl/publicatie/logboek/dataverwerkingen/1.0.0,
"Component: Logboek", "Interface") gives every log record ``trace_id`` (16 bytes), ``span_id``
(8 bytes), ``status`` (``Unset`` / ``Ok`` / ``Error``), ``name``, ``start_time``,
``end_time``, optionally ``parent_span_id`` and ``resource``, and ``attributes`` with, in
the ``dpl.core`` namespace, ``processing_activity_id`` (a URI into the register of
processing activities), ``data_subject_id`` and ``data_subject_id_type``, and — where an
application of another party called — ``foreign_operation.span_id`` and
``foreign_operation.processor``. docs/OPERATING.md § Audit says how each is filled.

One record per audit event of a message (a CHECKPOINT processes nobody's data and is not
exported). The data subject is the case, by its random case id: audit events hold no
personal data, and neither does the export. Pure: events and a register in, dicts out.
"""

from __future__ import annotations

import hashlib
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any

from broker.errors import LocalError
from broker.models import AuditAction, AuditEvent, AuditOutcome
from broker.tracecontext import parse_canonical

DEFAULT_REGISTER = "processing_activities.toml"
"""The register shipped in the package (`broker/processing_activities.toml`)."""

_ACTIVITY_ID = re.compile(r"[a-z0-9][a-z0-9.-]{0,127}")
_ABSOLUTE_URI = re.compile(r"[a-zA-Z][a-zA-Z0-9+.-]*:[^\s]+")
_NAMES = {
    AuditAction.SENT: "verzenden",
    AuditAction.DELIVERED: "afleveren",
    AuditAction.REJECTED: "weigeren",
    AuditAction.RECEIPT_SENT: "ontvangst-bevestigen",
    AuditAction.RECEIPT_RECEIVED: "ontvangstbevestiging-ontvangen",
}
"""``name``: the gateway's action, then the message type's short name."""

_FROM_ANOTHER_PARTY = frozenset({
    AuditAction.DELIVERED, AuditAction.REJECTED, AuditAction.RECEIPT_RECEIVED,
})  # fmt: skip
"""Actions whose parent span is another party's gateway: a foreign operation in LDV terms."""


class RegisterInvalid(LocalError):
    reason = "REGISTER_INVALID"


@dataclass(frozen=True, slots=True)
class Register:
    """A party's register of processing activities: message type → activity id."""

    register_uri: str
    default: str
    data_subject_id_type: str
    processor_uri: str
    activities: Mapping[str, str] = field(default_factory=dict)

    def activity(self, message_type: str | None) -> str:
        """The activity id of ``message_type``; the default for an unknown or absent type."""
        return self.activities.get(message_type or "", self.default)

    def activity_uri(self, message_type: str | None) -> str:
        return self.register_uri + self.activity(message_type)

    @classmethod
    def from_toml(cls, text: str, *, source: str = "register") -> Register:
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise RegisterInvalid(f"{source}: not TOML: {exc}") from exc
        keys = {"register_uri", "default", "data_subject_id_type", "processor_uri", "activities"}
        if unknown := set(data) - keys:
            raise RegisterInvalid(f"{source}: unknown keys {sorted(unknown)}")
        for key in ("register_uri", "data_subject_id_type", "processor_uri"):
            if not isinstance(data.get(key), str) or not _ABSOLUTE_URI.fullmatch(data[key]):
                raise RegisterInvalid(f"{source}: {key} must be an absolute URI")
        activities = data.get("activities", {})
        if not isinstance(activities, dict):
            raise RegisterInvalid(f"{source}: [activities] maps message types to activity ids")
        for name, activity in [("default", data.get("default")), *activities.items()]:
            if not isinstance(activity, str) or not _ACTIVITY_ID.fullmatch(activity):
                raise RegisterInvalid(f"{source}: activity id of {name} is not [a-z0-9.-]")
        return cls(data["register_uri"], data["default"], data["data_subject_id_type"],
                   data["processor_uri"], dict(activities))  # fmt: skip

    @classmethod
    def load(cls, path: Path | None = None) -> Register:
        """The register in ``path``, or the default one shipped in the package."""
        if path is None:
            text = resources.files("broker").joinpath(DEFAULT_REGISTER).read_text(encoding="utf-8")
            return cls.from_toml(text, source=DEFAULT_REGISTER)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise RegisterInvalid(f"cannot read the register {path}: {exc}") from exc
        return cls.from_toml(text, source=str(path))


def _time(moment: datetime) -> str:
    """RFC 3339 in UTC, to the millisecond (the standard's ``timestamp (ms)``)."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _ids(event: AuditEvent) -> tuple[str, str]:
    """Trace and span id: the event's own; for an event of a release before trace context,
    derived from its event id (stable, so an export made twice agrees)."""
    if event.traceparent is not None:
        tp = parse_canonical(event.traceparent)
        return tp.trace_id, tp.span_id
    digest = hashlib.sha256(b"LVVX-LDV-TRACE\x00" + event.event_id.bytes).digest()
    return digest[:16].hex(), digest[16:24].hex()


def _status(event: AuditEvent) -> str:
    """``Ok`` when the action succeeded; ``Unset`` for a refusal the gateway made as it
    should (a bad envelope is the sender's input, handled without error, as the standard
    asks); ``Error`` only for a failure of the gateway itself."""
    if event.outcome is AuditOutcome.OK:
        return "Ok"
    return "Error" if event.reason == "PROCESSING_FAILED" else "Unset"


def ldv_record(event: AuditEvent, register: Register) -> dict[str, Any] | None:
    """The LDV record of one audit event, or None for a CHECKPOINT."""
    if event.action is AuditAction.CHECKPOINT or event.action is AuditAction.UNKNOWN:
        return None
    trace_id, span_id = _ids(event)
    short_type = (event.message_type or "onbekend").rsplit(".", 1)[-1]
    record: dict[str, Any] = {
        "trace_id": trace_id,
        "span_id": span_id,
        "status": _status(event),
        "name": f"{_NAMES[event.action]} {short_type}",
        "start_time": _time(event.occurred_at),
        "end_time": _time(event.occurred_at),
    }
    foreign = event.action in _FROM_ANOTHER_PARTY
    if event.parent_span_id is not None and not foreign:
        record["parent_span_id"] = event.parent_span_id
    record["resource"] = {"attributes": {
        "service.name": "lvvx-gateway", "service.instance.id": event.gateway,
    }}  # fmt: skip
    attributes: dict[str, str] = {
        "dpl.core.processing_activity_id": register.activity_uri(event.message_type),
    }
    if event.case_id is not None:  # a refused record of no known case concerns nobody known
        attributes["dpl.core.data_subject_id"] = str(event.case_id)
        attributes["dpl.core.data_subject_id_type"] = register.data_subject_id_type
    if foreign and event.parent_span_id is not None and event.sender is not None:
        attributes["dpl.core.foreign_operation.span_id"] = event.parent_span_id
        attributes["dpl.core.foreign_operation.processor"] = register.processor_uri + event.sender
    record["attributes"] = attributes
    return record
