"""The per-party gateway runtime: sending, the consume loop, receipts, dead letters."""

from broker.gateway._followup_models import PROCESSING_FAILED
from broker.gateway._gateway import DEFAULT_RECEIPT_TIMEOUT, Gateway, utc_now
from broker.gateway._observer import GatewayObserver, NullObserver
from broker.gateway._store import GatewayStore, InboxItem, SentStatus
from broker.gateway._webhook import SIGNATURE_HEADER

__all__ = [
    "DEFAULT_RECEIPT_TIMEOUT",
    "PROCESSING_FAILED",
    "SIGNATURE_HEADER",
    "Gateway",
    "GatewayObserver",
    "GatewayStore",
    "InboxItem",
    "NullObserver",
    "SentStatus",
    "utc_now",
]
