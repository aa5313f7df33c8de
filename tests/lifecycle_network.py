"""A running LVV network for the lifecycle scenario (issue 15 §4): `lvvx gateway run` per
party on real Kafka, on a topic prefix of its own, every gateway following the directory
topic with the pinned anchor; `lvvx audit follow` beside them from the start; and the
programme office's side — the key folder, the anchor, the directories it signs and
publishes (`publish_directory`, what `lvvx directory publish` does).

IND's public record carries a second signing key from the start, older than the one its
gateway signs with: what a past rotation leaves behind, so that revoking "IND's old key"
leaves IND sending. The test holds that key's private half, as whoever stole it would.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import httpx
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from prometheus_client.parser import text_string_to_metric_families

from broker.audit import Finding
from broker.crypto import (
    DEMO_KEY_FILE_KDF,
    AnchorKey,
    Directory,
    KeyStore,
    build_directory,
    key_id,
    load_directory,
    sign_directory,
)
from broker.directory_feed import publish_directory
from broker.gateway import utc_now
from broker.models import KeyAlgorithm, KeyStatus, PartyEntry, PublicKey
from broker.topics import audit
from broker.transport.kafka import KafkaOptions, KafkaTransport
from demo.casebook import DTV, IND, MUNICIPALITIES, NGOS, Party
from demo.network import (
    DEMO_NETWORK,
    create_network,
    open_network,
    write_gateway_configs,
)
from tests.gateway_processes import GatewayRun, free_port
from tests.support import eventually

PARTIES: tuple[Party, ...] = (MUNICIPALITIES[0], NGOS[0], IND, DTV)
"""The running network: Amsterdam, its guiding NGO, IND and DT&V — the soak's four, among
whom three of the casebook's paths run whole (`tests.faults.traffic` sends them)."""

PILOT = MUNICIPALITIES[4]
"""The pilot municipality onboarded while the network runs (Groningen)."""

TAKE_TIMEOUT_S = 30.0
"""Every gateway takes a published directory within this (they see it in well under 1 s)."""

FOLLOW_READY_S = 60.0
"""`lvvx audit follow` serves its first report within this: imports, topic reads, a pass."""

FINDING = re.compile(rf"^({'|'.join(f.value for f in Finding)})\b", re.MULTILINE)
"""A line `lvvx audit follow` prints for a finding: it starts with the finding's kind."""


def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "cli.main", *args]


def sample(text: str, name: str, **labels: str) -> float | None:
    """The value of the Prometheus sample ``name`` with ``labels`` in ``text``, or None."""
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                return float(s.value)
    return None


async def metrics(client: httpx.AsyncClient, url: str) -> str:
    response = await client.get(f"{url}/metrics")
    response.raise_for_status()
    return response.text


@dataclass
class Published:
    """A directory the office published, and how long every gateway took to take it."""

    directory: Directory
    data: bytes
    taken_s: float


class AuditFollower:
    """`lvvx audit follow` on the network's topics, as DT&V runs it: what it printed and
    its metrics. Each finding is printed once, so its output is the run's record."""

    def __init__(self, folder: Path, kafka: str, prefix: str) -> None:
        self.folder, self.kafka, self.prefix = folder, kafka, prefix
        self.port = free_port()
        self.stdout = folder / "audit-follow.out"
        self.stderr = folder / "audit-follow.err"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        args = cli("audit", "follow", "--data", str(self.folder), "--kafka", self.kafka,
                   "--prefix", self.prefix, "--metrics-port", str(self.port))  # fmt: skip
        with self.stdout.open("ab") as out, self.stderr.open("ab") as err:
            self.proc = subprocess.Popen(args, stdout=out, stderr=err, cwd=self.folder)

    def output(self) -> str:
        return self.stdout.read_text(errors="replace") if self.stdout.exists() else ""

    def findings(self) -> list[str]:
        """Every finding line printed so far."""
        return [line for line in self.output().splitlines() if FINDING.match(line)]

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    async def metrics(self, client: httpx.AsyncClient) -> str:
        return await metrics(client, f"http://127.0.0.1:{self.port}")

    async def wait_ready(self, client: httpx.AsyncClient) -> None:
        """Until it has verified the stream once."""

        async def verified() -> bool:
            assert self.alive(), f"audit follow exited:\n{self.stderr.read_text()[-3000:]}"
            with contextlib.suppress(httpx.HTTPError):
                text = await self.metrics(client)
                return bool(sample(text, "lvv_audit_last_verified_timestamp_seconds"))
            return False

        await eventually(verified, "audit follow's first report", timeout_s=FOLLOW_READY_S,
                         every_s=0.2)  # fmt: skip

    async def stop(self) -> int | None:
        assert self.proc is not None
        self.proc.terminate()
        try:
            return await asyncio.to_thread(self.proc.wait, 30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return None


class LifecycleNetwork:
    """The network's folder (keys, directory, configurations, the gateways' state), its
    running processes, and the programme office's publishing."""

    def __init__(self, folder: Path, kafka: str) -> None:
        self.folder, self.kafka = folder, kafka
        self.prefix = f"lvv.lifecycle-{uuid.uuid4().hex[:8]}.v1"
        net = create_network(folder, now=utc_now(), parties=PARTIES)
        self.passphrase = (folder / "secrets" / "passphrase").read_text().strip().encode()
        self.store = KeyStore(folder / "keys", kdf=DEMO_KEY_FILE_KDF)
        self.anchor = AnchorKey.from_record(self.store.anchor_public())
        self.ind_old_key = Ed25519PrivateKey.generate()
        self.store.write_public_entry(self._with_old_key(self.store.public_entry(IND.party_id)))
        # IND's key folder holds it too, as after a rotation (its gateway signs with the newer)
        self.store.write_key_file(IND.party_id, "signing", self.ind_old_key_id, (self.ind_old_key,),
                                  self.passphrase)  # fmt: skip
        self.serial = 0
        self.signed: list[Published] = []
        """Every directory the office signed, serial 1 first."""
        self.directory = self.sign(self.store.public_entries()).directory  # serial 1, the file's
        self.net = open_network(folder, now=utc_now())
        write_gateway_configs(net, kafka=kafka, prefix=self.prefix, first_port=free_port())
        self.transport = KafkaTransport(KafkaOptions(bootstrap_servers=kafka))
        self.gateways: dict[str, GatewayRun] = {}
        self.follower = AuditFollower(folder, kafka, self.prefix)

    def _with_old_key(self, entry: PartyEntry) -> PartyEntry:
        current = entry.signing_keys[0]
        raw = self.ind_old_key.public_key().public_bytes_raw()
        old = PublicKey(key_id=key_id(raw), algorithm=KeyAlgorithm.ED25519, public_key=raw,
                        valid_from=current.valid_from - timedelta(days=300),
                        valid_until=current.valid_until, status=KeyStatus.ACTIVE)  # fmt: skip
        return entry.model_copy(update={"signing_keys": (current, old)})

    @property
    def ind_old_key_id(self) -> str:
        return key_id(self.ind_old_key.public_key().public_bytes_raw())

    # --- the programme office ------------------------------------------------------------

    def sign(self, entries: Iterable[PartyEntry]) -> Published:
        """The next serial's directory of ``entries``, signed by the anchor and written to
        the network's directory file (a gateway started later bootstraps from it)."""
        self.serial += 1
        document = build_directory(entries, serial=self.serial, network=DEMO_NETWORK, now=utc_now())
        data = sign_directory(document, self.store.anchor_private(self.passphrase))
        (self.folder / "directory.bin").write_bytes(data)
        checked = load_directory(data, anchor=self.anchor, now=utc_now(), network=DEMO_NETWORK)
        self.signed.append(Published(checked, data, 0.0))
        return self.signed[-1]

    async def publish(self, client: httpx.AsyncClient, published: Published) -> Published:
        """`lvvx directory publish`; returns once every running gateway uses it."""
        started = time.monotonic()
        await publish_directory(self.transport, published.data, anchor=self.anchor,
                                now=utc_now(), prefix=self.prefix)  # fmt: skip
        await self.each_gateway(client, lambda text, party: sample(
            text, "lvv_directory_serial", party=party) == published.directory.serial,
            f"every gateway to take directory serial {published.directory.serial}")  # fmt: skip
        self.directory = published.directory
        return Published(published.directory, published.data, time.monotonic() - started)

    async def each_gateway(self, client: httpx.AsyncClient, holds: Callable[[str, str], bool],
                           what: str, timeout_s: float = TAKE_TIMEOUT_S) -> None:  # fmt: skip
        """Wait until ``holds(metrics text, party)`` for every running gateway."""
        pending = set(self.gateways)

        async def all_hold() -> bool:
            for party in sorted(pending):
                if holds(await metrics(client, self.gateways[party].url), party):
                    pending.discard(party)
            return not pending

        await eventually(all_hold, lambda: f"{what}; not yet: {sorted(pending)}",
                         timeout_s=timeout_s, every_s=0.1)  # fmt: skip

    async def add_party(self, client: httpx.AsyncClient, party: Party) -> Published:
        """`lvvx network add-party` for ``party`` (keys, directory signed and published,
        topics, gateway configuration and token); returns once every running gateway uses
        the directory it published."""
        started = time.monotonic()
        env = {
            **os.environ,
            "LVVX_KEY_PASSPHRASE_FILE": str(self.folder / "secrets" / "passphrase"),
        }
        added = await asyncio.to_thread(
            subprocess.run,
            cli("network", "add-party", "--party", party.party_id, "--role", party.role.value,
                "--name", party.display_name, "--data", str(self.folder), "--kafka", self.kafka,
                "--prefix", self.prefix, "--insecure-demo-kdf"),
            capture_output=True, text=True, env=env, cwd=self.folder, timeout=120, check=False,
        )  # fmt: skip
        assert added.returncode == 0, added.stdout + added.stderr
        data = (self.folder / "directory.bin").read_bytes()
        checked = load_directory(data, anchor=self.anchor, now=utc_now(), network=DEMO_NETWORK)
        assert checked.serial > self.serial and party.party_id in checked.parties
        self.serial = checked.serial
        self.signed.append(Published(checked, data, 0.0))
        self.net = open_network(self.folder, now=utc_now())
        await self.each_gateway(client, lambda text, p: sample(
            text, "lvv_directory_serial", party=p) == checked.serial,
            f"every gateway to take directory serial {checked.serial}")  # fmt: skip
        self.directory = checked
        return Published(checked, data, time.monotonic() - started)

    # --- the processes -------------------------------------------------------------------

    async def start(self, client: httpx.AsyncClient) -> None:
        """Directory serial 1 published, then every gateway and the audit follower."""
        await publish_directory(self.transport, (self.folder / "directory.bin").read_bytes(),
                                anchor=self.anchor, now=utc_now(), prefix=self.prefix)  # fmt: skip
        for party in PARTIES:
            self.start_gateway(party.party_id)
        self.follower.start()
        await asyncio.gather(*(g.wait_ready(client) for g in self.gateways.values()),
                             self.follower.wait_ready(client))  # fmt: skip

    def start_gateway(self, party: str) -> GatewayRun:
        run = self.gateways[party] = GatewayRun(self.net, party)
        run.start()
        return run

    async def end_to_end(self, client: httpx.AsyncClient) -> tuple[float, int]:
        """The mean seal-to-delivery delay over every running gateway's deliveries, and
        how many there were (the gateways' ``lvv_end_to_end_seconds``)."""
        total, count = 0.0, 0
        for party, run in self.gateways.items():
            text = await metrics(client, run.url)
            total += sample(text, "lvv_end_to_end_seconds_sum", party=party) or 0.0
            count += int(sample(text, "lvv_end_to_end_seconds_count", party=party) or 0)
        return total / max(count, 1), count

    def pids(self) -> dict[str, int]:
        return {party: run.pid for party, run in self.gateways.items()}

    async def audit_events(self, party: str) -> int:
        """How many events ``party``'s audit chain has on its topic now."""
        return len(await self.transport.read_topic(audit(party, self.prefix)))

    def audit_verify(self) -> subprocess.CompletedProcess[str]:
        """`lvvx audit verify --json` over the whole stream, with the newest directory."""
        args = cli("audit", "verify", "--data", str(self.folder), "--kafka", self.kafka,
                   "--prefix", self.prefix, "--json")  # fmt: skip
        return subprocess.run(args, capture_output=True, text=True, cwd=self.folder, timeout=120)

    async def aclose(self) -> None:
        """Stop every process (SIGTERM, then SIGKILL) and close the office's connection."""
        try:
            await asyncio.gather(*(g.stop() for g in self.gateways.values() if g.alive()))
            if self.follower.alive():
                await self.follower.stop()
        finally:
            for g in self.gateways.values():
                g.kill()
            if self.follower.alive():
                assert self.follower.proc is not None
                self.follower.proc.kill()
            await self.transport.close()
