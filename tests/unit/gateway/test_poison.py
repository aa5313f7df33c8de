"""Poison at a gateway's door: hostile records mixed into its inbox, an oversized one, and a
key directory swapped for an older or foreign-signed one.

- About 1 % poison (garbage, tampered, to another party, replayed as the same bytes or as a
  new envelope with a used message id) among valid envelopes, all in one partition: each
  poison record lands in the DLQ exactly once (counted by its source offset) with its
  reason, every valid message is delivered exactly once, and nothing after the poison waits
  — on the embedded log and on a real Kafka broker (marker ``kafka``).
- A record just under the transport's limit: refused as TOO_LARGE and dead-lettered cut to
  the envelope limit (whole, with the DLQ headers, it no longer fit a record, and the
  gateway's loop died on it, again at every restart).
- A directory older than the one a gateway used, or signed by another key than the pinned
  anchor: refused with `DirectoryRejected` saying why, at start and at run time, and the
  gateway keeps the directory it has (tests/unit/crypto/test_directory.py holds `load_directory` itself
  to every refusal; these are the gateway's).
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import random
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from broker.crypto import (
    MAX_ENVELOPE_BYTES,
    KeyStore,
    Sealer,
    SealRequest,
    build_directory,
    load_directory,
    sign_directory,
)
from broker.errors import DirectoryRejected
from broker.gateway import Gateway, GatewayStore
from broker.gateway.service import build_gateway
from broker.gateway.settings import GatewaySettings
from broker.models import PartyRole
from broker.topics import dlq, inbox
from broker.transport import MAX_RECORD_BYTES, Record, TopicSpec, Transport
from broker.transport.embedded import EmbeddedTransport
from demo.examples import example
from demo.network import DEMO_NETWORK, create_network
from tests.crypto_net import CONTENT_KEY, NOW, PINNED, ROLE_OF, A, Net, signed_directory
from tests.support import eventually

NET = Net()
IND, MUNI, NGO = A[PartyRole.IND], A[PartyRole.MUNICIPALITY], A[PartyRole.NGO]
OTHER_MUNI = next(p for p, r in ROLE_OF.items() if r is PartyRole.MUNICIPALITY and p != MUNI)
KEY = b"one-partition"  # every record in one partition: poison ahead of valid ones
VALID = 495
POISON_KINDS = ("garbage", "tampered", "wrong-recipient", "replayed", "replayed-id")
REASONS = {
    "garbage": {"MALFORMED", "UNSUPPORTED_VERSION"},
    "tampered": {"BAD_SIGNATURE"},
    "wrong-recipient": {"NOT_A_RECIPIENT"},
    "replayed": {"REPLAY"},
    "replayed-id": {"REPLAY"},
    "oversized": {"TOO_LARGE"},
}
WAIT_S = 120.0  # generous: two shared cores; normally a few seconds


def valid_envelopes(n: int) -> list[tuple[uuid.UUID, bytes]]:
    """``n`` valid envelopes from IND to the municipality, sealed as one batch."""
    requests = [SealRequest(example("DossierDelivered"), (MUNI,), uuid.uuid4()) for _ in range(n)]
    sealed = Sealer(NET.keys(IND), NET.directory, lambda: NOW).seal_many(requests)
    return [(r.message_id or uuid.uuid4(), e) for r, e in zip(requests, sealed, strict=True)]


def poison_stream(seed: int) -> tuple[list[tuple[str, bytes]], set[uuid.UUID]]:
    """(kind, value) in inbox order: ``VALID`` valid envelopes and one poison record of each
    kind (1 %), each after the first valid envelopes and before many more; and the valid
    envelopes' message ids."""
    rnd = random.Random(seed)
    valid = valid_envelopes(VALID)
    first_id, first = valid[0]
    tampered = bytearray(valid[1][1])
    tampered[-100] ^= 0x01  # a bit of the ciphertext
    poison = [
        ("garbage", b"\x04" + rnd.randbytes(1200)),  # format 2, then noise
        ("tampered", bytes(tampered)),
        ("wrong-recipient", NET.seal(example("DossierDelivered"), IND, [OTHER_MUNI, NGO])),
        ("replayed", first),  # the same bytes again
        ("replayed-id", NET.forge(example("DossierDelivered"), IND, [MUNI], message_id=first_id)),
    ]
    stream: list[tuple[str, bytes]] = [("valid", data) for _, data in valid]
    for kind, data in poison:  # after the first 10 valid ones, anywhere before the last 50
        stream.insert(rnd.randint(10, len(stream) - 50), (kind, data))
    return stream, {message_id for message_id, _ in valid}


def headers(record: Record) -> dict[str, str]:
    return {name: value.decode() for name, value in record.headers}


class Door:
    """A municipality's gateway on ``transport``, under a topic prefix of its own."""

    def __init__(self, transport: Transport, folder: Path) -> None:
        self.transport = transport
        self.prefix = f"poison-{uuid.uuid4().hex[:10]}.lvv.v1"
        self.store = GatewayStore(folder / "muni.db", content_key=CONTENT_KEY)
        self.gateway = self.make()
        self.task: asyncio.Task[None] | None = None

    def make(self) -> Gateway:
        return Gateway(keys=NET.keys(MUNI), directory=NET.directory, transport=self.transport,
                       store=self.store, prefix=self.prefix, clock=lambda: NOW)  # fmt: skip

    async def start(self) -> None:
        # the senders' inboxes exist: receipts go there
        await self.transport.ensure_topics(
            [TopicSpec(inbox(p, self.prefix)) for p in (IND, OTHER_MUNI)]
        )
        await self.gateway.start()
        self.task = asyncio.create_task(self.gateway.run())

    async def stop(self) -> None:
        self.gateway.stop()
        if self.task is not None:
            await asyncio.wait_for(self.task, WAIT_S)
        await self.gateway.close()

    async def until(self, delivered: int, dead: int) -> None:
        def reached() -> bool:
            assert self.task is not None
            if self.task.done():
                raise AssertionError(f"the gateway's loop ended: {self.task.exception()!r}")
            counts = self.store.counts()
            return counts["delivered"] >= delivered and counts["rejected"] >= dead

        await eventually(reached, lambda: f"{delivered} delivered, {dead} refused; at {self.store.counts()}",
                         timeout_s=WAIT_S, every_s=0.05)  # fmt: skip

    async def put(self, value: bytes) -> None:
        """``value`` in the inbox, after everything put there before (one partition)."""
        producer = self.transport.producer()
        await producer.start()
        try:
            await producer.send(inbox(MUNI, self.prefix), value, key=KEY)
        finally:
            await producer.close()


@pytest.fixture
async def door(transport: Transport, tmp_path: Path) -> AsyncIterator[Door]:
    d = Door(transport, tmp_path)
    try:
        yield d
    finally:
        if d.task is not None and not d.task.done():
            await d.stop()
        d.store.close()


async def test_poison_is_dead_lettered_once_and_every_valid_message_delivered_once(
    door: Door,
) -> None:
    stream, valid_ids = poison_stream(seed=8)
    stream.insert(len(stream) // 2, ("oversized", b"\x04" + os.urandom(MAX_RECORD_BYTES - 64)))
    await door.start()
    producer = door.transport.producer()
    await producer.start()
    try:
        kind_at: dict[str, str] = {}
        # the first records one by one (a replay must come after its original), the rest
        # in flights of 100: one partition keeps them in order either way
        chunks = [stream[:10]] + [stream[i : i + 100] for i in range(10, len(stream), 100)]
        for n, chunk in enumerate(chunks):
            sends = [producer.send(inbox(MUNI, door.prefix), data, key=KEY) for _, data in chunk]
            metas = [await s for s in sends] if n == 0 else await asyncio.gather(*sends)
            for (kind, _), meta in zip(chunk, metas, strict=True):
                kind_at[f"{meta.topic}/{meta.partition}/{meta.offset}"] = kind
    finally:
        await producer.close()
    poison_at = {source: kind for source, kind in kind_at.items() if kind != "valid"}
    assert (
        len(poison_at) == len(POISON_KINDS) + 1 and len({s.rsplit("/", 2)[1] for s in kind_at}) == 1
    )

    await door.until(delivered=VALID, dead=len(poison_at))
    await door.stop()
    # a restarted gateway takes up after the committed offsets: nothing comes twice. That it
    # got past them shows in a later message, behind them in the partition, delivered
    door.gateway = door.make()
    await door.start()
    ((marker_id, marker),) = valid_envelopes(1)
    await door.put(marker)
    await door.until(delivered=VALID + 1, dead=len(poison_at))
    await door.stop()
    valid_ids.add(marker_id)

    dead = await door.transport.read_topic(dlq(MUNI, door.prefix))
    by_source = Counter(headers(r)["lvv-source"] for r in dead)
    assert by_source == Counter(poison_at.keys()), "each poison record dead-lettered exactly once"
    for record in dead:
        h = headers(record)
        kind = poison_at[h["lvv-source"]]
        assert h["lvv-reason"] in REASONS[kind], (kind, h)
        if kind == "oversized":  # cut to fit, and says so; the digest names the original
            assert len(record.value) == MAX_ENVELOPE_BYTES
            assert h["lvv-original-bytes"] == str(MAX_RECORD_BYTES - 63)
        else:
            assert hashlib.sha256(record.value).hexdigest() == h["lvv-envelope-sha256"]
    delivered = [item.message_id for item in door.store.inbox(limit=VALID + 100)]
    assert len(delivered) == VALID + 1 and set(delivered) == valid_ids, "each valid one once"
    assert door.store.counts()["delivered"] == VALID + 1


# --- the key directory ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def network(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("directory-swap") / "net"
    create_network(folder, now=datetime.now(UTC))
    return folder


def settings_for(folder: Path, data_dir: Path) -> GatewaySettings:
    return GatewaySettings(
        party=MUNI, keys_dir=folder / "keys", directory_file=folder / "directory.bin",
        anchor_file=folder / "keys" / "anchor.public.json", network=DEMO_NETWORK,
        data_dir=data_dir, transport="embedded", embedded_log=data_dir / "log.db", api_token="t",
    )  # fmt: skip


def directory_of(folder: Path, serial: int, anchor: Ed25519PrivateKey | None = None) -> bytes:
    passphrase = (folder / "secrets" / "passphrase").read_text().strip().encode()
    store = KeyStore(folder / "keys")
    document = build_directory(store.public_entries(), serial=serial, network=DEMO_NETWORK,
                               now=datetime.now(UTC))  # fmt: skip
    return sign_directory(document, anchor or store.anchor_private(passphrase))


async def started_serial(settings: GatewaySettings) -> int:
    """Build the gateway as `lvvx gateway run` does; the serial of the directory it took."""
    gateway, _ = build_gateway(settings)
    try:
        return gateway.directory.serial
    finally:
        gateway.store.close()
        await gateway.transport.close()


async def test_a_gateway_never_goes_back_to_an_older_directory(
    network: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A withheld revocation: after serial 2, the serial-1 file put back is refused."""
    monkeypatch.setenv(
        "LVVX_KEY_PASSPHRASE", (network / "secrets" / "passphrase").read_text().strip()
    )
    settings = settings_for(network, tmp_path / "state")
    directory_file = tmp_path / "directory.bin"
    settings = settings.model_copy(update={"directory_file": directory_file})
    for serial in (1, 2):
        directory_file.write_bytes(directory_of(network, serial))
        assert await started_serial(settings) == serial

    directory_file.write_bytes(directory_of(network, 1))
    with pytest.raises(DirectoryRejected, match=r"serial 1 is older than the one in use \(2\)"):
        build_gateway(settings)
    store = GatewayStore(tmp_path / "state" / "gateway.db", content_key=CONTENT_KEY)
    assert store.directory_serial() == 2  # refused: nothing changed
    store.close()
    directory_file.write_bytes(directory_of(network, 3))
    assert await started_serial(settings) == 3


@pytest.mark.parametrize("forgery", ["another-anchor", "claims-the-pinned-anchor"])
async def test_a_gateway_refuses_a_directory_not_signed_by_its_anchor(
    network: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, forgery: str
) -> None:
    monkeypatch.setenv(
        "LVVX_KEY_PASSPHRASE", (network / "secrets" / "passphrase").read_text().strip()
    )
    directory_file = tmp_path / "directory.bin"
    settings = settings_for(network, tmp_path / "state").model_copy(
        update={"directory_file": directory_file}
    )
    foreign = directory_of(network, 5, anchor=Ed25519PrivateKey.generate())
    if forgery == "claims-the-pinned-anchor":  # the pinned key id, another key's signature
        genuine = directory_of(network, 5)
        foreign = genuine[:-64] + foreign[-64:]
        message = "bad signature"
    else:
        message = "another anchor"
    directory_file.write_bytes(foreign)

    with pytest.raises(DirectoryRejected, match=message):
        build_gateway(settings)
    store = GatewayStore(tmp_path / "state" / "gateway.db", content_key=CONTENT_KEY)
    assert store.directory_serial() == 0  # nothing taken from it
    store.close()


async def test_a_running_gateway_refuses_an_older_directory_and_keeps_its_own(
    tmp_path: Path,
) -> None:
    entries = [p.entry for p in NET.parties.values()]
    newer, older = (
        load_directory(signed_directory(entries, serial=s), anchor=PINNED, now=NOW) for s in (3, 2)
    )
    store = GatewayStore(tmp_path / "muni.db", content_key=CONTENT_KEY)
    log = EmbeddedTransport(tmp_path / "log.db")
    gw = Gateway(keys=NET.keys(MUNI), directory=NET.directory, transport=log, store=store, clock=lambda: NOW)  # fmt: skip
    try:
        gw.update_directory(newer)
        assert (gw.directory.serial, store.directory_serial()) == (3, 3)
        with pytest.raises(DirectoryRejected, match="serial 2 is older than the one in use"):
            gw.update_directory(older)
        assert (gw.directory, gw.sealer.directory) == (newer, newer)
        # nor after a restart that began with the older one
        again = Gateway(keys=NET.keys(MUNI), directory=older, transport=log, store=store, clock=lambda: NOW)  # fmt: skip
        with pytest.raises(DirectoryRejected):
            again.update_directory(older)
    finally:
        store.close()
        await log.close()
