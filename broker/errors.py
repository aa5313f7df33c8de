"""One root exception for the whole package, split by who is at fault.

`LocalError` means the caller broke a rule (bad argument, unknown schema name);
`RemoteError` means a peer or the infrastructure did (a broker is down, bytes off the
wire do not decode). Each error carries a machine-readable `reason` code and a
`retriable` flag telling the caller whether trying again can help, as aiokafka's
errors do. Foreign exceptions are translated at the edge with ``raise ... from exc``.
"""

from __future__ import annotations

from enum import StrEnum
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pydantic import ValidationError


class LvvError(Exception):
    """Root of every error this package raises on purpose."""

    reason: str = "ERROR"
    retriable: bool = False

    def __init__(self, message: str, *, reason: str | None = None) -> None:
        super().__init__(message)
        if reason is not None:
            self.reason = reason

    @property
    def message(self) -> str:
        """What went wrong, without the reason code."""
        return super().__str__()

    def __str__(self) -> str:
        return f"[{self.reason}] {self.message}"


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


# --- security core ---------------------------------------------------------------------------


class RejectReason(StrEnum):
    """Why an envelope was refused: a closed set, used in errors, metrics and the DLQ.

    Listed roughly in the order of the checks; the exact order is docs/ENVELOPE.md §6.1.
    """

    TOO_LARGE = "TOO_LARGE"
    MALFORMED = "MALFORMED"
    UNSUPPORTED_VERSION = "UNSUPPORTED_VERSION"
    UNKNOWN_SENDER = "UNKNOWN_SENDER"
    SENDER_KEY_INVALID = "SENDER_KEY_INVALID"
    BAD_SIGNATURE = "BAD_SIGNATURE"
    NOT_A_RECIPIENT = "NOT_A_RECIPIENT"
    POLICY_DENIED = "POLICY_DENIED"
    EXPIRED = "EXPIRED"
    FROM_FUTURE = "FROM_FUTURE"
    REPLAY = "REPLAY"
    DECRYPT_FAILED = "DECRYPT_FAILED"
    UNKNOWN_SCHEMA = "UNKNOWN_SCHEMA"
    PAYLOAD_INVALID = "PAYLOAD_INVALID"
    ATTACHMENT_INVALID = "ATTACHMENT_INVALID"
    """Not a check of the envelope's (docs/ENVELOPE.md §6.1): the message opened, but an
    attachment it references was refused (§11.5, an `AttachmentCheck`) or did not come
    complete within the receiver's bounded wait (§11.6); all of a message's attachments
    are delivered with it, or the message is not."""


class EnvelopeRejected(RemoteError):
    """An envelope failed one check. Its text is the reason code and nothing more, so a
    sender learns no more than the code about which check failed or why."""

    def __init__(self, reason: RejectReason) -> None:
        super().__init__(f"envelope rejected: {reason.value}", reason=reason.value)
        self.reject_reason = reason
        self.authenticated_header: Any = None
        """The envelope's header when the signature had verified before the check failed
        (an `EnvelopeHeader`); None otherwise. Only then may a gateway answer the sender."""


class ReplayDetected(RemoteError):
    """A message id was seen before within the accepted time window."""

    reason = "REPLAY"


class PolicyDenied(LocalError):
    """The policy does not allow this sender role to send this type to this recipient role."""

    reason = "POLICY_DENIED"


class DirectoryCheck(StrEnum):
    """Which check refused a key directory: a bounded metric label (the gateway counts
    refused directories by it), never personal data."""

    TOO_LARGE = "TOO_LARGE"
    MALFORMED = "MALFORMED"
    UNSUPPORTED_FORMAT = "UNSUPPORTED_FORMAT"
    FOREIGN_ANCHOR = "FOREIGN_ANCHOR"
    """Signed by (or naming) another key than the pinned anchor."""
    ANCHOR_NOT_YET_VALID = "ANCHOR_NOT_YET_VALID"
    ANCHOR_EXPIRED = "ANCHOR_EXPIRED"
    BAD_SIGNATURE = "BAD_SIGNATURE"
    EXPIRED = "EXPIRED"
    NOT_YET_VALID = "NOT_YET_VALID"
    OLDER_SERIAL = "OLDER_SERIAL"
    OTHER_NETWORK = "OTHER_NETWORK"
    BAD_KEY = "BAD_KEY"
    """A party without a role or keys, or a key that must never be accepted."""


class DirectoryRejected(RemoteError):
    """A key directory is unsigned, badly signed, expired, older than the one in use, of
    another network, or holds a key that must never be accepted. ``check`` says which
    check refused it (`DirectoryCheck`)."""

    reason = "DIRECTORY_REJECTED"

    def __init__(
        self,
        message: str,
        *,
        reason: str | None = None,
        check: DirectoryCheck = DirectoryCheck.BAD_KEY,
    ) -> None:
        super().__init__(message, reason=reason)
        self.check = check


class AttachmentCheck(StrEnum):
    """Why an attachment was refused: the checks of docs/ENVELOPE.md §11.5, in their order.
    A closed set; a receiver reports the code only (no byte, chunk or library detail)."""

    REFERENCE_INVALID = "REFERENCE_INVALID"
    """The reference breaks its own rules (layout, limits, salt, location)."""
    KEY_INVALID = "KEY_INVALID"
    """No wrapped key for this recipient, no private key of its key id, or the HPKE open
    fails: another recipient's copy of the key, or one made for another attachment."""
    CHUNK_INVALID = "CHUNK_INVALID"
    """A chunk does not authenticate at its place: altered, reordered, duplicated, one
    dropped before it, taken from another attachment, or under another key."""
    CHUNK_SIZE = "CHUNK_SIZE"
    """A chunk's length is not the one the reference's size and layout give its place."""
    TOO_MANY_CHUNKS = "TOO_MANY_CHUNKS"
    """A chunk after the last one the reference announces (an extension)."""
    TRUNCATED = "TRUNCATED"
    """The stream ended before the last chunk (a truncation)."""
    DIGEST_MISMATCH = "DIGEST_MISMATCH"
    """Every chunk authenticated but the plaintext's SHA-256 is not the reference's."""


class AttachmentRejected(RemoteError):
    """An attachment failed one check (``check``). Its text is the code and nothing more.
    Plaintext returned before the refusal is not the document: a receiver releases an
    attachment only after the end check passed (docs/ENVELOPE.md §11.5)."""

    reason = "ATTACHMENT_REJECTED"

    def __init__(self, check: AttachmentCheck) -> None:
        super().__init__(f"attachment rejected: {check.value}")
        self.check = check


class KeyStoreError(LocalError):
    """Key files are missing, unreadable, or the passphrase is wrong or not given."""

    reason = "KEY_STORE"


class WeakPassphrase(KeyStoreError):
    """A new key file would be encrypted under a passphrase shorter than the minimum
    (`broker.crypto.MIN_PASSPHRASE_CHARS`)."""

    reason = "WEAK_PASSPHRASE"


class UnknownParty(LocalError):
    """The party is not in the key directory."""

    reason = "UNKNOWN_PARTY"


def validation_summary(exc: ValidationError) -> str:
    """Pydantic's findings as one line: ``field: what is wrong; …`` (never the values)."""
    parts = []
    for error in exc.errors(include_url=False, include_input=False):
        where = ".".join(str(p) for p in error["loc"])
        message = error["msg"].removeprefix("Value error, ")
        parts.append(f"{where}: {message}" if where else message)
    return "; ".join(parts).replace("\n", " ")
