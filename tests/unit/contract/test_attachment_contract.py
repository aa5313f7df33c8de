"""The attachment reference in the contract (docs/ENVELOPE.md §11.2): the four message types
that carry documents, schema evolution from the contract before them in both directions,
the model's field rules, and the policy's rules between fields and per type."""

from __future__ import annotations

import io
import uuid

import fastavro
import pytest
from pydantic import ValidationError

from broker.contract import default_codec
from broker.errors import DecodeError, PolicyDenied, SchemaError
from broker.limits import (
    MAX_ATTACHMENT_BYTES,
    MAX_ATTACHMENT_CHUNK_BYTES,
    MAX_ATTACHMENTS_PER_MESSAGE,
    MIN_ATTACHMENT_CHUNK_BYTES,
)
from broker.models import MESSAGE_MODELS, AttachmentKey, AttachmentLocation, AttachmentRef
from broker.policy import ATTACHMENT_RULES, check_attachments, chunk_count_for
from demo.examples import example

CARRIERS = sorted(ATTACHMENT_RULES)
CODEC = default_codec()
EARLIER = {
    "nl.lvv.v1.DossierDelivered": "2d93636cd092f49c8128658b1b9a5c498aabddff3c62ff4af8cfcad4f576755b",
    "nl.lvv.v1.ScenarioDecision": "3e0ce101434781357a3a3fd219e72bb95c43ed43d8d59c5acbd44fbbc9a0b844",
    "nl.lvv.v1.EscalationRequest": "d9c7d19947a4d7610cb211b2ed730eabcf7ba0cea34cfa4c1ff49c4ced96d88d",
    "nl.lvv.v1.IdentityReport": "558d7bf691a6c79fffc4eb2bd5a4ee3ad9eee6407e70cfcdfc2c6abc95ea9459",
}
"""The fingerprints before attachments (docs/ENVELOPE.md §2.2), as they were published."""
RECIPIENTS = ("gemeente-utrecht", "ngo-perspectief")


def ref(
    size: int = 10_000, chunk_size: int = MIN_ATTACHMENT_CHUNK_BYTES, **update: object
) -> AttachmentRef:
    values: dict[str, object] = {
        "attachment_id": uuid.uuid4(),
        "media_type": "application/pdf",
        "size": size,
        "sha256": bytes(32),
        "chunk_size": chunk_size,
        "chunk_count": chunk_count_for(size, chunk_size),
        "salt": bytes(16),
        "keys": tuple(
            AttachmentKey(recipient=r, key_id="0123456789abcdef", wrapped=bytes(80))
            for r in RECIPIENTS
        ),
        "location": AttachmentLocation.RECIPIENT_TOPIC,
    }
    return AttachmentRef.model_validate(values | update)


def with_refs(name: str, *refs: AttachmentRef):  # type: ignore[no-untyped-def]
    return example(name).model_copy(update={"attachments": refs})


def test_exactly_the_four_document_carrying_types_have_attachments() -> None:
    assert CARRIERS == [
        "nl.lvv.v1.DossierDelivered",
        "nl.lvv.v1.EscalationRequest",
        "nl.lvv.v1.IdentityReport",
        "nl.lvv.v1.ScenarioDecision",
    ]
    for name, model in MESSAGE_MODELS.items():
        assert ("attachments" in model.model_fields) == (name in CARRIERS), name
    for name in CARRIERS:
        field = CODEC.info(name).schema["fields"][-1]
        assert (field["name"], field["default"]) == ("attachments", [])


@pytest.mark.parametrize("name", CARRIERS)
def test_the_earlier_version_is_kept_under_its_published_fingerprint(name: str) -> None:
    earlier = CODEC.by_fingerprint(bytes.fromhex(EARLIER[name]))
    assert earlier.name == name and earlier is not CODEC.info(name)
    assert "attachments" not in {f["name"] for f in earlier.schema["fields"]}


@pytest.mark.parametrize("name", CARRIERS)
def test_new_readers_read_old_records_with_no_attachments(name: str) -> None:
    earlier = CODEC.by_fingerprint(bytes.fromhex(EARLIER[name]))
    record = example(name).to_avro()
    del record["attachments"]
    old_bytes = CODEC.encode(earlier, record)
    read = CODEC.decode(name, old_bytes, writer=earlier, max_items=10_000)
    assert MESSAGE_MODELS[name].from_avro(read) == example(name)


@pytest.mark.parametrize("name", CARRIERS)
def test_old_readers_read_new_records_ignoring_the_attachments(name: str) -> None:
    earlier = CODEC.by_fingerprint(bytes.fromhex(EARLIER[name]))
    message = with_refs(name, ref(), ref(size=0))
    new_bytes = message.avro_bytes()
    old_view = fastavro.schemaless_reader(
        io.BytesIO(new_bytes), CODEC.info(name).parsed, earlier.parsed
    )
    expected = message.to_avro()
    del expected["attachments"]
    assert old_view == expected


@pytest.mark.parametrize("name", CARRIERS)
def test_the_generated_codec_carries_attachments_as_fastavro_does(name: str) -> None:
    message = with_refs(
        name, ref(), ref(size=MAX_ATTACHMENT_BYTES, chunk_size=MAX_ATTACHMENT_CHUNK_BYTES)
    )
    data = message.avro_bytes()
    assert data == CODEC.encode(name, message.to_avro())
    assert type(message).from_avro_bytes(data, max_items=10_000) == message


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("media_type", "Application/PDF"),  # one spelling: lowercase
        ("media_type", "application/pdf; charset=binary"),  # no parameters
        ("media_type", "pdf"),
        ("size", -1),
        ("size", MAX_ATTACHMENT_BYTES + 1),
        ("chunk_size", MIN_ATTACHMENT_CHUNK_BYTES - 1),
        ("chunk_size", MAX_ATTACHMENT_CHUNK_BYTES + 1),
        ("chunk_count", 0),
        ("salt", bytes(15)),
        ("sha256", bytes(31)),
    ],
)
def test_the_model_refuses_what_the_contract_forbids(field: str, value: object) -> None:
    with pytest.raises(ValidationError):
        AttachmentRef.model_validate(ref().model_dump() | {field: value})
    # and so does the generated decoder of untrusted bytes
    good = with_refs("nl.lvv.v1.DossierDelivered", ref())
    record = good.to_avro()
    record["attachments"][0][field] = value
    try:
        data = CODEC.encode(good.avro_name, record)
    except SchemaError:  # the writer itself refuses it (a fixed of 31 bytes)
        return
    with pytest.raises(DecodeError):
        type(good).from_avro_bytes(data, max_items=10_000)


@pytest.mark.parametrize("size", [0, 1, 4095, 4096, 4097, 3 * 4096])
def test_the_chunk_count_follows_from_the_size(size: int) -> None:
    assert chunk_count_for(size, 4096) == max(1, -(-size // 4096))
    check_attachments(with_refs("nl.lvv.v1.DossierDelivered", ref(size=size)), RECIPIENTS)


@pytest.mark.parametrize(
    "refs",
    [
        pytest.param(lambda: [ref(chunk_count=4)], id="layout"),
        pytest.param(lambda: [ref(location=AttachmentLocation.UNKNOWN)], id="unknown-location"),
        pytest.param(lambda: [ref(keys=())], id="no-keys"),
        pytest.param(lambda: [ref(keys=ref().keys[::-1])], id="keys-out-of-order"),
        pytest.param(lambda: [ref(keys=ref().keys[:1])], id="a-recipient-without-key"),
        pytest.param(
            lambda: [ref(attachment_id=uuid.UUID(int=1)), ref(attachment_id=uuid.UUID(int=1))],
            id="same-id",
        ),
        pytest.param(
            lambda: [ref(size=0) for _ in range(MAX_ATTACHMENTS_PER_MESSAGE + 1)], id="too-many"
        ),
        pytest.param(
            lambda: [
                ref(size=MAX_ATTACHMENT_BYTES, chunk_size=MAX_ATTACHMENT_CHUNK_BYTES)
                for _ in range(5)
            ],
            id="too-much",
        ),
    ],
)
def test_the_policy_refuses_references_that_break_its_rules(refs) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(PolicyDenied):
        check_attachments(with_refs("nl.lvv.v1.DossierDelivered", *refs()), RECIPIENTS)


def test_each_type_has_its_own_limits() -> None:
    report = "nl.lvv.v1.IdentityReport"
    rule = ATTACHMENT_RULES[report]
    small = [ref(size=0) for _ in range(rule.max_count)]
    check_attachments(with_refs(report, *small), RECIPIENTS)
    with pytest.raises(PolicyDenied):
        check_attachments(with_refs(report, *small, ref(size=0)), RECIPIENTS)
    for r in ATTACHMENT_RULES.values():
        assert r.max_count <= MAX_ATTACHMENTS_PER_MESSAGE
