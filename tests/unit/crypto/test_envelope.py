"""Sealing and opening envelopes: round trips for every message type and both KEMs, every
mutation rejected with a reason, one test per attack, hostile payloads, and a fuzz run."""

from __future__ import annotations

import io
import time
import tracemalloc
import uuid
from datetime import datetime, timedelta

import fastavro
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from broker import models as m
from broker.contract import default_codec
from broker.crypto import MAX_CLOCK_SKEW, MAX_ENVELOPE_BYTES, Directory, Opened
from broker.errors import EnvelopeRejected, PolicyDenied, RejectReason
from broker.models import KeyAlgorithm, KeyStatus, PartyRole
from broker.policy import POLICY
from broker.replay import MemoryReplayGuard, ReplayGuard, SqliteReplayGuard
from demo.examples import example
from tests.crypto_net import NOW, A, Net
from tests.strategies import for_model
from tests.support import envelope_bytes, envelope_record, example_of

KEMS = [KeyAlgorithm.X25519, KeyAlgorithm.MLKEM768_X25519]
FORMATS = [1, 2]
NETS = {(kem, fmt): Net(kem, format_version=fmt) for kem in KEMS for fmt in FORMATS}
X = NETS[KeyAlgorithm.X25519, 2]
X1 = NETS[KeyAlgorithm.X25519, 1]
"""Format 1, for the attacks that are about its per-message signature and key wraps; the
format-2 ones are in tests/unit/crypto/test_batch_envelope.py."""

DOSSIER = example_of(m.DossierDelivered)
IND, MUNI, NGO, DTV, COA = (
    A[PartyRole.IND],
    A[PartyRole.MUNICIPALITY],
    A[PartyRole.NGO],
    A[PartyRole.DTV],
    A[PartyRole.COA],
)
OTHER_MUNI = "gemeente-rotterdam"


def rejected(reason: RejectReason, data: bytes, me: str, net: Net = X, *,
             guard: ReplayGuard | None = None, now: datetime = NOW,
             directory: Directory | None = None) -> None:  # fmt: skip
    with pytest.raises(EnvelopeRejected) as caught:
        net.open(data, me, guard=guard, now=now, directory=directory)
    assert caught.value.reject_reason is reason
    assert str(caught.value) == f"[{reason.value}] envelope rejected: {reason.value}"


def as_sent_by(message: m.AvroModel, sender: str) -> m.AvroModel:
    """The message with the fields that name its sender set to ``sender`` (policy rule)."""
    from broker.policy import SENDER_FIELDS, SENDER_ROLE_FIELDS

    name = message.avro_name
    if name in SENDER_FIELDS:
        return message.model_copy(update={SENDER_FIELDS[name]: sender})
    if name in SENDER_ROLE_FIELDS:
        from tests.crypto_net import ROLE_OF

        return message.model_copy(update={SENDER_ROLE_FIELDS[name]: ROLE_OF[sender]})
    return message


def addressed(message: m.AvroModel, recipients: list[str]) -> m.AvroModel:
    """The message with its attachments' keys wrapped (in name) to ``recipients`` and
    their ids distinct (policy rules, docs/ENVELOPE.md §11.2)."""
    refs = getattr(message, "attachments", ())
    if not refs:
        return message
    from broker.policy import ATTACHMENT_RULES, chunk_count_for

    keys = tuple(m.AttachmentKey(recipient=r, key_id="0" * 16, wrapped=b"") for r in recipients)
    share = ATTACHMENT_RULES[message.avro_name].max_total_bytes // len(refs)
    fixed = tuple(
        ref.model_copy(
            update={
                "keys": keys,
                "attachment_id": uuid.UUID(int=i + 1),
                "size": min(ref.size, share),
                "chunk_count": chunk_count_for(min(ref.size, share), ref.chunk_size),
            }
        )
        for i, ref in enumerate(refs)
    )
    return message.model_copy(update={"attachments": fixed})


def test_a_payload_naming_another_sender_is_refused() -> None:
    """A municipality cannot register an intake in another municipality's name: refused
    when sealing, and as PAYLOAD_INVALID when a forged one arrives."""
    intake = example("IntakeRegistered").model_copy(update={"municipality": OTHER_MUNI})
    with pytest.raises(PolicyDenied):
        X.seal(intake, MUNI, [DTV])
    honest = intake.model_copy(update={"municipality": MUNI})
    forged = X.forge(
        honest, MUNI, [DTV], payload=default_codec().encode(intake.avro_name, intake.to_avro())
    )
    rejected(RejectReason.PAYLOAD_INVALID, forged, DTV)


def route(name: str) -> tuple[str, list[str]]:
    """A sender and recipients the policy allows for message type ``name``."""
    from broker.policy import RECEIPT, may_answer
    from tests.crypto_net import ROLE_OF

    rule = POLICY[name]
    sender = A[sorted(rule.senders)[0]]
    allowed = [
        r for r in sorted(rule.recipients) if name != RECEIPT or may_answer(ROLE_OF[sender], r)
    ]
    recipients = [A[r] for r in allowed if A[r] != sender][:3]
    return sender, recipients


# --- round trips -----------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", FORMATS, ids=lambda f: f"v{f}")
@pytest.mark.parametrize("kem", KEMS, ids=lambda k: k.value)
@pytest.mark.parametrize("name", sorted(POLICY))
def test_open_of_seal_is_the_message(name: str, kem: KeyAlgorithm, fmt: int) -> None:
    net = NETS[kem, fmt]
    sender, recipients = route(name)

    @settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(generated=for_model(m.MESSAGE_MODELS[name]))
    def round_trip(generated: m.AvroModel) -> None:
        message = addressed(as_sent_by(generated, sender), recipients)
        envelope = net.seal(message, sender, recipients)
        for recipient in recipients:
            opened = net.open(envelope, recipient)
            assert opened.message == message
            assert opened.header.sender == sender
            assert opened.header.recipients == tuple(recipients)
            assert opened.header.case_id == message.model_dump()["case_id"]  # every type has one

    round_trip()


def test_the_header_carries_no_personal_data() -> None:
    envelope = X.seal(DOSSIER, IND, [MUNI, NGO])
    person = DOSSIER.person
    assert person.v_number is not None  # the example's person has one: it must not show
    for secret in (person.family_name, person.given_names, person.v_number, "Asielrelaas"):
        assert secret.encode() not in envelope


def test_an_envelope_to_a_hybrid_and_a_classic_recipient_opens_for_both() -> None:
    hybrid = Net(KeyAlgorithm.MLKEM768_X25519)
    mixed = Net(KeyAlgorithm.X25519, extra={})
    # the mixed network's directory: NGO keys hybrid, the rest X25519
    entries = [p.entry for p in mixed.parties.values() if p.entry.party_id != NGO]
    entries.append(hybrid.parties[NGO].entry)
    from broker.crypto import load_directory
    from tests.crypto_net import PINNED, signed_directory

    directory = load_directory(signed_directory(entries), anchor=PINNED, now=NOW)
    mixed.directory = directory
    envelope = mixed.seal(DOSSIER, IND, [MUNI, NGO])
    kems = {w.recipient: w.kem for w in _decode(envelope).wrapped_keys}
    assert kems == {MUNI: m.Kem.X25519, NGO: m.Kem.MLKEM768_X25519}
    assert mixed.open(envelope, MUNI).message == DOSSIER
    opened = open_as(envelope, hybrid, NGO, directory)
    assert opened.message == DOSSIER


def open_as(envelope: bytes, net: Net, me: str, directory: Directory) -> Opened:
    from broker.crypto import open_envelope

    return open_envelope(
        envelope, me=net.keys(me), directory=directory, replay_guard=MemoryReplayGuard(), now=NOW
    )


def _decode(envelope: bytes) -> m.SecureEnvelope:
    return m.SecureEnvelope.from_avro(envelope_record(envelope))


def _encode(envelope: m.SecureEnvelope) -> bytes:
    return envelope_bytes(envelope.to_avro())


# --- every mutation is rejected --------------------------------------------------------------


def test_every_single_byte_change_is_rejected_with_a_reason() -> None:
    envelope = X.seal(DOSSIER, IND, [MUNI])
    for position in range(len(envelope)):
        for flip in (0x01, 0x80, 0xFF):
            mutated = bytearray(envelope)
            mutated[position] ^= flip
            with pytest.raises(EnvelopeRejected):
                X.open(bytes(mutated), MUNI)


def test_every_truncation_and_extension_is_rejected() -> None:
    envelope = X.seal(DOSSIER, IND, [MUNI])
    for length in range(len(envelope)):
        with pytest.raises(EnvelopeRejected):
            X.open(envelope[:length], MUNI)
    for tail in (b"\x00", b"\x02", bytes(64)):
        with pytest.raises(EnvelopeRejected):
            X.open(envelope + tail, MUNI)


SEALED = X.seal(DOSSIER, IND, [MUNI, NGO])


@settings(max_examples=400, deadline=None)
@given(data=st.data())
def test_random_splices_are_rejected_never_another_error_or_a_wrong_message(
    data: st.DataObject,
) -> None:
    start = data.draw(st.integers(0, len(SEALED)))
    end = data.draw(st.integers(start, min(len(SEALED), start + 40)))
    insert = data.draw(st.binary(max_size=40))
    mutated = SEALED[:start] + insert + SEALED[end:]
    try:
        opened = X.open(mutated, MUNI)
    except EnvelopeRejected:
        return
    assert mutated == SEALED and opened.message == DOSSIER  # only the original opens


@settings(max_examples=1500, deadline=None)
@given(garbage=st.binary(max_size=3000))
def test_fuzz_open_with_arbitrary_bytes(garbage: bytes) -> None:
    with pytest.raises(EnvelopeRejected):
        X.open(garbage, MUNI)


# --- one test per attack ---------------------------------------------------------------------


def test_signature_stripped() -> None:
    stripped = _encode(_decode(SEALED).model_copy(update={"signature": b""}))
    rejected(RejectReason.BAD_SIGNATURE, stripped, MUNI)


def test_recipient_list_altered() -> None:
    envelope = _decode(SEALED)
    header = envelope.header.model_copy(update={"recipients": (MUNI, COA)})
    wrapped = (
        envelope.wrapped_keys[0],
        envelope.wrapped_keys[1].model_copy(update={"recipient": COA}),
    )
    rejected(
        RejectReason.BAD_SIGNATURE,
        _encode(envelope.model_copy(update={"header": header, "wrapped_keys": wrapped})),
        MUNI,
    )


def test_sender_spoofed() -> None:
    """DT&V's name and key id on an envelope IND signed: IND's signature does not verify as DT&V's."""
    envelope = _decode(SEALED)
    dtv_key = X.keys(DTV).signing_key_id
    header = envelope.header.model_copy(update={"sender": DTV, "sender_key_id": dtv_key})
    rejected(
        RejectReason.BAD_SIGNATURE, _encode(envelope.model_copy(update={"header": header})), MUNI
    )


def test_resigned_by_another_party() -> None:
    """Another IND-role party takes the envelope, puts its own name on it and signs it: the
    signature holds, but the header is the payload's associated data, so it does not decrypt."""
    net = Net(roles={"avim": PartyRole.IND}, format_version=1)
    envelope = net.seal(DOSSIER, IND, [MUNI])
    decoded = _decode(envelope)
    header = decoded.header.model_copy(
        update={"sender": "avim", "sender_key_id": net.keys("avim").signing_key_id}
    )
    forged = _resign(decoded.model_copy(update={"header": header}), net, "avim")
    rejected(RejectReason.DECRYPT_FAILED, forged, MUNI, net=net)


def _resign(envelope: m.SecureEnvelope, net: Net, signer: str) -> bytes:
    from broker.contract.binary import write_bytes
    from broker.crypto._envelope import SIGNATURE_TAG

    unsigned = _encode(envelope.model_copy(update={"signature": b""}))[:-1]
    return unsigned + write_bytes(net.keys(signer).signing_key.sign(SIGNATURE_TAG + unsigned))


def test_wrapped_key_transplanted_by_a_third_party() -> None:
    other = _decode(X.seal(DOSSIER, IND, [MUNI, NGO]))
    target = _decode(SEALED)
    transplanted = target.model_copy(update={"wrapped_keys": other.wrapped_keys})
    rejected(RejectReason.BAD_SIGNATURE, _encode(transplanted), MUNI)


def test_wrapped_key_transplanted_and_resigned_by_the_sender() -> None:
    """Format 1: even the sender cannot reuse a wrapped key in another message: HPKE's info
    binds the message id, so the old wrap does not open under the new id."""
    other = _decode(X1.seal(DOSSIER, IND, [MUNI, NGO]))
    target = _decode(X1.seal(DOSSIER, IND, [MUNI, NGO]))
    forged = _resign(target.model_copy(update={"wrapped_keys": other.wrapped_keys}), X1, IND)
    rejected(RejectReason.DECRYPT_FAILED, forged, MUNI)


def test_envelope_forwarded_by_a_recipient_to_a_third_party() -> None:
    rejected(RejectReason.NOT_A_RECIPIENT, SEALED, DTV)


def test_replay_is_refused() -> None:
    guard = MemoryReplayGuard()
    X.open(SEALED, MUNI, guard=guard)
    rejected(RejectReason.REPLAY, SEALED, MUNI, guard=guard)


def test_replay_is_refused_after_the_guard_restarts(tmp_path: object) -> None:
    path = f"{tmp_path}/replay.db"
    envelope = X.seal(DOSSIER, IND, [MUNI])
    guard = SqliteReplayGuard(path)
    X.open(envelope, MUNI, guard=guard)
    guard.close()
    rejected(RejectReason.REPLAY, envelope, MUNI, guard=SqliteReplayGuard(path))


def test_expired_envelope() -> None:
    envelope = X.seal(DOSSIER, IND, [MUNI], ttl=timedelta(hours=1))
    X.open(envelope, MUNI, now=NOW + timedelta(hours=1))  # within the skew: still accepted
    rejected(RejectReason.EXPIRED, envelope, MUNI, now=NOW + timedelta(hours=1) + MAX_CLOCK_SKEW)


def test_envelope_from_the_future() -> None:
    envelope = X.seal(DOSSIER, IND, [MUNI], now=NOW + MAX_CLOCK_SKEW + timedelta(seconds=1))
    rejected(RejectReason.FROM_FUTURE, envelope, MUNI)


def test_too_long_a_life_is_refused() -> None:
    from broker.crypto import MAX_TTL

    forged = X.forge(
        DOSSIER, IND, [MUNI], header_overrides={"expires_at": NOW + MAX_TTL + timedelta(days=1)}
    )
    rejected(RejectReason.EXPIRED, forged, MUNI)


def test_sender_key_not_yet_valid() -> None:
    before_the_key = {"created_at": NOW - timedelta(days=60), "expires_at": NOW + timedelta(days=1)}
    envelope = X.forge(DOSSIER, IND, [MUNI], header_overrides=before_the_key)
    rejected(RejectReason.SENDER_KEY_INVALID, envelope, MUNI)


def test_sender_key_revoked_before_the_message() -> None:
    revoked = _with_ind_signing_key(status=KeyStatus.REVOKED, revoked_at=NOW - timedelta(hours=1))
    rejected(RejectReason.SENDER_KEY_INVALID, SEALED, MUNI, directory=revoked)


def test_revocation_after_the_message_does_not_touch_it() -> None:
    revoked = _with_ind_signing_key(status=KeyStatus.REVOKED, revoked_at=NOW + timedelta(minutes=1))
    assert X.open(SEALED, MUNI, directory=revoked).message == DOSSIER


def _with_ind_signing_key(**changes: object) -> Directory:
    from broker.crypto import load_directory
    from tests.crypto_net import PINNED, signed_directory

    entries = []
    for pid, party in X.parties.items():
        entry = party.entry
        if pid == IND:
            key = entry.signing_keys[0].model_copy(update=changes)
            entry = entry.model_copy(update={"signing_keys": (key,)})
        entries.append(entry)
    return load_directory(signed_directory(entries), anchor=PINNED, now=NOW)


def test_unknown_sender() -> None:
    stranger = Net(roles={})
    envelope = stranger.seal(DOSSIER, IND, [MUNI])
    without_ind = _directory_without(IND)
    rejected(RejectReason.UNKNOWN_SENDER, envelope, MUNI, directory=without_ind)


def _directory_without(party: str) -> Directory:
    from broker.crypto import load_directory
    from tests.crypto_net import PINNED, signed_directory

    return load_directory(
        signed_directory(p.entry for pid, p in X.parties.items() if pid != party),
        anchor=PINNED,
        now=NOW,
    )


def test_message_type_the_senders_role_may_not_send() -> None:
    """An NGO whose envelope was sealed with a directory claiming it is IND: the recipient's
    directory knows it is an NGO, and NGOs do not deliver dossiers."""
    disguised = Net(roles={NGO: PartyRole.IND})
    envelope = disguised.seal(DOSSIER, NGO, [MUNI])
    rejected(RejectReason.POLICY_DENIED, envelope, MUNI)


def test_seal_refuses_what_the_policy_forbids() -> None:
    with pytest.raises(PolicyDenied):
        X.seal(DOSSIER, NGO, [MUNI])
    with pytest.raises(PolicyDenied):
        X.seal(DOSSIER, IND, [COA])


def test_unsupported_version() -> None:
    rejected(RejectReason.UNSUPPORTED_VERSION, b"\x08" + SEALED[1:], MUNI)
    rejected(RejectReason.UNSUPPORTED_VERSION, b"\x00" + SEALED[1:], MUNI)
    rejected(RejectReason.UNSUPPORTED_VERSION, b"\x80\x01" + SEALED[1:], MUNI)


def test_oversized_envelope() -> None:
    rejected(RejectReason.TOO_LARGE, SEALED + bytes(MAX_ENVELOPE_BYTES), MUNI)


def test_unknown_payload_schema() -> None:
    forged = X.forge(DOSSIER, IND, [MUNI], header_overrides={"payload_fingerprint": b"\x07" * 32})
    rejected(RejectReason.UNKNOWN_SCHEMA, forged, MUNI)
    mismatched = default_codec().info("CaseClosed").fingerprint
    forged = X.forge(DOSSIER, IND, [MUNI], header_overrides={"payload_fingerprint": mismatched})
    rejected(RejectReason.UNKNOWN_SCHEMA, forged, MUNI)


# --- hostile payloads from an authenticated sender -------------------------------------------


def _payload() -> bytes:
    return default_codec().encode(DOSSIER.avro_name, DOSSIER.to_avro())


def bounded(payload: bytes) -> None:
    """The payload is refused as PAYLOAD_INVALID quickly and without a large allocation."""
    envelope = X.forge(DOSSIER, IND, [MUNI], payload=payload)
    tracemalloc.start()
    started = time.perf_counter()
    try:
        rejected(RejectReason.PAYLOAD_INVALID, envelope, MUNI)
    finally:
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    assert time.perf_counter() - started < 1.0
    assert peak < 8 * 1024 * 1024


def test_trailing_bytes_in_the_payload() -> None:
    bounded(_payload() + b"\x00")


def test_a_payload_claiming_a_huge_array() -> None:
    # the dossier starts with case_id (a 36-char string) and dossier_id; rewrite the
    # length prefix of a string into an absurd value
    payload = bytearray(_payload())
    assert payload[0] == 72  # zigzag(36): the case id's length
    bounded(b"\xfe\xff\xff\xff\xff\xff\xff\xff\x7f" + bytes(payload[1:]))


def test_a_payload_with_a_huge_item_count() -> None:
    """The procedures array of a dossier claims 2**40 items."""
    message = DOSSIER.model_copy(update={"procedures": ()})
    fields = default_codec().encode(DOSSIER.avro_name, message.to_avro())
    at = len(_prefix_before(message, "procedures"))
    assert fields[at] == 0  # the empty array
    bounded(fields[:at] + _varint(2**40) + fields[at + 1 :])


def _varint(value: int) -> bytes:
    n, out = (value << 1) ^ (value >> 63), bytearray()
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    return bytes([*out, n])


def _prefix_before(message: m.AvroModel, field: str) -> bytes:
    """Encoded bytes of ``message``'s fields before ``field`` (Avro records are plain
    concatenations of their fields)."""
    codec = default_codec()
    schema = codec.info(message.avro_name).schema
    fields = []
    for f in schema["fields"]:
        if f["name"] == field:
            break
        fields.append(f)
    head = {**schema, "name": "Head", "fields": fields}
    out = io.BytesIO()
    record = message.to_avro()
    fastavro.schemaless_writer(
        out, fastavro.parse_schema(head), {f["name"]: record[f["name"]] for f in fields}
    )
    return out.getvalue()


def test_an_out_of_range_int_in_the_payload() -> None:
    decision = example("ScenarioDecision")
    data = default_codec().encode(decision.avro_name, decision.to_avro())
    at = len(_prefix_before(decision, "plan")) + 1  # after the plan's item count: step_no
    assert data[at] == 0x02  # step_no 1
    hostile = data[:at] + _varint(2**32) + data[at + 1 :]
    envelope = X.forge(decision, MUNI, [NGO], payload=hostile)
    rejected(RejectReason.PAYLOAD_INVALID, envelope, NGO)


def test_a_payload_about_another_case() -> None:
    other = DOSSIER.model_copy(update={"case_id": uuid.uuid4()})
    forged = X.forge(
        DOSSIER, IND, [MUNI], payload=default_codec().encode(DOSSIER.avro_name, other.to_avro())
    )
    rejected(RejectReason.PAYLOAD_INVALID, forged, MUNI)


def test_a_payload_breaking_a_model_rule() -> None:
    bad = DOSSIER.to_avro()
    bad["person"]["nationalities"] = ["not a country code"]
    forged = X.forge(DOSSIER, IND, [MUNI], payload=default_codec().encode(DOSSIER.avro_name, bad))
    rejected(RejectReason.PAYLOAD_INVALID, forged, MUNI)


def test_invalid_utf8_in_the_payload() -> None:
    payload = _payload()
    i = payload.index(b"Asielrelaas")
    rejected_payload = payload[:i] + b"\xff" + payload[i + 1 :]
    bounded(rejected_payload)
