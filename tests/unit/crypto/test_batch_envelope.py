"""Envelope format 2: epoch keys and batch signatures (docs/ENVELOPE.md §5.3–5.6). Every
envelope of a batch opens on its own; epochs end where the spec says; the caches an opener
keeps never stand in for a check they did not make; and the attacks the amortisation could
open are refused. The general guarantees (every mutation refused, replays, windows, policy,
payload rules) run on format 2 in tests/unit/crypto/test_envelope.py."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta

import pytest

from broker.crypto import Opened, Opener, Sealer, SealRequest, open_envelope
from broker.crypto._batchsig import MAX_BATCH_SIZE, envelope_leaf, sign_batch
from broker.crypto._envelope import MAX_ENVELOPE_ITEMS
from broker.crypto._epoch import EPOCH_MAX_AGE, EPOCH_MAX_MESSAGES, SenderEpochs, number_of
from broker.crypto._wire import Proof, WireEnvelope, decode_envelope, encode_tail
from broker.errors import EnvelopeRejected, PolicyDenied, RejectReason
from broker.gateway._sealing import SealQueue
from broker.models import KeyAlgorithm, PartyRole
from broker.replay import MemoryReplayGuard
from demo.examples import example
from tests.crypto_net import NOW, A, Net

NET = Net()
IND, MUNI, NGO, DTV = (
    A[PartyRole.IND],
    A[PartyRole.MUNICIPALITY],
    A[PartyRole.NGO],
    A[PartyRole.DTV],
)
OTHER_MUNI = "gemeente-rotterdam"
DOSSIER = example("DossierDelivered")


def sealer(net: Net = NET, sender: str = IND, max_messages: int | None = None) -> Sealer:
    s = Sealer(net.keys(sender), net.directory, lambda: NOW)
    if max_messages is not None:
        s.epochs = SenderEpochs(sender, max_messages=max_messages)
    return s


def wire(data: bytes) -> WireEnvelope:
    return decode_envelope(data, max_items=MAX_ENVELOPE_ITEMS)


def proof_of(data: bytes) -> Proof:
    """The batch proof of a format-2 envelope (format 1 has none)."""
    found = wire(data).batch_proof
    assert found is not None, "no batch proof: not a format-2 envelope"
    return found


def opened_alone(data: bytes, me: str, net: Net = NET) -> object:
    return open_envelope(data, me=net.keys(me), directory=net.directory,
                         replay_guard=MemoryReplayGuard(), now=NOW).message  # fmt: skip


def refused(reason: RejectReason, data: bytes, me: str, opener: Opener | None = None) -> None:
    with pytest.raises(EnvelopeRejected) as caught:
        if opener is None:
            opened_alone(data, me)
        else:
            opener.open(data)
    assert caught.value.reject_reason is reason


# --- batches --------------------------------------------------------------------------------


@pytest.mark.parametrize("kem", [KeyAlgorithm.X25519, KeyAlgorithm.MLKEM768_X25519], ids=str)
@pytest.mark.parametrize("n", [1, 2, 3, 7, 64])
def test_every_envelope_of_a_batch_opens_on_its_own(n: int, kem: KeyAlgorithm) -> None:
    net = NET if kem is KeyAlgorithm.X25519 else Net(kem)
    routes = [(MUNI,), (MUNI, NGO), (OTHER_MUNI, MUNI, NGO)]
    requests = [SealRequest(DOSSIER, routes[i % 3]) for i in range(n)]
    envelopes = sealer(net).seal_many(requests)
    assert len({wire(e).signature for e in envelopes}) == 1  # one signature for the batch
    for i, (request, data) in enumerate(zip(requests, envelopes, strict=True)):
        assert proof_of(data) == Proof(i, n, proof_of(data).path)
        for me in request.recipients:
            assert opened_alone(data, me, net) == DOSSIER


def test_large_sends_are_signed_in_batches_of_at_most_the_limit() -> None:
    envelopes = sealer().seal_many([SealRequest(DOSSIER, (MUNI,))] * (MAX_BATCH_SIZE + 3))
    sizes = [proof_of(e).batch_size for e in envelopes]
    assert sizes == [MAX_BATCH_SIZE] * MAX_BATCH_SIZE + [3] * 3
    assert len({wire(e).signature for e in envelopes}) == 2
    assert opened_alone(envelopes[-1], MUNI) == DOSSIER


def test_an_opener_opens_format_1_and_format_2_alike() -> None:
    opener = Opener(NET.keys(MUNI), NET.directory, MemoryReplayGuard(), lambda: NOW)
    old = Net(format_version=1).seal(DOSSIER, IND, [MUNI])
    new = sealer().seal_many([SealRequest(DOSSIER, (MUNI,))] * 3)
    opened = opener.open_many([old, *new])
    assert [o.message if isinstance(o, Opened) else o for o in opened] == [DOSSIER] * 4


def test_one_refused_request_does_not_sink_its_batch() -> None:
    requests = [
        SealRequest(DOSSIER, (MUNI,)),
        SealRequest(DOSSIER, (DTV,)),
        SealRequest(DOSSIER, (NGO,)),
    ]
    out = sealer().seal_each(requests)
    assert isinstance(out[1], PolicyDenied)  # a dossier may not go to DT&V
    assert isinstance(out[0], bytes) and isinstance(out[2], bytes)  # the others were sealed
    assert opened_alone(out[0], MUNI) == opened_alone(out[2], NGO) == DOSSIER
    with pytest.raises(PolicyDenied):
        sealer().seal_many(requests)


# --- epochs ---------------------------------------------------------------------------------


def test_an_epoch_is_one_wrap_per_recipient_and_numbered_nonces() -> None:
    s = sealer()
    first = s.seal_many([SealRequest(DOSSIER, (MUNI, NGO))] * 3)
    later = s.seal_many([SealRequest(DOSSIER, (MUNI, NGO)), SealRequest(DOSSIER, (NGO, MUNI))])
    wraps = {wire(e).wrapped_keys for e in [*first, later[0]]}
    assert len(wraps) == 1  # one epoch across batches
    assert [number_of(wire(e).nonce) for e in [*first, later[0]]] == [0, 1, 2, 3]
    assert wire(later[1]).wrapped_keys not in wraps  # another recipient order, another epoch
    assert number_of(wire(later[1]).nonce) == 0


def test_an_epoch_ends_after_its_message_bound() -> None:
    s = sealer(max_messages=2)
    envelopes = s.seal_many([SealRequest(DOSSIER, (MUNI,))] * 5)
    assert [number_of(wire(e).nonce) for e in envelopes] == [0, 1, 0, 1, 0]
    assert len({wire(e).wrapped_keys for e in envelopes}) == 3
    assert all(opened_alone(e, MUNI) == DOSSIER for e in envelopes)


def test_an_epoch_ends_after_its_age_bound() -> None:
    clock = [NOW]
    s = Sealer(NET.keys(IND), NET.directory, lambda: clock[0])
    (a,) = s.seal_many([SealRequest(DOSSIER, (MUNI,))])
    clock[0] = NOW + EPOCH_MAX_AGE - timedelta(milliseconds=1)
    (b,) = s.seal_many([SealRequest(DOSSIER, (MUNI,))])
    clock[0] = NOW + EPOCH_MAX_AGE
    (c,) = s.seal_many([SealRequest(DOSSIER, (MUNI,))])
    assert wire(a).wrapped_keys == wire(b).wrapped_keys != wire(c).wrapped_keys
    assert number_of(wire(c).nonce) == 0


def test_an_epoch_ends_when_a_recipient_key_changes() -> None:
    s = sealer()
    (before,) = s.seal_many([SealRequest(DOSSIER, (MUNI,))])
    s.directory = Net().directory  # a new directory with the same keys
    (same,) = s.seal_many([SealRequest(DOSSIER, (MUNI,))])
    assert wire(same).wrapped_keys == wire(before).wrapped_keys  # the key did not change
    hybrid = Net(KeyAlgorithm.MLKEM768_X25519)  # in its directory MUNI has another key
    s.directory, s.keys = hybrid.directory, hybrid.keys(IND)
    (after,) = s.seal_many([SealRequest(DOSSIER, (MUNI,))])
    assert wire(after).wrapped_keys[0].key_id != wire(before).wrapped_keys[0].key_id


def test_a_restarted_sender_never_reuses_a_key_with_a_nonce() -> None:
    a = sealer().seal_many([SealRequest(DOSSIER, (MUNI,))])[0]
    b = sealer().seal_many([SealRequest(DOSSIER, (MUNI,))])[0]  # a new process: new epochs
    assert wire(a).nonce == wire(b).nonce == bytes(12)
    assert wire(a).wrapped_keys != wire(b).wrapped_keys  # under different keys
    assert opened_alone(a, MUNI) == opened_alone(b, MUNI) == DOSSIER


def test_a_nonce_past_the_epoch_bound_is_refused() -> None:
    s = sealer(max_messages=EPOCH_MAX_MESSAGES + 1)
    epoch, _ = s.epochs.next((MUNI,), NET.directory, NOW)
    epoch.used = EPOCH_MAX_MESSAGES - 1
    last, beyond = s.seal_many([SealRequest(DOSSIER, (MUNI,))] * 2)
    assert opened_alone(last, MUNI) == DOSSIER
    refused(RejectReason.MALFORMED, beyond, MUNI)


# --- what the caches must not do ------------------------------------------------------------


def primed_opener(me: str = MUNI) -> tuple[Opener, list[bytes]]:
    envelopes = sealer().seal_many([SealRequest(DOSSIER, (MUNI, NGO))] * 4)
    opener = Opener(NET.keys(me), NET.directory, MemoryReplayGuard(), lambda: NOW)
    opener.open(envelopes[0])
    return opener, envelopes


def test_a_proof_taken_from_another_envelope_of_the_batch_is_refused() -> None:
    opener, envelopes = primed_opener()
    a, b = wire(envelopes[1]), wire(envelopes[2])
    swapped = envelopes[1][: a.body_end] + envelopes[2][b.body_end :]
    refused(RejectReason.BAD_SIGNATURE, swapped, MUNI, opener)
    refused(RejectReason.BAD_SIGNATURE, swapped, MUNI)


def test_a_batch_position_out_of_its_batch_is_malformed() -> None:
    data = sealer().seal_many([SealRequest(DOSSIER, (MUNI,))] * 2)[1]
    x = wire(data)
    path = proof_of(data).path
    for proof in (Proof(2, 2, path), Proof(0, 0, ()), Proof(0, MAX_BATCH_SIZE + 1, ())):
        refused(RejectReason.MALFORMED, data[: x.body_end] + encode_tail(proof, x.signature), MUNI)


def test_a_body_changed_after_its_batch_was_verified_is_refused() -> None:
    opener, envelopes = primed_opener()
    x = wire(envelopes[1])
    changed = bytearray(envelopes[1])
    changed[x.body_end - 1] ^= 1  # the ciphertext's last byte
    refused(RejectReason.BAD_SIGNATURE, bytes(changed), MUNI, opener)


def test_another_sender_cannot_borrow_a_verified_batch_or_an_unwrapped_epoch_key() -> None:
    """An IND-role party re-signs, in its own name, a body carrying IND's wrapped epoch keys,
    after the receiver has cached IND's batch and epoch key: neither cache answers for it —
    the wrap's info names IND, so it does not open as the other sender's."""
    net = Net(roles={"avim": PartyRole.IND})
    envelopes = sealer(net).seal_many([SealRequest(DOSSIER, (MUNI,))] * 2)
    opener = Opener(net.keys(MUNI), net.directory, MemoryReplayGuard(), lambda: NOW)
    opener.open(envelopes[0])
    x = wire(envelopes[1])
    header = x.header.model_copy(update={"sender": "avim",
                                         "sender_key_id": net.keys("avim").signing_key_id})  # fmt: skip
    from broker.crypto._wire import encode_body, encode_header, encode_wrapped_key

    body = encode_body(encode_header(header), [encode_wrapped_key(w) for w in x.wrapped_keys],
                       x.nonce, x.ciphertext)  # fmt: skip
    (proof,), signature = sign_batch([body], net.keys("avim").signing_key)
    forged = body + encode_tail(proof, signature)
    refused(RejectReason.DECRYPT_FAILED, forged, MUNI, opener)


def test_even_the_sender_cannot_move_an_envelope_to_another_epochs_key() -> None:
    """The sender re-signs an envelope with the wrapped keys of another epoch: the wraps open,
    but to a key that does not decrypt this ciphertext."""
    a = sealer().seal_many([SealRequest(DOSSIER, (MUNI,))])[0]
    b = sealer().seal_many([SealRequest(DOSSIER, (MUNI,))])[0]
    x, y = wire(a), wire(b)
    from broker.crypto._wire import encode_body, encode_wrapped_key

    body = encode_body(a[: x.header_end], [encode_wrapped_key(w) for w in y.wrapped_keys],
                       x.nonce, x.ciphertext)  # fmt: skip
    (proof,), signature = sign_batch([body], NET.keys(IND).signing_key)
    refused(RejectReason.DECRYPT_FAILED, body + encode_tail(proof, signature), MUNI)


def test_the_leaf_covers_every_byte_before_the_proof() -> None:
    data = sealer().seal_many([SealRequest(DOSSIER, (MUNI,))])[0]
    x = wire(data)
    assert x.batch_proof == Proof(0, 1, ())  # a batch of one: the leaf is the root
    assert envelope_leaf(data[: x.body_end]) != envelope_leaf(data[: x.body_end - 1])


# --- a gateway's sends, sealed together ----------------------------------------------------


async def test_sends_in_the_same_turn_are_sealed_as_one_batch() -> None:
    queue = SealQueue(sealer())
    requests = [SealRequest(DOSSIER, (MUNI,), message_id=uuid.uuid4()) for _ in range(5)]
    results = await asyncio.gather(
        *(queue.seal(r) for r in requests),
        queue.seal(SealRequest(DOSSIER, (DTV,))),
        return_exceptions=True,
    )
    assert queue.batches == 1
    assert isinstance(results[-1], PolicyDenied)  # its own caller gets its refusal
    sealed = [r for r in results[:-1] if isinstance(r, bytes)]
    assert len(sealed) == len(requests)  # the others were sealed
    assert len({wire(e).signature for e in sealed}) == 1
    for request, data in zip(requests, sealed, strict=True):
        assert wire(data).header.message_id == request.message_id
    lone = await queue.seal(SealRequest(DOSSIER, (MUNI,)))
    assert queue.batches == 2 and proof_of(lone).batch_size == 1
