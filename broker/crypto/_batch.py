"""Sealing and opening many envelopes at once — the interface a gateway's hot path (and
`make bench`) uses. A `Sealer` keeps what may be reused between envelopes of one sender
(its epoch keys), and signs each batch once; an `Opener` keeps what may be reused between
envelopes it opens (unwrapped epoch keys, verified batch signatures). Both keep every
guarantee of `seal` and `open_envelope`, which remain the reference for one envelope at a
time.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime

from broker.crypto._directory import Directory
from broker.crypto._envelope import (
    BATCH_VERSIONS,
    FORMAT_V1,
    FORMAT_VERSION,
    OpenCaches,
    Opened,
    SealRequest,
    open_envelope,
    prepare_envelope,
    seal,
    seal_v2_batch,
)
from broker.crypto._epoch import SenderEpochs
from broker.crypto._keys import PartyKeys
from broker.crypto._ring import KeyRing
from broker.errors import EnvelopeRejected, LocalError
from broker.replay import ReplayGuard


class Sealer:
    """Seals envelopes for one sender, in the given envelope format version."""

    def __init__(self, keys: PartyKeys, directory: Directory, clock: Callable[[], datetime],
                 *, format_version: int = FORMAT_VERSION, ring: KeyRing | None = None) -> None:  # fmt: skip
        """With ``ring``, each call signs with the key the ring chooses for its moment
        under the directory in use (after a rotation, the new key from its activation);
        without, always with ``keys``."""
        if format_version != FORMAT_V1 and format_version not in BATCH_VERSIONS:
            raise ValueError(f"unknown envelope format version {format_version}")
        self.keys = keys
        self.ring = ring
        self.directory = directory
        self.clock = clock
        self.format_version = format_version
        self.epochs = SenderEpochs(keys.party_id)

    def seal_each(self, requests: Sequence[SealRequest]) -> list[bytes | LocalError]:
        """Each request's envelope, or the error that kept it from being sealed (a policy
        refusal, an unknown recipient, too large), in the same order. Formats 2 and 3 sign all
        envelopes of the call together (one signature per `MAX_BATCH_SIZE`)."""
        now = self.clock()
        if self.ring is not None:
            self.keys = self.ring.keys_at(self.directory, now)
        if self.format_version == FORMAT_V1:
            return [self._seal_v1(r, now) for r in requests]
        outcomes: list[LocalError | None] = []
        prepared = []
        for r in requests:
            try:
                prepared.append(
                    prepare_envelope(
                        r,
                        sender=self.keys,
                        directory=self.directory,
                        now=now,
                        format_version=self.format_version,
                    )
                )
                outcomes.append(None)
            except LocalError as exc:
                outcomes.append(exc)
        sealed = iter(seal_v2_batch(prepared, sender=self.keys, directory=self.directory, now=now,
                                  epochs=self.epochs))  # fmt: skip
        return [next(sealed) if error is None else error for error in outcomes]

    def seal_many(self, requests: Sequence[SealRequest]) -> list[bytes]:
        """Every request's envelope; raises the first request's error if any failed."""
        out = self.seal_each(requests)
        for item in out:
            if isinstance(item, LocalError):
                raise item
        return out  # type: ignore[return-value]

    def _seal_v1(self, r: SealRequest, now: datetime) -> bytes | LocalError:
        try:
            return seal(r.message, sender=self.keys, recipients=r.recipients, directory=self.directory,
                        now=now, ttl=r.ttl, correlation_id=r.correlation_id, causation_id=r.causation_id,
                        message_id=r.message_id, format_version=FORMAT_V1)  # fmt: skip
        except LocalError as exc:
            return exc


class Opener:
    """Opens envelopes addressed to one party."""

    def __init__(self, keys: PartyKeys, directory: Directory, replay_guard: ReplayGuard,
                 clock: Callable[[], datetime]) -> None:  # fmt: skip
        self.keys = keys
        self.directory = directory
        self.replay_guard = replay_guard
        self.clock = clock
        self.caches = OpenCaches()

    def open(self, data: bytes, *, now: datetime | None = None,
             replay_guard: ReplayGuard | None = None) -> Opened:  # fmt: skip
        """One envelope, with this opener's caches; raises `EnvelopeRejected`."""
        return open_envelope(data, me=self.keys, directory=self.directory,
                             replay_guard=replay_guard or self.replay_guard,
                             now=now or self.clock(), caches=self.caches)  # fmt: skip

    def open_many(self, envelopes: Sequence[bytes]) -> list[Opened | EnvelopeRejected]:
        """Each envelope opened, or the rejection saying why (in the same order)."""
        now = self.clock()
        out: list[Opened | EnvelopeRejected] = []
        for data in envelopes:
            try:
                out.append(self.open(data, now=now))
            except EnvelopeRejected as exc:
                out.append(exc)
        return out
