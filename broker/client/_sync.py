"""`GatewayClient`: the API for a back office that blocks (a thread per caller)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping, Sequence
from types import TracebackType
from typing import Any, TypeVar, Unpack

import httpx

from broker.client import _calls as calls
from broker.client import _models as models
from broker.client._config import ClientOptions, Setup
from broker.client._errors import ApiError
from broker.client._tries import Tries, translated
from broker.models import AvroModel

T = TypeVar("T")


class GatewayClient:
    """A party's gateway API (docs/CLIENT.md), blocking. ``options``: `ClientOptions` (the
    token, timeouts, TLS, retries, idempotency keys, the ``on_call`` hook). ``transport``
    replaces the network (an in-process app, in tests)."""

    def __init__(
        self, base_url: str, *, transport: httpx.BaseTransport | None = None,
        **options: Unpack[ClientOptions],
    ) -> None:  # fmt: skip
        self._setup = Setup.of(base_url, options)
        self._http = httpx.Client(transport=transport, **self._setup.http)  # type: ignore[arg-type]

    def _run(self, call: calls.Call[T]) -> T:
        tries = Tries(call, self._setup.retry, self._setup.on_call)
        while True:
            tries.start()
            try:
                with translated(call.operation):
                    response = self._http.send(call.request(self._http))
                return tries.done(response)
            except ApiError as error:
                time.sleep(tries.failed(error))

    def send(
        self,
        message: AvroModel | Mapping[str, Any],
        recipients: Sequence[str],
        *,
        timeout_s: float | None = None,
        **fields: Unpack[models.SendFields],
    ) -> uuid.UUID:
        """Send one message; its id. ``fields``: `SendFields` (``message_type`` for a dict,
        ``correlation_id``, ``causation_id``, ``idempotency_key``). ``timeout_s``: how long
        to wait for the answer, when not the client's timeout."""
        outgoing = models.Outgoing.of(message, recipients, **fields)
        return self._run(calls.send(outgoing, keyed=self._setup.keyed, read_timeout_s=timeout_s))

    def send_batch(
        self, messages: Sequence[models.Outgoing], *, timeout_s: float | None = None
    ) -> list[calls.SendOutcome]:
        """Send up to 100 messages in one request: per message, its id or its error."""
        return self._run(
            calls.send_batch(messages, keyed=self._setup.keyed, read_timeout_s=timeout_s)
        )

    def status(self, message_id: uuid.UUID) -> models.MessageStatus:
        return self._run(calls.status(message_id))

    def overdue(self) -> list[uuid.UUID]:
        """Sent messages still without every receipt after the gateway's receipt timeout."""
        return self._run(calls.overdue())

    def inbox(self, *, limit: int = 50, wait_s: float = 0.0) -> list[models.InboxEntry]:
        """Delivered messages not yet acknowledged, oldest first; with ``wait_s`` the
        gateway answers once one is there, or after ``wait_s`` with none (at most 30 s)."""
        return self._run(calls.inbox(limit, wait_s, read_timeout_s=None))

    def ack(self, message_id: uuid.UUID, *, sender: str | None = None) -> None:
        """The back office has the message: it leaves the inbox."""
        self._run(calls.ack(message_id, sender))

    def health(self) -> models.Health:
        return self._run(calls.health())

    def ready(self) -> models.Readiness:
        """`Unavailable` (``NOT_READY``) while the gateway does not reach its log."""
        return self._run(calls.ready())

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> GatewayClient:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


__all__ = ["GatewayClient"]
