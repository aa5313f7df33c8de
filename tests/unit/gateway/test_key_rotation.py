"""A party's keys rotated under a running gateway (`lvvx keys rotate`, then the next
directory): the gateway takes the new key files when the directory lists them, signs with
the new key from the activation on — not before, when others might not know it — opens what
was sealed to the old key before the activation, and its audit chain verifies across the
change, also after a restart that no longer holds the old signing key."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

from broker.audit import verify_stream
from broker.crypto import (
    DEMO_KEY_FILE_KDF,
    Directory,
    KeyStore,
    build_directory,
    checked_directory,
    inspect_envelope,
    rotate_keys,
)
from broker.gateway import Gateway
from broker.models import DossierDelivered, IntakeRegistered, PartyRole
from broker.topics import audit, inbox
from tests.crypto_net import NOW, A
from tests.embedded_gateways import EmbeddedNetwork, sent_status
from tests.support import eventually, example_of

M, IND, DTV = A[PartyRole.MUNICIPALITY], A[PartyRole.IND], A[PartyRole.DTV]
PASSPHRASE = b"correct horse battery staple 42"
LEAD = timedelta(minutes=10)


def intake() -> IntakeRegistered:
    return example_of(IntakeRegistered).model_copy(update={"municipality": M})


class Clock:
    def __init__(self, at: datetime) -> None:
        self.at = at

    def __call__(self) -> datetime:
        return self.at


def directory(lvv: EmbeddedNetwork, store: KeyStore, serial: int) -> Directory:
    """The network's directory with ``M``'s record from its key folder."""
    entries = [p.entry for pid, p in lvv.net.parties.items() if pid != M] + [store.public_entry(M)]
    return checked_directory(
        build_directory(entries, serial=serial, network="lvv-test", now=NOW - timedelta(days=1))
    )


async def rotating_gateway(
    lvv: EmbeddedNetwork, store: KeyStore, clock: Clock, first: Directory
) -> Gateway:
    """M's gateway as `lvvx gateway run` makes it: its key ring from the folder, re-read
    when a directory lists keys the ring lacks."""
    ring = store.load_ring(M, PASSPHRASE)
    return await lvv.gateway(
        M, keys=ring.keys_at(first, clock()), key_ring=ring, directory=first, clock=clock,
        reload_keys=lambda previous: store.load_ring(M, PASSPHRASE, previous=previous),
    )  # fmt: skip


def wrapped_to(data: bytes, party: str) -> str:
    wraps = inspect_envelope(data, None)["wrapped_keys"]
    return str(next(w["key_id"] for w in wraps if w["recipient"] == party))


def sender_of(data: bytes) -> str:
    return str(inspect_envelope(data, None)["header"]["sender"])


def signed_with(data: bytes) -> str:
    return str(inspect_envelope(data, None)["header"]["sender_key_id"])


async def test_a_gateway_takes_its_rotated_keys_at_the_activation_without_a_restart(
    lvv: EmbeddedNetwork, tmp_path: Path
) -> None:
    clock = Clock(NOW)
    store = KeyStore(tmp_path / "keys", kdf=DEMO_KEY_FILE_KDF)
    store.init_party(M, PartyRole.MUNICIPALITY, passphrase=PASSPHRASE, now=NOW - timedelta(days=40))
    first = directory(lvv, store, 1)
    old_sign, old_enc = (
        first.party(M).signing_keys[0].key_id,
        first.party(M).encryption_keys[0].key_id,
    )
    ind = await lvv.gateway(IND, run=True, directory=first, clock=clock)
    dtv = await lvv.gateway(DTV, run=True, directory=first, clock=clock)
    m = await rotating_gateway(lvv, store, clock, first)

    in_flight = await ind.send(example_of(DossierDelivered), [M])  # sealed to the old key
    done = rotate_keys(store, M, passphrase=PASSPHRASE, now=clock(), lead=LEAD)
    assert done.plan is not None
    new_sign, new_enc = done.plan.new_signing.key_id, done.plan.new_encryption.key_id
    second = directory(lvv, store, 2)
    for gw in (ind, dtv, m):
        gw.update_directory(second)
    assert set(m.ring.signing) == {old_sign, new_sign}  # read from the folder, no restart
    assert set(m.ring.decryption) == {old_enc, new_enc}

    # announced, not yet active: everyone goes on with the old keys
    await ind.send(example_of(DossierDelivered), [M])
    before = await m.send(intake(), [DTV])
    clock.at = done.plan.activation
    after = await m.send(intake(), [DTV])
    await ind.send(example_of(DossierDelivered), [M])

    dossiers = [r.value for r in await lvv.records(inbox(M)) if sender_of(r.value) == IND]
    assert [wrapped_to(e, M) for e in dossiers] == [old_enc, old_enc, new_enc]
    sent = [r.value for r in await lvv.records(inbox(DTV))]
    assert [signed_with(e) for e in sent] == [old_sign, new_sign]

    lvv.run(m)  # all three open, the first two with the retired key
    await eventually(lambda: len(m.store.inbox(limit=10)) == 3, "M to deliver all three dossiers")
    await eventually(lambda: len(dtv.store.inbox(limit=10)) == 2, "DT&V to take both intakes")
    for message_id in (before, after):
        await eventually(lambda: sent_status(m, message_id) == "RECEIPTED", "DT&V's receipt")  # noqa: B023
    await eventually(
        lambda: sent_status(ind, in_flight) == "RECEIPTED", "M's receipt, signed with its new key"
    )

    await lvv.halt_all()
    events = [r for party in (IND, DTV, M) for r in await lvv.records(audit(party))]
    report = verify_stream(events, second, now=clock())
    assert report.chains[M].ok and not report.errors, report.errors


async def test_after_a_restart_the_chain_goes_on_from_events_signed_by_a_key_no_longer_held(
    lvv: EmbeddedNetwork, tmp_path: Path
) -> None:
    """A later rotation deletes an ended signing key's file; the restarted gateway still
    finds its chain's head among events that key signed (the directory lists its public key),
    instead of starting a second chain that the verifier would call a fork."""
    clock = Clock(NOW)
    store = KeyStore(tmp_path / "keys", kdf=DEMO_KEY_FILE_KDF)
    store.init_party(M, PartyRole.MUNICIPALITY, passphrase=PASSPHRASE, now=NOW - timedelta(days=40))
    first = directory(lvv, store, 1)
    dtv = await lvv.gateway(DTV, run=True, directory=first, clock=clock)
    m = await rotating_gateway(lvv, store, clock, first)
    await m.send(intake(), [DTV])  # signed with the first key
    await lvv.shut(m)

    clock.at += timedelta(seconds=1)
    done = rotate_keys(store, M, passphrase=PASSPHRASE, now=clock(), lead=timedelta(0))
    assert done.plan is not None
    (store.folder / f"{M}.signing.pem").unlink()  # what the next rotation does to an ended key
    second = directory(lvv, store, 2)
    dtv.update_directory(second)
    clock.at = done.plan.activation + timedelta(seconds=1)
    restarted = await rotating_gateway(lvv, store, clock, second)
    assert set(restarted.ring.signing) == {done.plan.new_signing.key_id}
    await restarted.send(intake(), [DTV])
    await lvv.shut(restarted)

    await lvv.halt_all()
    events = [r for party in (DTV, M) for r in await lvv.records(audit(party))]
    report = verify_stream(events, second, now=clock())
    assert report.chains[M].ok and not report.errors, report.errors
    assert report.chains[M].size >= 2
