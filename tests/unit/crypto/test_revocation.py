"""Revoking a key in a party's public record (`revoke_key`, what `lvvx directory revoke`
does), and what a directory built from it then refuses: envelopes the key signed created at
or after ``revoked_at`` (format 1 and 2), and sealing to a revoked encryption key."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from broker.crypto import (
    Directory,
    RevocationAction,
    load_directory,
    open_envelope,
    revoke_key,
    seal,
)
from broker.errors import EnvelopeRejected, LocalError, RejectReason, UnknownParty
from broker.models import DossierDelivered, KeyStatus, PartyEntry, PartyRole, RevocationReason
from broker.replay import MemoryReplayGuard
from tests.crypto_net import NOW, PINNED, A, Net, signed_directory
from tests.support import example_of

IND, MUNI = A[PartyRole.IND], A[PartyRole.MUNICIPALITY]
LEAK = NOW - timedelta(hours=3)
MS = timedelta(milliseconds=1)
COMPROMISE = RevocationReason.KEY_COMPROMISE
DOSSIER = example_of(DossierDelivered)
NETS = {1: Net(format_version=1), 2: Net(format_version=2)}


def entry(party: str = IND) -> PartyEntry:
    return NETS[1].parties[party].entry


def signing_id(party: str = IND) -> str:
    return entry(party).signing_keys[0].key_id


def encryption_id(party: str = MUNI) -> str:
    return entry(party).encryption_keys[0].key_id


def revoked(key: str, at: datetime | None = LEAK, *, party: str = IND,
            reason: RevocationReason = COMPROMISE, record: PartyEntry | None = None) -> PartyEntry:  # fmt: skip
    done = revoke_key(record or entry(party), key, at=at, now=NOW, reason=reason)
    return done.entry


# --- the record ------------------------------------------------------------------------------


def test_an_active_signing_key_is_revoked_at_the_moment_with_its_reason() -> None:
    done = revoke_key(entry(), signing_id(), at=LEAK, now=NOW, reason=COMPROMISE)
    assert (done.action, done.kind, done.changed) == (RevocationAction.REVOKED, "signing", True)
    [key] = done.entry.signing_keys
    assert (key.status, key.revoked_at, key.revocation_reason) == (
        KeyStatus.REVOKED, LEAK, COMPROMISE
    )  # fmt: skip
    assert done.entry.encryption_keys == entry().encryption_keys
    assert done.previous == entry().signing_keys[0]


def test_an_encryption_key_is_revoked_too_and_the_moment_defaults_to_now() -> None:
    done = revoke_key(entry(MUNI), encryption_id(), at=None, now=NOW, reason=COMPROMISE)
    assert (done.kind, done.key.revoked_at) == ("encryption", NOW)
    assert done.entry.signing_keys == entry(MUNI).signing_keys


@pytest.mark.parametrize("at", [LEAK, None], ids=["same-moment", "default-now-later"])
def test_the_same_revocation_again_is_unchanged(at: datetime | None) -> None:
    once = revoked(signing_id())
    done = revoke_key(once, signing_id(), at=at, now=NOW, reason=COMPROMISE)
    assert (done.action, done.changed, done.entry) == (RevocationAction.UNCHANGED, False, once)
    assert done.key.revoked_at == LEAK  # "unchanged: revoked since" the earlier moment


def test_a_moment_finer_than_a_millisecond_is_the_same_revocation_again() -> None:
    at = LEAK + timedelta(microseconds=1234)
    once = revoked(signing_id(), at)
    again = revoke_key(once, signing_id(), at=at, now=NOW, reason=COMPROMISE)
    assert again.action is RevocationAction.UNCHANGED


def test_moving_a_revocation_later_is_refused() -> None:
    once = revoked(signing_id())
    with pytest.raises(LocalError, match="would make valid again") as refused:
        revoke_key(once, signing_id(), at=LEAK + MS, now=NOW, reason=COMPROMISE)
    assert refused.value.reason == "REVOCATION_LATER"


def test_moving_a_revocation_earlier_is_done() -> None:
    once = revoked(signing_id())
    done = revoke_key(once, signing_id(), at=LEAK - timedelta(days=1), now=NOW, reason=COMPROMISE)
    assert (done.action, done.key.revoked_at) == (
        RevocationAction.MOVED_EARLIER, LEAK - timedelta(days=1)
    )  # fmt: skip


def test_another_reason_at_the_same_moment_replaces_the_reason() -> None:
    once = revoked(signing_id(), reason=RevocationReason.SUPERSEDED)
    done = revoke_key(once, signing_id(), at=LEAK, now=NOW, reason=COMPROMISE)
    assert (done.action, done.key.revocation_reason) == (
        RevocationAction.REASON_CHANGED,
        COMPROMISE,
    )


def test_a_key_revoked_without_a_moment_stays_valid_for_nothing() -> None:
    key = entry().signing_keys[0].model_copy(update={"status": KeyStatus.REVOKED})
    record = entry().model_copy(update={"signing_keys": (key,)})
    assert revoke_key(record, key.key_id, at=None, now=NOW, reason=COMPROMISE).entry is record
    with pytest.raises(LocalError) as refused:  # a moment would make valid what came before
        revoke_key(record, key.key_id, at=NOW, now=NOW, reason=COMPROMISE)
    assert refused.value.reason == "REVOCATION_LATER"


def test_an_unknown_key_or_reason_is_refused_with_its_code() -> None:
    with pytest.raises(LocalError, match="has no key 'feedfacefeedface'") as unknown:
        revoke_key(entry(), "feedfacefeedface", at=LEAK, now=NOW, reason=COMPROMISE)
    assert unknown.value.reason == "UNKNOWN_KEY"
    with pytest.raises(LocalError) as bad:
        revoke_key(entry(), signing_id(), at=LEAK, now=NOW, reason=RevocationReason.UNKNOWN)
    assert bad.value.reason == "BAD_REASON"


# --- what a directory with the revocation refuses -------------------------------------------


def directory_with(changed: PartyEntry, net: Net) -> Directory:
    entries = [changed if p == changed.party_id else n.entry for p, n in net.parties.items()]
    return load_directory(signed_directory(entries), anchor=PINNED, now=NOW)


def opened(net: Net, data: bytes, directory: Directory, now: datetime) -> DossierDelivered:
    done = open_envelope(data, me=net.keys(MUNI), directory=directory,
                         replay_guard=MemoryReplayGuard(), now=now)  # fmt: skip
    assert isinstance(done.message, DossierDelivered)
    return done.message


@pytest.mark.parametrize("version", [1, 2])
@pytest.mark.parametrize("late", [timedelta(0), MS, timedelta(hours=3)], ids=["at", "1ms", "3h"])
def test_an_envelope_the_revoked_key_signed_at_or_after_the_revocation_is_refused(
    version: int, late: timedelta
) -> None:
    net = NETS[version]
    directory = directory_with(revoked(signing_id()), net)
    made = LEAK + late  # as the thief dates it; the receiver's clock agrees
    data = net.seal(DOSSIER, IND, [MUNI], now=made)
    with pytest.raises(EnvelopeRejected) as refused:
        opened(net, data, directory, made)
    assert refused.value.reject_reason is RejectReason.SENDER_KEY_INVALID


@pytest.mark.parametrize("version", [1, 2])
def test_an_envelope_created_before_the_revocation_still_opens(version: int) -> None:
    net = NETS[version]
    directory = directory_with(revoked(signing_id()), net)
    data = net.seal(DOSSIER, IND, [MUNI], now=LEAK - MS)
    assert opened(net, data, directory, NOW) == DOSSIER  # arriving after the revocation


def test_nothing_is_sealed_to_a_revoked_encryption_key_from_its_revocation_on() -> None:
    net = NETS[1]
    directory = directory_with(revoked(encryption_id(), party=MUNI), net)
    before = seal(DOSSIER, sender=net.keys(IND), recipients=[MUNI], directory=directory,
                  now=LEAK - MS)  # fmt: skip
    assert opened(net, before, directory, LEAK) == DOSSIER
    for at in (LEAK, NOW):
        with pytest.raises(UnknownParty, match="no encryption key valid"):
            seal(DOSSIER, sender=net.keys(IND), recipients=[MUNI], directory=directory, now=at)
