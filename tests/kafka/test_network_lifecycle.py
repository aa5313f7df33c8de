"""Running the network for years (issue 15 §4), on real Kafka: four `lvvx gateway run`
processes and `lvvx audit follow`, with back-office traffic through the gateways' APIs the
whole time, while the programme office works on the running network — no process restarted
but the ones the procedure starts. Each step is a function below; the scenario runs them in
turn, and `running_network`'s ending checks what must hold throughout: by the history
checker zero lost and zero duplicated, the follower silent having verified every chain (the
onboarded pilot's too), `lvvx audit verify` clean, every first gateway still the process it
started as.

Where the command a step stands for is not built yet, the step makes the library calls it
will (a comment names the command). Run with ``-s`` for the figures."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from broker.crypto import (
    Directory,
    PartyKeys,
    build_directory,
    inspect_envelope,
    seal,
    sign_directory,
)
from broker.gateway import utc_now
from broker.models import PartyRole
from broker.topics import directory, directory_key, dlq, inbox
from demo.casebook import DTV, IND, LVV_LOCATIONS, MUNICIPALITIES
from demo.examples import example
from demo.network import DEMO_NETWORK
from tests.conftest import KAFKA_BOOTSTRAP
from tests.faults.history import History, Outcome, check
from tests.faults.traffic import Traffic
from tests.lifecycle_network import PILOT, LifecycleNetwork, cli, metrics, sample
from tests.support import eventually

pytestmark = pytest.mark.kafka

RATE_MSG_S = 4.0
"""Traffic the whole run: enough to have sends in flight at every step, little enough that
five gateways, the follower and this process share two cores."""

WARM_UP_S = 3.0
"""Traffic before the first step, so every step lands mid-stream."""

DRAIN_TIMEOUT_S = 60.0
"""After the last send, every acknowledged message is in its back office within this."""

STEP_TIMEOUT_S = 30.0
"""A refusal or a delivery a step waits for shows within this."""

FOREIGN = Ed25519PrivateKey.from_private_bytes(b"\x51" * 32)
"""An anchor key nobody pinned: what an attacker signs a directory with."""

MUNICIPALITY = MUNICIPALITIES[0].party_id
"""The municipality whose keys are rotated (Amsterdam: half the traffic goes through it)."""


@dataclass
class Run:
    """What the steps work on: the network, an HTTP client, the traffic and the figures the
    run prints at the end."""

    net: LifecycleNetwork
    client: httpx.AsyncClient
    traffic: Traffic
    readers: list[asyncio.Task[None]]
    stop_reading: asyncio.Event
    figures: dict[str, str] = field(default_factory=dict)

    @property
    def history(self) -> History:
        return self.traffic.history

    def read(self, party: str) -> None:
        self.readers.append(asyncio.create_task(self.traffic.read(party, self.stop_reading)))

    async def delivered(self, party: str, message_id: uuid.UUID) -> None:
        """Until ``message_id`` is in ``party``'s back office."""
        await eventually(lambda: any(d.party == party and d.message_id == message_id
                                     for d in self.history.deliveries),
                         f"{message_id} delivered to {party}", timeout_s=STEP_TIMEOUT_S)  # fmt: skip


# --- the steps ------------------------------------------------------------------------------


ROTATION_LEAD_S = 15
"""From `lvvx keys rotate` to the activation: more than publish's 10 s notice
(`KEY_CHANGE_NOTICE`) plus the time to publish and be taken."""


async def rotate_a_municipality(run: Run) -> None:
    """A municipality's keys rotated mid-stream with `lvvx keys rotate`, the next directory
    published before the activation: from the activation what it sends is signed with its
    new key and what is sent to it is wrapped for its new encryption key, and it goes on
    sending (`running_network`'s ending: nothing lost, audit verify clean across the
    rotation, every gateway the process it was)."""
    net = run.net
    old = net.store.public_entry(MUNICIPALITY)
    env = {**os.environ, "LVVX_KEY_PASSPHRASE_FILE": str(net.folder / "secrets" / "passphrase")}
    rotated = subprocess.run(
        cli("keys", "rotate", "--party", MUNICIPALITY, "--keys", str(net.folder / "keys"),
            "--activate-in", str(ROTATION_LEAD_S), "--insecure-demo-kdf"),
        capture_output=True, text=True, env=env, timeout=60, check=False,
    )  # fmt: skip
    assert rotated.returncode == 0, rotated.stderr
    activation = datetime.fromisoformat(json.loads(rotated.stdout)["activation"])
    new = net.store.public_entry(MUNICIPALITY)
    new_signing = max(new.signing_keys, key=lambda k: k.valid_from)
    new_encryption = max(new.encryption_keys, key=lambda k: k.valid_from)
    assert new_signing.key_id not in {k.key_id for k in old.signing_keys}
    published = await net.publish(run.client, net.sign(net.store.public_entries()))
    run.figures["rotation taken by every gateway"] = f"{published.taken_s * 1000:.0f} ms"
    assert utc_now() < activation, "the directory came after the activation: the lead is too short"
    await asyncio.sleep((activation - utc_now()).total_seconds() + 0.5)
    await sends_on(run, MUNICIPALITY)
    signed = await newest_envelope(run, DTV.party_id, MUNICIPALITY)
    assert signed["header"]["sender_key_id"] == new_signing.key_id, signed
    assert signed["signature"] == "valid", signed
    await sends_on(run, IND.party_id)
    wrapped = await newest_envelope(run, MUNICIPALITY, IND.party_id)
    assert {w["key_id"] for w in wrapped["wrapped_keys"] if w["recipient"] == MUNICIPALITY} == {
        new_encryption.key_id
    }, wrapped


async def revoke_ind_old_key(run: Run) -> None:
    """IND's old signing key revoked: an envelope signed with it after the revocation is
    refused SENDER_KEY_INVALID by every gateway; IND, signing with its current key, sends on."""
    net = run.net
    before = net.directory
    env = {**os.environ, "LVVX_KEY_PASSPHRASE_FILE": str(net.folder / "secrets" / "passphrase")}
    revoke = subprocess.run(
        cli("directory", "revoke", "--party", IND.party_id, "--key", net.ind_old_key_id,
            "--reason", "KEY_COMPROMISE", "--keys", str(net.folder / "keys")),
        capture_output=True, text=True, env=env, timeout=60, check=False,
    )  # fmt: skip
    assert revoke.returncode == 0, revoke.stdout + revoke.stderr
    published = await net.publish(run.client, net.sign(net.store.public_entries()))
    run.figures["revocation taken by every gateway"] = f"{published.taken_s * 1000:.0f} ms"
    await refused_everywhere(run, before, "after the revocation")
    await sends_on(run, IND.party_id, more=1)


async def refuse_stale_and_foreign_directories(run: Run) -> None:
    """The directory of before the revocation (a lower serial: it would take the revocation
    back) and a foreign-signed one with a higher serial, published to the topic: every
    gateway refuses both, counts them by reason, keeps its directory, and the revoked key
    stays revoked."""
    net = run.net
    stale = net.signed[0]
    foreign = sign_directory(build_directory(net.store.public_entries(), serial=net.serial + 100,
                                             network=DEMO_NETWORK, now=utc_now()), FOREIGN)  # fmt: skip
    async with net.transport.producer() as producer:  # as anyone who may write the topic can
        for data in (stale.data, foreign):
            await producer.send(
                directory(net.prefix), data, key=directory_key(DEMO_NETWORK, net.anchor.key_id)
            )

    def both_refused(text: str, party: str) -> bool:
        counts = [sample(text, "lvv_directories_refused_total", party=party, reason=reason)
                  for reason in ("OLDER_SERIAL", "FOREIGN_ANCHOR")]  # fmt: skip
        assert sample(text, "lvv_directory_serial", party=party) == net.serial, party
        return counts == [1.0, 1.0]

    await net.each_gateway(run.client, both_refused,
                           "every gateway to refuse the older and the foreign directory")  # fmt: skip
    await refused_everywhere(run, stale.directory, "after the older directory came")


async def onboard_a_pilot_municipality(run: Run) -> None:
    """A new municipality onboarded: its keys in a new directory, published; its gateway
    started. It sends an intake DT&V receives, and DT&V's gateway — not restarted — sends
    to it (`running_network`'s ending: `lvvx audit follow`, not restarted either, verified
    the pilot's chain)."""
    net = run.net
    started = time.monotonic()
    published = await net.add_party(run.client, PILOT)  # lvvx network add-party
    run.figures["add-party to its directory taken by every gateway"] = f"{published.taken_s:.1f} s"
    pilot = net.start_gateway(PILOT.party_id)
    await pilot.wait_ready(run.client)
    run.figures["pilot onboarded (keys to ready gateway)"] = f"{time.monotonic() - started:.1f} s"
    run.traffic.join(PILOT.party_id, pilot.url, pilot.token)
    run.read(PILOT.party_id)

    case_id = uuid.uuid4()
    intake = example("IntakeRegistered").model_copy(update={
        "case_id": case_id, "municipality": PILOT.party_id,
        "lvv_location": LVV_LOCATIONS[PILOT.party_id], "guiding_ngo": None})  # fmt: skip
    dossier = example("DossierDelivered").model_copy(update={"case_id": case_id,
                                                           "delivered_by": PartyRole.DTV})  # fmt: skip
    for what, sender, recipient, message in (("pilot's intake to DT&V", PILOT, DTV, intake),
                                             ("DT&V's dossier to the pilot", DTV, PILOT, dossier)):  # fmt: skip
        sending = time.monotonic()
        message_id = await run.traffic.send_message(
            sender.party_id, (recipient.party_id,), message, 0 if sender is PILOT else 1
        )
        assert message_id is not None, run.traffic.errors
        await run.delivered(recipient.party_id, message_id)
        run.figures[what] = f"{time.monotonic() - sending:.2f} s from the POST to the back office"


# --- what the steps check with ----------------------------------------------------------------


async def newest_envelope(run: Run, party: str, sender: str) -> dict[str, Any]:
    """What `lvvx envelope inspect` says of the newest envelope (by its ``created_at``: the
    topic's partitions have no order between them) from ``sender`` in ``party``'s inbox
    topic, checked against the directory in use."""
    records = await run.net.transport.read_topic(inbox(party, run.net.prefix))
    found = [inspect_envelope(r.value, run.net.directory) for r in records]
    mine = [f for f in found if f.get("header", {}).get("sender") == sender]
    assert mine, f"no envelope from {sender} in {party}'s inbox"
    return max(mine, key=lambda f: str(f["header"]["created_at"]))  # ISO 8601, all UTC


async def sends_on(run: Run, party: str, more: int = 3) -> None:
    """Until the gateway of ``party`` has acknowledged ``more`` sends after this moment
    (the drain at the end sees them delivered)."""

    def acknowledged() -> int:
        return sum(s.sender == party and s.outcome is Outcome.OK for s in run.history.sends)

    before = acknowledged()
    await eventually(lambda: acknowledged() >= before + more, f"{party} to send on",
                     timeout_s=STEP_TIMEOUT_S)  # fmt: skip


async def refused_everywhere(run: Run, believed: Directory, when: str) -> None:
    """An envelope signed now with IND's old key, sealed as a directory that still trusts it
    (``believed``) allows, put in every gateway's inbox: each dead-letters it as
    SENDER_KEY_INVALID."""
    net = run.net
    thief = PartyKeys(IND.party_id, net.ind_old_key, net.ind_old_key_id, {})
    before = {p: key_refusals(await metrics(run.client, g.url), p) for p, g in net.gateways.items()}
    planted: dict[str, bytes] = {}
    async with net.transport.producer() as producer:
        for party in net.gateways:
            # IND may send DT&V and itself nothing: theirs is addressed to the municipality,
            # and refused all the same (the sender's key is checked before anything else)
            local = believed.role(party) in (PartyRole.MUNICIPALITY, PartyRole.NGO)
            case_id = uuid.uuid4()
            dossier = example("DossierDelivered").model_copy(update={"case_id": case_id})
            envelope = seal(dossier, sender=thief, recipients=[party if local else MUNICIPALITY],
                            directory=believed, now=utc_now())  # fmt: skip
            planted[party] = hashlib.sha256(envelope).digest()
            await producer.send(inbox(party, net.prefix), envelope, key=case_id.bytes,
                                headers=(("lvv-sender", IND.party_id.encode()),))  # fmt: skip
    await net.each_gateway(run.client, lambda text, party: key_refusals(text, party) > before[party],
        f"every gateway to refuse the old-key envelope {when}", timeout_s=STEP_TIMEOUT_S)  # fmt: skip
    for party, digest in planted.items():  # and each is in its DLQ, with that reason
        dead = [dict((k, v.decode()) for k, v in r.headers)
                for r in await net.transport.read_topic(dlq(party, net.prefix))]  # fmt: skip
        assert [d["lvv-reason"] for d in dead if d["lvv-envelope-sha256"] == digest.hex()] == [
            "SENDER_KEY_INVALID"
        ], (party, dead)


def key_refusals(text: str, party: str) -> float:
    """How many envelopes ``party``'s gateway refused SENDER_KEY_INVALID, by its metrics."""
    return (
        sample(text, "lvv_messages_rejected_total", party=party, reason="SENDER_KEY_INVALID") or 0.0
    )


# --- the network ----------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def running_network(folder: Path) -> AsyncIterator[Run]:
    """The network started, the directory published, the follower and traffic running;
    yields once traffic flows. On the way out: traffic drained, then every check of what
    must hold throughout."""
    started = time.monotonic()
    net = LifecycleNetwork(folder, KAFKA_BOOTSTRAP)
    client = httpx.AsyncClient(timeout=30.0)
    traffic: Traffic | None = None
    tasks: list[asyncio.Task[None]] = []
    try:
        await net.start(client)
        run_started = time.monotonic()
        first = net.pids()
        history = History()
        traffic = Traffic({p: (g.url, g.token) for p, g in net.gateways.items()}, history)
        stop_sending = asyncio.Event()
        run = Run(net, client, traffic, tasks, asyncio.Event())
        sending = asyncio.create_task(traffic.send(RATE_MSG_S, 0, stop_sending))
        tasks.append(sending)
        for party in net.gateways:
            run.read(party)
        await asyncio.sleep(WARM_UP_S)
        yield run
        stop_sending.set()
        await sending
        await drained(run)
        still = {p: g.pid for p, g in net.gateways.items() if p in first and g.alive()}
        assert still == first, "a gateway of the network restarted or died"
        assert net.follower.alive(), net.follower.stderr.read_text()[-3000:]
        await followed(run, net.gateways)  # a party onboarded since it started too
        assert net.follower.findings() == [], net.follower.output()[-5000:]
        verify = net.audit_verify()
        assert verify.returncode == 0, verify.stdout[-5000:] + verify.stderr[-3000:]
        report = json.loads(verify.stdout)
        assert report["clean"] and report["messages"]["pending"] == 0, report
        mean_s, deliveries = await net.end_to_end(client)
        run.figures["seal to delivery"] = (
            f"{mean_s * 1000:.0f} ms mean over {deliveries} deliveries"
        )
        summary(run, report, run_started - started, time.monotonic() - run_started)
    finally:
        for task in tasks:  # a failed check left them running
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if traffic is not None:
            await traffic.close()
        await client.aclose()
        await net.aclose()


class NotFollowed(AssertionError):
    """The follower has not verified a chain it should have."""


async def followed(run: Run, parties: Iterable[str], timeout_s: float = STEP_TIMEOUT_S) -> None:
    """The follower has verified each of ``parties``' chains at least as far as it is on
    its topic now: it was silent having read them, not for want of reading them."""
    ends = {p: await run.net.audit_events(p) for p in parties}
    seen: dict[str, tuple[float | None, float | None]] = {}
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        text = await run.net.follower.metrics(run.client)
        seen = {p: (sample(text, "lvv_audit_events", gateway=p),
                    sample(text, "lvv_audit_chain_ok", gateway=p)) for p in ends}  # fmt: skip
        if all((events or 0) >= ends[p] and ok == 1.0 for p, (events, ok) in seen.items()):
            return
        await asyncio.sleep(0.5)
    raise NotFollowed(f"the follower's chains (events, ok): {seen}; on the topics: {ends}")


async def drained(run: Run) -> None:
    """Every acknowledged send delivered at each of its recipients, then the readers stopped;
    the history checker finds nothing."""

    def all_delivered() -> bool:
        return not any(a.kind.value == "lost" for a in check(run.history).anomalies)

    await eventually(all_delivered, lambda: f"every acknowledged message delivered: "
                     f"{check(run.history).counts}", timeout_s=DRAIN_TIMEOUT_S, every_s=0.5)  # fmt: skip
    run.stop_reading.set()
    await asyncio.gather(*run.readers)
    verdict = check(run.history)
    assert verdict.ok and verdict.counts["lost"] == verdict.counts["duplicate"] == 0, (
        verdict.as_json()
    )
    run.figures["history"] = (
        f"{verdict.sends['ok']} sends acknowledged ({dict(verdict.sends)}), "
        f"{verdict.deliveries} deliveries, 0 lost, 0 duplicated, no anomaly"
    )


def summary(run: Run, report: dict[str, object], start_s: float, run_s: float) -> None:
    messages = report["messages"]
    assert isinstance(messages, dict)
    lines = [f"network of {len(run.net.gateways)} gateways: started in {start_s:.1f} s, ran {run_s:.1f} s",
             *(f"{k}: {v}" for k, v in run.figures.items()),
             f"audit verify: clean, {messages['sent']} sent, {messages['accounted']} accounted for",
             f"traffic errors: {dict(run.traffic.errors) or 'none'}"]  # fmt: skip
    print("\n" + "\n".join(lines))


# --- the scenarios --------------------------------------------------------------------------

Step = Callable[[Run], Awaitable[None]]

STEPS: tuple[Step, ...] = (
    rotate_a_municipality,
    revoke_ind_old_key,
    refuse_stale_and_foreign_directories,
    onboard_a_pilot_municipality,
)


async def test_the_network_lives_through_rotation_revocation_refusals_and_onboarding(
    tmp_path: Path,
) -> None:
    async with running_network(tmp_path) as run:
        for step in STEPS:
            started = time.monotonic()
            await step(run)
            run.figures[f"step {step.__name__}"] = f"{time.monotonic() - started:.1f} s"
