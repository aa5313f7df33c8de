"""The audit stream end to end (DESIGN §2, Audit): real gateways on the embedded log write
their signed, hash-chained events with RFC 6962 checkpoints; DT&V's verifier finds the
stream clean, and finds every kind of tampering as its own finding; inclusion proofs check
with the gateway's key and fail when altered; the chain head survives a restart; a gateway
fails closed while the audit topic cannot be written; and the case monitor and the `lvvx
audit` / `lvvx cases` commands work on the stream of a whole demo network.

Tampering is done on the list of records handed to `verify_stream` (or on a copy written into
a fresh embedded log for the command line), never on the real log of a running network.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import copy
import hashlib
import itertools
import json
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from hypothesis import given, settings
from hypothesis import strategies as st

from broker.audit import CHECKPOINT_EVERY_EVENTS, read_audit
from broker.audit import _chain as chain_module
from broker.audit import _events as ev
from broker.audit._cases import case_views, summary
from broker.audit._prove import check_proof, prove
from broker.audit._verify import DEFAULT_GRACE, Finding, Report, verify_stream
from broker.caseflow import Step
from broker.crypto import AnchorKey, Directory, KeyStore, load_directory
from broker.errors import TransportUnavailable
from broker.gateway import Gateway, utc_now
from broker.gateway import _gateway as gateway_module
from broker.merkle import (
    ProofError,
    consistency_proof,
    root,
    verify_consistency,
)
from broker.models import AuditAction, AuditCheckpoint, AuditEvent, AuditOutcome, PartyRole
from broker.topics import DEFAULT_PREFIX, audit, inbox
from broker.transport import (
    Consumer,
    OutgoingRecord,
    Producer,
    Record,
    RecordMetadata,
    TopicPartition,
    TopicReader,
    TopicSpec,
    Transport,
)
from broker.transport.embedded import EmbeddedTransport
from cli.main import cli
from demo.examples import example
from demo.run import DemoResult, run_demo
from tests.crypto_net import NOW, A, Net
from tests.embedded_gateways import EmbeddedNetwork, sent_status
from tests.support import eventually

NET = Net()
IND = A[PartyRole.IND]
MUNI = A[PartyRole.MUNICIPALITY]
NGO = A[PartyRole.NGO]
OUTSIDER = "gemeente-nergens"  # a well-formed party id that is not in the directory
OUTSIDER_KEY = Ed25519PrivateKey.from_private_bytes(b"\x07" * 32)
PARTIES_TOPICS = None  # audit topics are per gateway: audit(party)


def is_audit(topic: str) -> bool:
    return ".audit." in topic


WITHIN_GRACE = NOW + DEFAULT_GRACE  # not yet overdue: "more than the grace" counts
LATER = NOW + DEFAULT_GRACE + timedelta(seconds=1)


def dossier() -> Any:
    return example("DossierDelivered")


def private(party: str) -> Ed25519PrivateKey:
    return NET.keys(party).signing_key


def public(party: str) -> Ed25519PublicKey:
    return private(party).public_key()


# --- gateways on one embedded log --------------------------------------------------------------


class Network(EmbeddedNetwork):
    """Gateways of the test network, and their audit topics read as DT&V reads them."""

    def __init__(self, folder: Path) -> None:
        super().__init__(folder, NET)

    async def stream(self) -> list[Record]:
        return await read_audit(self.log, NET.directory, DEFAULT_PREFIX)


@pytest.fixture
async def net(tmp_path: Path) -> AsyncIterator[Network]:
    network = Network(tmp_path)
    try:
        yield network
    finally:
        await network.aclose()


async def until_event(net: Network, party: str, action: AuditAction, message_id: uuid.UUID) -> None:
    """Until ``party``'s chain holds that event (the store knows some acts a moment before)."""

    async def recorded() -> bool:
        events = chain(await net.stream(), party)
        return any(e.action is action and e.message_id == message_id for e in events)

    await eventually(recorded, f"{action} of {message_id} by {party}")


def receipted(gw: Gateway, *message_ids: uuid.UUID) -> Callable[[], bool]:
    def check() -> bool:
        statuses = [gw.store.sent_status(m) for m in message_ids]
        return all(s is not None and s.status == "RECEIPTED" for s in statuses)

    return check


# --- reading and tampering with the stream -----------------------------------------------------


def event_of(record: Record) -> AuditEvent:
    return ev.decode(record.value)


def chain(records: Sequence[Record], party: str) -> list[AuditEvent]:
    return [e for e in map(event_of, records) if e.gateway == party]


def where(records: Sequence[Record], party: str, action: AuditAction,
          message_id: uuid.UUID | None = None, sender: str | None = None) -> int:  # fmt: skip
    """The position in ``records`` of the one event matching."""
    found = [
        i for i, r in enumerate(records)
        if (e := event_of(r)).gateway == party and e.action is action
        and (message_id is None or e.message_id == message_id) and (sender is None or e.sender == sender)
    ]  # fmt: skip
    assert len(found) == 1, f"{len(found)} {action} events of {party} for {message_id}"
    return found[0]


def last_of(records: Sequence[Record], party: str) -> int:
    return max(i for i, r in enumerate(records) if event_of(r).gateway == party)


def edited(record: Record, **changes: Any) -> Record:
    """The event with fields changed and its old signature kept."""
    return replace(record, value=ev.encode(event_of(record).model_copy(update=changes)))


def resigned(record: Record, key: Ed25519PrivateKey, **changes: Any) -> Record:
    """The event with fields changed and signed again with ``key``."""
    event = event_of(record).model_copy(update=changes)
    return replace(record, value=ev.encode(ev.sign(event, key)))


def without(records: Sequence[Record], *positions: int) -> list[Record]:
    return [r for i, r in enumerate(records) if i not in positions]


def inserted(records: Sequence[Record], position: int, record: Record) -> list[Record]:
    return [*records[:position], record, *records[position:]]


def flip(data: bytes, at: int = 0) -> bytes:
    return data[:at] + bytes([data[at] ^ 0x01]) + data[at + 1 :]


def verify(records: Sequence[Record], now: datetime = NOW) -> Report:
    return verify_stream(list(records), NET.directory, now=now)


def kinds(report: Report) -> set[Finding]:
    return {i.kind for i in report.issues}


def only(report: Report, kind: Finding) -> Any:
    (issue,) = [i for i in report.issues if i.kind is kind]
    return issue


# --- one stream made by real gateways, shared by the tests that only read it ------------------


@dataclass(frozen=True)
class Stream:
    """The audit topic after IND sent m1 → MUNI+NGO, (checkpoint), m2 → MUNI, m3 → NGO,
    m4 → MUNI+NGO, every message was delivered and receipted, and all gateways stopped."""

    records: tuple[Record, ...]
    m1: uuid.UUID
    m2: uuid.UUID
    m3: uuid.UUID
    m4: uuid.UUID
    envelopes: dict[str, list[bytes]]  # recipient → the envelopes in its inbox topic


async def _make_stream(folder: Path) -> Stream:
    net = Network(folder)
    try:
        ind = await net.gateway(IND, run=False)
        muni = await net.gateway(MUNI, run=False)
        ngo = await net.gateway(NGO, run=False)
        # all sends first, so IND's chain starts SENT, CHECKPOINT, SENT, SENT, SENT
        m1 = await ind.send(dossier(), [MUNI, NGO])
        await ind.checkpoint_if_due(now=True)
        m2 = await ind.send(dossier(), [MUNI])
        m3 = await ind.send(dossier(), [NGO])
        m4 = await ind.send(dossier(), [MUNI, NGO])
        for gw in (ind, muni, ngo):
            net.run(gw)
        await eventually(receipted(ind, m1, m2, m3, m4), "every receipt")
        await net.halt_all()
        envelopes = {p: [r.value for r in await net.log.read_topic(inbox(p))] for p in (MUNI, NGO)}
        return Stream(tuple(await net.stream()), m1, m2, m3, m4, envelopes)
    finally:
        await net.aclose()


@pytest.fixture(scope="module")
def stream(tmp_path_factory: pytest.TempPathFactory) -> Stream:
    return asyncio.run(_make_stream(tmp_path_factory.mktemp("stream")))


# --- a clean stream ----------------------------------------------------------------------------


def test_a_stream_written_by_real_gateways_verifies_clean(stream: Stream) -> None:
    records = list(stream.records)
    report = verify(records)
    assert report.clean, report.as_json()
    assert sorted(report.chains) == sorted([IND, MUNI, NGO])
    assert all(c.ok for c in report.chains.values())
    assert (report.sent, report.accounted, report.pending) == (4, 4, 0)
    # what the chains hold: every act of every gateway, once
    actions = {p: [e.action for e in chain(records, p)] for p in (IND, MUNI, NGO)}
    S, D, RS, RR, CP = (AuditAction.SENT, AuditAction.DELIVERED, AuditAction.RECEIPT_SENT,
                        AuditAction.RECEIPT_RECEIVED, AuditAction.CHECKPOINT)  # fmt: skip
    assert actions[IND] == [S, CP, S, S, S, *[RR] * 6, CP]
    assert actions[MUNI] == actions[NGO] == [D, RS, D, RS, D, RS, CP]
    assert report.chains[IND].checkpoints == 2
    assert report.chains[MUNI].checkpoints == report.chains[NGO].checkpoints == 1
    # and the verifier's verdict, checked again here from the events themselves
    for party in (IND, MUNI, NGO):
        mine = [r for r in records if r.key == party.encode()]
        events = [event_of(r) for r in mine]
        assert [e.seq for e in events] == list(range(len(events)))
        assert len({r.partition for r in mine}) == 1  # one gateway's chain: one partition
        hashes = [ev.GENESIS_HASH] + [ev.event_hash(event_of(r), r.value) for r in mine]
        assert [e.prev_hash for e in events] == hashes[:-1]
        for e, r in zip(events, mine, strict=True):
            ev.verify(e, r.value, public(party))
        leaves = [ev.chain_leaf(event_of(r), r.value) for r in mine]
        heads = [(e.seq, e.checkpoint) for e in events if e.action is AuditAction.CHECKPOINT]
        assert heads[-1][0] == len(events) - 1  # the stop covered every event before it
        for seq, head in heads:
            assert head is not None and head.tree_size == seq
            assert head.root_hash == root(leaves[:seq])
        for (s1, h1), (s2, h2) in itertools.pairwise(heads):
            assert h1 is not None and h2 is not None
            verify_consistency(
                s1, s2, h1.root_hash, h2.root_hash, consistency_proof(s1, leaves[:s2])
            )


def test_each_sent_matches_a_delivered_with_the_same_envelope_and_no_personal_data(
    stream: Stream,
) -> None:
    records = list(stream.records)
    expected = {
        stream.m1: (MUNI, NGO), stream.m2: (MUNI,), stream.m3: (NGO,), stream.m4: (MUNI, NGO)
    }  # fmt: skip
    message = dossier()
    for message_id, recipients in expected.items():
        sent = event_of(records[where(records, IND, AuditAction.SENT, message_id)])
        assert (sent.sender, sent.recipients, sent.case_id) == (IND, recipients, message.case_id)
        assert sent.message_type == message.avro_name and sent.outcome is AuditOutcome.OK
        for party in recipients:
            delivered = event_of(records[where(records, party, AuditAction.DELIVERED, message_id)])
            assert delivered.envelope_sha256 == sent.envelope_sha256
            assert sent.envelope_sha256 in {
                hashlib.sha256(e).digest() for e in stream.envelopes[party]
            }
            answered = event_of(
                records[where(records, party, AuditAction.RECEIPT_SENT, message_id)]
            )
            assert (answered.sender, answered.recipients) == (party, (IND,))
            got = event_of(
                records[where(records, IND, AuditAction.RECEIPT_RECEIVED, message_id, party)]
            )
            assert got.outcome is AuditOutcome.OK
    # metadata only: nothing of the person travels into the audit stream
    person = message.person
    personal = [person.v_number, person.family_name, person.birth_place, message.medical_notes,
                *person.given_names.split(), *(d.number for d in person.documents)]  # fmt: skip
    for record in records:
        for value in personal:
            assert value.encode() not in record.value, value


# --- tampering: each kind found as its own finding ---------------------------------------------


def test_a_deleted_event_is_a_gap(stream: Stream) -> None:
    records = list(stream.records)
    gone = where(records, IND, AuditAction.SENT, stream.m3)
    report = verify(without(records, gone))
    assert kinds(report) == {Finding.GAP}
    issue = only(report, Finding.GAP)
    seq = event_of(records[gone]).seq
    assert (issue.gateway, issue.seq) == (IND, seq + 1) and str(seq) in issue.detail
    assert not report.chains[IND].ok and report.chains[MUNI].ok and report.chains[NGO].ok


def _swapped(stream: Stream) -> tuple[list[Record], int]:
    records = list(stream.records)
    a = where(records, IND, AuditAction.SENT, stream.m3)
    b = where(records, IND, AuditAction.SENT, stream.m4)
    assert b == a + 1  # adjacent in the topic, seq 3 then 4
    records[a], records[b] = records[b], records[a]
    return records, event_of(records[b]).seq


def test_two_events_of_one_chain_in_swapped_order_are_a_reorder(stream: Stream) -> None:
    records, seq = _swapped(stream)
    report = verify(records)
    assert Finding.REORDER in kinds(report)
    issue = only(report, Finding.REORDER)
    assert (issue.gateway, issue.seq) == (IND, seq)
    assert kinds(report) <= {Finding.REORDER, Finding.GAP}
    assert not report.chains[IND].ok and report.chains[MUNI].ok


def test_a_reorder_with_nothing_missing_is_not_also_a_gap(stream: Stream) -> None:
    records, _ = _swapped(stream)
    assert kinds(verify(records)) == {Finding.REORDER}


EDITS: dict[str, tuple[str, AuditAction, str, dict[str, Any]]] = {
    # name: (gateway, action, which message, changes) — the old signature is kept
    "sent to fewer recipients": (IND, AuditAction.SENT, "m4", {"recipients": (MUNI,)}),
    "delivered another message": (MUNI, AuditAction.DELIVERED, "m2", {"message_id": uuid.UUID(int=7)}),
    "receipt turned refused": (IND, AuditAction.RECEIPT_RECEIVED, "m3", {"outcome": AuditOutcome.FAILED}),
    "backdated": (NGO, AuditAction.RECEIPT_SENT, "m1", {"occurred_at": NOW - timedelta(days=1)}),
    "checkpoint re-timed": (MUNI, AuditAction.CHECKPOINT, "", {"occurred_at": NOW + timedelta(hours=1)}),
}  # fmt: skip


@pytest.mark.parametrize("name", sorted(EDITS))
def test_an_edited_event_with_its_old_signature_is_a_bad_signature(
    stream: Stream, name: str
) -> None:
    party, action, which, changes = EDITS[name]
    records = list(stream.records)
    at = where(records, party, action, getattr(stream, which) if which else None)
    records[at] = edited(records[at], **changes)
    report = verify(records)
    issue = only(report, Finding.BAD_SIGNATURE)
    seq = event_of(stream.records[at]).seq
    assert (issue.gateway, issue.seq) == (party, seq)
    # the edited event is not the gateway's: its place in the chain is empty, which the
    # events after it show as a gap (the last event of a chain has none after it)
    is_last = at == last_of(records, party)
    assert kinds(report) == (
        {Finding.BAD_SIGNATURE} if is_last else {Finding.BAD_SIGNATURE, Finding.GAP}
    )
    assert not report.chains[party].ok


def _forged_send(stream: Stream, seq: int, prev: bytes, key: Ed25519PrivateKey) -> Record:
    """A SENT in IND's name of a message IND never sent, at ``seq``, signed with ``key``."""
    template = stream.records[where(list(stream.records), IND, AuditAction.SENT, stream.m2)]
    return resigned(template, key, seq=seq, prev_hash=prev, event_id=uuid.uuid4(),
                    message_id=uuid.UUID(int=99), recipients=(NGO,))  # fmt: skip


def test_a_forged_event_signed_with_another_partys_key_is_a_bad_signature(stream: Stream) -> None:
    records = list(stream.records)
    end = last_of(records, IND)
    head = records[end]
    # at the end of IND's chain, linked to its head: everything right but the signature
    forged = _forged_send(
        stream, event_of(head).seq + 1, ev.event_hash(event_of(head), head.value), private(MUNI)
    )
    report = verify(inserted(records, end + 1, forged))
    assert kinds(report) == {Finding.BAD_SIGNATURE}
    assert only(report, Finding.BAD_SIGNATURE).seq == event_of(head).seq + 1
    assert report.sent == 4  # the forged send is not counted, so it cannot be "lost"


@pytest.mark.parametrize("first", [False, True], ids=["after the original", "before the original"])
def test_a_forged_event_reusing_a_sequence_number(stream: Stream, first: bool) -> None:
    """Signed with another party's key it is a BAD_SIGNATURE and not a FORK: a record the
    gateway did not sign cannot make its chain fork (else anyone able to write to the topic
    could frame a gateway). Signed with the gateway's own key it is a FORK."""
    records = list(stream.records)
    at = where(records, IND, AuditAction.SENT, stream.m3)
    original = event_of(records[at])
    where_to = at if first else at + 1
    by_muni = _forged_send(stream, original.seq, original.prev_hash, private(MUNI))
    report = verify(inserted(records, where_to, by_muni))
    assert kinds(report) == {Finding.BAD_SIGNATURE}
    assert only(report, Finding.BAD_SIGNATURE).seq == original.seq

    by_ind = _forged_send(stream, original.seq, original.prev_hash, private(IND))
    report = verify(inserted(records, where_to, by_ind))
    assert Finding.FORK in kinds(report)
    fork = only(report, Finding.FORK)
    assert (fork.gateway, fork.seq) == (IND, original.seq)
    if not first:  # the first version seen stands; the copy after it is only the fork
        assert kinds(report) == {Finding.FORK}
    else:  # the forged version came first: the genuine events after it do not link to it
        assert kinds(report) <= {Finding.FORK, Finding.BROKEN_LINK, Finding.BAD_CHECKPOINT}


def test_an_identical_copy_of_an_event_is_harmless(stream: Stream) -> None:
    records = list(stream.records)
    at = where(records, MUNI, AuditAction.DELIVERED, stream.m2)
    assert verify(inserted(records, at + 1, records[at])).clean  # a retried write


def test_a_dropped_delivered_event_is_a_gap_and_the_message_lost_after_the_grace(
    stream: Stream,
) -> None:
    records = without(
        list(stream.records), where(list(stream.records), MUNI, AuditAction.DELIVERED, stream.m4)
    )
    within = verify(records, now=WITHIN_GRACE)
    assert kinds(within) == {Finding.GAP}
    assert only(within, Finding.GAP).gateway == MUNI
    assert (within.sent, within.accounted, within.pending) == (4, 3, 1)

    after = verify(records, now=LATER)
    assert kinds(after) == {Finding.GAP, Finding.LOST}
    lost = only(after, Finding.LOST)
    assert (lost.gateway, lost.message_id) == (IND, stream.m4)  # found on the sender's SENT
    assert MUNI in lost.detail and NGO not in lost.detail  # NGO did deliver it
    assert after.chains[IND].ok  # LOST does not break the sender's chain
    assert not after.chains[MUNI].ok


def test_a_dropped_receipt_received_event_is_a_receipt_lost_after_the_grace(stream: Stream) -> None:
    records = list(stream.records)
    records = without(records, where(records, IND, AuditAction.RECEIPT_RECEIVED, stream.m3, NGO))
    assert kinds(verify(records, now=WITHIN_GRACE)) == {Finding.GAP}
    after = verify(records, now=LATER)
    assert kinds(after) == {Finding.GAP, Finding.RECEIPT_LOST}
    issue = only(after, Finding.RECEIPT_LOST)
    assert (issue.gateway, issue.message_id) == (NGO, stream.m3) and IND in issue.detail


def test_an_event_of_a_party_not_in_the_directory_is_an_unknown_gateway(stream: Stream) -> None:
    records = list(stream.records)
    template = records[where(records, IND, AuditAction.SENT, stream.m1)]
    stranger = resigned(template, OUTSIDER_KEY, gateway=OUTSIDER, sender=OUTSIDER, seq=0,
                        prev_hash=ev.GENESIS_HASH)  # fmt: skip
    report = verify([*records, replace(stranger, key=OUTSIDER.encode())])
    assert kinds(report) == {Finding.UNKNOWN_GATEWAY}
    assert only(report, Finding.UNKNOWN_GATEWAY).gateway == OUTSIDER
    assert OUTSIDER not in report.chains
    # a genuine event of a known party, keyed as another party, is refused the same way
    report = verify([*records, replace(template, key=MUNI.encode())])
    assert kinds(report) == {Finding.UNKNOWN_GATEWAY}


def test_garbage_on_the_topic_is_a_bad_event(stream: Stream) -> None:
    records = list(stream.records)
    some = records[where(records, NGO, AuditAction.DELIVERED, stream.m3)]
    for junk in (b"", b"garbage", b"\xff" * 64, some.value[:-1], some.value + b"\x00"):
        report = verify(inserted(records, 3, replace(some, value=junk)))
        assert kinds(report) == {Finding.BAD_EVENT}, junk
        assert report.chains[NGO].ok  # the chain itself lost nothing


def test_a_checkpoint_with_another_root_resigned_by_the_gateway_is_a_bad_checkpoint(
    stream: Stream,
) -> None:
    records = list(stream.records)
    end = last_of(records, IND)  # IND's final checkpoint
    head = event_of(records[end]).checkpoint
    assert head is not None
    for changed in (
        AuditCheckpoint(tree_size=head.tree_size, root_hash=flip(head.root_hash)),
        AuditCheckpoint(tree_size=head.tree_size - 1, root_hash=head.root_hash),
        AuditCheckpoint(tree_size=head.tree_size - 1, root_hash=root(
            [ev.chain_leaf(event_of(r), r.value) for r in records if r.key == IND.encode()][: head.tree_size - 1])),
    ):  # fmt: skip
        tampered = list(records)
        tampered[end] = resigned(records[end], private(IND), checkpoint=changed)
        report = verify(tampered)
        assert kinds(report) == {Finding.BAD_CHECKPOINT}, changed
        assert only(report, Finding.BAD_CHECKPOINT).seq == event_of(records[end]).seq
    # the first checkpoint changed the same way: the event after it no longer links to it
    first = min(i for i, r in enumerate(records)
                if event_of(r).gateway == IND and event_of(r).action is AuditAction.CHECKPOINT)  # fmt: skip
    assert first < end
    tampered = list(records)
    first_head = event_of(records[first]).checkpoint
    assert first_head is not None
    tampered[first] = resigned(records[first], private(IND), checkpoint=AuditCheckpoint(
        tree_size=first_head.tree_size, root_hash=flip(first_head.root_hash)))  # fmt: skip
    assert kinds(verify(tampered)) == {Finding.BAD_CHECKPOINT, Finding.BROKEN_LINK}


async def test_a_message_never_handled_is_pending_within_the_grace_and_lost_after(
    net: Network,
) -> None:
    ind = await net.gateway(IND, run=True)
    muni = await net.gateway(MUNI, run=False)  # its inbox exists; nobody reads it yet
    message_id = await ind.send(dossier(), [MUNI])
    await ind.checkpoint_if_due(now=True)
    records = await net.stream()
    within = verify(records, now=WITHIN_GRACE)
    assert within.clean and (within.sent, within.accounted, within.pending) == (1, 0, 1)
    after = verify(records, now=LATER)
    assert kinds(after) == {Finding.LOST}
    lost = only(after, Finding.LOST)
    assert (lost.gateway, lost.message_id) == (IND, message_id) and MUNI in lost.detail
    # the recipient comes up and delivers it: accounted for, however late
    net.run(muni)
    await eventually(receipted(ind, message_id), "the late delivery")
    await net.halt_all()
    late = verify(await net.stream(), now=LATER)
    assert late.clean and (late.sent, late.accounted, late.pending) == (1, 1, 0)


# --- every kind of damage is found, never an exception -------------------------------------------


@settings(max_examples=60, deadline=None, derandomize=True)
@given(data=st.data())
def test_property_any_changed_byte_of_any_event_is_found(
    stream: Stream, data: st.DataObject
) -> None:
    records = list(stream.records)
    which = data.draw(st.integers(0, len(records) - 1), label="record")
    value = records[which].value
    at = data.draw(st.integers(0, len(value) - 1), label="byte")
    mask = data.draw(st.integers(1, 255), label="bits")
    changed = value[:at] + bytes([value[at] ^ mask]) + value[at + 1 :]
    records[which] = replace(records[which], value=changed)
    report = verify(records, now=LATER)
    assert not report.clean


@settings(max_examples=60, deadline=None, derandomize=True)
@given(
    junk=st.binary(max_size=300), at=st.integers(0, 40), key=st.sampled_from([IND, OUTSIDER, ""])
)
def test_property_arbitrary_bytes_on_the_topic_are_a_finding_never_an_exception(
    stream: Stream, junk: bytes, at: int, key: str
) -> None:
    records = list(stream.records)
    bogus = replace(records[0], value=junk, key=key.encode() or None)
    report = verify(inserted(records, at, bogus), now=LATER)
    assert kinds(report) == {Finding.BAD_EVENT}


# --- inclusion proofs ---------------------------------------------------------------------------


def _proofs(stream: Stream, message_id: uuid.UUID) -> dict[str, Any]:
    document = prove(verify(stream.records), message_id)
    travelled: dict[str, Any] = json.loads(json.dumps(document))  # as it travels: JSON
    return travelled


def test_every_event_about_a_message_has_a_proof_that_checks_with_its_gateways_key(
    stream: Stream,
) -> None:
    document = _proofs(stream, stream.m1)
    assert document["message_id"] == str(stream.m1) and document["not_yet_covered"] == []
    got = sorted((p["gateway"], p["action"]) for p in document["proofs"])
    assert got == sorted([
        (IND, "SENT"), (IND, "RECEIPT_RECEIVED"), (IND, "RECEIPT_RECEIVED"),
        (MUNI, "DELIVERED"), (MUNI, "RECEIPT_SENT"), (NGO, "DELIVERED"), (NGO, "RECEIPT_SENT"),
    ])  # fmt: skip
    for proof in document["proofs"]:
        check_proof(proof, [public(proof["gateway"])])
        check_proof(proof, [public(MUNI), public(proof["gateway"])])  # any of the party's keys
    sent = next(p for p in document["proofs"] if p["action"] == "SENT")
    assert (sent["seq"], sent["checkpoint"]["seq"], sent["path"]) == (0, 1, [])  # the first head
    for message_id in (stream.m2, stream.m3, stream.m4):
        for proof in _proofs(stream, message_id)["proofs"]:
            check_proof(proof, [public(proof["gateway"])])


def test_events_no_checkpoint_covers_yet_are_listed_as_waiting(stream: Stream) -> None:
    records = list(stream.records)
    uncovered = without(records, last_of(records, MUNI))  # MUNI's final checkpoint never came
    document = prove(verify(uncovered), stream.m2)
    assert {(p["gateway"], p["action"]) for p in document["proofs"]} == {
        (IND, "SENT"),
        (IND, "RECEIPT_RECEIVED"),
    }
    assert {(w["gateway"], w["action"]) for w in document["not_yet_covered"]} == {
        (MUNI, "DELIVERED"), (MUNI, "RECEIPT_SENT")
    }  # fmt: skip


def _muni_delivered_proof(stream: Stream) -> dict[str, Any]:
    """MUNI's DELIVERED of m2: seq 2 under a checkpoint of 6 events, a path of 3 hashes."""
    proof: dict[str, Any] = next(
        p
        for p in _proofs(stream, stream.m2)["proofs"]
        if p["gateway"] == MUNI and p["action"] == "DELIVERED"
    )
    assert (proof["seq"], proof["checkpoint"]["tree_size"], len(proof["path"])) == (2, 6, 3)
    return proof


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _event(proof: dict[str, Any], part: str = "event") -> AuditEvent:
    encoded = proof["checkpoint"]["event"] if part == "checkpoint" else proof["event"]
    return ev.decode(base64.b64decode(encoded))


def _set_checkpoint(
    proof: dict[str, Any], event: AuditEvent, key: Ed25519PrivateKey | None
) -> None:
    signed = ev.sign(event, key) if key else event
    proof["checkpoint"]["event"] = _b64(ev.encode(signed))


def _other_event(stream: Stream, seq: int) -> bytes:
    return next(
        r.value for r in stream.records if r.key == MUNI.encode() and event_of(r).seq == seq
    )


def _alter_event_byte(p: dict[str, Any], s: Stream) -> None:
    p["event"] = _b64(flip(base64.b64decode(p["event"]), 40))


def _alter_event_field(p: dict[str, Any], s: Stream) -> None:
    p["event"] = _b64(ev.encode(_event(p).model_copy(update={"message_id": s.m3})))


def _alter_event_to_another(p: dict[str, Any], s: Stream) -> None:
    p["event"] = _b64(_other_event(s, 3))  # genuine and signed, but not what the labels say


def _alter_event_and_seq(p: dict[str, Any], s: Stream) -> None:
    p["event"], p["seq"] = _b64(_other_event(s, 3)), 3  # genuine, labelled, but not on the path


def _alter_path_hash(p: dict[str, Any], s: Stream) -> None:
    p["path"][1] = flip(bytes.fromhex(p["path"][1])).hex()


def _alter_path_order(p: dict[str, Any], s: Stream) -> None:
    p["path"][0], p["path"][1] = p["path"][1], p["path"][0]


def _alter_path_short(p: dict[str, Any], s: Stream) -> None:
    p["path"].pop()


def _alter_path_long(p: dict[str, Any], s: Stream) -> None:
    p["path"].append(p["path"][0])


def _alter_seq(p: dict[str, Any], s: Stream) -> None:
    p["seq"] = 3


def _alter_gateway(p: dict[str, Any], s: Stream) -> None:
    p["gateway"] = NGO


def _alter_checkpoint_root(p: dict[str, Any], s: Stream) -> None:
    cp = _event(p, "checkpoint")
    assert cp.checkpoint is not None
    changed = cp.checkpoint.model_copy(update={"root_hash": flip(cp.checkpoint.root_hash)})
    _set_checkpoint(p, cp.model_copy(update={"checkpoint": changed}), None)  # old signature


def _alter_checkpoint_root_resigned(p: dict[str, Any], s: Stream) -> None:
    cp = _event(p, "checkpoint")
    assert cp.checkpoint is not None
    changed = cp.checkpoint.model_copy(update={"root_hash": flip(cp.checkpoint.root_hash)})
    _set_checkpoint(p, cp.model_copy(update={"checkpoint": changed}), private(MUNI))


def _alter_checkpoint_other_signer(p: dict[str, Any], s: Stream) -> None:
    _set_checkpoint(p, _event(p, "checkpoint"), private(IND))


def _alter_checkpoint_not_covering(p: dict[str, Any], s: Stream) -> None:
    cp = _event(p, "checkpoint")
    assert cp.checkpoint is not None
    small = cp.checkpoint.model_copy(update={"tree_size": 2})
    _set_checkpoint(p, cp.model_copy(update={"checkpoint": small, "seq": 2}), private(MUNI))


def _alter_checkpoint_to_an_event(p: dict[str, Any], s: Stream) -> None:
    p["checkpoint"]["event"] = _b64(_other_event(s, 5))  # signed, but no tree head


def _alter_not_a_proof(p: dict[str, Any], s: Stream) -> None:
    del p["path"]


def _alter_bad_base64(p: dict[str, Any], s: Stream) -> None:
    p["event"] = "not base64!"


def _alter_bad_hex(p: dict[str, Any], s: Stream) -> None:
    p["path"][0] = "zz"


ALTERATIONS = {f.__name__.removeprefix("_alter_"): f for f in (
    _alter_event_byte, _alter_event_field, _alter_event_to_another, _alter_event_and_seq,
    _alter_path_hash, _alter_path_order, _alter_path_short, _alter_path_long, _alter_seq,
    _alter_gateway, _alter_checkpoint_root, _alter_checkpoint_root_resigned,
    _alter_checkpoint_other_signer, _alter_checkpoint_not_covering, _alter_checkpoint_to_an_event,
    _alter_not_a_proof, _alter_bad_base64, _alter_bad_hex,
)}  # fmt: skip


@pytest.mark.parametrize("alteration", sorted(ALTERATIONS))
def test_an_altered_proof_is_refused(stream: Stream, alteration: str) -> None:
    proof = _muni_delivered_proof(stream)
    check_proof(proof, [public(MUNI)])
    altered = copy.deepcopy(proof)
    ALTERATIONS[alteration](altered, stream)
    assert altered != proof
    with pytest.raises(ProofError):
        check_proof(altered, [public(MUNI)])


def test_a_proof_checked_with_another_partys_key_is_refused(stream: Stream) -> None:
    proof = _muni_delivered_proof(stream)
    for others in ([public(IND)], [public(NGO), public(IND)], []):
        with pytest.raises(ProofError):
            check_proof(proof, others)


@pytest.mark.parametrize("label", ["root_hash", "tree_size", "seq"])
def test_an_altered_checkpoint_label_is_refused(stream: Stream, label: str) -> None:
    proof = _muni_delivered_proof(stream)
    cp = proof["checkpoint"]
    cp[label] = flip(bytes.fromhex(cp[label])).hex() if label == "root_hash" else cp[label] + 1
    with pytest.raises(ProofError):
        check_proof(proof, [public(MUNI)])


# --- the chain head across a restart -------------------------------------------------------------


@pytest.mark.parametrize("graceful", [True, False], ids=["stopped", "killed"])
async def test_the_chain_continues_after_a_restart(net: Network, graceful: bool) -> None:
    ind = await net.gateway(IND, run=True)
    muni = await net.gateway(MUNI, run=True)
    first = await ind.send(dossier(), [MUNI])
    await until_event(net, IND, AuditAction.RECEIPT_RECEIVED, first)
    if graceful:
        await net.shut(ind)  # stop: a final checkpoint, then exit
    else:  # the process dies: no checkpoint on the way out
        task = net.tasks.pop(id(ind))
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await net.shut(ind)
    before = [r for r in await net.stream() if r.key == IND.encode()]
    head = event_of(before[-1])
    assert (head.action is AuditAction.CHECKPOINT) is graceful

    again = await net.gateway(IND, run=False)  # a new Gateway on the same log and state file
    assert again.audit.size == len(before) == head.seq + 1
    second = await again.send(dossier(), [MUNI])
    after = [r for r in await net.stream() if r.key == IND.encode()]
    sent = event_of(after[len(before)])
    assert (sent.action, sent.message_id) == (AuditAction.SENT, second)
    assert sent.seq == head.seq + 1 and sent.prev_hash == ev.event_hash(
        event_of(before[-1]), before[-1].value
    )
    net.run(again)
    await eventually(receipted(again, second), "the second receipt")
    await net.halt_all()
    report = verify(await net.stream())
    assert report.clean, report.as_json()
    assert (report.sent, report.accounted) == (2, 2)
    assert muni.store.counts()["delivered"] == 2


async def _restart_after(
    net: Network, bogus: Callable[[Record], bytes]
) -> tuple[Gateway, list[Record]]:
    """IND sends once and stops; ``bogus(head record)`` is written into the audit topic,
    keyed as IND; IND starts again and sends once more."""
    ind = await net.gateway(IND, run=False)
    await net.gateway(MUNI, run=False)
    await ind.send(dossier(), [MUNI])
    await net.shut(ind)
    head = [r for r in await net.stream() if r.key == IND.encode()][-1]
    async with net.log.producer() as producer:
        await producer.send(audit(IND), bogus(head), key=IND.encode())
    again = await net.gateway(IND, run=False)
    await again.send(dossier(), [MUNI])
    return again, await net.stream()


async def test_a_forged_event_on_the_topic_does_not_become_the_head_after_a_restart(
    net: Network,
) -> None:
    def forged(head: Record) -> bytes:
        event = event_of(head).model_copy(
            update={
                "seq": event_of(head).seq + 1,
                "prev_hash": ev.event_hash(event_of(head), head.value),
            }
        )
        return ev.encode(ev.sign(event, private(MUNI)))

    _, records = await _restart_after(net, forged)
    assert kinds(verify(records)) == {Finding.BAD_SIGNATURE}  # the forgery, and nothing else


async def test_garbage_on_the_topic_does_not_stop_a_gateway_from_restarting(net: Network) -> None:
    _, records = await _restart_after(net, lambda head: b"garbage")
    assert kinds(verify(records)) == {Finding.BAD_EVENT}


async def test_a_quiet_gateways_events_get_a_checkpoint_after_checkpoint_every_s(
    net: Network, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(chain_module, "CHECKPOINT_EVERY_S", 0.05)
    ind = await net.gateway(IND, run=True)
    await net.gateway(MUNI, run=False)  # its inbox exists, but nobody answers
    message_id = await ind.send(dossier(), [MUNI])
    await eventually(lambda: ind.audit.uncovered == 0, "a checkpoint of the quiet gateway")
    assert not net.tasks[id(ind)].done()  # made by the running loop, not on a stop
    events = chain(await net.stream(), IND)
    assert [(e.action, e.message_id) for e in events] == [
        (AuditAction.SENT, message_id), (AuditAction.CHECKPOINT, None)
    ]  # fmt: skip
    assert events[1].checkpoint is not None and events[1].checkpoint.tree_size == 1


# --- fail closed --------------------------------------------------------------------------------


class AuditGate:
    """While closed, every write that touches the audit topic fails as if the log were away."""

    def __init__(self) -> None:
        self.closed = False
        self.refused = 0

    def check(self, topics: set[str]) -> None:
        if self.closed and any(is_audit(t) for t in topics):
            self.refused += 1
            raise TransportUnavailable("the audit topic cannot be written")


class GatedProducer(Producer):
    def __init__(self, inner: Producer, gate: AuditGate) -> None:
        self.inner, self.gate = inner, gate

    async def start(self) -> None:
        await self.inner.start()

    async def close(self) -> None:
        await self.inner.close()

    async def send(self, topic: str, value: bytes, *, key: bytes | None = None,
                   headers: tuple[tuple[str, bytes], ...] = ()) -> RecordMetadata:  # fmt: skip
        self.gate.check({topic})
        return await self.inner.send(topic, value, key=key, headers=headers)

    async def send_atomic(self, records: Sequence[OutgoingRecord]) -> list[RecordMetadata]:
        self.gate.check({r.topic for r in records})
        return await self.inner.send_atomic(records)


class GatedTransport(Transport):
    """The embedded log, with producers whose audit writes ``gate`` can refuse."""

    name = "gated"

    def __init__(self, inner: Transport, gate: AuditGate) -> None:
        self.inner, self.gate = inner, gate

    async def ensure_topics(self, specs: Sequence[TopicSpec]) -> None:
        await self.inner.ensure_topics(specs)

    def producer(self, *, transactional_id: str | None = None) -> Producer:
        return GatedProducer(self.inner.producer(transactional_id=transactional_id), self.gate)

    def consumer(self, group_id: str, topics: Sequence[str]) -> Consumer:
        return self.inner.consumer(group_id, topics)

    def reader(self, topic: str) -> TopicReader:
        return self.inner.reader(topic)

    async def ping(self) -> None:
        await self.inner.ping()

    async def end_offsets(self, topics: Sequence[str]) -> dict[TopicPartition, int]:
        return await self.inner.end_offsets(topics)

    async def committed(self, group_id: str, topics: Sequence[str]) -> dict[TopicPartition, int]:
        return await self.inner.committed(group_id, topics)

    async def read_topic(self, topic: str) -> list[Record]:
        return await self.inner.read_topic(topic)

    async def close(self) -> None:
        """The log is the network's to close."""


async def test_nothing_is_sent_or_delivered_while_the_audit_topic_cannot_be_written(
    net: Network, fast_retries: None
) -> None:
    ind_gate, muni_gate = AuditGate(), AuditGate()
    ind = await net.gateway(IND, transport=GatedTransport(net.log, ind_gate), run=True)
    muni = await net.gateway(MUNI, transport=GatedTransport(net.log, muni_gate), run=True)

    # sending: the envelope and its SENT event go together or not at all
    ind_gate.closed = True
    with pytest.raises(TransportUnavailable):
        await ind.send(dossier(), [MUNI])
    assert not ind.audit_writable
    assert await net.log.read_topic(inbox(MUNI)) == []
    assert await net.stream() == []
    assert ind.store.counts()["sent"] == 0 and ind.audit.size == 0
    ind_gate.closed = False

    # receiving: opened and stored, but invisible and unanswered until DELIVERED is written
    muni_gate.closed = True
    message_id = await ind.send(dossier(), [MUNI])
    assert ind.audit_writable
    await eventually(
        lambda: muni_gate.refused >= 3, "the recipient to try (and retry) its follow-up"
    )
    assert not muni.audit_writable
    assert muni.store.inbox(limit=10, include_acked=True) == []
    assert await net.log.read_topic(inbox(IND)) == []  # no receipt went out
    assert chain(await net.stream(), MUNI) == []
    assert sent_status(ind, message_id) == "SENT"

    # the audit topic is writable again: the running loop delivers it, exactly once
    muni_gate.closed = False
    await eventually(lambda: len(muni.store.inbox(limit=10)) == 1, "the delivery")
    assert muni.audit_writable
    await eventually(receipted(ind, message_id), "the receipt")
    await net.halt_all()
    (item,) = muni.store.inbox(limit=10, include_acked=True)
    assert item.message_id == message_id
    assert len(await net.log.read_topic(inbox(IND))) == 1  # one receipt
    delivered = [e for e in chain(await net.stream(), MUNI) if e.action is AuditAction.DELIVERED]
    assert [e.message_id for e in delivered] == [message_id]
    report = verify(await net.stream(), now=LATER)
    assert report.clean, report.as_json()
    assert (report.sent, report.accounted, report.pending) == (1, 1, 0)


# --- a whole demo network: the case monitor and the command line ---------------------------------


@dataclass(frozen=True)
class DemoRun:
    folder: Path
    result: DemoResult
    records: tuple[Record, ...]
    directory: Directory


async def _run_demo(folder: Path) -> DemoRun:
    log = EmbeddedTransport(folder / "log.db")
    try:
        result = await run_demo(log, folder, cases=6)
        anchor = AnchorKey.from_record(KeyStore(folder / "keys").anchor_public())
        directory = load_directory(
            (folder / "directory.bin").read_bytes(), anchor=anchor, now=utc_now()
        )
        records = await read_audit(log, directory, DEFAULT_PREFIX)
    finally:
        await log.close()
    anchor = AnchorKey.from_record(KeyStore(folder / "keys").anchor_public())
    directory = load_directory((folder / "directory.bin").read_bytes(), anchor=anchor,
                               now=datetime.now(UTC))  # fmt: skip
    return DemoRun(folder, result, tuple(records), directory)


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> DemoRun:
    run = asyncio.run(_run_demo(tmp_path_factory.mktemp("demo")))
    assert run.result.ok, run.result.summary()
    return run


def lvvx(*args: str | Path) -> Result:
    return CliRunner().invoke(cli, [str(a) for a in args])


def test_the_case_monitor_shows_every_demo_case_closed(demo: DemoRun) -> None:
    now = datetime.now(UTC)
    report = verify_stream(list(demo.records), demo.directory, now=now)
    assert report.clean, report.as_json()
    assert report.sent == report.accounted > 0 and report.pending == 0
    sent = [e for e in map(event_of, demo.records) if e.action is AuditAction.SENT]
    assert sum(len(e.recipients) for e in sent) == demo.result.sent == demo.result.delivered
    views = case_views(report)
    assert len(views) == 6 == len({e.case_id for e in sent})
    assert {v.case_id for v in views} == {e.case_id for e in sent}
    assert all(v.state.step is Step.CLOSED for v in views)
    assert not any(v.state.rest_period_overdue(now) or v.state.open_escalation for v in views)
    totals = summary(views, now)
    assert totals["cases"] == 6 and totals["by_step"]["CLOSED"] == 6
    assert sum(totals["by_step"].values()) == 6
    assert totals["rest_periods_overdue"] == 0 and totals["open_escalations"] == 0
    # every chain got its tree heads: never more than CHECKPOINT_EVERY_EVENTS uncovered
    for party, c in report.chains.items():
        assert c.checkpoints >= 1, party
        events = [c.events[s][0] for s in range(c.size)]
        assert events[-1].action is AuditAction.CHECKPOINT
        marks = [-1] + [e.seq for e in events if e.action is AuditAction.CHECKPOINT]
        # (+1: the events of one publication, e.g. DELIVERED and RECEIPT_SENT, stay together)
        assert max(b - a - 1 for a, b in itertools.pairwise(marks)) <= CHECKPOINT_EVERY_EVENTS + 1


def test_lvvx_audit_verify_prove_check_proof_and_cases_on_a_demo_run(
    demo: DemoRun, tmp_path: Path
) -> None:
    folder = demo.folder
    verified = lvvx("audit", "verify", "--data", folder, "--json")
    assert verified.exit_code == 0, verified.output
    body = json.loads(verified.stdout)
    assert body["clean"] is True and body["findings"] == []
    assert len(body["chains"]) == 12 and all(c["ok"] for c in body["chains"].values())

    sent = next(
        e
        for e in map(event_of, demo.records)
        if e.action is AuditAction.SENT and len(e.recipients) > 1
    )
    out = tmp_path / "p.json"
    proved = lvvx("audit", "prove", str(sent.message_id), "--data", folder, "--out", out)
    assert proved.exit_code == 0, proved.output
    document = json.loads(out.read_text())
    assert document["message_id"] == str(sent.message_id)
    assert len(document["proofs"]) >= 1 + 2 * len(sent.recipients)  # SENT, DELIVERED, RECEIPT_SENT…
    anchor = ("--directory", folder / "directory.bin", "--anchor", folder / "keys")
    checked = lvvx("audit", "check-proof", out, *anchor)
    assert checked.exit_code == 0, checked.output
    assert checked.output.count("valid") == len(document["proofs"])

    alterations: list[Callable[[dict[str, Any]], None]] = [
        lambda p: p["path"].__setitem__(0, flip(bytes.fromhex(p["path"][0])).hex()),
        lambda p: p.__setitem__("event", _b64(flip(base64.b64decode(p["event"]), 30))),
        lambda p: p.__setitem__("seq", p["seq"] + 1),
    ]
    for alter in alterations:
        altered = copy.deepcopy(document)
        target = next(p for p in altered["proofs"] if p["path"])
        alter(target)
        bad = tmp_path / "bad.json"
        bad.write_text(json.dumps(altered))
        refused = lvvx("audit", "check-proof", bad, *anchor)
        assert refused.exit_code == 1, refused.output
        assert "INVALID" in refused.output

    listed = lvvx("cases", "--data", folder, "--json")
    assert listed.exit_code == 0, listed.output
    cases = json.loads(listed.stdout)
    assert cases["summary"]["cases"] == 6 and cases["summary"]["by_step"]["CLOSED"] == 6
    assert {c["case_id"] for c in cases["cases"]} == {
        str(e.case_id) for e in map(event_of, demo.records) if e.action is AuditAction.SENT
    }
    assert all(c["step"] == "CLOSED" and not c["open_escalation"] for c in cases["cases"])


def test_lvvx_audit_check_proof_refuses_proofs_relabelled_as_another_message(
    demo: DemoRun, tmp_path: Path
) -> None:
    sent = [e for e in map(event_of, demo.records) if e.action is AuditAction.SENT]
    out = tmp_path / "p.json"
    proved = lvvx("audit", "prove", str(sent[0].message_id), "--data", demo.folder, "--out", out)
    assert proved.exit_code == 0, proved.output
    document = json.loads(out.read_text())
    document["message_id"] = str(sent[1].message_id)
    out.write_text(json.dumps(document))
    checked = lvvx("audit", "check-proof", out, "--directory", demo.folder / "directory.bin",
                   "--anchor", demo.folder / "keys")  # fmt: skip
    assert checked.exit_code == 1, checked.output


def test_lvvx_audit_verify_finds_a_tampered_copy_of_the_topic(
    demo: DemoRun, tmp_path: Path
) -> None:
    """A copy of the demo's audit topic with one event deleted, in a fresh embedded log."""
    records = list(demo.records)
    victim = next(i for i, r in enumerate(records) if event_of(r).action is AuditAction.DELIVERED)
    gateway = event_of(records[victim]).gateway

    async def write_copy() -> None:
        log = EmbeddedTransport(tmp_path / "log.db")
        try:
            topics = sorted({r.topic for r in records})
            await log.ensure_topics(
                [TopicSpec(t, partitions=gateway_module.AUDIT_PARTITIONS) for t in topics]
            )
            async with log.producer() as producer:
                for record in without(records, victim):
                    await producer.send(
                        record.topic, record.value, key=record.key, headers=record.headers
                    )
        finally:
            await log.close()

    asyncio.run(write_copy())
    found = lvvx("audit", "verify", "--data", tmp_path, "--json", "--grace", "86400",
                 "--directory", demo.folder / "directory.bin", "--anchor", demo.folder / "keys")  # fmt: skip
    assert found.exit_code == 1, found.output
    body = json.loads(found.stdout)
    assert body["clean"] is False
    # the demo's calendar lies months back, past the day of grace: the message whose
    # DELIVERED was deleted counts as lost at that recipient too, and nothing else
    assert {f["kind"] for f in body["findings"]} == {"GAP", "LOST"}
    lost = [f for f in body["findings"] if f["kind"] == "LOST"]
    assert {f["message_id"] for f in lost} == {str(event_of(records[victim]).message_id)}
    assert body["chains"][gateway]["ok"] is False
