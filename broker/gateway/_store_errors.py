"""What can be wrong with a gateway's state file itself (not with a record or a request):
each a `LocalError` with its own reason code, since trying again reads the same bytes."""

from __future__ import annotations

from broker.errors import LocalError


class StoreError(LocalError):
    """The store file cannot be used as it is; an operator must look at it."""

    reason = "STORE_ERROR"


class StoreVersionError(StoreError):
    """The store file was written by a newer version of the gateway."""

    reason = "STORE_VERSION"


class StoredRecordUnreadable(StoreError):
    """A durable record of exactly-once delivery (a follow-up, an outcome) is not of a kind
    or version this gateway knows. Never guessed at: acting on a misread follow-up could send
    a receipt twice or not at all. The reason code says what did not fit."""

    reason = "STORED_RECORD_UNREADABLE"
