"""`lvvx audit export --format ldv`: each party's audit events as Logboek Dataverwerkingen 1.0
records (https://gitdocumentatie.logius.nl/publicatie/logboek/dataverwerkingen/1.0.0,
"Component: Logboek", "Interface"), checked against the standard's fields."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections import defaultdict
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from broker.audit import Register, RegisterInvalid
from broker.models import CASE_MESSAGES, DeliveryReceipt

ROOT = Path(__file__).resolve().parents[3]

# The standard's fields: required ones, and the optional ones a record may have.
REQUIRED = {"trace_id", "span_id", "status", "name", "start_time", "end_time", "attributes"}
OPTIONAL = {"parent_span_id", "resource"}
STATUS = {"Unset", "Ok", "Error"}
CORE = {
    "dpl.core.processing_activity_id",
    "dpl.core.data_subject_id",
    "dpl.core.data_subject_id_type",
}
FOREIGN = {"dpl.core.foreign_operation.span_id", "dpl.core.foreign_operation.processor"}
HEX32, HEX16 = re.compile(r"[0-9a-f]{32}"), re.compile(r"[0-9a-f]{16}")
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")
MUNICIPALITY_REGISTER = """
register_uri = "https://avg-register.gemeente-utrecht.example/verwerkingen/"
default = "lvv.overig"
data_subject_id_type = "https://avg-register.gemeente-utrecht.example/id-typen/lvv-casus"
processor_uri = "https://lvv-exchange.example/partijen/"
[activities]
"nl.lvv.v1.IntakeRegistered" = "utrecht.lvv-intake"
"""


def _lvvx(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cli.main", *args], cwd=ROOT, capture_output=True, text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=180,
    )  # fmt: skip


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[dict[str, Any]]]:
    folder = tmp_path_factory.mktemp("ldv") / "net"
    done = _lvvx("demo", "--cases", "3", "--data", str(folder), "--json")
    assert done.returncode == 0, done.stderr[-2000:]
    register = folder.parent / "utrecht.toml"
    register.write_text(MUNICIPALITY_REGISTER, encoding="utf-8")
    out = folder.parent / "ldv.jsonl"
    done = _lvvx("audit", "export", "--format", "ldv", "--data", str(folder),
                 "--register", f"gemeente-utrecht={register}", "--out", str(out))  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    records = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert len(records) > 50
    return folder, records


def test_every_record_has_every_required_field_of_the_standard_in_its_form(
    exported: tuple[Path, list[dict[str, Any]]],
) -> None:
    _, records = exported
    for r in records:
        assert REQUIRED <= set(r) <= REQUIRED | OPTIONAL, r
        assert HEX32.fullmatch(r["trace_id"]) and r["trace_id"] != "0" * 32
        assert HEX16.fullmatch(r["span_id"]) and r["span_id"] != "0" * 16
        assert "parent_span_id" not in r or HEX16.fullmatch(r["parent_span_id"])
        assert r["status"] in STATUS and isinstance(r["name"], str) and r["name"]
        assert TIME.fullmatch(r["start_time"]) and TIME.fullmatch(r["end_time"])
        assert datetime.fromisoformat(r["start_time"]) <= datetime.fromisoformat(r["end_time"])
        assert set(r["resource"]["attributes"]) == {"service.name", "service.instance.id"}
        attributes = r["attributes"]
        assert set(attributes) <= CORE | FOREIGN
        assert re.fullmatch(r"https://[^\s]+", attributes["dpl.core.processing_activity_id"])
        if "dpl.core.data_subject_id" in attributes:  # only a refused record of no case lacks one
            assert UUID.fullmatch(
                attributes["dpl.core.data_subject_id"]
            )  # the pseudonymous case id
            assert attributes["dpl.core.data_subject_id_type"].startswith("https://")
        if FOREIGN & set(attributes):
            assert HEX16.fullmatch(attributes["dpl.core.foreign_operation.span_id"])
            assert attributes["dpl.core.foreign_operation.processor"].startswith("https://")


def test_activities_come_from_each_partys_register_or_the_default(
    exported: tuple[Path, list[dict[str, Any]]],
) -> None:
    _, records = exported
    default = Register.load()
    by_party: dict[str, set[str]] = defaultdict(set)
    for r in records:
        by_party[r["resource"]["attributes"]["service.instance.id"]].add(
            r["attributes"]["dpl.core.processing_activity_id"]
        )
    utrecht = Register.from_toml(MUNICIPALITY_REGISTER)
    assert by_party["gemeente-utrecht"] <= {
        utrecht.activity_uri(m.avro_name) for m in CASE_MESSAGES
    } | {utrecht.activity_uri(DeliveryReceipt.avro_name)}
    assert utrecht.activity_uri("nl.lvv.v1.IntakeRegistered") in by_party["gemeente-utrecht"]
    assert default.activity_uri("nl.lvv.v1.DossierDelivered") in by_party["ind"]
    assert default.activity("nl.lvv.v1.NoSuchType") == default.default  # unknown: the default


def test_trace_ids_link_the_senders_send_to_the_recipients_delivery_and_receipt(
    exported: tuple[Path, list[dict[str, Any]]],
) -> None:
    _, records = exported
    by_span = {r["span_id"]: r for r in records}
    sends = [
        r
        for r in records
        if r["name"].startswith("verzenden ") and "DeliveryReceipt" not in r["name"]
    ]
    assert sends
    linked = 0
    for delivery in (r for r in records if r["name"].startswith("afleveren ")):
        foreign = delivery["attributes"]["dpl.core.foreign_operation.span_id"]
        send = by_span[foreign]  # the sender's send, in the sender's log
        assert send["trace_id"] == delivery["trace_id"]
        assert (
            send["resource"]["attributes"]["service.instance.id"]
            != delivery["resource"]["attributes"]["service.instance.id"]
        )
        receipts = [r for r in records if r.get("parent_span_id") == delivery["span_id"]]
        (receipt,) = receipts  # the recipient's receipt, a child of the delivery
        assert receipt["trace_id"] == delivery["trace_id"] and receipt["name"].startswith(
            "ontvangst-bevestigen"
        )
        back = [
            r
            for r in records
            if r["attributes"].get("dpl.core.foreign_operation.span_id") == receipt["span_id"]
        ]
        assert back and back[0]["trace_id"] == send["trace_id"]  # the sender receives it
        linked += 1
    assert linked >= len(sends)  # every message delivered to at least one recipient


def test_the_export_holds_no_personal_data(exported: tuple[Path, list[dict[str, Any]]]) -> None:
    from demo.casebook import _PEOPLE

    _, records = exported
    text = json.dumps(records)
    names = [name for family, given, *_ in _PEOPLE for name in (family, given)]
    assert names and not any(name in text for name in names)  # the casebook's people
    assert not re.search(r"\b\d{10}\b", text)  # no V-number


def test_a_register_of_the_wrong_form_is_refused() -> None:
    with pytest.raises(RegisterInvalid):
        Register.from_toml('register_uri = "not a uri"\ndefault = "x"')
    with pytest.raises(RegisterInvalid):
        Register.from_toml(MUNICIPALITY_REGISTER.replace('"utrecht.lvv-intake"', '"Has Spaces"'))
