"""AVIM's adapter. The aliens police report identification and public-order findings; they
hear of the scenario (a return may need a supervised departure) and of the close.
`Onderzoek` and `Antecedent` are how the police systems record checks and records."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import date
from typing import Literal

from pydantic import BaseModel, ConfigDict

from adapters._base import Adapter, type_names
from adapters._register import CaseRecord
from broker import models as m
from broker.caseflow import CaseState, Step

_FROZEN = ConfigDict(frozen=True, extra="forbid")
CK, CR, PO = m.IdentityCheckKind, m.CheckResult, m.PublicOrderKind

_CHECK = {
    "vingerafdrukken": CK.FINGERPRINTS, "eurodac": CK.EURODAC, "sis": CK.SIS,
    "documentonderzoek": CK.DOCUMENT_EXAMINATION, "ambassadepresentatie": CK.EMBASSY_PRESENTATION,
    "taalanalyse": CK.LANGUAGE_ANALYSIS,
}  # fmt: skip
_RESULT = {
    "bevestigd": CR.CONFIRMED, "geen treffer": CR.NO_MATCH, "tegenstrijdig": CR.CONFLICTING,
    "niet eenduidig": CR.INCONCLUSIVE, "loopt": CR.PENDING,
}  # fmt: skip
_RECORD = {
    "veroordeling": PO.CRIMINAL_CONVICTION, "lopende vervolging": PO.PENDING_PROSECUTION,
    "inreisverbod": PO.ENTRY_BAN, "ongewenstverklaring": PO.DECLARED_UNDESIRABLE,
    "staatsveiligheid": PO.NATIONAL_SECURITY, "geweldsincident": PO.VIOLENT_INCIDENT,
    "overig": PO.OTHER,
}  # fmt: skip
_STATUS = {
    "vastgesteld": m.IdentityStatus.ESTABLISHED, "aannemelijk": m.IdentityStatus.PLAUSIBLE,
    "in onderzoek": m.IdentityStatus.UNDER_INVESTIGATION,
    "niet vastgesteld": m.IdentityStatus.NOT_ESTABLISHED,
}  # fmt: skip


class Onderzoek(BaseModel):
    """One identification check as the police record it."""

    model_config = _FROZEN
    soort: Literal["vingerafdrukken", "eurodac", "sis", "documentonderzoek", "ambassadepresentatie", "taalanalyse"]  # fmt: skip
    datum: date
    uitkomst: Literal["bevestigd", "geen treffer", "tegenstrijdig", "niet eenduidig", "loopt"]
    toelichting: str | None = None


class Antecedent(BaseModel):
    """A public-order record that may stand in the way of guidance or departure."""

    model_config = _FROZEN
    soort: Literal["veroordeling", "lopende vervolging", "inreisverbod", "ongewenstverklaring", "staatsveiligheid", "geweldsincident", "overig"]  # fmt: skip
    sinds: date | None = None
    tot: date | None = None
    omschrijving: str


Vaststelling = Literal["vastgesteld", "aannemelijk", "in onderzoek", "niet vastgesteld"]


def checks_of(checks: Sequence[Onderzoek]) -> tuple[m.IdentityCheck, ...]:
    return tuple(
        m.IdentityCheck(
            kind=_CHECK[c.soort], date=c.datum, result=_RESULT[c.uitkomst], notes=c.toelichting
        )
        for c in checks
    )


def contraindications_of(records: Sequence[Antecedent]) -> tuple[m.PublicOrderNote, ...]:
    return tuple(
        m.PublicOrderNote(kind=_RECORD[a.soort], since=a.sinds, until=a.tot, description=a.omschrijving)
        for a in records
    )  # fmt: skip


@dataclass(frozen=True)
class AvimCase(CaseRecord):
    report_ids: tuple[uuid.UUID, ...] = ()
    identity_status: m.IdentityStatus = m.IdentityStatus.UNKNOWN


class AvimAdapter(Adapter[AvimCase]):
    ROLE = m.PartyRole.AVIM
    SENDS = type_names(m.IdentityReport)
    RECEIVES = type_names(m.ScenarioDecision, m.CaseClosed)
    NEW_CASE_STATE = CaseState(step=Step.REST_PERIOD)

    def new_record(self, case_id: uuid.UUID) -> AvimCase:
        return AvimCase(case_id)

    async def report_identity(
        self,
        case_id: uuid.UUID,
        checks: Sequence[Onderzoek],
        status: Vaststelling,
        contraindications: Sequence[Antecedent] = (),
        *,
        established_identity: m.Person | None = None,
        supervised_departure_possible: bool | None = None,
        notes: str | None = None,
        to: Sequence[str] | None = None,
    ) -> m.IdentityReport:
        """Report findings to ``to`` (default: the case's municipality if known, DT&V and
        IND). A supervised departure is taken to be possible once identity is established,
        as the travel document depends on it, unless said otherwise."""
        if to is None:
            record = self.register.get(case_id)
            known = record.municipality if record else None
            to = [*([known] if known else []), self.network.only(m.PartyRole.DTV)]
            to.append(self.network.only(m.PartyRole.IND))
        now = self.clock()
        possible = supervised_departure_possible
        report = m.IdentityReport(
            case_id=case_id, report_id=uuid.uuid4(), reported_at=now,
            identity_status=_STATUS[status], established_identity=established_identity,
            checks=checks_of(checks), contraindications=contraindications_of(contraindications),
            supervised_departure_possible=status == "vastgesteld" if possible is None else possible,
            notes=notes,
        )  # fmt: skip
        await self._send(report, to, at=now)
        record = self.register[case_id]
        self.register.put(replace(
            record, report_ids=(*record.report_ids, report.report_id),
            identity_status=report.identity_status,
        ))  # fmt: skip
        return report
