"""Sealing and opening many envelopes at once — the interface a gateway's hot path (and
`make bench`) uses. A `Sealer` keeps what may be reused between envelopes of one sender;
an `Opener` what may be reused between envelopes it opens. Both keep every guarantee of
`seal` and `open_envelope`, which remain the reference for one envelope at a time.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from broker._errors import EnvelopeRejected
from broker.crypto._directory import Directory
from broker.crypto._envelope import DEFAULT_TTL, FORMAT_VERSION, Opened, open_envelope, seal
from broker.crypto._keys import PartyKeys
from broker.models import AvroModel
from broker.replay import ReplayGuard


@dataclass(frozen=True, slots=True)
class SealRequest:
    message: AvroModel
    recipients: tuple[str, ...]
    message_id: uuid.UUID | None = None
    correlation_id: uuid.UUID | None = None
    causation_id: uuid.UUID | None = None
    ttl: timedelta = DEFAULT_TTL


class Sealer:
    """Seals envelopes for one sender, in the given envelope format version."""

    def __init__(self, keys: PartyKeys, directory: Directory, clock: Callable[[], datetime],
                 *, format_version: int = FORMAT_VERSION) -> None:  # fmt: skip
        if format_version != FORMAT_VERSION:
            raise ValueError(f"unknown envelope format version {format_version}")
        self.keys = keys
        self.directory = directory
        self.clock = clock
        self.format_version = format_version

    def seal_many(self, requests: Sequence[SealRequest]) -> list[bytes]:
        now = self.clock()
        return [
            seal(r.message, sender=self.keys, recipients=r.recipients, directory=self.directory, now=now,
                 ttl=r.ttl, correlation_id=r.correlation_id, causation_id=r.causation_id, message_id=r.message_id)
            for r in requests
        ]  # fmt: skip


class Opener:
    """Opens envelopes addressed to one party."""

    def __init__(self, keys: PartyKeys, directory: Directory, replay_guard: ReplayGuard,
                 clock: Callable[[], datetime]) -> None:  # fmt: skip
        self.keys = keys
        self.directory = directory
        self.replay_guard = replay_guard
        self.clock = clock

    def open_many(self, envelopes: Sequence[bytes]) -> list[Opened | EnvelopeRejected]:
        """Each envelope opened, or the rejection saying why (in the same order)."""
        now = self.clock()
        out: list[Opened | EnvelopeRejected] = []
        for data in envelopes:
            try:
                out.append(open_envelope(data, me=self.keys, directory=self.directory,
                                         replay_guard=self.replay_guard, now=now))  # fmt: skip
            except EnvelopeRejected as exc:
                out.append(exc)
        return out
