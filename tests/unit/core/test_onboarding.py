"""Onboarding a party (`broker.onboarding`, `lvvx network add-party`) into a network folder on
the embedded log: what a dry run plans, that a second run changes nothing, that a run which
failed half-way is completed by the next, and that a running gateway sends to the new party
without a restart."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from broker import onboarding
from broker.crypto import AnchorKey, KeyStore, Pki, load_directory
from broker.errors import LocalError, TransportError
from broker.gateway import Gateway, GatewayStore, utc_now
from broker.gateway.settings import load_settings
from broker.models import DossierDelivered, PartyRole
from broker.network_folder import NetworkFolder
from broker.onboarding import Network, Newcomer, Status, add_party
from broker.topics import directory, inbox
from broker.transport.embedded import EmbeddedTransport
from cli.main import cli
from demo.casebook import DTV, IND
from demo.network import LocalNetwork, create_network, write_gateway_configs
from tests.support import eventually, example_of

NEWCOMER = Newcomer("gemeente-zwolle", PartyRole.MUNICIPALITY, "Gemeente Zwolle")
STEPS = ["keys", "certificate", "directory", "topics", "publish", "gateway"]


@pytest.fixture
def net(tmp_path: Path) -> LocalNetwork:
    """A running network's folder: two parties, their gateways' configurations."""
    made = create_network(tmp_path / "net", now=utc_now(), parties=(IND, DTV))
    write_gateway_configs(made, kafka=None, prefix="lvv.v1")
    return made


@pytest.fixture
async def log(net: LocalNetwork) -> AsyncIterator[EmbeddedTransport]:
    transport = EmbeddedTransport(net.folder / "log.db")
    yield transport
    await transport.close()


def passphrase(net: LocalNetwork) -> bytes:
    return (net.folder / "secrets" / "passphrase").read_text().strip().encode()


async def onboard(net: LocalNetwork, log: EmbeddedTransport, *, dry_run: bool = False,
                  pki: Path | None = None) -> dict[str, Status]:  # fmt: skip
    from broker.crypto import DEMO_KEY_FILE_KDF

    network = Network(NetworkFolder(net.folder), log, pki=pki, kdf=DEMO_KEY_FILE_KDF)
    steps = await add_party(NEWCOMER, network, passphrase=None if dry_run else passphrase(net),
                            now=utc_now(), dry_run=dry_run)  # fmt: skip
    assert [s.name for s in steps] == STEPS
    return {s.name: s.status for s in steps}


def anchor(net: LocalNetwork) -> AnchorKey:
    return AnchorKey.from_record(KeyStore(net.folder / "keys").anchor_public())


async def test_a_dry_run_plans_every_step_and_changes_nothing(
    net: LocalNetwork, log: EmbeddedTransport
) -> None:
    before = (net.folder / "directory.bin").read_bytes()
    assert await onboard(net, log, dry_run=True) == {
        "keys": Status.PLANNED, "certificate": Status.UNCHANGED, "directory": Status.PLANNED,
        "topics": Status.PLANNED, "publish": Status.PLANNED, "gateway": Status.PLANNED,
    }  # fmt: skip
    assert not list((net.folder / "keys").glob(f"{NEWCOMER.party}.*"))
    assert (net.folder / "directory.bin").read_bytes() == before
    assert await log.read_topic(directory()) == []
    assert await log.end_offsets([inbox(NEWCOMER.party)]) == {}
    assert not (net.folder / "gateways" / f"{NEWCOMER.party}.toml").exists()


async def test_added_once_the_party_is_in_the_published_directory_and_again_nothing_changes(
    net: LocalNetwork, log: EmbeddedTransport
) -> None:
    assert set((await onboard(net, log)).values()) == {Status.DONE, Status.UNCHANGED}
    published = await log.read_topic(directory())
    assert len(published) == 1
    taken = load_directory(published[0].value, anchor=anchor(net), now=utc_now())
    assert set(taken.parties) == {IND.party_id, DTV.party_id, NEWCOMER.party}
    assert (net.folder / "directory.bin").read_bytes() == published[0].value
    assert await log.end_offsets([inbox(NEWCOMER.party)])  # its inbox exists
    settings = load_settings(net.folder / "gateways" / f"{NEWCOMER.party}.toml")
    assert (settings.party, settings.network) == (NEWCOMER.party, taken.document.network)
    assert (
        settings.token() == (net.folder / "secrets" / f"{NEWCOMER.party}.token").read_text().strip()
    )
    assert settings.http_port not in {8081, 8082}  # not another gateway's

    assert set((await onboard(net, log)).values()) == {Status.UNCHANGED}
    assert len(await log.read_topic(directory())) == 1  # nothing published again


async def test_a_run_that_failed_half_way_is_completed_by_the_next(
    net: LocalNetwork, log: EmbeddedTransport, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def log_away(*args: object, **kwargs: object) -> None:
        raise TransportError("the log is away")

    with monkeypatch.context() as patch:
        patch.setattr(onboarding, "publish_directory", log_away)
        with pytest.raises(TransportError):
            await onboard(net, log)
    assert await log.read_topic(directory()) == []
    built = (net.folder / "directory.bin").read_bytes()

    assert await onboard(net, log) == {
        "keys": Status.UNCHANGED, "certificate": Status.UNCHANGED,
        "directory": Status.UNCHANGED,  # the one built before, not yet published
        "topics": Status.UNCHANGED, "publish": Status.DONE, "gateway": Status.DONE,
    }  # fmt: skip
    assert [r.value for r in await log.read_topic(directory())] == [built]


async def test_a_party_in_the_key_folder_with_another_role_is_refused(
    net: LocalNetwork, log: EmbeddedTransport
) -> None:
    network = Network(NetworkFolder(net.folder), log)
    ngo = Newcomer(IND.party_id, PartyRole.NGO)
    with pytest.raises(LocalError) as refused:
        await add_party(ngo, network, passphrase=passphrase(net), now=utc_now())
    assert refused.value.reason == "ROLE_MISMATCH"
    assert await log.read_topic(directory()) == []


async def test_on_a_secured_network_the_party_gets_a_certificate_from_the_ca(
    net: LocalNetwork, log: EmbeddedTransport, tmp_path: Path
) -> None:
    from cryptography import x509

    pki = tmp_path / "pki"
    Pki(pki).init([IND.party_id, DTV.party_id], now=utc_now())
    assert (await onboard(net, log, dry_run=True, pki=pki))["certificate"] is Status.PLANNED
    assert not (pki / f"{NEWCOMER.party}.crt").exists()
    assert (await onboard(net, log, pki=pki))["certificate"] is Status.DONE
    ca = x509.load_pem_x509_certificate((pki / "ca.pem").read_bytes())
    cert = x509.load_pem_x509_certificate((pki / f"{NEWCOMER.party}.crt").read_bytes())
    cert.verify_directly_issued_by(ca)
    assert cert.subject.rfc4514_string().startswith(f"CN={NEWCOMER.party},OU=lvv-parties")
    assert (pki / f"{NEWCOMER.party}.key").stat().st_mode & 0o077 == 0
    assert (await onboard(net, log, pki=pki))["certificate"] is Status.UNCHANGED


async def test_a_running_gateway_sends_to_the_new_party_without_a_restart(
    net: LocalNetwork, log: EmbeddedTransport
) -> None:
    gw = Gateway(keys=net.keys[IND.party_id], directory=net.directory,
                 transport=EmbeddedTransport(net.folder / "log.db"),
                 store=GatewayStore(net.folder / "ind.db", content_key=net.content_keys[IND.party_id]),
                 anchor=anchor(net))  # fmt: skip
    await gw.start()
    loop = asyncio.create_task(gw.run())
    try:
        await onboard(net, log)
        await eventually(lambda: NEWCOMER.party in gw.directory.parties,
                         "the running gateway to take the new directory")  # fmt: skip
        await gw.send(example_of(DossierDelivered), [NEWCOMER.party])
        assert len(await log.read_topic(inbox(NEWCOMER.party))) == 1
    finally:
        gw.stop()
        await loop
        await gw.close()
        await gw.transport.close()
        gw.store.close()


def test_the_command_prints_each_step_and_says_when_nothing_changed(
    net: LocalNetwork, monkeypatch: pytest.MonkeyPatch
) -> None:
    (net.folder / "log.db").touch()
    monkeypatch.setenv("LVVX_KEY_PASSPHRASE_FILE", str(net.folder / "secrets" / "passphrase"))
    args = ["network", "add-party", "--data", str(net.folder), "--party", NEWCOMER.party,
            "--role", "MUNICIPALITY", "--insecure-demo-kdf"]  # fmt: skip

    def run(*more: str) -> list[str]:
        result = CliRunner().invoke(cli, args + list(more), catch_exceptions=False)
        assert result.exit_code == 0, result.output
        return result.output.splitlines()

    planned = run("--dry-run")
    assert [line.split()[:2] for line in planned if line.split()[1:2] == ["keys"]] == [
        ["planned", "keys"]
    ]
    assert "5 of 6 steps planned" in planned[-2]
    done = run()
    assert "5 of 6 steps done" in done[-2]
    again = run()
    assert [line.split()[0] for line in again[:6]] == ["unchanged"] * 6
    assert again[-2].startswith("nothing to change")
    assert f"lvvx gateway run --config {net.folder}/gateways/{NEWCOMER.party}.toml" in again[-1]
