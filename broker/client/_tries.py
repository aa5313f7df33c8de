"""Carrying out a `Call`, shared by both clients: httpx's exceptions translated at this edge
into the client's errors, each try timed and reported to the ``on_call`` hook, and the
retry policy asked after each failure. The clients add only the I/O and the sleeping."""

from __future__ import annotations

import contextlib
import ssl
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Generic, TypeVar

import httpx

from broker.client._calls import Call
from broker.client._errors import ApiError, NotReached, OutcomeUnknown
from broker.client._retry import RetryPolicy

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class CallRecord:
    """One try of one call, for the ``on_call`` hook (latency, errors, retries): the
    operation (``send``, ``inbox``, ``ack``, …), which try, how long it took, the HTTP
    status (None: no answer), the error it ended in, and the wait before the next try
    (None: no next try)."""

    operation: str
    attempt: int
    seconds: float
    status: int | None
    error: ApiError | None
    wait_s: float | None


OnCall = Callable[[CallRecord], None]


def _tls_refusal(exc: BaseException) -> bool:
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ssl.SSLError):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


@contextlib.contextmanager
def translated(operation: str) -> Iterator[None]:
    """httpx's failures as the client's: not reached (nothing was done) or no answer (it
    may have been). A TLS refusal is not retriable: the next handshake fails the same way."""
    try:
        yield
    except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
        if _tls_refusal(exc):
            raise NotReached(f"{operation}: TLS refused: {exc}", reason="TLS_REFUSED",
                             retriable=False) from exc  # fmt: skip
        raise NotReached(f"{operation}: {type(exc).__name__}: {exc}") from exc
    except httpx.TimeoutException as exc:
        raise OutcomeUnknown(f"{operation}: no answer in time ({type(exc).__name__})",
                             reason="TIMEOUT") from exc  # fmt: skip
    except httpx.TransportError as exc:
        raise OutcomeUnknown(f"{operation}: {type(exc).__name__}: {exc}") from exc


class Tries(Generic[T]):
    """The tries of one call: `start` before each, then `done` with the answer, or `failed`
    with the error, which answers how long to wait before the next try or raises it."""

    def __init__(self, call: Call[T], policy: RetryPolicy, on_call: OnCall | None) -> None:
        self.call, self.policy, self.on_call = call, policy, on_call
        self.attempt = 0
        self._started = 0.0

    def start(self) -> None:
        self.attempt += 1
        self._started = time.perf_counter()

    def done(self, response: httpx.Response) -> T:
        result = self.call.outcome(response, now=time.time())  # raises what an error means
        self._report(response.status_code, None, None)
        return result

    def failed(self, error: ApiError) -> float:
        wait = None
        if self.call.retry:
            wait = self.policy.wait_s(self.attempt, error, repeatable=self.call.repeatable)
        self._report(error.status, error, wait)
        if wait is None:
            raise error
        return wait

    def _report(self, status: int | None, error: ApiError | None, wait: float | None) -> None:
        if self.on_call is not None:
            seconds = time.perf_counter() - self._started
            self.on_call(
                CallRecord(self.call.operation, self.attempt, seconds, status, error, wait)
            )


__all__ = ["CallRecord", "OnCall", "Tries", "translated"]
