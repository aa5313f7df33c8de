"""Onboarding a party into a running network (`lvvx network add-party`, docs/OPERATING.md
"Onboarding a party"): one procedure of steps, each of which first looks at what is there
and changes only what is missing. Run again after success it changes nothing and says so;
run again after a failure half-way it completes what is left.

| # | step | what it does | unchanged when |
| --- | --- | --- | --- |
| 1 | keys | the party's key files and public record (`KeyStore.init_party`) | its public record is in the key folder |
| 2 | certificate | its TLS client certificate from the network's CA (secured network) | its certificate is in the PKI folder |
| 3 | directory | every record of the key folder, a serial above the newest on the topic, signed by the anchor, written to the directory file | the newest directory on the topic, or a newer directory file, lists the party with this record |
| 4 | topics | its inbox, DLQ and audit topic; on a secured cluster every ACL the policy gives (`broker.provision.apply`) | nothing to create, add or remove |
| 5 | publish | the directory to the directory topic (`publish_directory`), where every gateway takes it | the topic's newest lists the party with this record |
| 6 | gateway | its `lvvx gateway run` configuration and back-office API token | its configuration file exists |

Topics and ACLs come before the publication, not after: a gateway sends to the party as soon
as it takes the directory, so the party's inbox must exist, and be writable to whoever may
send to it, by then.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from pathlib import Path

from broker import topics
from broker.crypto import (
    DEFAULT_DIRECTORY_VALIDITY,
    DEFAULT_KEY_VALIDITY,
    KEY_FILE_KDF,
    AnchorKey,
    Directory,
    KeyFileKdf,
    KeyStore,
    Pki,
    build_directory,
    checked_directory,
    generate_party,
    load_directory,
    replace_private,
    sign_directory,
)
from broker.directory_feed import PublishAction, best_directory, publish_directory
from broker.errors import KeyStoreError, LocalError
from broker.models import KeyAlgorithm, PartyEntry, PartyRole
from broker.network_folder import NetworkFolder, gateway_config_text
from broker.owner_only import write_private_text
from broker.provision import Layout, Plan, apply, desired_topics
from broker.transport import Transport
from broker.transport.kafka import KafkaTransport

TOKEN_BYTES = 24
"""A back office's API token: 192 random bits, as the demo makes them."""


class Status(StrEnum):
    PLANNED = "planned"
    """A dry run: the step would change this."""
    DONE = "done"
    UNCHANGED = "unchanged"
    """Nothing was missing."""


@dataclass(frozen=True, slots=True)
class Step:
    name: str
    status: Status
    detail: str
    changes: tuple[str, ...] = ()
    """One line per change (a topic, an ACL, a party added to the directory)."""


@dataclass(frozen=True, slots=True)
class Newcomer:
    """The party to bring in."""

    party: str
    role: PartyRole
    display_name: str | None = None
    kem: KeyAlgorithm = KeyAlgorithm.X25519
    key_validity: timedelta = DEFAULT_KEY_VALIDITY


@dataclass(frozen=True, slots=True)
class Network:
    """The running network: its folder, and how to reach its log."""

    folder: NetworkFolder
    transport: Transport
    """Reads and writes the directory topic: as the admin on a secured cluster."""
    admin: KafkaTransport | None = None
    """On a secured cluster (with ``pki``): applies topics and ACLs."""
    pki: Path | None = None
    """The PKI folder of a secured cluster, with the CA's key (`lvvx pki init`)."""
    kafka: str | None = None
    """Bootstrap servers, for the new gateway's configuration (None: the embedded log)."""
    layout: Layout = field(default_factory=Layout)
    """The topic prefix, and how the party's topics are made."""
    directory_validity: timedelta = DEFAULT_DIRECTORY_VALIDITY
    kdf: KeyFileKdf = KEY_FILE_KDF
    http_port: int | None = None
    """The new gateway's API port (None: one above the folder's other gateways')."""


Report = Callable[[Step], None]


async def add_party(
    newcomer: Newcomer, network: Network, *, passphrase: bytes | None, now: datetime,
    dry_run: bool = False, report: Report = lambda step: None,
) -> list[Step]:  # fmt: skip
    """Bring ``newcomer`` into ``network`` (the module's table gives the steps); each step is
    handed to ``report`` as soon as it is known, so a failure later leaves a record of what
    was done. ``passphrase`` (of the key files and the anchor) may be None in a dry run."""
    if passphrase is None and not dry_run:
        raise LocalError("onboarding needs the key passphrase", reason="KEY_STORE")
    run = _Onboarding(newcomer, network, passphrase, now, dry_run)
    steps = []
    for step in (run.keys, run.certificate, run.directory, run.topics, run.publish, run.gateway):
        steps.append(await step())
        report(steps[-1])
    return steps


def start_command(folder: NetworkFolder, party: str) -> str:
    """The command that starts ``party``'s gateway."""
    return (
        f"LVVX_KEY_PASSPHRASE_FILE={folder.passphrase_file} "
        f"lvvx gateway run --config {folder.gateway_config(party)}"
    )


class _Onboarding:
    """One run of the steps; what a step finds is kept for the steps after it."""

    def __init__(self, newcomer: Newcomer, network: Network, passphrase: bytes | None,
                 now: datetime, dry_run: bool) -> None:  # fmt: skip
        self.who, self.net, self.now, self.dry_run = newcomer, network, now, dry_run
        self.passphrase = passphrase
        self.store = KeyStore(network.folder.keys, kdf=network.kdf)
        self.anchor = AnchorKey.from_record(self.store.anchor_public())
        self.entry: PartyEntry | None = None
        self.chosen: Directory | None = None  # the directory the network is to have
        self.signed: bytes | None = None  # ... signed (None: a dry run's, unsigned)
        self.on_topic = False  # the topic's newest directory has the party already

    def _done(self) -> Status:
        return Status.PLANNED if self.dry_run else Status.DONE

    async def keys(self) -> Step:
        who = self.who
        existing = {e.party_id: e for e in self.store.public_entries()}.get(who.party)
        if existing is not None:
            if existing.role is not who.role:
                raise LocalError(f"{who.party} is in the key folder already as a {existing.role.value}, "
                                 f"not a {who.role.value}", reason="ROLE_MISMATCH")  # fmt: skip
            self.entry = existing
            return Step(
                "keys", Status.UNCHANGED, f"{who.party}'s public record is in {self.store.folder}"
            )
        if self.dry_run:  # made in memory only, so the later steps can plan with its record
            self.entry = generate_party(who.party, who.role, now=self.now, display_name=who.display_name,
                                        kem=who.kem, validity=who.key_validity).entry  # fmt: skip
            return Step("keys", Status.PLANNED, f"make {who.party}'s keys in {self.store.folder}")
        assert self.passphrase is not None
        try:
            self.entry = self.store.init_party(who.party, who.role, passphrase=self.passphrase, now=self.now,
                                               display_name=who.display_name, kem=who.kem,
                                               validity=who.key_validity)  # fmt: skip
        except KeyStoreError as exc:
            raise KeyStoreError(f"{exc.message} (an interrupted run left key files of {who.party} "
                                "without its public record: remove them and run again)") from exc  # fmt: skip
        return Step("keys", Status.DONE, f"made {who.party}'s keys in {self.store.folder}")

    async def certificate(self) -> Step:
        pki, party = self.net.pki, self.who.party
        if pki is None:
            return Step("certificate", Status.UNCHANGED, "no PKI given: the network is not secured")
        if (pki / f"{party}.crt").exists():  # written last, after its key
            return Step("certificate", Status.UNCHANGED, f"{pki / (party + '.crt')} exists")
        if not self.dry_run:
            Pki(pki).certify([party], now=self.now)
        return Step(
            "certificate", self._done(), f"issue {party}'s client certificate from {pki / 'ca.pem'}"
        )

    async def directory(self) -> Step:
        assert self.entry is not None
        party, file = self.who.party, self.net.folder.directory_file
        current = load_directory(file.read_bytes(), anchor=self.anchor, now=self.now)
        network = current.document.network
        records = await self.net.transport.read_topic(topics.directory(self.net.layout.prefix))
        newest, _ = best_directory(records, anchor=self.anchor, network=network, serial_in_use=-1,
                                   now=self.now)  # fmt: skip
        if newest is not None and newest.parties.get(party) == self.entry:
            self.chosen, self.on_topic = newest, True
            return Step("directory", Status.UNCHANGED,
                        f"serial {newest.serial} on the topic lists {party} already")  # fmt: skip
        if (newest is None or current.serial > newest.serial) and current.parties.get(
            party
        ) == self.entry:
            self.chosen, self.signed = current, file.read_bytes()  # made by a run that stopped
            return Step("directory", Status.UNCHANGED,
                        f"{file} (serial {current.serial}, not yet published) lists {party} already")  # fmt: skip
        return self._build(newest or current, network)

    def _build(self, base: Directory, network: str) -> Step:
        assert self.entry is not None
        entries = {e.party_id: e for e in self.store.public_entries()}
        entries[self.who.party] = self.entry  # a dry run's is not on disk
        serial = max(int(self.now.timestamp()), base.serial + 1)
        document = build_directory(list(entries.values()), serial=serial, network=network, now=self.now,
                                   validity=self.net.directory_validity)  # fmt: skip
        changes = tuple(f"add {p}" for p in sorted(entries.keys() - base.parties.keys())) + tuple(
            f"remove {p}" for p in sorted(base.parties.keys() - entries.keys())
        ) + tuple(f"new keys of {p}" for p in sorted(entries.keys() & base.parties.keys())
                  if entries[p] != base.parties[p])  # fmt: skip
        detail = (f"serial {serial} of network {network}, {len(entries)} parties, signed by the anchor, "
                  f"into {self.net.folder.directory_file}")  # fmt: skip
        if self.dry_run:
            self.chosen = checked_directory(document)
            return Step("directory", Status.PLANNED, detail, changes)
        assert self.passphrase is not None
        self.signed = sign_directory(document, self.store.anchor_private(self.passphrase))
        self.chosen = load_directory(self.signed, anchor=self.anchor, now=self.now)
        replace_private(self.net.folder.directory_file, self.signed, mode=0o644)
        return Step("directory", Status.DONE, detail, changes)

    async def topics(self) -> Step:
        assert self.chosen is not None
        net, layout = self.net, self.net.layout
        if net.admin is not None:
            plan = await apply(net.admin, self.chosen, layout, dry_run=self.dry_run)
            what = "topics and ACLs"
        else:  # a cluster without an authorizer (or the embedded log) has no ACLs to apply
            specs = desired_topics(self.chosen, layout)
            present = {tp.topic for tp in await net.transport.end_offsets([s.name for s in specs])}
            plan = Plan(topics_to_create=[s for s in specs if s.name not in present])
            if not self.dry_run:
                await net.transport.ensure_topics(plan.topics_to_create)
            what = "topics (no ACLs: the network is not secured)"
        if plan.empty:
            return Step("topics", Status.UNCHANGED, f"{what} as the directory needs")
        return Step(
            "topics", self._done(), f"{len(plan.lines())} changes to {what}", tuple(plan.lines())
        )

    async def publish(self) -> Step:
        assert self.chosen is not None
        topic, serial = topics.directory(self.net.layout.prefix), self.chosen.serial
        if self.on_topic:
            return Step("publish", Status.UNCHANGED, f"serial {serial} is on {topic}")
        if self.signed is None:  # a dry run's directory, never signed
            return Step("publish", Status.PLANNED, f"serial {serial} to {topic}")
        done = await publish_directory(self.net.transport, self.signed, anchor=self.anchor, now=self.now,
                                       prefix=self.net.layout.prefix, dry_run=self.dry_run)  # fmt: skip
        if done.action is PublishAction.UNCHANGED:
            return Step("publish", Status.UNCHANGED, f"serial {serial} is on {topic}")
        return Step("publish", self._done(), f"serial {serial} to {topic}")

    async def gateway(self) -> Step:
        assert self.chosen is not None
        folder, party = self.net.folder, self.who.party
        config = folder.gateway_config(party)
        if config.exists():
            return Step("gateway", Status.UNCHANGED, f"{config} exists (left as it is)")
        port = self.net.http_port or folder.next_http_port()
        if not self.dry_run:
            token = folder.token_file(party)
            if not token.exists():
                write_private_text(token, secrets.token_urlsafe(TOKEN_BYTES) + "\n")
            write_private_text(config, gateway_config_text(
                party, network=self.chosen.document.network, prefix=self.net.layout.prefix, http_port=port,
                kafka=self.net.kafka, tls=self.net.pki,
            ))  # fmt: skip
        return Step("gateway", self._done(), f"write {config} (API on port {port}, token in "
                    f"{folder.token_file(party)})")  # fmt: skip
