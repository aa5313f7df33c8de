"""Hostile envelopes for the demo, slipped straight into inboxes past every gateway — as a
party with write access to a topic, or a compromised gateway, could. Each must end in the
target's dead-letter topic with the reason named here, and reach no back office."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING

from broker.crypto import build_directory, checked_directory, seal
from broker.errors import RejectReason
from broker.models import DossierDelivered, PartyRole
from broker.topics import inbox
from demo.casebook import Case

if TYPE_CHECKING:
    from demo.run import Demo

HOSTILE_KINDS = ("tampered", "replayed", "wrong sender role", "forwarded")


@dataclass(frozen=True, slots=True)
class Hostile:
    kind: str
    target: str
    expected_reason: str


def _party(demo: Demo, role: PartyRole, n: int = 0) -> str:
    return [p.party_id for p in demo.net.parties if p.role is role][n]


async def _first_record(demo: Demo, topic: str) -> bytes:
    """The first envelope ever put in ``topic`` (read with a throw-away consumer group)."""
    consumer = demo.transport.consumer(f"lvvx-demo-attacker.{uuid.uuid4().hex[:8]}", [topic])
    await consumer.start()
    try:
        for _ in range(100):
            records = await consumer.poll(timeout_ms=200, max_records=1)
            if records:
                return records[0].value
    finally:
        await consumer.close()
    raise RuntimeError(f"no record in {topic}")


async def inject_hostile(demo: Demo, cases: list[Case]) -> list[Hostile]:
    muni, other_muni = _party(demo, PartyRole.MUNICIPALITY), _party(demo, PartyRole.MUNICIPALITY, 1)
    ngo, dtv, ind = (
        _party(demo, PartyRole.NGO),
        _party(demo, PartyRole.DTV),
        _party(demo, PartyRole.IND),
    )
    dossier = next(
        s.message for c in cases for s in c.steps if isinstance(s.message, DossierDelivered)
    )
    now = demo.clock()  # the demo's calendar: its recipients judge expiry by it
    injected: list[tuple[str, bytes, Hostile]] = []

    # 1. tampered: a genuine envelope with one byte of its ciphertext changed on the way
    genuine = bytearray(seal(dossier, sender=demo.net.keys[ind], recipients=[muni],
                             directory=demo.net.directory, now=now))  # fmt: skip
    genuine[len(genuine) - 80] ^= 0x01  # inside the ciphertext, which the signature covers
    injected.append(
        (muni, bytes(genuine), Hostile("tampered", muni, RejectReason.BAD_SIGNATURE.value))
    )

    # 2. replayed: the first envelope DT&V ever received, put in its inbox once more
    replay = await _first_record(demo, inbox(dtv, demo.prefix))
    injected.append((dtv, replay, Hostile("replayed", dtv, RejectReason.REPLAY.value)))

    # 3. wrong sender role: a compromised NGO gateway, its policy check removed, delivering a
    #    dossier — which only IND and DT&V may do
    entries = [e.model_copy(update={"role": PartyRole.IND}) if e.party_id == ngo else e
               for e in demo.net.directory.parties.values()]  # fmt: skip
    disguised = checked_directory(build_directory(entries, serial=1, network="forged", now=now))
    forged = seal(
        dossier, sender=demo.net.keys[ngo], recipients=[muni], directory=disguised, now=now
    )
    injected.append(
        (muni, forged, Hostile("wrong sender role", muni, RejectReason.POLICY_DENIED.value))
    )

    # 4. forwarded: a municipality passes an envelope meant for it on to another municipality
    mine = await _first_record(demo, inbox(muni, demo.prefix))
    injected.append(
        (other_muni, mine, Hostile("forwarded", other_muni, RejectReason.NOT_A_RECIPIENT.value))
    )

    async with demo.transport.producer() as producer:
        for target, data, _ in injected:
            await producer.send(inbox(target, demo.prefix), data, key=b"hostile")
    return [h for _, _, h in injected]
