"""The Avro contract and codec: every schema parses, is documented, has a stable
fingerprint, and evolves the way Avro promises."""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Callable
from typing import Any

import pytest

from broker.contract import NAMESPACE, Codec, default_codec
from broker.errors import DecodeError, SchemaError, UnknownSchema
from demo.examples import example
from schemas import AVRO_DIR, TYPES_DIR

EXPECTED = {
    "IntakeRegistered", "DossierDelivered", "ScenarioDecision", "ScenarioResponse",
    "EscalationRequest", "EscalationDecision", "IdentityReport", "TransferRequest",
    "TransferConfirmed", "CaseClosed", "DeliveryReceipt", "AuditEvent", "PartyDirectory",
    "SecureEnvelope", "SignedDirectory",
}  # fmt: skip


Schema = dict[str, Any]
"""A schema node as JSON: a record, an enum, a field, ..."""


def walk(node: Schema | list[Any] | str, visit: Callable[[Schema], None]) -> None:
    """Call ``visit`` on every dict node of a schema."""
    if isinstance(node, list):
        for n in node:
            walk(n, visit)
    elif isinstance(node, dict):
        visit(node)
        for f in node.get("fields", ()):
            walk(f["type"], visit)
        for key in ("items", "values", "type"):
            if isinstance(node.get(key), dict | list):
                walk(node[key], visit)


def test_the_contract_holds_every_message_of_the_case_flow() -> None:
    assert {n.removeprefix(NAMESPACE + ".") for n in default_codec().names} == EXPECTED


def test_every_field_and_type_is_documented_and_every_enum_has_a_default() -> None:
    missing = []

    def visit(node: Schema) -> None:
        if node.get("type") in ("record", "enum", "fixed") and not node.get("doc"):
            missing.append(node["name"])
        for f in node.get("fields", ()):
            if not f.get("doc"):
                missing.append(f"{node['name']}.{f['name']}")
        if node.get("type") == "enum":
            assert node.get("default") in node["symbols"], node["name"]

    for name in default_codec().names:
        walk(default_codec().info(name).schema, visit)
    assert missing == []


def test_ids_and_times_use_logical_types() -> None:
    wrong = []

    def visit(node: Schema) -> None:
        for f in node.get("fields", ()):
            t = f["type"][1] if isinstance(f["type"], list) else f["type"]
            logical = t.get("logicalType") if isinstance(t, dict) else None
            # a W3C span id (16 hex digits; LDV's name for it) is no uuid
            not_uuid = ("party_id", "key_id", "sender_key_id", "anchor_key_id", "parent_span_id")
            if f["name"].endswith("_id") and f["name"] not in not_uuid and logical != "uuid":
                wrong.append(f["name"])
            if f["name"].endswith("_at") and logical != "timestamp-millis":
                wrong.append(f["name"])
            if f["name"].endswith("_date") and logical != "date":
                wrong.append(f["name"])

    for name in default_codec().names:
        walk(default_codec().info(name).schema, visit)
    assert wrong == []


def test_fingerprint_is_sha256_of_the_parsing_canonical_form() -> None:
    codec = Codec([], [])
    info = codec.register(
        {"type": "record", "name": "Ping", "namespace": "x.y", "doc": "ignored by the PCF",
         "fields": [{"name": "n", "type": "int", "default": 0, "doc": "also ignored"}]}
    )  # fmt: skip
    # The form the Avro specification prescribes, written out by hand.
    pcf = '{"name":"x.y.Ping","type":"record","fields":[{"name":"n","type":"int"}]}'
    assert info.canonical_form == pcf
    assert info.fingerprint == hashlib.sha256(pcf.encode()).digest()
    assert codec.by_fingerprint(info.fingerprint) is info


def test_fingerprints_are_unique_and_looked_up() -> None:
    codec = default_codec()
    prints = {codec.info(n).fingerprint for n in codec.names}
    assert len(prints) == len(codec.names)
    for name in codec.names:
        assert codec.by_fingerprint(codec.info(name).fingerprint).name == name
    with pytest.raises(UnknownSchema):
        codec.by_fingerprint(b"\0" * 32)
    with pytest.raises(UnknownSchema):
        codec.info("NoSuchMessage")


def test_shared_types_are_inlined_so_each_schema_stands_alone() -> None:
    codec = default_codec()
    form = codec.info("DossierDelivered").canonical_form
    assert '"name":"nl.lvv.v1.Person"' in form and '"name":"nl.lvv.v1.IdentityDocument"' in form
    assert len(list(TYPES_DIR.glob("*.avsc"))) >= 5
    assert len(list(AVRO_DIR.glob("*.avsc"))) == len(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_examples_encode_and_decode(name: str) -> None:
    codec = default_codec()
    message = example(name)
    data = codec.encode(name, message.to_avro())
    assert type(message).from_avro(codec.decode(name, data)) == message


def test_trailing_and_truncated_bytes_are_refused() -> None:
    codec = default_codec()
    data = codec.encode("CaseClosed", example("CaseClosed").to_avro())
    with pytest.raises(DecodeError):
        codec.decode("CaseClosed", data + b"\x00")
    with pytest.raises(DecodeError):
        codec.decode("CaseClosed", data[:-3])


def test_a_record_that_does_not_fit_is_refused() -> None:
    record = example("CaseClosed").to_avro()
    record["unexpected"] = 1
    with pytest.raises(SchemaError):
        default_codec().encode("CaseClosed", record)
    del record["unexpected"], record["closed_by"]
    with pytest.raises(SchemaError):
        default_codec().encode("CaseClosed", record)


def _evolved(name: str, change: Callable[[Schema], None]) -> Codec:
    """A codec holding the current schema ``name`` and, as current, a changed copy."""
    codec = Codec([], [])
    old = codec.register(copy.deepcopy(default_codec().info(name).schema))
    new_schema = copy.deepcopy(old.schema)
    change(new_schema)
    codec.register(new_schema)
    return codec


def test_a_later_version_with_an_optional_field_reads_old_data() -> None:
    def add_field(schema: Schema) -> None:
        schema["fields"].append(
            {"name": "follow_up_date", "type": ["null", {"type": "int", "logicalType": "date"}],
             "default": None, "doc": "Added in a later version."}
        )  # fmt: skip

    codec = _evolved(f"{NAMESPACE}.CaseClosed", add_field)
    old = codec.by_fingerprint(default_codec().info("CaseClosed").fingerprint)
    original = example("CaseClosed").to_avro()
    data = default_codec().encode("CaseClosed", original)
    record = codec.decode("CaseClosed", data, writer=old)
    assert record["follow_up_date"] is None
    assert {k: v for k, v in record.items() if k != "follow_up_date"} == original
    # and old readers read new data, ignoring the field they do not know
    new_data = codec.encode("CaseClosed", {**original, "follow_up_date": None})
    assert (
        default_codec().decode("CaseClosed", new_data, writer=codec.info("CaseClosed")) == original
    )


def test_an_enum_symbol_added_later_reads_as_the_default() -> None:
    def add_symbol(schema: Schema) -> None:
        for f in schema["fields"]:
            if f["name"] == "outcome":
                f["type"]["symbols"].append("RESETTLEMENT")

    codec = _evolved(f"{NAMESPACE}.CaseClosed", add_symbol)
    record = {**example("CaseClosed").to_avro(), "outcome": "RESETTLEMENT"}
    data = codec.encode("CaseClosed", record)
    read = default_codec().decode("CaseClosed", data, writer=codec.info("CaseClosed"))
    assert read["outcome"] == "UNKNOWN"


def test_schema_files_are_plain_json_with_the_namespace() -> None:
    for path in [*AVRO_DIR.glob("*.avsc"), *TYPES_DIR.glob("*.avsc")]:
        schema = json.loads(path.read_text())
        assert schema["namespace"] == NAMESPACE
        assert path.name == f"{NAMESPACE}.{schema['name']}.avsc"
