"""The adapter's receive loop (`adapters.AdapterRuntime`) on an in-memory inbox: ack only
after the handler, no second handling after a lost ack, back-off and parking of a message
that keeps failing, a prompt stop; and `lvvx adapter run`'s settings."""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest

from adapters import AdapterRuntime, MunicipalityAdapter, Network, RecordingClient
from adapters._runtime import FIRST_RETRY_S
from adapters.service import make_adapter, status_of
from adapters.settings import load_adapter_settings
from broker import models as m
from broker.client import InboxEntry, NotFound, Unavailable
from broker.errors import LocalError, TransportUnavailable
from demo.casebook import NETWORK
from demo.examples import example
from tests.support import example_of

ROLES = {party.party_id: party.role for party in NETWORK}
MUN, IND = "gemeente-amsterdam", "ind"


def entry(message: m.AvroModel, sender: str = IND) -> InboxEntry:
    now = datetime.now(UTC)
    return InboxEntry(message_id=uuid.uuid4(), type=message.avro_name, sender=sender,
                      case_id=message.case_id, created_at=now, received_at=now,  # type: ignore[attr-defined]
                      message=json.loads(message.model_dump_json()))  # fmt: skip


def dossier() -> m.DossierDelivered:
    return example_of(m.DossierDelivered).model_copy(update={"case_id": uuid.uuid4()})


class Inbox:
    """The gateway's inbox: what is not acknowledged comes again on each poll."""

    def __init__(self, *entries: InboxEntry) -> None:
        self.entries = list(entries)
        self.acks: list[uuid.UUID] = []
        self.ack_fails = 0
        self.polls = 0

    async def inbox(self, *, limit: int = 50, wait_s: float = 0.0) -> list[InboxEntry]:
        self.polls += 1
        if not self.entries:
            await asyncio.sleep(wait_s)
        return self.entries[:limit]

    async def ack(self, message_id: uuid.UUID, *, sender: str | None = None) -> None:
        if self.ack_fails:
            self.ack_fails -= 1
            raise Unavailable("ack", status=503, reason="LOG_UNAVAILABLE")
        if message_id not in {e.message_id for e in self.entries}:
            raise NotFound("ack", status=404, reason="NOT_FOUND")
        self.entries = [e for e in self.entries if e.message_id != message_id]
        self.acks.append(message_id)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def municipality() -> MunicipalityAdapter:
    return MunicipalityAdapter(MUN, RecordingClient(MUN, ROLES), network=Network(roles=ROLES))


async def test_each_message_is_handled_then_acknowledged_once() -> None:
    adapter, first, second = municipality(), entry(dossier()), entry(dossier())
    inbox = Inbox(first, second)
    handled: list[uuid.UUID] = []
    runtime = AdapterRuntime(adapter, inbox, on_handled=lambda e, _: handled.append(e.message_id))
    assert await runtime.take(await inbox.inbox()) == 2
    assert inbox.acks == handled == [first.message_id, second.message_id]
    assert {r.case_id for r in adapter.register} == {first.case_id, second.case_id}
    assert all(r.step.value == "REST_PERIOD" for r in adapter.register)


async def test_a_lost_ack_is_sent_again_without_handling_the_message_again() -> None:
    adapter, one = municipality(), entry(dossier())
    inbox = Inbox(one)
    inbox.ack_fails = 1
    runtime = AdapterRuntime(adapter, inbox)
    assert await runtime.take(await inbox.inbox()) == 0  # handled, ack not taken
    assert await runtime.take(await inbox.inbox()) == 1  # acknowledged, not handled again
    assert runtime.counts.handled == 1 and inbox.acks == [one.message_id]
    assert adapter.register[one.case_id].dossiers_from == (m.PartyRole.IND,)


async def test_a_failing_handler_is_retried_with_back_off_then_parked_unacknowledged(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    adapter, clock = municipality(), Clock()
    bad, good = entry(dossier()), entry(dossier())
    inbox = Inbox(bad, good)

    async def failing(message: m.AvroModel, **kw: object) -> None:
        if kw["message_id"] == bad.message_id:
            raise TransportUnavailable("the V-number 5570016994 is somewhere")  # retriable
        await MunicipalityAdapter.receive(adapter, message, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(adapter, "receive", failing)
    runtime = AdapterRuntime(adapter, inbox, max_failures=3, clock=clock)
    caplog.set_level(logging.WARNING, "lvvx.adapter")
    assert await runtime.take(await inbox.inbox()) == 1  # the good one passes the bad one
    assert await runtime.take(await inbox.inbox()) == 0  # not yet due: no try
    assert runtime.counts.failures == 1
    clock.now += FIRST_RETRY_S
    await runtime.take(await inbox.inbox())
    clock.now += 2 * FIRST_RETRY_S
    await runtime.take(await inbox.inbox())
    assert runtime.counts.failures == 3 and runtime.parked == {bad.message_id}
    clock.now += 1000
    await runtime.take(await inbox.inbox())  # parked: passed by
    assert runtime.counts.failures == 3
    assert inbox.entries == [bad]  # never acknowledged: it stays in the gateway's inbox
    assert "TRANSPORT_UNAVAILABLE" in caplog.text and "5570016994" not in caplog.text
    assert status_of(runtime)["parked"] == [str(bad.message_id)]


async def test_a_message_the_adapter_cannot_take_is_parked_at_once() -> None:
    intake = example("IntakeRegistered")  # a municipality is never sent one
    inbox = Inbox(entry(intake, sender="gemeente-utrecht"))
    runtime = AdapterRuntime(municipality(), inbox)
    await runtime.take(await inbox.inbox())
    assert runtime.counts.failures == runtime.counts.parked == 1 and inbox.acks == []


async def test_a_stop_ends_a_waiting_poll_at_once() -> None:
    inbox, stop = Inbox(), asyncio.Event()
    runtime = AdapterRuntime(municipality(), inbox, wait_s=30)
    task = asyncio.create_task(runtime.run(stop))
    while not inbox.polls:
        await asyncio.sleep(0.001)
    stop.set()
    await asyncio.wait_for(task, 1.0)


async def test_a_refused_token_ends_the_loop() -> None:
    class Refusing(Inbox):
        async def inbox(self, *, limit: int = 50, wait_s: float = 0.0) -> list[InboxEntry]:
            raise LocalError("no", reason="UNAUTHORIZED")

    with pytest.raises(LocalError):
        await AdapterRuntime(municipality(), Refusing()).run(asyncio.Event())


def test_settings_from_the_file_the_environment_and_the_command_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "adapter.toml"
    config.write_text('party = "dtv"\ngateway_url = "http://127.0.0.1:1"\nnetwork = "lvv"\n'
                      'directory_file = "directory.bin"\nanchor_file = "anchor.json"\n'
                      'poll_wait_s = 5\n')  # fmt: skip
    monkeypatch.setenv("LVVX_ADAPTER_POLL_WAIT_S", "7")
    settings = load_adapter_settings(config, gateway_url="http://127.0.0.1:2", party=None)
    assert settings.directory_file == tmp_path / "directory.bin"  # the file's folder
    assert (settings.poll_wait_s, str(settings.gateway_url)) == (7, "http://127.0.0.1:2/")
    assert settings.party == "dtv"


def test_a_token_in_the_file_is_refused(tmp_path: Path) -> None:
    config = tmp_path / "adapter.toml"
    config.write_text('party = "dtv"\ngateway_url = "http://x"\nnetwork = "lvv"\n'
                      'directory_file = "d"\nanchor_file = "a"\ntoken = "s3cret"\n')  # fmt: skip
    with pytest.raises(LocalError) as refused:
        load_adapter_settings(config)
    assert refused.value.reason == "CONFIG" and "s3cret" not in str(refused.value)


def test_system_data_goes_only_to_the_parties_that_answer_from_it(tmp_path: Path) -> None:
    (tmp_path / "system.json").write_text("[]")
    settings = load_adapter_settings(None, party=MUN, gateway_url="http://x", network="n",
                                     directory_file=tmp_path / "d", anchor_file=tmp_path / "a",
                                     system_file=tmp_path / "system.json")  # fmt: skip
    network = Network(roles=ROLES)
    with pytest.raises(LocalError, match="no system_file"):
        make_adapter(settings, RecordingClient(MUN, ROLES), network)
    dtv = settings.model_copy(update={"party": "dtv", "auto_deliver": True})
    assert make_adapter(dtv, RecordingClient("dtv", ROLES), network).ROLE is m.PartyRole.DTV
