"""The soak's and the fault suite's traffic (bench/_soak_traffic.py `CaseSource`): cases of
the casebook that stay among the parties that run a gateway."""

from __future__ import annotations

import itertools

import pytest

from bench._soak_infra import NETWORKS
from bench._soak_traffic import CaseSource
from demo.casebook import NETWORK, CasePath


@pytest.mark.parametrize("name", sorted(NETWORKS))
def test_every_message_stays_among_the_parties(name: str) -> None:
    parties = {p.party_id for p in NETWORKS[name]}
    source = CaseSource(NETWORKS[name])
    for send in itertools.chain.from_iterable(source.next_case() for _ in range(120)):
        assert send.sender in parties
        assert set(send.recipients) <= parties


def test_the_demo_network_gets_every_path_and_every_party_sends() -> None:
    source = CaseSource(NETWORK)
    assert source.paths == list(CasePath)
    sends = [s for _ in range(60) for s in source.next_case()]
    assert {s.sender for s in sends} == {p.party_id for p in NETWORK}


def test_the_four_get_the_paths_that_stay_among_them_and_cases_are_reproducible() -> None:
    source = CaseSource(NETWORKS["four"])
    assert source.paths == [CasePath.ONWARD_MIGRATION, CasePath.LEGALISATION, CasePath.EXIT]
    first = [s.message for _ in range(5) for s in source.next_case()]
    again = CaseSource(NETWORKS["four"])
    assert [s.message for _ in range(5) for s in again.next_case()] == first
    cases = {s.case_id for s in CaseSource(NETWORKS["four"]).next_case()}
    assert len(cases) == 1  # one case's messages share its id
