"""A network folder: what `lvvx demo` makes and `lvvx network add-party` extends — one
machine's view of a whole network, kept under one folder so that `lvvx gateway run` and the
operator's commands find everything by convention::

    keys/                 every party's key files and public records, and the anchor's
    secrets/passphrase    the key passphrase (mode 0600)
    secrets/<party>.token each back office's API token (mode 0600)
    directory.bin         the signed key directory (each gateway's bootstrap)
    gateways/<party>.toml a configuration for `lvvx gateway run`
    state/<party>/        each gateway's store
    log.db                the embedded log (when not on Kafka)
    run.json              how the network runs (transport, Kafka, topic prefix, PKI)

A gateway configuration names the other files relative to itself (``../keys``), so the
folder can be moved as a whole.
"""

from __future__ import annotations

import json
import tomllib
from dataclasses import dataclass
from pathlib import Path

FIRST_HTTP_PORT = 8081
"""The first gateway's API port; each further party takes the next one."""


@dataclass(frozen=True, slots=True)
class NetworkFolder:
    root: Path

    @property
    def keys(self) -> Path:
        return self.root / "keys"

    @property
    def directory_file(self) -> Path:
        return self.root / "directory.bin"

    @property
    def passphrase_file(self) -> Path:
        return self.root / "secrets" / "passphrase"

    def token_file(self, party: str) -> Path:
        return self.root / "secrets" / f"{party}.token"

    def gateway_config(self, party: str) -> Path:
        return self.root / "gateways" / f"{party}.toml"

    def state_dir(self, party: str) -> Path:
        return self.root / "state" / party

    def next_http_port(self) -> int:
        """One above the highest API port of the folder's gateway configurations."""
        ports = []
        for path in sorted((self.root / "gateways").glob("*.toml")):
            try:
                port = tomllib.loads(path.read_text()).get("http_port")
            except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
                continue
            if isinstance(port, int):
                ports.append(port)
        return max(ports) + 1 if ports else FIRST_HTTP_PORT


def _string(value: object) -> str:
    """A TOML basic string (JSON's escapes are TOML's)."""
    return json.dumps(str(value), ensure_ascii=False)


def gateway_config_text(
    party: str, *, network: str, prefix: str, http_port: int, kafka: str | None = None,
    tls: Path | None = None,
) -> str:  # fmt: skip
    """The `lvvx gateway run` configuration of ``party`` in a network folder: on Kafka at
    ``kafka`` if given (over mutual TLS with the PKI in ``tls``), else the embedded log."""
    lines = [
        f"party = {_string(party)}",
        'keys_dir = "../keys"',
        'directory_file = "../directory.bin"',
        'anchor_file = "../keys/anchor.public.json"',
        f"network = {_string(network)}",
        f"data_dir = {_string(f'../state/{party}')}",
        f'transport = "{"kafka" if kafka else "embedded"}"',
        'embedded_log = "../log.db"',
        f"topic_prefix = {_string(prefix)}",
        f"http_port = {http_port}",
        f"api_token_file = {_string(f'../secrets/{party}.token')}",
    ]
    if kafka:
        lines += ["", "[kafka]", f"bootstrap_servers = {_string(kafka)}"]
    if kafka and tls:
        pki = tls.resolve()
        lines += [
            'security_protocol = "SSL"',
            f"ssl_cafile = {_string(pki / 'ca.pem')}",
            f"ssl_certfile = {_string(pki / f'{party}.crt')}",
            f"ssl_keyfile = {_string(pki / f'{party}.key')}",
        ]
    return "\n".join(lines) + "\n"
