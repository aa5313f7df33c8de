"""One root exception for the whole package, split by who is at fault.

`LocalError` means the caller broke a rule (bad argument, unknown schema name);
`RemoteError` means a peer or the infrastructure did (a broker is down, bytes off the
wire do not decode). Each error carries a machine-readable `reason` code and a
`retriable` flag telling the caller whether trying again can help, as aiokafka's
errors do. Foreign exceptions are translated at the edge with ``raise ... from exc``.
"""

from __future__ import annotations


class LvvError(Exception):
    """Root of every error this package raises on purpose."""

    reason: str = "ERROR"
    retriable: bool = False

    def __init__(self, message: str, *, reason: str | None = None) -> None:
        super().__init__(message)
        if reason is not None:
            self.reason = reason

    def __str__(self) -> str:
        return f"[{self.reason}] {super().__str__()}"


class LocalError(LvvError):
    """The caller broke a rule; repeating the same call fails the same way."""


class RemoteError(LvvError):
    """A peer or the infrastructure failed or sent something bad."""


# --- codec -----------------------------------------------------------------------------------


class SchemaError(LocalError):
    """A schema is unknown, malformed, or a record does not fit its schema."""

    reason = "SCHEMA_INVALID"


class UnknownSchema(LocalError):
    """No schema of that name or fingerprint is known."""

    reason = "UNKNOWN_SCHEMA"


class DecodeError(RemoteError):
    """Bytes do not decode under the schema they claim."""

    reason = "MALFORMED"


# --- transport -------------------------------------------------------------------------------


class TransportError(RemoteError):
    """The message log (Kafka or embedded) failed an operation."""

    reason = "TRANSPORT_ERROR"
    retriable = True


class TransportTimeout(TransportError):
    """The operation did not finish in time; its outcome may be unknown (e.g. a send)."""

    reason = "TRANSPORT_TIMEOUT"


class TransportUnavailable(TransportError):
    """The log cannot be reached at all (no broker answers, database cannot open)."""

    reason = "TRANSPORT_UNAVAILABLE"


class UnknownTopic(LocalError):
    """The topic does not exist; topics are created explicitly (`Transport.ensure_topics`)."""

    reason = "UNKNOWN_TOPIC"


class RecordTooLarge(LocalError):
    """A record exceeds the transport's size limit."""

    reason = "TOO_LARGE"


class CommitFailed(TransportError):
    """Offsets could not be committed, e.g. the partition moved to another group member.

    Uncommitted records are delivered again; the caller should poll again, not retry
    the commit.
    """

    reason = "COMMIT_FAILED"
    retriable = False


class TransportClosed(LocalError):
    """The producer or consumer was used before start() or after close()."""

    reason = "TRANSPORT_CLOSED"
