"""`lvvx adapter run`: one party's adapter as its own process, on its gateway's HTTP API
(`broker.client.AsyncGatewayClient`), running `AdapterRuntime`'s receive loop until SIGTERM
or SIGINT.

The adapter addresses parties by role (`Network`): it reads them from the same signed key
directory its gateway starts with, checked against the pinned anchor, so the API needs no
route for it. A directory published later reaches the adapter on its next start (roles
change only when a party joins or leaves, and a new party is written to by the gateway).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
from datetime import UTC, datetime
from typing import Any

from pydantic import TypeAdapter, ValidationError

from adapters import ADAPTERS
from adapters._base import Adapter, GatewayClient, Network
from adapters._runtime import AdapterRuntime
from adapters.coa import CoaAdapter, Facility
from adapters.dtv import DtvAdapter, DtvCaseExport
from adapters.ind import IndAdapter, IndCaseExport
from adapters.settings import AdapterSettings
from broker.client import AsyncGatewayClient
from broker.crypto import AnchorKey, load_directory
from broker.errors import LocalError
from broker.models import PartyRole, PublicKey
from broker.owner_only import write_private_text

log = logging.getLogger("lvvx.adapter")

STOP_TIMEOUT_S = 10.0
"""After SIGTERM: a poll ends at once, a handler in progress finishes (its sends are
bounded by the client's timeouts); past this the loop is cancelled, its message unacked."""

STATUS_EVERY_S = 1.0
"""How often the status file is rewritten while messages come in."""

BY_ROLE: dict[PartyRole, type[Adapter[Any]]] = {kind.ROLE: kind for kind in ADAPTERS}

_RECORDS: dict[PartyRole, TypeAdapter[Any]] = {
    PartyRole.IND: TypeAdapter(list[IndCaseExport]),
    PartyRole.DTV: TypeAdapter(list[DtvCaseExport]),
    PartyRole.COA: TypeAdapter(list[Facility]),
}
"""What a ``system_file`` holds, by role: the records the adapter answers from."""


def network_of(settings: AdapterSettings) -> Network:
    """The network's parties and roles from the signed directory (`load_directory`)."""
    try:
        anchor = AnchorKey.from_record(
            PublicKey.model_validate_json(settings.anchor_file.read_text())
        )
        signed = settings.directory_file.read_bytes()
    except (OSError, ValidationError) as exc:
        raise LocalError(
            f"cannot read the directory or the anchor: {exc}", reason="CONFIG"
        ) from exc
    directory = load_directory(
        signed, anchor=anchor, now=datetime.now(UTC), network=settings.network
    )
    return Network.of(directory)


def _records(settings: AdapterSettings, role: PartyRole) -> list[Any]:
    if settings.system_file is None:
        return []
    if role not in _RECORDS:
        raise LocalError(f"a {role.value} adapter takes no system_file", reason="CONFIG")
    try:
        return list(_RECORDS[role].validate_json(settings.system_file.read_bytes()))
    except OSError as exc:
        raise LocalError(f"cannot read system_file: {exc.strerror}", reason="CONFIG") from exc
    except ValidationError as exc:  # its text would quote the records: name the count only
        raise LocalError(
            f"system_file: {exc.error_count()} invalid fields", reason="CONFIG"
        ) from None


def make_adapter(
    settings: AdapterSettings, client: GatewayClient, network: Network
) -> Adapter[Any]:
    """The adapter of the party's kind (its role in the directory)."""
    party, role = settings.party, network.role(settings.party)
    records = _records(settings, role)
    if settings.auto_deliver and role not in (PartyRole.IND, PartyRole.DTV):
        raise LocalError(f"auto_deliver is for IND and DT&V, not {role.value}", reason="CONFIG")
    if role is PartyRole.COA:
        return CoaAdapter(party, client, facilities=records, network=network)
    if role is PartyRole.IND:
        return IndAdapter(party, client, exports=records, auto_deliver=settings.auto_deliver,
                          network=network)  # fmt: skip
    if role is PartyRole.DTV:
        return DtvAdapter(party, client, exports=records, auto_deliver=settings.auto_deliver,
                          network=network)  # fmt: skip
    return BY_ROLE[role](party, client, network=network)


def status_of(runtime: AdapterRuntime) -> dict[str, Any]:
    """What the status file says: counts, parked message ids, and each case's step, its
    warnings and the parties on it — ids and codes, no personal data."""
    counts = runtime.counts
    return {
        "party": runtime.adapter.party_id, "handled": counts.handled,
        "failures": counts.failures, "parked": sorted(str(p) for p in runtime.parked),
        "cases": {
            str(r.case_id): {"step": r.step.value, "warnings": [w.value for w in r.warnings],
                             "parties": list(r.parties)}
            for r in runtime.adapter.register
        },
    }  # fmt: skip


def write_status(runtime: AdapterRuntime, path: os.PathLike[str]) -> None:
    """Replace the status file whole: a reader never sees half of one."""
    side = f"{os.fspath(path)}.tmp"
    write_private_text(side, json.dumps(status_of(runtime), indent=1) + "\n")
    os.replace(side, path)


async def _keep_status(
    runtime: AdapterRuntime, settings: AdapterSettings, stop: asyncio.Event
) -> None:
    if settings.status_file is None:
        return
    written: tuple[int, int] | None = None
    while True:
        now = (runtime.counts.handled, runtime.counts.failures)
        if now != written:
            write_status(runtime, settings.status_file)
            written = now
        if stop.is_set():
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), STATUS_EVERY_S)


async def serve(settings: AdapterSettings, stop: asyncio.Event | None = None) -> None:
    """Run the party's adapter until ``stop`` is set (by default: SIGTERM or SIGINT)."""
    network = network_of(settings)
    stop = stop or _on_signals()
    async with AsyncGatewayClient(str(settings.gateway_url), token_file=settings.token_file,
                                  tls=settings.tls()) as client:  # fmt: skip
        adapter = make_adapter(settings, client, network)
        runtime = AdapterRuntime(adapter, client, wait_s=settings.poll_wait_s,
                                 page=settings.page_size, max_failures=settings.max_failures)  # fmt: skip
        log.info("adapter %s (%s) on %s", settings.party, adapter.ROLE.value, settings.gateway_url)
        loop = asyncio.create_task(runtime.run(stop))
        status = asyncio.create_task(_keep_status(runtime, settings, stop))
        try:
            await asyncio.wait({loop})
        finally:
            stop.set()
            _, late = await asyncio.wait({loop, status}, timeout=STOP_TIMEOUT_S)
            for task in late:
                task.cancel()
            await asyncio.gather(*late, return_exceptions=True)
        # the loop's own failure (a refused token, too many parked) is the run's
        if not loop.cancelled() and (failed := loop.exception()) is not None:
            raise failed
    counts = runtime.counts
    log.info("adapter %s stopped: %d handled, %d failures, %d parked", settings.party,
             counts.handled, counts.failures, counts.parked)  # fmt: skip


def _on_signals() -> asyncio.Event:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    return stop


def run(settings: AdapterSettings) -> None:
    asyncio.run(serve(settings))


__all__ = ["BY_ROLE", "make_adapter", "network_of", "run", "serve", "status_of", "write_status"]
