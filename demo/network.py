"""A whole LVV network on one machine: every party's keys, the trust anchor, a signed
directory, and a gateway configuration per party — what `lvvx demo` runs on, kept under one
data folder so later commands (and `lvvx gateway run`) can use it.

Its layout is `broker.network_folder`'s.
"""

from __future__ import annotations

import json
import os
import secrets
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from broker.crypto import (
    DEFAULT_DIRECTORY_VALIDITY,
    DEMO_KEY_FILE_KDF,
    AnchorKey,
    ContentKey,
    Directory,
    KeyStore,
    PartyKeys,
    build_directory,
    load_directory,
    sign_directory,
)
from broker.models import KeyAlgorithm, PartyRole
from broker.network_folder import NetworkFolder, gateway_config_text
from broker.owner_only import private_dir
from demo.casebook import NETWORK, Party

DEMO_NETWORK = "lvv-demo"

HYBRID_ROLES = frozenset({PartyRole.DTV, PartyRole.IND})
"""The national services get post-quantum hybrid keys: their dossiers must stay
confidential for decades, so they are the ones 'harvest now, decrypt later' threatens."""


@dataclass(frozen=True)
class LocalNetwork:
    folder: Path
    parties: tuple[Party, ...]
    keys: dict[str, PartyKeys]
    directory: Directory
    tokens: dict[str, str]
    content_keys: dict[str, ContentKey]
    """Each party's key for what its gateway keeps at rest."""

    def state_dir(self, party: str) -> Path:
        return self.folder / "state" / party


def _secret_file(path: Path, value: str) -> None:
    private_dir(path.parent)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(value + "\n")


def create_network(
    folder: Path,
    *,
    now: datetime,
    parties: tuple[Party, ...] = NETWORK,
    directory_until: datetime | None = None,
) -> LocalNetwork:
    """Make a fresh network in ``folder`` (which must not hold one already), its keys and
    directory valid from ``now``; the directory until ``directory_until`` when given (the
    demo's calendar starts months before the real now, and later commands read the
    directory at the real time)."""
    keys_dir = folder / "keys"
    if keys_dir.exists():
        raise FileExistsError(f"{keys_dir} exists; remove the folder to make a new network")
    private_dir(keys_dir)
    passphrase = secrets.token_urlsafe(24)
    _secret_file(folder / "secrets" / "passphrase", passphrase)
    # the demo's key files are made and loaded dozens of times a run: the demo-only KDF cost
    # (its passphrase is kept beside the keys anyway); `lvvx keys init` uses the strong one
    store = KeyStore(keys_dir, kdf=DEMO_KEY_FILE_KDF)
    store.init_anchor(passphrase=passphrase.encode(), now=now)
    for party in parties:
        kem = KeyAlgorithm.MLKEM768_X25519 if party.role in HYBRID_ROLES else KeyAlgorithm.X25519
        store.init_party(party.party_id, party.role, passphrase=passphrase.encode(), now=now,
                         display_name=party.display_name, kem=kem)  # fmt: skip
    validity = (directory_until - now) if directory_until else DEFAULT_DIRECTORY_VALIDITY
    document = build_directory(store.public_entries(), serial=1, network=DEMO_NETWORK, now=now,
                               validity=validity)  # fmt: skip
    (folder / "directory.bin").write_bytes(
        sign_directory(document, store.anchor_private(passphrase.encode()))
    )
    tokens = {p.party_id: secrets.token_urlsafe(24) for p in parties}
    for party_id, token in tokens.items():
        _secret_file(folder / "secrets" / f"{party_id}.token", token)
    return open_network(folder, now=now)


def open_network(folder: Path, *, now: datetime) -> LocalNetwork:
    """Load a network made by `create_network`: keys, checked directory, tokens."""
    passphrase = (folder / "secrets" / "passphrase").read_text().strip().encode()
    store = KeyStore(folder / "keys")
    anchor = AnchorKey.from_record(store.anchor_public())
    directory = load_directory((folder / "directory.bin").read_bytes(), anchor=anchor, now=now,
                               network=DEMO_NETWORK)  # fmt: skip
    by_id = {p.party_id: p for p in NETWORK}
    parties = tuple(
        by_id.get(pid) or Party(pid, entry.role, entry.display_name)
        for pid, entry in directory.parties.items()
    )
    keys = {p.party_id: store.load_party(p.party_id, passphrase) for p in parties}
    content_keys = {p.party_id: store.content_key(p.party_id, passphrase) for p in parties}
    tokens = {
        p.party_id: (folder / "secrets" / f"{p.party_id}.token").read_text().strip()
        for p in parties
        if (folder / "secrets" / f"{p.party_id}.token").exists()
    }
    return LocalNetwork(folder, parties, keys, directory, tokens, content_keys)


def write_gateway_configs(
    net: LocalNetwork,
    *,
    kafka: str | None,
    prefix: str,
    first_port: int = 8081,
    tls: Path | None = None,
) -> dict[str, int]:
    """A `lvvx gateway run` configuration per party; returns each party's HTTP port."""
    ports = {}
    for n, party in enumerate(net.parties):
        port = first_port + n
        ports[party.party_id] = port
        text = gateway_config_text(party.party_id, network=DEMO_NETWORK, prefix=prefix, http_port=port,
                                   kafka=kafka, tls=tls)  # fmt: skip
        path = NetworkFolder(net.folder).gateway_config(party.party_id)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return ports


def write_run_info(folder: Path, **info: object) -> None:
    (folder / "run.json").write_text(json.dumps(info, indent=2, default=str) + "\n")
