"""A development PKI for mutual TLS at the Kafka brokers (`lvvx pki init`).

One CA signs a broker certificate (SAN localhost and 127.0.0.1, server and client use: the
brokers also talk to each other), an admin certificate, and a client certificate per party.
The brokers map a certificate's subject to a principal (deploy/kafka): the party id for
``OU=lvv-parties``, ``broker`` and ``admin`` for ``OU=lvv-infra``, so ACLs are written per
party id. Everything is PEM, which Kafka 4 reads directly (PKCS#8 keys).

TLS keys are separate from a party's envelope keys on purpose: they protect the connection
to the broker, are rotated on another schedule, and may live on other machines. In
production a party's certificate comes from the network's CA after an identity check
(deploy/README.md); this command makes a self-contained one for development and tests.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from broker.errors import KeyStoreError

PARTIES_OU = "lvv-parties"
INFRA_OU = "lvv-infra"
ORGANISATION = "LVV Exchange (development PKI)"

CA_VALIDITY = timedelta(days=3650)
CERT_VALIDITY = timedelta(days=397)
"""Leaf certificates for about a year (the CA/Browser Forum's limit is a good habit)."""

BROKER_NAMES = ("localhost", "kafka", "kafka-1", "kafka-2", "kafka-3")
"""DNS names in the broker certificate: loopback here, and the compose service names."""


@dataclass(frozen=True, slots=True)
class TlsFiles:
    """The files a client needs: trust anchor, its certificate and its key."""

    ca: Path
    certificate: Path
    key: Path


def _name(common_name: str, unit: str) -> x509.Name:
    # ASN.1 order O, OU, CN: Java prints it CN=…,OU=…,O=… (RFC 2253), which the
    # brokers' principal mapping rules match
    return x509.Name([
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, ORGANISATION),
        x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, unit),
        x509.NameAttribute(NameOID.COMMON_NAME, common_name),
    ])  # fmt: skip


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _write(path: Path, data: bytes, *, private: bool = False) -> None:
    if private:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
    else:
        path.write_bytes(data)


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())  # fmt: skip


def _pem_cert(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


class Pki:
    """A PKI folder: ``ca.pem`` (+ ``ca.key``), and ``<name>.crt`` / ``<name>.key`` per
    identity, with ``<name>.keystore.pem`` (key and chain in one file) for Java's Kafka."""

    def __init__(self, folder: str | os.PathLike[str]) -> None:
        self.folder = Path(folder)

    def files(self, name: str) -> TlsFiles:
        """The TLS files of ``name`` (a party id, ``admin`` or ``broker``)."""
        files = TlsFiles(
            self.folder / "ca.pem", self.folder / f"{name}.crt", self.folder / f"{name}.key"
        )
        for path in (files.ca, files.certificate, files.key):
            if not path.exists():
                raise KeyStoreError(f"no {path.name} in {self.folder} (run `lvvx pki init`)")
        return files

    def init(self, parties: Iterable[str], *, now: datetime) -> list[str]:
        """Make the CA and every certificate; returns the names certified."""
        self.folder.mkdir(parents=True, exist_ok=True)
        if (self.folder / "ca.pem").exists():
            raise KeyStoreError(f"{self.folder} already holds a CA; remove it to make a new PKI")
        ca_key = _key()
        ca_name = x509.Name([
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, ORGANISATION),
            x509.NameAttribute(NameOID.COMMON_NAME, "LVV Exchange development CA"),
        ])  # fmt: skip
        ca = (
            x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
            .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(minutes=5)).not_valid_after(now + CA_VALIDITY)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                         content_commitment=False, key_encipherment=False,
                                         data_encipherment=False, key_agreement=False,
                                         encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256())
        )  # fmt: skip
        _write(self.folder / "ca.pem", _pem_cert(ca))
        _write(self.folder / "ca.key", _pem_key(ca_key), private=True)
        broker_san = [x509.DNSName(n) for n in BROKER_NAMES] + [
            x509.IPAddress(ipaddress.ip_address("127.0.0.1"))
        ]
        leaves = [("broker", INFRA_OU, broker_san, True), ("admin", INFRA_OU, [], False)]
        leaves += [(p, PARTIES_OU, [], False) for p in parties]
        for name, unit, san, server in leaves:
            self._issue(ca, ca_key, name, unit, san, server=server, now=now)
        return [name for name, *_ in leaves]

    def certify(self, parties: Iterable[str], *, now: datetime) -> list[str]:
        """Client certificates for ``parties`` from this folder's CA (a party joining the
        network), replacing any they have; returns the names certified."""
        try:
            ca = x509.load_pem_x509_certificate((self.folder / "ca.pem").read_bytes())
            ca_key = serialization.load_pem_private_key(
                (self.folder / "ca.key").read_bytes(), password=None
            )
        except (OSError, ValueError) as exc:
            raise KeyStoreError(f"no usable CA (ca.pem, ca.key) in {self.folder}: {exc}") from exc
        if not isinstance(ca_key, ec.EllipticCurvePrivateKey):
            raise KeyStoreError(f"{self.folder}/ca.key is not the CA's EC key")
        names = list(parties)
        for name in names:
            self._issue(ca, ca_key, name, PARTIES_OU, [], server=False, now=now)
        return names

    def _issue(self, ca: x509.Certificate, ca_key: ec.EllipticCurvePrivateKey, name: str, unit: str,
               san: Sequence[x509.GeneralName], *, server: bool, now: datetime) -> None:  # fmt: skip
        """``name``'s key, certificate and keystore, signed by ``ca``; the key is written
        first, so a certificate on disk always has its key beside it."""
        key = _key()
        usages = [ExtendedKeyUsageOID.CLIENT_AUTH] + (
            [ExtendedKeyUsageOID.SERVER_AUTH] if server else []
        )
        builder = (
            x509.CertificateBuilder().subject_name(_name(name, unit)).issuer_name(ca.subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(minutes=5)).not_valid_after(now + CERT_VALIDITY)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        )  # fmt: skip
        if san:
            builder = builder.add_extension(x509.SubjectAlternativeName(san), critical=False)
        cert = builder.sign(ca_key, hashes.SHA256())
        _write(self.folder / f"{name}.key", _pem_key(key), private=True)
        # key and chain in one file: what a Java client or broker reads as a PEM keystore
        _write(self.folder / f"{name}.keystore.pem", _pem_key(key) + _pem_cert(cert) + _pem_cert(ca),
               private=True)  # fmt: skip
        _write(self.folder / f"{name}.crt", _pem_cert(cert))
