"""Defence in depth at the broker, on a real secured Kafka (mutual TLS 1.3, StandardAuthorizer,
deny by default): the ACLs `lvvx topics apply` makes from the directory let each party do
what DESIGN §2 allows and nothing more. Each refusal is its own test."""

from __future__ import annotations

import asyncio
import ssl
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

import pytest
from aiokafka.admin import AIOKafkaAdminClient
from click.testing import CliRunner

from broker.crypto import Pki, load_directory
from broker.errors import TransportError
from broker.provision import Layout, apply, plan
from broker.topics import attachments, audit, dlq, gateway_group, inbox
from broker.transport import OutgoingRecord, TopicPartition
from broker.transport.kafka import KafkaOptions, KafkaTransport
from broker.transport.kafka_acl import describe_acls
from cli.main import cli
from demo.network import LocalNetwork
from demo.run import run_demo
from tests.conftest import PKI, TLS_BOOTSTRAP, require, tls_options
from tests.crypto_net import NOW, PINNED, Net, signed_directory

pytestmark = pytest.mark.kafka

NET = Net()
MUNI, NGO, IND, DTV, COA, AVIM = (
    "gemeente-amsterdam",
    "ngo-perspectief",
    "ind",
    "dtv",
    "coa",
    "avim",
)


@pytest.fixture(scope="module")
def prefix() -> Iterator[str]:
    """A network of its own on the shared broker: topics and ACLs under a fresh prefix."""
    name = f"lvv.sec-{uuid.uuid4().hex[:6]}.v1"

    async def provision() -> None:
        options = tls_options(TLS_BOOTSTRAP, "admin")
        await require(options, "Start it with `make kafka-secure-up`; `make test` does.")
        admin = KafkaTransport(options)
        try:
            await apply(admin, NET.directory, Layout(name, partitions=1))
        finally:
            await admin.close()

    asyncio.run(provision())
    yield name


class Connect(Protocol):
    """The `connect` fixture: a transport with ``identity``'s certificate."""

    def __call__(self, identity: str, **options: object) -> KafkaTransport: ...


@pytest.fixture
async def connect() -> AsyncIterator[Connect]:
    """``connect(identity)``: a transport with that party's certificate, closed afterwards."""
    made: list[KafkaTransport] = []

    def transport(identity: str, **options: object) -> KafkaTransport:
        made.append(KafkaTransport(tls_options(TLS_BOOTSTRAP, identity, **options)))
        return made[-1]

    yield transport
    for t in made:
        await t.close()


async def send_as(transport: KafkaTransport, party: str, prefix: str, topic: str) -> None:
    async with transport.producer(transactional_id=gateway_group(party, prefix)) as producer:
        await producer.send_atomic([OutgoingRecord(topic, b"hello", b"key")])


async def test_a_party_writes_an_inbox_it_may_and_reads_its_own(
    prefix: str, connect: Connect
) -> None:
    await send_as(connect(MUNI), MUNI, prefix, inbox(DTV, prefix))
    dtv = connect(DTV)
    async with dtv.consumer(gateway_group(DTV, prefix), [inbox(DTV, prefix)]) as consumer:
        records = []
        for _ in range(60):
            records += await consumer.poll(timeout_ms=500)
            if records:
                break
    assert [r.value for r in records] == [b"hello"]


async def _handshake(context: ssl.SSLContext) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=TLS_BOOTSTRAP, security_protocol="SSL", ssl_context=context,
                                request_timeout_ms=5_000)  # fmt: skip
    try:
        await asyncio.wait_for(admin.start(), 15)
        await asyncio.wait_for(admin.describe_cluster(), 15)
    finally:
        await admin.close()


async def test_a_client_without_a_certificate_is_refused(prefix: str) -> None:
    context = ssl.create_default_context(cafile=str(PKI / "ca.pem"))
    with pytest.raises(Exception):  # noqa: B017 - aiokafka raises several kinds here
        await _handshake(context)


async def test_a_certificate_from_another_ca_is_refused(
    prefix: str, tmp_path: Path, connect: Connect
) -> None:
    Pki(tmp_path / "other").init([IND], now=datetime.now(UTC))
    impostor = KafkaOptions(
        bootstrap_servers=TLS_BOOTSTRAP, security_protocol="SSL", ssl_cafile=PKI / "ca.pem",
        ssl_certfile=tmp_path / "other" / "ind.crt", ssl_keyfile=tmp_path / "other" / "ind.key",
        request_timeout_ms=5_000,
    )  # fmt: skip
    transport = KafkaTransport(impostor)
    try:
        with pytest.raises(TransportError):
            await transport.ping()
    finally:
        await transport.close()


async def test_tls_below_1_3_is_refused(prefix: str) -> None:
    context = ssl.create_default_context(cafile=str(PKI / "ca.pem"))
    context.load_cert_chain(str(PKI / "ind.crt"), str(PKI / "ind.key"))
    context.maximum_version = ssl.TLSVersion.TLSv1_2
    with pytest.raises(Exception):  # noqa: B017
        await _handshake(context)


async def test_a_party_cannot_read_another_partys_inbox(prefix: str, connect: Connect) -> None:
    ind = connect(IND)
    with pytest.raises(TransportError):
        await ind.read_topic(inbox(DTV, prefix))
    with pytest.raises(TransportError):
        async with ind.consumer(gateway_group(IND, prefix), [inbox(DTV, prefix)]) as consumer:
            for _ in range(20):
                await consumer.poll(timeout_ms=500)


async def test_a_party_cannot_write_an_inbox_the_policy_does_not_allow(
    prefix: str, connect: Connect
) -> None:
    # COA sends only to municipalities and DT&V (TransferConfirmed, receipts): never to IND
    with pytest.raises(TransportError):
        await send_as(connect(COA, send_timeout_ms=8_000), COA, prefix, inbox(IND, prefix))
    await send_as(connect(COA), COA, prefix, inbox(DTV, prefix))  # what it may, it can


async def test_attachment_chunks_are_read_only_by_their_recipient(
    prefix: str, connect: Connect
) -> None:
    # IND delivers dossiers with documents to municipalities (docs/ENVELOPE.md §11.8)
    await send_as(connect(IND), IND, prefix, attachments(MUNI, prefix))
    assert [r.value for r in await connect(MUNI).read_topic(attachments(MUNI, prefix))] == [
        b"hello"
    ]
    for party in (NGO, DTV, IND):  # not even the sender reads them back
        with pytest.raises(TransportError):
            await connect(party).read_topic(attachments(MUNI, prefix))


async def test_a_party_cannot_write_chunks_it_may_not_attach(prefix: str, connect: Connect) -> None:
    # COA may tell a municipality a transfer is confirmed, but that message carries no
    # documents: COA writes the municipality's inbox, never its attachment topic
    with pytest.raises(TransportError):
        await send_as(connect(COA, send_timeout_ms=8_000), COA, prefix, attachments(MUNI, prefix))
    await send_as(connect(COA), COA, prefix, inbox(MUNI, prefix))


async def test_a_party_cannot_write_audit_events_as_another(prefix: str, connect: Connect) -> None:
    with pytest.raises(TransportError):
        await send_as(connect(IND, send_timeout_ms=8_000), IND, prefix, audit(DTV, prefix))
    await send_as(connect(IND), IND, prefix, audit(IND, prefix))  # its own chain


async def test_a_party_cannot_join_another_partys_consumer_group(
    prefix: str, connect: Connect
) -> None:
    ind = connect(IND)
    with pytest.raises(TransportError):
        async with ind.consumer(gateway_group(DTV, prefix), [inbox(IND, prefix)]) as consumer:
            for _ in range(20):
                await consumer.poll(timeout_ms=500)
                await consumer.commit({TopicPartition(inbox(IND, prefix), 0): 0})


async def test_a_party_cannot_read_another_partys_dead_letters(
    prefix: str, connect: Connect
) -> None:
    with pytest.raises(TransportError):
        await connect(IND).read_topic(dlq(DTV, prefix))


async def test_only_dtv_reads_the_audit_of_other_gateways(prefix: str, connect: Connect) -> None:
    await connect(DTV).read_topic(audit(IND, prefix))  # the supervisor
    await connect(IND).read_topic(audit(IND, prefix))  # a gateway, its own chain (restarts)
    for party in (NGO, MUNI, COA):
        with pytest.raises(TransportError):
            await connect(party).read_topic(audit(IND, prefix))


async def test_apply_is_idempotent_and_a_departed_partys_acls_go(
    prefix: str, secured_admin: KafkaTransport, connect: Connect
) -> None:
    layout = Layout(prefix, partitions=1)
    assert (await plan(secured_admin, NET.directory, layout)).empty  # applied before: nothing to do
    without_avim = load_directory(
        signed_directory(p.entry for pid, p in NET.parties.items() if pid != AVIM),
        anchor=PINNED,
        now=NOW,
    )
    done = await apply(secured_admin, without_avim, layout)
    # AVIM's own ACLs, and the others' to write AVIM's inbox, go; nothing else changes
    assert done.acls_to_remove and not done.acls_to_add and not done.topics_to_create
    assert all(
        a.principal == f"User:{AVIM}"
        or a.resource_name in (inbox(AVIM, prefix), attachments(AVIM, prefix))
        for a in done.acls_to_remove
    )
    left = [
        a
        for a in await describe_acls(secured_admin)
        if a.principal == f"User:{AVIM}" and a.resource_name.startswith(prefix)
    ]
    assert left == []
    with pytest.raises(TransportError):  # AVIM could report to municipalities before; not now
        await send_as(connect(AVIM, send_timeout_ms=8_000), AVIM, prefix, inbox(MUNI, prefix))
    await apply(secured_admin, NET.directory, layout)  # and back, for the other tests
    assert (await plan(secured_admin, NET.directory, layout)).empty


def test_dry_run_prints_the_plan_and_changes_nothing(tmp_path: Path) -> None:
    fresh = f"lvv.dry-{uuid.uuid4().hex[:6]}.v1"
    (tmp_path / "directory.bin").write_bytes(
        signed_directory(p.entry for p in NET.parties.values())
    )
    (tmp_path / "anchor").mkdir()
    (tmp_path / "anchor" / "anchor.public.json").write_text(_anchor_record())
    args = ["topics", "apply", "--directory", str(tmp_path / "directory.bin"), "--anchor", str(tmp_path / "anchor"),
            "--kafka", TLS_BOOTSTRAP, "--tls", str(PKI), "--prefix", fresh, "--partitions", "1"]  # fmt: skip
    first = CliRunner().invoke(cli, [*args, "--dry-run"])
    assert first.exit_code == 0, first.output
    assert f"would create topic {inbox(DTV, fresh)}" in first.output
    assert f"would add    ALLOW User:{DTV} READ TOPIC {inbox(DTV, fresh)}" in first.output
    again = CliRunner().invoke(cli, [*args, "--dry-run"])
    assert again.output == first.output  # nothing was changed


def _anchor_record() -> str:
    from broker.crypto import key_id
    from broker.models import KeyAlgorithm, KeyStatus, PublicKey
    from tests.crypto_net import ANCHOR

    raw = ANCHOR.public_key().public_bytes_raw()
    return PublicKey(key_id=key_id(raw), algorithm=KeyAlgorithm.ED25519, public_key=raw, valid_from=NOW.replace(year=2020),
                     valid_until=NOW.replace(year=2040), status=KeyStatus.ACTIVE).model_dump_json()  # fmt: skip


async def test_the_demo_runs_green_on_the_secured_broker(tmp_path: Path) -> None:
    demo_prefix = f"lvv.secdemo-{uuid.uuid4().hex[:6]}.v1"
    admin = KafkaTransport(tls_options(TLS_BOOTSTRAP, "admin"))

    async def provision(net: LocalNetwork) -> None:
        await apply(admin, net.directory, Layout(demo_prefix, partitions=3))

    try:
        result = await run_demo(
            admin, tmp_path, cases=6, prefix=demo_prefix, provision=provision,
            transport_for=lambda party: KafkaTransport(tls_options(TLS_BOOTSTRAP, party)),
        )  # fmt: skip
    finally:
        await admin.close()
    assert result.ok, result.summary()
    assert result.delivered == result.receipted == result.sent > 0
