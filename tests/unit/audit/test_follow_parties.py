"""`follow` with the directory followed live, as `lvvx audit follow` runs it: the audit
topic of a party a newer directory adds is read from its first event and its chain
verified, so the messages it exchanges are accounted for (not LOST once the grace period is
over); a party a newer directory drops keeps its chain as verified."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from broker.audit import audit_topics, follow
from broker.audit._verify import Finding, Report
from broker.crypto import Directory, load_directory
from broker.models import DossierDelivered, PartyRole
from tests.crypto_net import NOW, PINNED, A, Net, signed_directory
from tests.embedded_gateways import EmbeddedNetwork
from tests.support import eventually, example_of

NET = Net()
IND, PILOT = A[PartyRole.IND], A[PartyRole.MUNICIPALITY]
PREFIX = "lvv.v1"
PASS_TIMEOUT_S = 15.0
"""`follow` verifies every 2 s: a report that takes up a new directory comes within this."""


def directory(serial: int, *, pilot: bool) -> Directory:
    """The network's directory, with the pilot municipality in it or not."""
    entries = [p.entry for pid, p in NET.parties.items() if pilot or pid != PILOT]
    return load_directory(signed_directory(entries, serial=serial), anchor=PINNED, now=NOW)


@pytest.fixture
async def lvv(tmp_path: Path) -> AsyncIterator[EmbeddedNetwork]:
    """IND has sent the pilot a dossier, delivered and receipted: both chains have events."""
    network = EmbeddedNetwork(tmp_path, NET)
    try:
        pilot = await network.gateway(PILOT, run=True)
        ind = await network.gateway(IND, run=True)
        await ind.send(example_of(DossierDelivered), [PILOT])
        await eventually(lambda: ind.store.counts()["receipted"] == 1, "the receipt")
        assert pilot.store.counts()["unacked"] == 1
        await network.halt_all()
        yield network
    finally:
        await network.aclose()


class Following:
    """`follow` running with ``in_use`` as its live directory; every report it made."""

    def __init__(self, lvv: EmbeddedNetwork, in_use: Directory) -> None:
        self.in_use = in_use
        self.reports: list[Report] = []
        self.stop = asyncio.Event()
        self.task = asyncio.create_task(follow(
            lvv.log, lambda d: audit_topics(d, PREFIX), lambda: self.in_use, stop=self.stop,
            on_issue=lambda _: None, on_report=lambda r, _: self.reports.append(r)))  # fmt: skip

    async def until(self, holds: Callable[[Report], bool], what: str) -> Report:
        """The first report from now on for which ``holds``."""
        seen = len(self.reports)
        await eventually(lambda: any(holds(r) for r in self.reports[seen:]), what,
                         timeout_s=PASS_TIMEOUT_S)  # fmt: skip
        return next(r for r in self.reports[seen:] if holds(r))

    async def close(self) -> None:
        self.stop.set()
        await self.task


def verified(report: Report, party: str) -> bool:
    chain = report.chains.get(party)
    return chain is not None and len(chain.events) > 0 and chain.ok


async def test_a_party_added_by_a_newer_directory_is_followed_from_its_first_event(
    lvv: EmbeddedNetwork,
) -> None:
    following = Following(lvv, directory(1, pilot=False))
    try:
        without = await following.until(lambda r: verified(r, IND), "IND's chain verified")
        assert PILOT not in without.chains
        assert [i.kind for i in without.errors] == [Finding.LOST], "to the pilot, unread"

        following.in_use = directory(2, pilot=True)
        report = await following.until(lambda r: verified(r, PILOT), "the pilot's chain verified")
        assert report.chains[PILOT].events.keys() == set(range(report.chains[PILOT].size))
        assert report.clean and report.accounted == report.sent == 1, report.as_json()
    finally:
        await following.close()


async def test_a_party_a_newer_directory_drops_keeps_its_chain_as_verified(
    lvv: EmbeddedNetwork,
) -> None:
    following = Following(lvv, directory(1, pilot=True))
    try:
        await following.until(lambda r: verified(r, PILOT) and r.clean, "a clean report")

        following.in_use = directory(2, pilot=False)  # the pilot left the network
        report = await following.until(lambda r: True, "a report with the pilot's keys gone")
        assert verified(report, PILOT) and report.clean, report.as_json()
        assert report.accounted == report.sent == 1
    finally:
        await following.close()
