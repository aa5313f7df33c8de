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
