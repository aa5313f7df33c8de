"""Issue 16 §5: on Kafka, with every gateway a `lvvx gateway run` process and every back
office a `lvvx adapter run` process, a case runs from intake to the dossiers over HTTP."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from broker.client import AsyncGatewayClient
from broker.gateway import utc_now
from broker.models import IntakeRegistered
from broker.topics import dlq, inbox
from broker.transport import TopicSpec
from broker.transport.kafka import KafkaTransport
from demo.casebook import DTV, IND, MUNICIPALITIES, NGOS
from demo.network import create_network, write_gateway_configs
from tests.adapter_processes import AdapterRun
from tests.conftest import KAFKA_BOOTSTRAP
from tests.gateway_processes import STOP_TIMEOUT_S, GatewayRun, free_port
from tests.support import eventually, example_of

pytestmark = pytest.mark.kafka

MUNICIPALITY, NGO = MUNICIPALITIES[0], NGOS[0]
PARTIES = (MUNICIPALITY, NGO, IND, DTV)
"""Who hears of a case up to its dossiers: the municipality's intake goes to DT&V and IND,
their dossiers to the municipality and its guiding NGO (`demo.casebook`)."""

CASE_TIMEOUT_S = 60.0


def _intake() -> IntakeRegistered:
    intake = example_of(IntakeRegistered)
    assert intake.municipality == MUNICIPALITY.party_id and intake.guiding_ngo == NGO.party_id
    return intake.model_copy(update={"case_id": uuid.uuid4()})


def _exports(intake: IntakeRegistered) -> list[dict[str, Any]]:
    """The person's file in IND's and DT&V's systems (both exports take these fields)."""
    person = intake.person
    return [{"v_number": person.v_number, "family_name": person.family_name,
             "given_names": person.given_names}]  # fmt: skip


async def test_adapter_processes_carry_a_case_from_intake_to_its_dossiers_over_http(
    kafka_transport: KafkaTransport, tmp_path: Path
) -> None:
    net = create_network(tmp_path, now=utc_now(), parties=PARTIES)
    prefix = f"lvv.adapters-{uuid.uuid4().hex[:8]}.v1"
    write_gateway_configs(net, kafka=KAFKA_BOOTSTRAP, prefix=prefix, first_port=free_port())
    await kafka_transport.ensure_topics(
        [TopicSpec(t(p.party_id, prefix)) for p in PARTIES for t in (inbox, dlq)]
    )
    gateways = {p.party_id: GatewayRun(net, p.party_id) for p in PARTIES}
    intake = _intake()
    adapters = {
        party: AdapterRun(gateway, system=_exports(intake) if party in (IND.party_id, DTV.party_id) else None,
                          auto_deliver=party in (IND.party_id, DTV.party_id))
        for party, gateway in gateways.items()
    }  # fmt: skip
    try:
        async with httpx.AsyncClient(timeout=10) as http:
            for gateway in gateways.values():
                gateway.start()
            for adapter in adapters.values():
                adapter.start()  # before its gateway is ready: it waits, polling
            for gateway in gateways.values():
                await gateway.wait_ready(http)
            # the municipality's case system registers the intake through its gateway's API
            municipality = gateways[MUNICIPALITY.party_id]
            async with AsyncGatewayClient(municipality.url, token=municipality.token) as client:
                await client.send(intake, [DTV.party_id, IND.party_id])

            def case_at(party: str, handled: int) -> dict[str, Any] | None:
                status = adapters[party].status()
                if status is None or status["handled"] < handled:
                    return None
                return dict(status["cases"].get(str(intake.case_id)) or {}) or None

            def all_there() -> bool:
                wanted = {
                    MUNICIPALITY.party_id: 2,
                    NGO.party_id: 2,
                    IND.party_id: 1,
                    DTV.party_id: 1,
                }
                return all(case_at(p, n) for p, n in wanted.items())

            await eventually(all_there, lambda: "every back office to hold the case: " + "; ".join(
                f"{p} {a.status()} {a.log()[-600:]}" for p, a in adapters.items()), timeout_s=CASE_TIMEOUT_S)  # fmt: skip
            # the municipality received both dossiers (IND's and DT&V's), each once
            record = case_at(MUNICIPALITY.party_id, 2)
            assert record is not None and record["step"] == "REST_PERIOD"
            assert {IND.party_id, DTV.party_id} <= set(record["parties"])
            for party in (IND.party_id, DTV.party_id):  # each told of the intake, and answered
                told = case_at(party, 1)
                assert told is not None and told["step"] == "REST_PERIOD"  # it sent its dossier
                assert MUNICIPALITY.party_id in told["parties"]
            statuses = {p: a.status() for p, a in adapters.items()}
            assert {p: (s or {}).get("failures") for p, s in statuses.items()} == dict.fromkeys(
                adapters, 0
            )
            assert {p: (s or {}).get("handled") for p, s in statuses.items()} == {
                MUNICIPALITY.party_id: 2, NGO.party_id: 2, IND.party_id: 1, DTV.party_id: 1}  # fmt: skip
            for gateway in gateways.values():  # every message acknowledged: the inboxes are empty
                assert await gateway.inbox_ids(http) == []
            codes = {p: a.stop(STOP_TIMEOUT_S) for p, a in adapters.items()}
            assert codes == dict.fromkeys(adapters, 0), {
                p: a.log()[-2000:] for p, a in adapters.items()
            }
            for adapter in adapters.values():
                assert intake.person.family_name not in adapter.log()  # no personal data logged
    finally:
        for adapter in adapters.values():
            adapter.kill()
        for gateway in gateways.values():
            await gateway.stop()
            gateway.kill()
