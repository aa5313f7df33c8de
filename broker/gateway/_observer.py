"""What a gateway tells the outside about its work: a small hook, so the core does not
depend on Prometheus (STYLE §2). `broker.gateway.metrics` implements it for Prometheus."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import NamedTuple, Protocol


class MetricsPage(NamedTuple):
    """What ``GET /metrics`` answers: the exposition's bytes and their content type."""

    body: bytes
    content_type: str


MetricsSource = Callable[[], MetricsPage]
"""Renders the metrics page when it is scraped (`PrometheusObserver.page`)."""


class GatewayObserver(Protocol):
    def sealed(self, seconds: float) -> None: ...
    def opened(self, seconds: float) -> None: ...
    def sent(self, message_type: str, recipients: Sequence[str]) -> None: ...
    def delivered(self, message_type: str, sender: str, end_to_end_seconds: float) -> None: ...
    def rejected(self, reason: str) -> None: ...
    def receipt_received(self, outcome: str, known: bool) -> None: ...
    def redelivered(self) -> None: ...
    def copy_received(self) -> None: ...
    def audit_failed(self) -> None: ...
    def directory_taken(self, serial: int) -> None: ...
    def directory_refused(self, reason: str) -> None: ...


class NullObserver:
    """Observes nothing."""

    def sealed(self, seconds: float) -> None:
        pass

    def opened(self, seconds: float) -> None:
        pass

    def sent(self, message_type: str, recipients: Sequence[str]) -> None:
        pass

    def delivered(self, message_type: str, sender: str, end_to_end_seconds: float) -> None:
        pass

    def rejected(self, reason: str) -> None:
        pass

    def receipt_received(self, outcome: str, known: bool) -> None:
        pass

    def redelivered(self) -> None:
        pass

    def copy_received(self) -> None:
        pass

    def audit_failed(self) -> None:
        pass

    def directory_taken(self, serial: int) -> None:
        pass

    def directory_refused(self, reason: str) -> None:
        pass
