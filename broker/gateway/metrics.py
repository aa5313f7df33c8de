"""Prometheus metrics of one gateway: the `GatewayObserver` hook, wired at the service edge.

Conventions: ``lvv_`` prefix, ``_total`` for counters, base units (``_seconds``), and only
bounded labels — party ids (the directory's parties), message types, outcomes and reason
codes. Never a case id or a message id.

Each gateway gets its own registry, so several gateways in one process (the demo) each
expose exactly their own figures.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Sequence
from datetime import datetime

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

from broker.crypto import Directory
from broker.errors import TransportError
from broker.gateway._gateway import Gateway
from broker.gateway._observer import MetricsPage
from broker.gateway._store import GatewayStore
from broker.topics import dlq, inbox

_LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)
_END_TO_END_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)


def _short(message_type: str) -> str:
    return message_type.rsplit(".", 1)[-1]


class PrometheusObserver:
    def __init__(self, party: str, registry: CollectorRegistry | None = None) -> None:
        self.party = party
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self._sent = Counter("lvv_messages_sent", "Messages sealed and stored in recipients' inboxes (one per recipient).",
                             ["party", "type"], registry=r)  # fmt: skip
        self._delivered = Counter("lvv_messages_delivered", "Messages opened and delivered to the back office.",
                                  ["party", "type", "sender"], registry=r)  # fmt: skip
        self._rejected = Counter("lvv_messages_rejected", "Envelopes refused and dead-lettered, by reason code.",
                                 ["party", "reason"], registry=r)  # fmt: skip
        self._receipts = Counter("lvv_receipts_received", "Delivery receipts received for messages this party sent.",
                                 ["party", "outcome"], registry=r)  # fmt: skip
        self._redelivered = Counter("lvv_redeliveries", "Records seen again after a restart and recognised as handled.",
                                    ["party"], registry=r)  # fmt: skip
        self._copies = Counter("lvv_envelope_copies", "Copies of refused envelopes at another position: counted, nothing answered or dead-lettered again.",
                               ["party"], registry=r)  # fmt: skip
        self._seal = Histogram("lvv_seal_seconds", "CPU time to seal one envelope.", ["party"],
                               buckets=_LATENCY_BUCKETS, registry=r)  # fmt: skip
        self._open = Histogram("lvv_open_seconds", "CPU time to open one envelope.", ["party"],
                               buckets=_LATENCY_BUCKETS, registry=r)  # fmt: skip
        self._end_to_end = Histogram("lvv_end_to_end_seconds", "From sealing at the sender to delivery here.",
                                     ["party"], buckets=_END_TO_END_BUCKETS, registry=r)  # fmt: skip
        self._audit_failures = Counter("lvv_audit_write_failures", "Atomic writes refused while the audit stream could not be written (nothing was sent or delivered).",
                                       ["party"], registry=r)  # fmt: skip
        self._dlq_depth = Gauge(
            "lvv_dlq_depth", "Records in the party's dead-letter topic.", ["party"], registry=r
        )
        self._lag = Gauge("lvv_consumer_lag", "Records in the party's inbox not yet handled and committed.",
                          ["party"], registry=r)  # fmt: skip
        self.ready = Gauge(
            "lvv_gateway_ready", "1 while the gateway can reach its log.", ["party"], registry=r
        )
        self.ready.labels(party)
        self._directories_taken = Counter("lvv_directories_taken", "Newer key directories taken from the directory topic while running.",
                                          ["party"], registry=r)  # fmt: skip
        self._directories_refused = Counter("lvv_directories_refused", "Directories on the directory topic refused, by the check that failed; the gateway kept its own.",
                                            ["party", "reason"], registry=r)  # fmt: skip

    def sealed(self, seconds: float) -> None:
        self._seal.labels(self.party).observe(seconds)

    def opened(self, seconds: float) -> None:
        self._open.labels(self.party).observe(seconds)

    def sent(self, message_type: str, recipients: Sequence[str]) -> None:
        self._sent.labels(self.party, _short(message_type)).inc(len(recipients))

    def delivered(self, message_type: str, sender: str, end_to_end_seconds: float) -> None:
        self._delivered.labels(self.party, _short(message_type), sender).inc()
        self._end_to_end.labels(self.party).observe(max(end_to_end_seconds, 0.0))

    def rejected(self, reason: str) -> None:
        self._rejected.labels(self.party, reason).inc()

    def receipt_received(self, outcome: str, known: bool) -> None:
        self._receipts.labels(self.party, outcome if known else "UNMATCHED").inc()

    def redelivered(self) -> None:
        self._redelivered.labels(self.party).inc()

    def copy_received(self) -> None:
        self._copies.labels(self.party).inc()

    def audit_failed(self) -> None:
        self._audit_failures.labels(self.party).inc()

    def directory_taken(self, serial: int) -> None:
        self._directories_taken.labels(self.party).inc()

    def directory_refused(self, reason: str) -> None:
        self._directories_refused.labels(self.party, reason).inc()

    def watch_directory(
        self, in_use: Callable[[], Directory], clock: Callable[[], datetime]
    ) -> None:
        """The directory in use, read when Prometheus scrapes: its serial, and the seconds
        until it expires (the `LvvDirectoryExpiringSoon` alert watches them)."""
        serial = Gauge("lvv_directory_serial", "Serial of the key directory in use.", ["party"],
                       registry=self.registry)  # fmt: skip
        serial.labels(self.party).set_function(lambda: in_use().serial)
        left = Gauge("lvv_directory_expiry_seconds", "Seconds until the key directory in use expires (negative: expired).",
                     ["party"], registry=self.registry)  # fmt: skip
        left.labels(self.party).set_function(
            lambda: (in_use().expires_at - clock()).total_seconds()
        )

    def log_figures(self, *, dlq_depth: int, consumer_lag: int) -> None:
        """Figures read from the log itself (see `watch_log`)."""
        self._dlq_depth.labels(self.party).set(dlq_depth)
        self._lag.labels(self.party).set(consumer_lag)

    def page(self) -> MetricsPage:
        """This gateway's figures in the Prometheus text format, for ``GET /metrics``."""
        return MetricsPage(generate_latest(self.registry), CONTENT_TYPE_LATEST)

    def watch_store(self, store: GatewayStore, overdue: Callable[[], int]) -> None:
        """Gauges read from the store when Prometheus scrapes."""
        outstanding = Gauge("lvv_receipts_outstanding", "Sent messages still waiting for every receipt.",
                            ["party"], registry=self.registry)  # fmt: skip
        outstanding.labels(self.party).set_function(lambda: store.counts()["awaiting_receipt"])
        late = Gauge("lvv_receipts_overdue", "Sent messages without every receipt after the receipt timeout.",
                     ["party"], registry=self.registry)  # fmt: skip
        late.labels(self.party).set_function(overdue)
        unacked = Gauge("lvv_inbox_unacked", "Delivered messages the back office has not acknowledged.",
                        ["party"], registry=self.registry)  # fmt: skip
        unacked.labels(self.party).set_function(lambda: store.counts()["unacked"])


LOG_FIGURES_EVERY_S = 5.0
"""How often DLQ depth and consumer lag are read from the log: cheap, and enough for alerts."""


async def watch_log(gateway: Gateway, observer: PrometheusObserver, stop: asyncio.Event) -> None:
    """Keep the DLQ depth and consumer lag gauges current until ``stop``."""
    me, prefix = gateway.party_id, gateway.prefix
    while not stop.is_set():
        with contextlib.suppress(TransportError):
            depth = sum((await gateway.transport.end_offsets([dlq(me, prefix)])).values())
            lag = await gateway.transport.lag(gateway.consumer_group, [inbox(me, prefix)])
            observer.log_figures(dlq_depth=depth, consumer_lag=lag)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), LOG_FIGURES_EVERY_S)
