"""The security core: identities, the signed key directory, sealing and opening envelopes.

The only package that imports ``cryptography.hazmat``. Sealing and opening are pure
functions of bytes, keys, the directory and the clock (docs/ENVELOPE.md).
"""

from broker.crypto._at_rest import ContentKey, ContentUnreadable
from broker.crypto._batch import Opener, Sealer
from broker.crypto._directory import (
    DEFAULT_DIRECTORY_VALIDITY,
    AnchorKey,
    Directory,
    RecipientKey,
    build_directory,
    load_directory,
    sign_directory,
)
from broker.crypto._envelope import (
    DEFAULT_TTL,
    FORMAT_VERSION,
    MAX_CLOCK_SKEW,
    MAX_ENVELOPE_BYTES,
    MAX_PAYLOAD_BYTES,
    MAX_RECIPIENTS,
    MAX_TTL,
    OpenCaches,
    Opened,
    SealRequest,
    open_envelope,
    seal,
)
from broker.crypto._keys import (
    DecryptionKey,
    KeyStore,
    PartyKeys,
    key_id,
    passphrase_from_env,
)

__all__ = [
    "DEFAULT_DIRECTORY_VALIDITY",
    "DEFAULT_TTL",
    "FORMAT_VERSION",
    "MAX_CLOCK_SKEW",
    "MAX_ENVELOPE_BYTES",
    "MAX_PAYLOAD_BYTES",
    "MAX_RECIPIENTS",
    "MAX_TTL",
    "AnchorKey",
    "ContentKey",
    "ContentUnreadable",
    "DecryptionKey",
    "Directory",
    "KeyStore",
    "OpenCaches",
    "Opened",
    "Opener",
    "PartyKeys",
    "RecipientKey",
    "SealRequest",
    "Sealer",
    "build_directory",
    "key_id",
    "load_directory",
    "open_envelope",
    "passphrase_from_env",
    "seal",
    "sign_directory",
]
