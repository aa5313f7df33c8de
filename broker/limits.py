"""Size limits that more than one layer must agree on. Each layer keeps its own limits;
the ones here tie layers together, so they live apart from both: the transport refuses a
record over `MAX_RECORD_BYTES`, and the security core seals no envelope that would not fit
in one (`MAX_ENVELOPE_BYTES`)."""

MAX_RECORD_BYTES = 2 * 1024 * 1024
"""The largest record either transport accepts (key + value + headers). Kafka's own default
for ``message.max.bytes`` is about 1 MiB; envelopes with large dossiers need a little more,
so the brokers are configured above this (deploy/kafka)."""

RECORD_HEADROOM_BYTES = 16 * 1024
"""What a record carries besides its envelope: the key and the headers."""

MAX_ENVELOPE_BYTES = MAX_RECORD_BYTES - RECORD_HEADROOM_BYTES
"""The largest envelope sealed or opened: it always fits in one record."""

# --- attachments (docs/ENVELOPE.md §11) -------------------------------------------------------

MAX_ATTACHMENT_BYTES = 128 * 1024 * 1024
"""The largest document one attachment carries: a scanned dossier of several hundred pages
is ~100 MB; more is a mistake or an attack, and a recipient spools at most this per
attachment before its end check."""

MAX_ATTACHMENTS_PER_MESSAGE = 64
"""Attachments one message may reference at most: a dossier of a few dozen documents."""

MAX_ATTACHMENT_BYTES_PER_MESSAGE = 512 * 1024 * 1024
"""The sum of a message's attachment sizes at most: bounds what one message makes each
recipient fetch and spool before it is delivered (all or nothing)."""

MAX_ATTACHMENT_CHUNK_BYTES = 1024 * 1024
"""Plaintext bytes per chunk at most (and the sender's default): a chunk with its tag and
its record key stays well inside one `MAX_RECORD_BYTES` transport record, and a
receiver holds one chunk at a time."""

MIN_ATTACHMENT_CHUNK_BYTES = 4096
"""Plaintext bytes per chunk at least: smaller chunks cost more in per-record overhead than
they carry, and this bounds the chunk count of the largest attachment (32 768)."""

MAX_ATTACHMENT_CHUNKS = MAX_ATTACHMENT_BYTES // MIN_ATTACHMENT_CHUNK_BYTES
"""Chunks one attachment has at most (the largest attachment in the smallest chunks)."""

ATTACHMENT_SALT_BYTES = 16
"""The HKDF salt of an attachment's stream key (docs/ENVELOPE.md §11.3): fixed by the
contract's model and the cipher alike, so it lives with the limits both read."""
