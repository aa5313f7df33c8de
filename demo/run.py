"""`lvvx demo`: the whole LVV network in one process, driving cases through the case flow.

Every party gets its own keys, gateway and back office (its adapter) over one transport:
the five pilot municipalities, two NGOs, IND, DT&V, AVIM, COA and the escalation desk. Each
case of the case book runs as its own task: every step is sealed and sent by the sender's
gateway, and the next step waits until the previous one reached every recipient's back
office — the order the agreement's flow has. A few hostile envelopes are slipped into
inboxes on the way (tampered, replayed, from a role that may not send them); they must end
in the dead-letter topics with their reasons.

The cases run on a simulated calendar (`demo.calendar`): one day at a time, every case's
steps of that day side by side, the clock moved on only once the day's messages, receipts
and audit events are all in — so the dossiers, the rest period, the scenario, an
escalation's answer and the closing fall on the days the agreement gives them, and the
case monitor (`lvvx cases`) finds no broken rule but in the cases planted to break one
(`Case.planted`, listed in the summary).

The run is green only if every case reached its expected final state, every message was
delivered exactly once and receipted, every hostile envelope was refused, and the case
flow's warnings are exactly the planted ones.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path

from adapters import GatewayClient, Network
from broker import caseflow
from broker.caseflow import event_time
from broker.crypto import DEFAULT_DIRECTORY_VALIDITY
from broker.gateway import Gateway, GatewayStore, utc_now
from broker.gateway.metrics import PrometheusObserver
from broker.models import CaseClosed, IntakeRegistered, TransferConfirmed
from broker.owner_only import private_dir
from broker.topics import dlq, inbox
from broker.transport import TopicSpec, Transport
from demo.backoffice import BackOffice, make_adapter
from demo.calendar import CalendarClock
from demo.casebook import CALENDAR_SPAN, Case, CaseWriter, Step
from demo.hostile import HOSTILE_KINDS, Hostile, inject_hostile
from demo.network import LocalNetwork, create_network
from demo.over_http import ServedGateway

STEP_DEADLINE_S = 60.0
"""How long one step may take to reach every recipient before the case counts as stuck."""

RECEIPT_DEADLINE_S = 60.0

AUDIT_POLL_S = 0.2
"""How often the ending reads the audit topics again while receipts are still in flight."""

SETTLE_POLL_S = 0.01
"""How often a day's ending looks whether every receipt and audit event of the day is in."""

AUDIT_SETTLED_MARGIN = timedelta(seconds=1)
"""Past the grace period of the newest event: every message counts as due at the ending."""

INBOX_PARTITIONS = 3


@dataclass
class PartyCount:
    sent: int = 0
    delivered: int = 0
    receipted: int = 0
    rejected: int = 0


@dataclass
class DemoResult:
    cases: int
    sent: int = 0
    delivered: int = 0
    receipted: int = 0
    duplicates: int = 0
    stuck_cases: int = 0
    adapter_errors: int = 0
    seconds: float = 0.0
    parties: dict[str, PartyCount] = field(default_factory=dict)
    outcomes: Counter[str] = field(default_factory=Counter)
    wrong_outcomes: list[str] = field(default_factory=list)
    flow_warnings: Counter[str] = field(default_factory=Counter)
    planted: dict[str, str] = field(default_factory=dict)  # case id → the rule it breaks
    calendar: tuple[date, date] | None = None  # the first and last day the cases ran on
    hostile: list[Hostile] = field(default_factory=list)
    dead_letters: list[tuple[str, str]] = field(default_factory=list)  # (party, reason)
    supervision: dict[str, object] = field(default_factory=dict)  # DT&V's report
    unaudited: int = 0  # audit findings still open when the demo ended (must be 0)

    @property
    def lost(self) -> int:
        return self.sent - self.delivered

    @property
    def rejected(self) -> int:
        return len(self.dead_letters)

    @property
    def hostile_refused(self) -> bool:
        expected = Counter((h.target, h.expected_reason) for h in self.hostile)
        return not expected - Counter(self.dead_letters)

    @property
    def ok(self) -> bool:
        return (
            self.lost == 0 and self.duplicates == 0 and self.receipted == self.sent
            and self.stuck_cases == 0 and not self.wrong_outcomes and self.hostile_refused
            and self.adapter_errors == 0 and self.unaudited == 0
        )  # fmt: skip

    def summary(self) -> dict[str, object]:
        return {
            "cases": self.cases, "sent": self.sent, "delivered": self.delivered,
            "receipted": self.receipted, "rejected": self.rejected, "lost": self.lost,
            "duplicates": self.duplicates, "outcomes": dict(sorted(self.outcomes.items())),
            "hostile_refused": self.hostile_refused, "seconds": round(self.seconds, 2),
            "calendar": [d.isoformat() for d in self.calendar] if self.calendar else None,
            "planted": dict(sorted(self.planted.items())),
        }  # fmt: skip


class Demo:
    def __init__(self, net: LocalNetwork, transport: Transport, *, prefix: str,
                 clock: CalendarClock | None = None, observed: bool = False,
                 transport_for: Callable[[str], Transport] | None = None, over_http: bool = False) -> None:  # fmt: skip
        """``transport`` serves the demo itself (topics, the attacker); each gateway uses
        ``transport_for(party)`` when given — on a secured Kafka, its own certificate.
        ``over_http``: the back offices use their gateways' HTTP APIs (`demo.over_http`).
        ``clock``: the calendar every gateway and adapter reads; without, the wall clock
        (the cases then run side by side, each step as soon as the one before arrived)."""
        self.net = net
        self.clock = clock or CalendarClock()
        self.transport = transport
        self._own = {p: transport_for(p) for p in net.keys} if transport_for else {}
        self.prefix = prefix
        self.observers = {p: PrometheusObserver(p) for p in net.keys} if observed else {}
        self.gateways = {
            party: Gateway(
                keys=keys,
                directory=net.directory,
                transport=self._own.get(party, transport),
                store=GatewayStore(
                    _mkdir(net.state_dir(party)) / "gateway.db", content_key=net.content_keys[party]
                ),
                prefix=prefix,
                clock=self.clock,
                observer=self.observers.get(party),
            )
            for party, keys in net.keys.items()
        }
        self.served = (
            {p: ServedGateway(g, net.tokens[p]) for p, g in self.gateways.items()}
            if over_http
            else {}
        )
        self.senders: dict[str, GatewayClient] = {
            p: self.served[p].client if over_http else g for p, g in self.gateways.items()
        }
        network = Network.of(net.directory)
        self.back_offices = {
            p.party_id: BackOffice(
                self.gateways[p.party_id], make_adapter(p, self.senders[p.party_id], network, self.clock),
                self.served[p.party_id].client if over_http else None,
            )
            for p in net.parties
        }  # fmt: skip
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        """Every party's topics, gateway and back office, running."""
        topics = [
            TopicSpec(t(p, self.prefix), partitions=INBOX_PARTITIONS)
            for p in self.gateways
            for t in (inbox, dlq)
        ]
        await self.transport.ensure_topics(topics)
        for gateway in self.gateways.values():
            await gateway.start()
        self._tasks = [asyncio.create_task(g.run()) for g in self.gateways.values()]
        for served in self.served.values():
            await served.start()
        self._tasks += [asyncio.create_task(b.run()) for b in self.back_offices.values()]

    async def stop(self) -> None:
        """Gateways finish what they hold, commit, checkpoint their audit chains, close: each
        one, also those that never started and when another's close fails."""
        for gateway in self.gateways.values():
            gateway.stop()
        for back_office in self.back_offices.values():
            back_office.stop()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await asyncio.gather(*(s.stop() for s in self.served.values()), return_exceptions=True)
        closes = [g.close() for g in self.gateways.values()] + [
            t.close() for t in self._own.values()
        ]
        for failed in await asyncio.gather(*closes, return_exceptions=True):
            if isinstance(failed, BaseException):
                raise failed

    async def drive(self, case: Case, steps: list[Step] | None = None) -> bool:
        """Every step of ``case`` (or ``steps`` of it), each after the one before reached all
        its recipients; False if a step did not arrive in time."""
        for step in case.steps if steps is None else steps:
            if isinstance(step.message, TransferConfirmed):
                # COA's back office answers the request itself (its adapter): wait for it
                waits = [
                    self.back_offices[case.municipality.party_id].wait_for_type(
                        case.case_id, TransferConfirmed
                    )
                ]
            else:
                message_id = await self.senders[step.sender].send(step.message, step.recipients)
                self.back_offices[step.sender].note_sent(step.message)
                waits = [self.back_offices[r].wait_for(message_id) for r in step.recipients]
            try:
                await asyncio.wait_for(asyncio.gather(*waits), STEP_DEADLINE_S)
            except TimeoutError:
                return False
        return True

    async def run(self, cases: list[Case], *, hostile: bool = True,
                  on_progress: Callable[[int, int], None] | None = None, keep_running: bool = False) -> DemoResult:  # fmt: skip
        """Drive ``cases`` and check the result; with ``keep_running`` the network stays up
        (call `stop` later)."""
        started = time.monotonic()
        result = DemoResult(cases=len(cases), parties={p: PartyCount() for p in self.gateways})
        done = 0

        async def drive(case: Case) -> None:
            nonlocal done
            if not await self.drive(case):
                result.stuck_cases += 1
                return
            done += 1
            if on_progress:
                on_progress(done, len(cases))

        ran = False
        try:
            await self.start()
            if self.clock.simulated:
                result.calendar = await self._by_calendar(cases, result, on_progress)
            else:
                await asyncio.gather(*(drive(c) for c in cases))
            if hostile:
                result.hostile = await inject_hostile(self, cases)
            await self._settle(result)
            ran = True
        finally:
            if not (ran and keep_running):  # a run that failed stops what it started
                await self.stop()
        self._tally(result, cases)
        if not keep_running:
            self.close_stores()
        result.seconds = time.monotonic() - started
        return result

    async def _by_calendar(self, cases: list[Case], result: DemoResult,
                           on_progress: Callable[[int, int], None] | None) -> tuple[date, date] | None:  # fmt: skip
        """The cases day by day (`demo.calendar`): the clock moved to the day's last step
        time, the day's steps of every case sent (each case's in order), then `settled`
        before the next day. A case with a step that did not arrive is stuck: its later
        days are left out; if a day does not settle, the calendar stops there (the clock
        may not jump over a message in flight) and the cases not done are stuck. The first
        and last day."""
        days = _calendar(cases)
        left = Counter(case.case_id for work in days.values() for case, _ in work)
        stuck: set[uuid.UUID] = set()
        done = 0

        async def day_of(case: Case, steps: list[Step]) -> None:
            nonlocal done
            if case.case_id in stuck:
                return
            if not await self.drive(case, steps):
                stuck.add(case.case_id)
                result.stuck_cases += 1
                return
            left[case.case_id] -= 1
            if not left[case.case_id]:
                done += 1
                if on_progress:
                    on_progress(done, len(cases))

        for _day, work in sorted(days.items()):
            moment = max((_at(s) for _, steps in work for s in steps
                          if not isinstance(s.message, TransferConfirmed)), default=None)  # fmt: skip
            if moment is not None:
                self.clock.jump_to(moment)
            await asyncio.gather(*(day_of(case, steps) for case, steps in work))
            if not await self.settled(time.monotonic() + RECEIPT_DEADLINE_S):
                result.stuck_cases += sum(
                    1 for c in cases if left[c.case_id] and c.case_id not in stuck
                )
                break
        return (min(days), max(days)) if days else None

    async def settled(self, deadline: float) -> bool:
        """Until ``deadline`` (monotonic): every gateway has every receipt it awaits and has
        published what follows every record it took (receipts, audit events) — nothing in
        flight, so the calendar may move on. False if that did not happen in time."""
        while time.monotonic() < deadline:
            if all(g.store.settled() for g in self.gateways.values()):
                return True
            await asyncio.sleep(SETTLE_POLL_S)
        return False

    def close_stores(self) -> None:
        for gateway in self.gateways.values():
            gateway.store.close()

    async def _settle(self, result: DemoResult) -> None:
        """Wait until every sent message is receipted and every hostile envelope dead-lettered."""
        deadline = time.monotonic() + RECEIPT_DEADLINE_S
        while time.monotonic() < deadline:
            counts = [g.store.counts() for g in self.gateways.values()]
            receipted = all(c["awaiting_receipt"] == 0 for c in counts)
            rejected = sum(c["rejected"] for c in counts)
            if receipted and rejected >= len(result.hostile):
                break
            await asyncio.sleep(0.05)
        result.unaudited = await self.audited(deadline)

    async def audited(self, deadline: float) -> int:
        """Wait, until ``deadline`` (monotonic), for the audit topics to account for every
        message and receipt — judged as if the grace period had passed for all of them, so
        `lvvx audit verify` finds them clean at any later time; the findings still open then.
        A gateway's store counts a receipt before the sender's RECEIPT_RECEIVED is written,
        and a refused envelope's receipt goes to a sender that awaits none: the stores
        alone ended the demo with receipts in flight."""
        from broker.audit import DEFAULT_GRACE, read_audit, verify_stream

        open_ = 0
        while True:
            records = await read_audit(self.transport, self.net.directory, self.prefix)
            report = verify_stream(records, self.net.directory, now=utc_now() + DEFAULT_GRACE
                                   + AUDIT_SETTLED_MARGIN)  # fmt: skip
            open_ = len(report.errors)
            if not open_ or time.monotonic() >= deadline:
                return open_
            await asyncio.sleep(AUDIT_POLL_S)

    def _tally(self, result: DemoResult, cases: list[Case]) -> None:
        for party, gateway in self.gateways.items():
            counts = gateway.store.counts()
            count = result.parties[party]
            count.sent = gateway.store.sent_records()
            result.sent += count.sent
            count.delivered = counts["delivered"]
            count.rejected = counts["rejected"]
            count.receipted = gateway.store.receipted_records()
            result.delivered += count.delivered
            result.receipted += count.receipted
            result.dead_letters += [(party, reason) for reason in gateway.store.rejection_reasons()]
            result.duplicates += self.back_offices[party].duplicates
            result.adapter_errors += self.back_offices[party].adapter_errors
        for case in cases:
            result.outcomes[case.outcome.value] += 1
            self._check_case(case, result)
        dtv = self.back_offices[_dtv(self.net)].adapter
        report = dtv.supervision_report()  # type: ignore[attr-defined]
        result.supervision = {
            "made_known": report.made_known, "departures": report.departures,
            "open_cases": report.open_cases, "per_municipality": report.per_municipality,
        }  # fmt: skip
        if report.made_known != len(cases) or report.open_cases:
            result.wrong_outcomes.append("DT&V's supervision does not account for every case")

    def _check_case(self, case: Case, result: DemoResult) -> None:
        """The case as its municipality saw it (what it sent and received) must have run
        the flow to CLOSED with the expected outcome; DT&V must know the person."""
        municipality = self.back_offices[case.municipality.party_id]
        state = caseflow.CaseState()
        for message_type, at in municipality.case_messages(case.case_id):  # in the order seen
            state, warning = caseflow.advance(state, message_type, at)
            if warning:
                result.flow_warnings[warning.value] += 1
        if case.planted is not None:
            result.planted[str(case.case_id)] = case.planted.value
        if list(state.warnings) != ([case.planted] if case.planted else []):
            result.wrong_outcomes.append(str(case.case_id))  # a rule broken, or not as planted
        closed = [m for m in municipality.messages(case.case_id) if isinstance(m, CaseClosed)]
        supervisor = self.back_offices[_dtv(self.net)].messages(case.case_id)
        if (
            state.step is not caseflow.Step.CLOSED
            or [c.outcome for c in closed] != [case.outcome]
            or not any(isinstance(m, IntakeRegistered) for m in supervisor)
        ):
            result.wrong_outcomes.append(str(case.case_id))


def _at(step: Step) -> datetime:
    at = event_time(step.message)
    assert at is not None, step.message.avro_name  # every message of the case book is dated
    return at


def _calendar(cases: list[Case]) -> dict[date, list[tuple[Case, list[Step]]]]:
    """Each day of the calendar: the cases with steps on it, and those steps in order.
    COA's confirmation is its adapter's answer to the request: it is waited for on the
    request's day."""
    days: dict[date, list[tuple[Case, list[Step]]]] = {}
    for case in cases:
        by_day: dict[date, list[Step]] = {}
        day: date | None = None
        for step in case.steps:
            if day is None or not isinstance(step.message, TransferConfirmed):
                day = _at(step).date()
            by_day.setdefault(day, []).append(step)
        for d, steps in by_day.items():
            days.setdefault(d, []).append((case, steps))
    return days


def _dtv(net: LocalNetwork) -> str:
    from broker.models import PartyRole

    return next(p.party_id for p in net.parties if p.role is PartyRole.DTV)


def _mkdir(path: Path) -> Path:
    return private_dir(path)


async def run_demo(
    transport: Transport,
    folder: Path,
    cases: int,
    *,
    prefix: str = "lvv.v1",
    hostile: bool = True,
    seed: int = 2018,
    on_progress: Callable[[int, int], None] | None = None,
    then: Callable[[Demo, DemoResult], Awaitable[None]] | None = None,
    transport_for: Callable[[str], Transport] | None = None,
    provision: Callable[[LocalNetwork], Awaitable[None]] | None = None,
    over_http: bool = False,
) -> DemoResult:
    """Make a fresh network in ``folder`` and drive ``cases`` cases through it. ``then``
    runs while the network is still up (e.g. to serve it), before everything stops;
    ``provision`` runs once the network exists (e.g. `lvvx topics apply` on a secured
    Kafka), and ``transport_for`` gives each gateway its own connection; ``over_http``:
    the back offices use the gateways' HTTP APIs."""
    clock = CalendarClock.for_span(CALENDAR_SPAN)
    # the keys and the directory hold from the calendar's start to well after the real now
    net = create_network(folder, now=clock.start - timedelta(minutes=1),
                         directory_until=utc_now() + DEFAULT_DIRECTORY_VALIDITY)  # fmt: skip
    if provision is not None:
        await provision(net)
    demo = Demo(net, transport, prefix=prefix, observed=then is not None, clock=clock,
                transport_for=transport_for, over_http=over_http)  # fmt: skip
    book = CaseWriter(seed=seed, start=clock.start, calendar=True).cases(cases)
    result = await demo.run(
        book, hostile=hostile, on_progress=on_progress, keep_running=then is not None
    )
    if then is not None:
        try:
            demo.clock.live()  # the calendar ended in the past: what is served happens now
            await then(demo, result)
            # the cases served after the run: their receipts too, before the gateways stop
            result.unaudited = await demo.audited(time.monotonic() + RECEIPT_DEADLINE_S)
        finally:
            await demo.stop()
            demo.close_stores()
    return result


__all__ = ["HOSTILE_KINDS", "Demo", "DemoResult", "PartyCount", "run_demo"]
