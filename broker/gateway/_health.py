"""What a gateway knows about reaching its log, so that an outage is answered at once.

While the log is away, a write can only fail — after the transport's send timeout (30 s on
Kafka) — and aiokafka's consumer does not fail at all: it logs and retries inside. So the
gateway asks the log itself: a probe (`Transport.ping`, bounded by `PROBE_TIMEOUT_S`) every
`HEALTHY_PROBE_EVERY_S`, sooner when an operation failed, and every `OUTAGE_PROBE_EVERY_S`
while the log is away. A failed probe makes the outage known: sends are refused at once
(nothing is sent) and /readyz says not ready; an answered probe, or a write that went
through, ends it. A healthy send costs nothing here: it only reads `LogHealth.outage`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from broker.errors import TransportClosed, TransportError, TransportTimeout
from broker.log_throttle import Throttle
from broker.transport import Transport

log = logging.getLogger("lvvx.gateway")

HEALTHY_PROBE_EVERY_S = 2.0
"""Between probes while the log answers: an outage is known within this (plus a probe's
timeout when the network swallows requests), at one small request per gateway."""

OUTAGE_PROBE_EVERY_S = 1.0
"""Between probes during an outage: sends are taken again within this after the log is back."""

PROBE_TIMEOUT_S = 5.0
"""A log that does not answer a probe (a metadata request on Kafka) within this is away: a
healthy broker answers in milliseconds, and a send would wait far longer."""

QUICK_PROBE_TIMEOUT_S = 1.0
"""A probe asked for during a known outage (/readyz) waits this long at most: a log that is
back answers at once, and a readiness check must not hang on one that is not."""


class LogHealth:
    """The outage a gateway knows of, if any, and the probes that find it and its end."""

    def __init__(self, transport: Transport, party: str) -> None:
        self.transport = transport
        self.party = party
        self.outage: TransportError | None = None
        """The failure of the probe that found the log away; None while it answers."""
        self._since = 0.0
        self._wanted = asyncio.Event()
        self._quiet = Throttle(log)

    def probe_soon(self) -> None:
        """An operation failed as if the log were away: probe now, not at the next turn."""
        self._wanted.set()

    def answered(self) -> None:
        """The log took a write: whatever outage was known is over."""
        if self.outage is not None:
            log.info("gateway %s reaches its log again after %.1f s", self.party,
                     time.monotonic() - self._since)  # fmt: skip
        self.outage = None

    def lost(self, exc: TransportError) -> None:
        if self.outage is None:
            self._since = time.monotonic()
        self.outage = exc
        self._quiet.warning(("log-away", self.party), "gateway %s cannot reach its log: %s; "
                            "sends are refused until it answers", self.party, exc)  # fmt: skip

    async def check(self, *, quick: bool = False) -> bool:
        """Probe the log now (``quick``: within `QUICK_PROBE_TIMEOUT_S`); True if it
        answered. What is known follows the answer (a transport closed meanwhile is not an
        outage: the gateway is going away)."""
        timeout_s = QUICK_PROBE_TIMEOUT_S if quick else PROBE_TIMEOUT_S
        try:
            await asyncio.wait_for(self.transport.ping(), timeout_s)
        except TransportClosed:
            return False
        except TimeoutError:
            self.lost(TransportTimeout(f"the log did not answer a probe within {timeout_s} s"))
            return False
        except TransportError as exc:
            self.lost(exc)
            return False
        self.answered()
        return True

    async def watch(self, stopping: asyncio.Event) -> None:
        """Probe until ``stopping`` is set (`stop` wakes it up)."""
        while not stopping.is_set():
            every = OUTAGE_PROBE_EVERY_S if self.outage is not None else HEALTHY_PROBE_EVERY_S
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wanted.wait(), every)
            self._wanted.clear()
            if stopping.is_set():
                return
            try:
                await self.check()
            except Exception as exc:  # a probe that failed in another way: not an outage
                self._quiet.warning(("probe-failed", self.party), "gateway %s: a probe of its "
                                    "log failed: %r", self.party, exc)  # fmt: skip

    def stop(self) -> None:
        """Wake `watch` so that it sees its ``stopping`` set."""
        self._wanted.set()
