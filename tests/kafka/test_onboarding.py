"""Onboarding a party into a running network on the secured Kafka (mutual TLS, ACLs), with
real `lvvx gateway run` processes: `lvvx network add-party` brings in a new pilot
municipality while IND's and DT&V's gateways run; IND's gateway, not restarted, sends the
newcomer a dossier as soon as the directory is published; the newcomer's gateway, started
from the configuration the command wrote, receives it and sends DT&V an intake, which DT&V's
running gateway receives. The newcomer's ACLs are in force: it reads its own inbox and writes
DT&V's, and is refused another party's topics.

Measured and printed (run with ``-s``): the whole command, and from the publication to IND's
first accepted send. Only generous bounds are asserted."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from broker.crypto import Pki
from broker.errors import TransportError
from broker.gateway import utc_now
from broker.models import PartyRole
from broker.provision import Layout, acls_of, apply
from broker.topics import dlq, inbox
from broker.transport.kafka import KafkaOptions, KafkaTransport
from broker.transport.kafka_acl import describe_acls
from demo.casebook import DTV, IND, Party
from demo.examples import example
from demo.network import create_network, open_network, write_gateway_configs, write_run_info
from tests.conftest import PKI, TLS_BOOTSTRAP
from tests.gateway_processes import GatewayRun, free_port
from tests.support import eventually

pytestmark = pytest.mark.kafka

NEW = Party("gemeente-zwolle", PartyRole.MUNICIPALITY, "Gemeente Zwolle")
"""A new pilot municipality."""

STEPS = ("keys", "certificate", "directory", "topics", "publish", "gateway")
COMMAND_TIMEOUT_S = 120.0
SEND_TIMEOUT_S = 60.0


def secured_folder(tmp_path: Path) -> Path:
    """A PKI folder of the suite's CA (which the secured broker trusts), with the admin's
    certificate; the network's parties get theirs from it."""
    pki = tmp_path / "pki"
    pki.mkdir()
    for name in ("ca.pem", "ca.key", "admin.crt", "admin.key"):
        shutil.copy(PKI / name, pki / name)
    Pki(pki).certify([IND.party_id, DTV.party_id], now=utc_now())
    return pki


def message(name: str, **fields: Any) -> dict[str, Any]:
    """``name``'s example in the API's JSON form, of a fresh case."""
    model = example(name).model_copy(update={"case_id": uuid.uuid4(), **fields})
    body: dict[str, Any] = json.loads(model.model_dump_json())
    return body


async def add_party(folder: Path) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "cli.main", "network", "add-party", "--data", str(folder),
        "--party", NEW.party_id, "--role", NEW.role.value, "--name", NEW.display_name,
        "--partitions", "1", "--insecure-demo-kdf",
        env={**os.environ, "LVVX_KEY_PASSPHRASE_FILE": str(folder / "secrets" / "passphrase")},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip


async def test_a_municipality_onboarded_into_a_running_network_is_sent_to_and_sends_an_intake(
    tmp_path: Path, secured_admin: KafkaTransport
) -> None:
    pki = secured_folder(tmp_path)
    net = create_network(tmp_path / "net", now=utc_now(), parties=(IND, DTV))
    prefix = f"lvv.onb-{uuid.uuid4().hex[:8]}.v1"
    await apply(secured_admin, net.directory, Layout(prefix, partitions=1))
    write_gateway_configs(net, kafka=TLS_BOOTSTRAP, prefix=prefix, tls=pki, first_port=free_port())
    write_run_info(net.folder, transport="kafka", kafka=TLS_BOOTSTRAP, prefix=prefix, tls=pki)
    ind, dtv = GatewayRun(net, IND.party_id), GatewayRun(net, DTV.party_id)
    runs = [ind, dtv]
    async with httpx.AsyncClient(timeout=10) as client:
        try:
            for run in runs:
                run.start()
            for run in runs:
                await run.wait_ready(client)

            dossier = {"type": "DossierDelivered", "recipients": [NEW.party_id],
                       "message": message("DossierDelivered")}  # fmt: skip
            started = time.monotonic()
            command = await add_party(net.folder)
            assert command.stdout is not None
            published_at: float | None = None
            lines = []
            while line := (await command.stdout.readline()).decode():
                lines.append(line)
                if line.split()[:2] == ["done", "publish"]:
                    published_at = time.monotonic()
                    break
            assert published_at is not None, "".join(lines) + (await command.stderr.read()).decode()  # type: ignore[union-attr]
            while (
                response := await ind.send(client, dossier)
            ).status_code != 202:  # IND, not restarted
                assert response.json()["reason"] == "UNKNOWN_RECIPIENT", response.text
                assert time.monotonic() - published_at < SEND_TIMEOUT_S, (
                    "IND never took the directory"
                )
                await asyncio.sleep(0.01)
            first_send = time.monotonic() - published_at
            out, err = await asyncio.wait_for(command.communicate(), COMMAND_TIMEOUT_S)
            whole = time.monotonic() - started
            assert command.returncode == 0, err.decode()
            printed = "".join(lines) + out.decode()
            assert statuses(printed) == dict.fromkeys(STEPS, "done"), printed
            print(f"\nadd-party (6 steps, secured Kafka): {whole:.2f} s; publish to IND's first "
                  f"accepted send: {first_send * 1000:.0f} ms")  # fmt: skip
            assert whole < COMMAND_TIMEOUT_S

            again = await add_party(net.folder)
            out, err = await again.communicate()
            assert again.returncode == 0, err.decode()
            assert statuses(out.decode()) == dict.fromkeys(STEPS, "unchanged"), out.decode()

            newcomer = GatewayRun(open_network(net.folder, now=utc_now()), NEW.party_id)
            runs.append(newcomer)
            newcomer.start()
            await newcomer.wait_ready(client)
            dossier_id = response.json()["message_id"]
            await eventually(lambda: _holds(newcomer, client, dossier_id), "the dossier delivered to the newcomer",
                             timeout_s=SEND_TIMEOUT_S)  # fmt: skip

            intake = {"type": "IntakeRegistered", "recipients": [DTV.party_id],
                      "message": message("IntakeRegistered", municipality=NEW.party_id)}  # fmt: skip
            sent = await newcomer.send(client, intake)
            assert sent.status_code == 202, sent.text
            await eventually(lambda: _holds(dtv, client, sent.json()["message_id"]),
                             "DT&V's running gateway to receive the intake", timeout_s=SEND_TIMEOUT_S)  # fmt: skip

            assert acls_of(await describe_acls(secured_admin), NEW.party_id)
            outsider = KafkaTransport(
                KafkaOptions.for_identity(
                    TLS_BOOTSTRAP, pki, NEW.party_id, request_timeout_ms=10_000
                )
            )
            try:
                with pytest.raises(TransportError):
                    await outsider.read_topic(dlq(DTV.party_id, prefix))
                with pytest.raises(TransportError):
                    await outsider.read_topic(inbox(IND.party_id, prefix))
            finally:
                await outsider.close()
        finally:
            for run in runs:
                await run.stop()
                run.kill()


def statuses(printed: str) -> dict[str, str]:
    """Each step's status, from the command's output."""
    words = [line.split() for line in printed.splitlines() if not line.startswith(" ")]
    return {w[1]: w[0] for w in words if len(w) > 1 and w[1] in STEPS}


async def _holds(run: GatewayRun, client: httpx.AsyncClient, message_id: str) -> bool:
    return message_id in await run.inbox_ids(client)
