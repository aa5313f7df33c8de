"""The security core: identities, the signed key directory, sealing and opening envelopes.

The only package that imports ``cryptography`` (checked by import-linter in `make lint`):
the audit chain signs through `sign_tagged` and `verify_tagged`. Sealing and opening are
pure functions of bytes, keys, the directory and the clock (docs/ENVELOPE.md); so are
attachments, encrypted as a stream of chunks (`AttachmentSealer`, `AttachmentOpener`, §11).

`seal_v1_from_parts`, `prepare_envelope` + `seal_v2_batch` and `SenderEpochs` with a given
random source are the deterministic entry points, for known-answer tests (tests/spec/vectors),
hostile-sender tests and the fuzzer; everything else seals with `seal` or `Sealer`.
"""

from broker.crypto._at_rest import ContentKey, ContentUnreadable
from broker.crypto._batch import Opener, Sealer
from broker.crypto._chunk_record import (
    ChunkRecord,
    ChunkRecordInvalid,
    chunk_record,
    read_chunk_record,
)
from broker.crypto._directory import (
    DEFAULT_DIRECTORY_VALIDITY,
    AnchorKey,
    Directory,
    RecipientKey,
    build_directory,
    checked_directory,
    load_directory,
    sign_directory,
)
from broker.crypto._envelope import (
    DEFAULT_TTL,
    FORMAT_V1,
    FORMAT_V2,
    FORMAT_VERSION,
    MAX_CLOCK_SKEW,
    MAX_ENVELOPE_ITEMS,
    MAX_PAYLOAD_BYTES,
    MAX_PAYLOAD_ITEMS,
    MAX_RECIPIENTS,
    MAX_TTL,
    OpenCaches,
    Opened,
    SealRequest,
    envelope_schema,
    open_envelope,
    prepare_envelope,
    seal,
    seal_v1_from_parts,
    seal_v2_batch,
)
from broker.crypto._epoch import SenderEpochs
from broker.crypto._inspect import inspect_envelope
from broker.crypto._keyfile import (
    DEMO_KEY_FILE_KDF,
    KEY_FILE_KDF,
    MIN_PASSPHRASE_CHARS,
    KeyFileChange,
    KeyFileKdf,
    check_passphrase,
    replace_private,
    rewrap_key_file,
)
from broker.crypto._keys import (
    DEFAULT_KEY_VALIDITY,
    NEW_PASSPHRASE_FILE_ENV,
    DecryptionKey,
    KeyStore,
    NewParty,
    PartyKeys,
    generate_party,
    key_id,
    new_passphrase_from_env,
    passphrase_from_env,
    signing_public_key,
)
from broker.crypto._pki import Pki
from broker.crypto._revocation import Revocation, RevocationAction, revoke_key
from broker.crypto._ring import KeyRing
from broker.crypto._rotation import (
    DEFAULT_ROTATION_LEAD,
    RETIRED_AFTER,
    Rotation,
    pending_keys,
    reschedule_rotation,
    rotate_keys,
)
from broker.crypto._signing import (
    SignatureInvalid,
    SigningKey,
    VerifyKey,
    raw_public_key,
    sign_tagged,
    signing_key_from_seed,
    verify_tagged,
)
from broker.crypto._stream import (
    AttachmentOpener,
    AttachmentSealer,
    SealedAttachment,
    attachment_reference,
    chunk_record_key,
    unwrap_attachment_key,
    wrap_attachment_key,
)
from broker.crypto._wire import varint_spans
from broker.limits import MAX_ENVELOPE_BYTES

__all__ = [
    "DEFAULT_DIRECTORY_VALIDITY",
    "DEFAULT_KEY_VALIDITY",
    "DEFAULT_ROTATION_LEAD",
    "DEFAULT_TTL",
    "DEMO_KEY_FILE_KDF",
    "FORMAT_V1",
    "FORMAT_V2",
    "FORMAT_VERSION",
    "KEY_FILE_KDF",
    "MAX_CLOCK_SKEW",
    "MAX_ENVELOPE_BYTES",
    "MAX_ENVELOPE_ITEMS",
    "MAX_PAYLOAD_BYTES",
    "MAX_PAYLOAD_ITEMS",
    "MAX_RECIPIENTS",
    "MAX_TTL",
    "MIN_PASSPHRASE_CHARS",
    "NEW_PASSPHRASE_FILE_ENV",
    "RETIRED_AFTER",
    "AnchorKey",
    "AttachmentOpener",
    "AttachmentSealer",
    "ChunkRecord",
    "ChunkRecordInvalid",
    "ContentKey",
    "ContentUnreadable",
    "DecryptionKey",
    "Directory",
    "KeyFileChange",
    "KeyFileKdf",
    "KeyRing",
    "KeyStore",
    "NewParty",
    "OpenCaches",
    "Opened",
    "Opener",
    "PartyKeys",
    "Pki",
    "RecipientKey",
    "Revocation",
    "RevocationAction",
    "Rotation",
    "SealRequest",
    "SealedAttachment",
    "Sealer",
    "SenderEpochs",
    "SignatureInvalid",
    "SigningKey",
    "VerifyKey",
    "attachment_reference",
    "build_directory",
    "check_passphrase",
    "checked_directory",
    "chunk_record",
    "chunk_record_key",
    "envelope_schema",
    "generate_party",
    "inspect_envelope",
    "key_id",
    "load_directory",
    "new_passphrase_from_env",
    "open_envelope",
    "passphrase_from_env",
    "pending_keys",
    "prepare_envelope",
    "raw_public_key",
    "read_chunk_record",
    "replace_private",
    "reschedule_rotation",
    "revoke_key",
    "rewrap_key_file",
    "rotate_keys",
    "seal",
    "seal_v1_from_parts",
    "seal_v2_batch",
    "sign_directory",
    "sign_tagged",
    "signing_key_from_seed",
    "signing_public_key",
    "unwrap_attachment_key",
    "varint_spans",
    "verify_tagged",
    "wrap_attachment_key",
]
