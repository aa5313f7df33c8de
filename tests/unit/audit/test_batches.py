"""Audit events signed per write batch (V2, docs/AUDIT.md): one signature per `prepare`, each
event still verifiable on its own; a batch's later events cost hashes, not a verify; every way
of moving, editing or replaying a batch's parts is a BAD_SIGNATURE; and chains written by the
previous release (V1, one signature per event) verify, recover and are continued by V2 batches,
with proofs from `prove` checking out and `lvvx audit verify` clean.

The network here is built at the real clock (the command line checks the directory against it):
two parties with fresh keys, a directory signed by the test anchor, nothing else.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import uuid
from collections.abc import Sequence
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from hypothesis import given, settings
from hypothesis import strategies as st

from broker.audit import AuditChain, EventSpec, read_audit
from broker.audit import _events as ev
from broker.audit._prove import check_proof, prove
from broker.audit._verify import Finding, Report, verify_stream
from broker.contract.binary import write_bytes
from broker.crypto import (
    AnchorKey,
    Directory,
    SigningKey,
    build_directory,
    generate_party,
    key_id,
    load_directory,
    sign_directory,
    verify_tagged,
)
from broker.gateway import utc_now
from broker.merkle import inclusion_proof, leaf_hash, root
from broker.models import (
    AuditAction,
    AuditCheckpoint,
    AuditEvent,
    AuditOutcome,
    KeyAlgorithm,
    KeyStatus,
    PartyRole,
    PublicKey,
)
from broker.topics import DEFAULT_PREFIX, audit
from broker.transport import OutgoingRecord, Record, TopicSpec
from broker.transport.embedded import EmbeddedTransport
from cli.main import cli
from tests.crypto_net import ANCHOR, A

IND, MUNI = A[PartyRole.IND], A[PartyRole.MUNICIPALITY]
NOW = utc_now().replace(microsecond=0)  # the event times: whole milliseconds survive Avro
PARTIES = {
    party: generate_party(party, role, now=NOW - timedelta(days=1), seed=f"batches/{party}".encode())
    for party, role in ((IND, PartyRole.IND), (MUNI, PartyRole.MUNICIPALITY))
}  # fmt: skip


def _directory_bytes() -> bytes:
    entries = [p.entry for p in PARTIES.values()]
    return sign_directory(
        build_directory(entries, serial=1, network="lvv-test", now=NOW - timedelta(hours=1)),
        ANCHOR,
    )


def _anchor_public() -> PublicKey:
    raw = ANCHOR.public_key().public_bytes_raw()
    return PublicKey(key_id=key_id(raw), algorithm=KeyAlgorithm.ED25519, public_key=raw,
                     valid_from=NOW - timedelta(days=1), valid_until=NOW + timedelta(days=365),
                     status=KeyStatus.ACTIVE)  # fmt: skip


DIRECTORY: Directory = load_directory(
    _directory_bytes(), anchor=AnchorKey.from_record(_anchor_public()), now=NOW
)


def private(party: str) -> SigningKey:
    return PARTIES[party].keys.signing_key


def new_chain(party: str = IND) -> AuditChain:
    return AuditChain(party, private(party), audit(party), lambda: NOW)


def delivered(n: int) -> list[EventSpec]:
    return [
        EventSpec(
            AuditAction.DELIVERED,
            message_id=uuid.uuid4(),
            sender=MUNI,
            envelope_sha256=hashlib.sha256(str(i).encode()).digest(),
        )
        for i in range(n)
    ]


def as_read(outgoing: Sequence[OutgoingRecord], start: int = 0) -> list[Record]:
    """Records as DT&V reads them from the topic."""
    return [
        Record(o.topic, 0, start + i, o.key, o.value, o.headers, 0) for i, o in enumerate(outgoing)
    ]


def batches(chain: AuditChain, *sizes: int) -> list[Record]:
    """A chain of written batches of these sizes (each prepared and committed)."""
    records: list[Record] = []
    for size in sizes:
        pending = chain.prepare(delivered(size))
        records += as_read(pending.records, len(records))
        chain.commit(pending)
    return records


def event_of(record: Record) -> AuditEvent:
    return ev.decode(record.value)


def field_of(record: Record) -> bytes:
    return event_of(record).signature


def with_field(record: Record, signature: bytes) -> Record:
    """The record's signed part with another signature field."""
    event = event_of(record)
    return replace(record, value=ev.signed_part(event, record.value) + write_bytes(signature))


def verify(records: list[Record], **kwargs: Any) -> Report:
    return verify_stream(records, DIRECTORY, now=NOW, **kwargs)


def kinds(report: Report) -> set[Finding]:
    return {i.kind for i in report.issues}


def bad_at(report: Report) -> list[int | None]:
    return [i.seq for i in report.issues if i.kind is Finding.BAD_SIGNATURE]


def flip(data: bytes, at: int = -1) -> bytes:
    b = bytearray(data)
    b[at] ^= 0x01
    return bytes(b)


# --- one signature per batch -------------------------------------------------------------------


def test_a_prepare_is_signed_once_and_each_event_verifies_on_its_own() -> None:
    records = batches(new_chain(), 4)
    fields = [field_of(r) for r in records]
    assert len({f[-64:] for f in fields}) == 1  # one Ed25519 signature for the write
    assert all(f[0] == ev.FORMAT_V2 and int.from_bytes(f[1:3], "big") == 4 for f in fields)
    assert [int.from_bytes(f[3:5], "big") for f in fields] == [0, 1, 2, 3]
    for r in records:  # each alone, without a cache or the other events
        ev.verify(event_of(r), r.value, private(IND).public_key())
    assert verify(records).clean


def test_the_chain_hash_and_the_checkpoint_leaf_are_over_the_signed_part() -> None:
    chain = new_chain()
    pending = chain.prepare(delivered(5), checkpoint=True)
    records = as_read(pending.records)
    parts = [ev.signed_part(event_of(r), r.value) for r in records]
    events = [event_of(r) for r in records]
    assert [e.prev_hash for e in events[1:]] == [hashlib.sha256(p).digest() for p in parts[:-1]]
    head = events[-1].checkpoint
    assert head == AuditCheckpoint(tree_size=5, root_hash=root([leaf_hash(p) for p in parts[:5]]))
    chain.commit(pending)
    assert verify(records).clean


def test_a_large_write_with_checkpoints_inside_is_one_batch() -> None:
    records = batches(new_chain(), 150)  # two checkpoints inside: 152 events
    assert len(records) == 152 and len({field_of(r)[-64:] for r in records}) == 1
    report = verify(records)
    assert report.clean and report.chains[IND].checkpoints == 2


def test_a_write_larger_than_the_batch_bound_is_signed_in_several_batches(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(ev, "MAX_AUDIT_BATCH", 3)
    records = batches(new_chain(), 7)
    fields = [field_of(r) for r in records]
    assert [int.from_bytes(f[1:3], "big") for f in fields] == [3, 3, 3, 3, 3, 3, 1]
    assert len({f[-64:] for f in fields}) == 3
    assert verify(records).clean


def test_a_batch_costs_one_signature_check_however_many_events(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    records = batches(new_chain(), 4, 4, 1)
    calls: list[bytes] = []
    real = verify_tagged

    def counting(key: Any, signature: bytes, tag: bytes, data: bytes) -> None:
        calls.append(tag)
        real(key, signature, tag, data)

    monkeypatch.setattr(ev, "verify_tagged", counting)
    assert verify(records).clean
    assert calls == [ev.AUDIT_BATCH_TAG] * 3
    # a follower keeps its cache across passes: the next pass checks nothing again
    seen = ev.VerifiedBatches()
    verify(records, batches=seen)
    calls.clear()
    assert verify(records, batches=seen).clean and calls == []


def test_the_verified_batches_are_bounded() -> None:
    records = batches(new_chain(), 1, 1, 1)
    seen = ev.VerifiedBatches(capacity=2)
    for r in records:
        ev.verify(event_of(r), r.value, private(IND).public_key(), seen)
    assert len(seen._seen) == 2


# --- tampering ---------------------------------------------------------------------------------


def test_a_forged_batch_signature_is_a_bad_signature() -> None:
    records = batches(new_chain(), 4)
    tampered = list(records)
    tampered[2] = with_field(records[2], flip(field_of(records[2])))
    report = verify(tampered)  # its batch mates verified the real signature first
    assert bad_at(report) == [2] and kinds(report) == {Finding.BAD_SIGNATURE, Finding.GAP}
    # the whole batch signed again by another gateway's key, paths and all
    parts = [ev.signed_part(event_of(r), r.value) for r in records]
    forged = [replace(r, value=v) for r, v in
              zip(records, ev.sign_batch(parts, IND, 0, private(MUNI)), strict=True)]  # fmt: skip
    assert bad_at(verify(forged)) == [0, 1, 2, 3]


@pytest.mark.parametrize("at", [0, 1, 3])
def test_an_event_altered_inside_a_batch_is_a_bad_signature(at: int) -> None:
    records = batches(new_chain(), 4)
    event = event_of(records[at])
    edited = event.model_copy(update={"outcome": AuditOutcome.FAILED, "reason": "REPLAY"})
    tampered = list(records)
    tampered[at] = replace(records[at], value=ev.encode(edited))  # its old signature field kept
    report = verify(tampered)
    assert bad_at(report) == [at]
    assert kinds(report) == (
        {Finding.BAD_SIGNATURE} if at == 3 else {Finding.BAD_SIGNATURE, Finding.GAP}
    )


def test_an_event_moved_into_another_batch_is_a_bad_signature() -> None:
    records = batches(new_chain(), 4, 4)
    fields = [field_of(r) for r in records]
    tampered = list(records)
    tampered[1] = with_field(records[1], fields[5])  # the same place in the next batch
    tampered[6] = with_field(records[6], fields[2])
    assert bad_at(verify(tampered)) == [1, 6]
    # within its batch, at another place: the path of a neighbour
    swapped = list(records)
    swapped[0], swapped[1] = with_field(records[0], fields[1]), with_field(records[1], fields[0])
    assert bad_at(verify(swapped)) == [0, 1]


def _path_variants(field: bytes) -> dict[str, bytes]:
    head, path, signature = field[:5], field[5:-64], field[-64:]
    size, index = int.from_bytes(field[1:3], "big"), int.from_bytes(field[3:5], "big")
    hashes = [path[i : i + 32] for i in range(0, len(path), 32)]
    return {
        "a hash changed": head + flip(path, 3) + signature,
        "a hash dropped": head + b"".join(hashes[:-1]) + signature,
        "a hash added": head + path + hashes[0] + signature,
        "hashes swapped": head + b"".join(reversed(hashes)) + signature,
        "another index": head[:3] + (index ^ 1).to_bytes(2, "big") + path + signature,
        "another size": head[:1] + (size + 1).to_bytes(2, "big") + head[3:] + path + signature,
        "size zero": head[:1] + bytes(2) + head[3:] + path + signature,
        "not a whole hash": head + path[:-1] + signature,
        "another version": b"\x03" + field[1:],
    }


@pytest.mark.parametrize("name", sorted(_path_variants(bytes(5 + 64 + 64 + 64))))
def test_a_path_that_does_not_lead_to_the_signed_root_is_a_bad_signature(name: str) -> None:
    records = batches(new_chain(), 6)
    at = 2
    tampered = list(records)
    tampered[at] = with_field(records[at], _path_variants(field_of(records[at]))[name])
    assert bad_at(verify(tampered)) == [at]
    with pytest.raises(ev.BadAuditEvent):
        ev.verify(event_of(tampered[at]), tampered[at].value, private(IND).public_key())


def test_a_batch_statement_signed_for_another_gateway_or_place_does_not_verify() -> None:
    """The gateway's key signs, in a batch statement, whose chain and where in it: the same
    root signed for another gateway's chain (say, a second party sharing a key) or another
    starting seq verifies as a statement, but stands for none of these events."""
    records = batches(new_chain(), 3)
    events = [event_of(r) for r in records]
    parts = [ev.signed_part(e, r.value) for e, r in zip(events, records, strict=True)]
    key = private(IND).public_key()
    for gateway, first in ((MUNI, 0), (IND, 1)):
        replayed = ev.sign_batch(parts, gateway, first, private(IND))
        seen = ev.VerifiedBatches()
        root_of = root([ev.batch_leaf(p) for p in parts])
        statement = ev.batch_statement(gateway, first, len(parts), root_of)
        seen.verify(key, statement, ev.decode(replayed[0]).signature[-64:])  # a good statement
        for value in replayed:
            with pytest.raises(ev.BadAuditEvent):
                ev.verify(ev.decode(value), value, key, seen)  # …remembered, yet no help
        tampered = [replace(r, value=v) for r, v in zip(records, replayed, strict=True)]
        assert bad_at(verify(tampered)) == [0, 1, 2]


def test_a_batch_of_one_gateway_relabelled_as_another_gateways_is_a_bad_signature() -> None:
    """MUNI's real, signed events relabelled as IND's, in IND's topic."""
    records = batches(new_chain(MUNI), 2)
    relabelled = [
        replace(r, topic=audit(IND), key=IND.encode(),
                value=ev.encode(event_of(r).model_copy(update={"gateway": IND})))
        for r in records
    ]  # fmt: skip
    assert bad_at(verify(relabelled)) == [0, 1]


_ONE = batches(new_chain(), 3)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=600))
def test_any_signature_field_verifies_or_is_a_bad_audit_event(field: bytes) -> None:
    record = with_field(_ONE[0], field)
    try:
        ev.verify(event_of(record), record.value, private(IND).public_key())
    except ev.BadAuditEvent:
        return
    assert field == field_of(_ONE[0])


# --- chains of the previous release ------------------------------------------------------------


def v1_chain(party: str, n: int) -> list[Record]:
    """``n`` events and a checkpoint as the previous release wrote them: each signed alone,
    its chain hash and leaf over its whole encoding."""
    values: list[bytes] = []
    prev = ev.GENESIS_HASH
    for seq in range(n + 1):
        checkpoint = (
            AuditCheckpoint(tree_size=n, root_hash=root([leaf_hash(v) for v in values]))
            if seq == n else None
        )  # fmt: skip
        event = AuditEvent(
            event_id=uuid.uuid4(), gateway=party, seq=seq, prev_hash=prev, occurred_at=NOW,
            action=AuditAction.CHECKPOINT if checkpoint else AuditAction.DELIVERED,
            message_id=None if checkpoint else uuid.uuid4(), sender=None if checkpoint else MUNI,
            outcome=AuditOutcome.OK, checkpoint=checkpoint, signature=b"",
        )  # fmt: skip
        values.append(ev.encode(ev.sign_v1(event, private(party))))
        prev = hashlib.sha256(values[-1]).digest()
    out = [OutgoingRecord(audit(party), v, party.encode()) for v in values]
    return as_read(out)


def test_v1_events_still_verify_and_an_edit_of_one_is_caught() -> None:
    records = v1_chain(IND, 5)
    assert all(len(field_of(r)) == ev.V1_SIGNATURE_BYTES for r in records)
    report = verify(records)
    assert report.clean and report.chains[IND].checkpoints == 1
    edited = event_of(records[2]).model_copy(update={"outcome": AuditOutcome.FAILED})
    tampered = list(records)
    tampered[2] = replace(records[2], value=ev.encode(edited))
    assert bad_at(verify(tampered)) == [2]


async def _write(log: EmbeddedTransport, records: Sequence[Record | OutgoingRecord]) -> None:
    async with log.producer() as producer:
        for r in records:
            await producer.send(r.topic, r.value, key=r.key, headers=r.headers)


async def _mixed_network(folder: Path) -> tuple[list[Record], list[uuid.UUID]]:
    """IND's chain: 5 V1 events and a V1 checkpoint, recovered by a new gateway, which
    continues it with V2 batches (and a final checkpoint); MUNI's chain V2 only."""
    log = EmbeddedTransport(folder / "log.db")
    try:
        await log.ensure_topics([TopicSpec(audit(p), partitions=1) for p in PARTIES])
        await _write(log, v1_chain(IND, 5))
        chain = new_chain(IND)
        await chain.recover(log)
        assert chain.size == 6 and chain.uncovered == 0
        ids = []
        for size, checkpoint in ((4, False), (3, True)):
            specs = delivered(size)
            ids.append(specs[0].message_id)
            pending = chain.prepare(specs, checkpoint=checkpoint)
            await _write(log, pending.records)
            chain.commit(pending)
        again = new_chain(IND)
        await again.recover(log)  # a restart in the V2 part: the same head
        assert (again.size, again.uncovered) == (chain.size, 0) == (14, 0)
        muni = new_chain(MUNI)
        pending = muni.prepare(delivered(2), checkpoint=True)
        await _write(log, pending.records)
        return await read_audit(log, DIRECTORY, DEFAULT_PREFIX), [i for i in ids if i]
    finally:
        await log.close()


def test_a_v1_chain_continued_by_v2_batches_verifies_recovers_and_proves(tmp_path: Path) -> None:
    records, v2_ids = asyncio.run(_mixed_network(tmp_path))
    ind = [r for r in records if r.key == IND.encode()]
    assert [len(field_of(r)) == ev.V1_SIGNATURE_BYTES for r in ind] == [True] * 6 + [False] * 8
    first_v2 = event_of(ind[6])
    assert first_v2.prev_hash == hashlib.sha256(ind[5].value).digest()  # a V1 hash: whole bytes
    report = verify(records)
    assert report.clean, report.as_json()
    assert report.chains[IND].checkpoints == 2 and len(report.chains[IND].events) == 14
    public = [private(IND).public_key()]
    v1_id = event_of(ind[1]).message_id
    assert v1_id is not None
    for message_id, cover in ((v1_id, 5), (v2_ids[0], 13), (v2_ids[1], 13)):
        [proof] = prove(report, message_id)["proofs"]  # under the first checkpoint covering it
        assert proof["checkpoint"]["seq"] == cover
        check_proof(proof, public, message_id)
    # and the V1 event under the V2 checkpoint: its leaf is over its whole encoding still
    [proof] = prove(report, v1_id)["proofs"]
    cp_event, cp_data = report.chains[IND].events[13]
    leaves = report.chains[IND].leaves()
    assert leaves is not None and cp_event.checkpoint is not None
    proof["checkpoint"] = {"seq": 13, "tree_size": 13, "event": base64.b64encode(cp_data).decode(),
                           "root_hash": cp_event.checkpoint.root_hash.hex()}  # fmt: skip
    proof["path"] = [h.hex() for h in inclusion_proof(1, leaves[:13])]
    check_proof(proof, public, v1_id)


def lvvx(*args: str | Path) -> Result:
    return CliRunner().invoke(cli, [str(a) for a in args])


def test_lvvx_audit_verify_and_proofs_on_a_mixed_chain(tmp_path: Path) -> None:
    records, v2_ids = asyncio.run(_mixed_network(tmp_path))
    (tmp_path / "directory.bin").write_bytes(_directory_bytes())
    keys = tmp_path / "keys"
    keys.mkdir()
    (keys / "anchor.public.json").write_text(_anchor_public().model_dump_json())
    verified = lvvx("audit", "verify", "--data", tmp_path, "--json")
    assert verified.exit_code == 0, verified.output
    body = json.loads(verified.stdout)
    assert body["clean"] and body["chains"][IND] == {"events": 14, "checkpoints": 2, "ok": True}
    v1_id = event_of(next(r for r in records if r.key == IND.encode() and event_of(r).seq == 2))
    for message_id in (v1_id.message_id, v2_ids[0]):
        out = tmp_path / f"{message_id}.json"
        proved = lvvx("audit", "prove", str(message_id), "--data", tmp_path, "--out", out)
        assert proved.exit_code == 0, proved.output
        checked = lvvx("audit", "check-proof", out, "--directory", tmp_path / "directory.bin",
                       "--anchor", keys)  # fmt: skip
        assert checked.exit_code == 0, checked.output
        assert "valid" in checked.output
