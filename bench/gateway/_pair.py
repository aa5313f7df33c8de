"""The gateways of one case: IND's sending gateway and one receiving gateway per recipient
(one or three local parties, bench/_parties.py), each a `lvvx gateway run` process with its
own configuration, store and token, in a network made by `demo.network` in ``folder``.

On Kafka each case gets topics of its own (a fresh prefix); on the embedded log all the
case's gateways share one ``log.db`` in its folder. The API ports are the first free run
from 18481 and must stay within `HTTP_PORTS`. With strace each gateway runs as its child,
logging its fsyncs to ``traces/<party>.strace``.
"""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from bench._parties import RECIPIENTS, SENDER
from bench._soak_infra import GatewayProcess, SoakSetupError, make_network, running_gateways
from bench.gateway._syscalls import traced

HTTP_PORTS = range(18481, 18500)


@dataclass(frozen=True, slots=True)
class Pair:
    sender: GatewayProcess
    receivers: list[GatewayProcess]
    traces: dict[str, Path] | None
    """Each party's strace log; None without strace."""

    @property
    def gateways(self) -> list[GatewayProcess]:
        return [self.sender, *self.receivers]

    @property
    def pids(self) -> dict[str, int]:
        return {gw.party: gw.pid for gw in self.gateways}


@contextlib.contextmanager
def running_pair(
    folder: Path, *, bootstrap: str | None, recipients: int, strace: list[str] | None
) -> Iterator[Pair]:
    """The case's gateways, ready; stopped on the way out (SIGTERM, then SIGKILL)."""
    parties = (SENDER, *RECIPIENTS[recipients])
    prefix = f"lvv.bg-{secrets.token_hex(4)}.v1" if bootstrap else "lvv.v1"
    net, ports = make_network(
        folder, kafka=bootstrap, prefix=prefix, parties=parties, ports_from=HTTP_PORTS.start
    )
    if not set(ports.values()) <= set(HTTP_PORTS):
        raise SoakSetupError(
            f"no {len(ports)} free ports in {HTTP_PORTS.start}-{HTTP_PORTS.stop - 1}"
        )
    traces = {p: folder / "traces" / f"{p}.strace" for p in ports} if strace else None
    if traces:
        next(iter(traces.values())).parent.mkdir()
    wraps = {p: traced(strace, log) for p, log in traces.items()} if strace and traces else None
    with running_gateways(net, ports, wraps) as gateways:
        by_party = {gw.party: gw for gw in gateways}
        receivers = [by_party[p.party_id] for p in RECIPIENTS[recipients]]
        yield Pair(by_party[SENDER.party_id], receivers, traces)
