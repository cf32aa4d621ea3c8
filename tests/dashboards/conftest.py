"""Usage data for the dashboards' tests: events emitted through `usage_emit`, then rolled up, so that the
pages read exactly what production reads (rollup tables through `enrs.usage.selectors`)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from zoneinfo import ZoneInfo

import pytest

from enrs.rpu.models import EmergencyDepartment, FileSource, FileStatus, RpuFile, RpuPassage
from enrs.usage.rollups import rollup_rebuild
from enrs.usage.services import usage_emit
from tests.annuaire.factories import DepartmentFactory

PARIS = ZoneInfo("Europe/Paris")
YEAR = 2026
# The period every test asks for (explicit: the tests do not depend on today's date).
PERIOD = {"debut": "2026-01-01", "fin": "2026-03-31"}


def at(month: int, day: int, hour: int = 10) -> dt.datetime:
    return dt.datetime(YEAR, month, day, hour, tzinfo=PARIS)


@dataclass(frozen=True)
class UsageData:
    sent_35: int
    sent_29: int
    submitted: dict[str, int]


def emit(kind: str, count: int, *, department: str, when: dt.datetime, **dims: object) -> None:
    for i in range(count):
        usage_emit(
            kind, department=department, occurred_at=when + dt.timedelta(minutes=i), dims=dict(dims) or None
        )


@pytest.fixture
def usage_data(db: None) -> UsageData:
    """Messages sent in Ille-et-Vilaine (36), the Morbihan (8) and the Finistère (3: a small cell), DMP
    documents of three types (one of them small), sign-ins by method (Pro Santé Connect small). With one
    small cell per breakdown, the smallest other non-zero cell is hidden too ("s")."""
    DepartmentFactory(code="35", name="Ille-et-Vilaine", region_code="53")
    DepartmentFactory(code="29", name="Finistère", region_code="53")
    DepartmentFactory(code="56", name="Morbihan", region_code="53")
    emit("messagerie.message_sent", 20, department="35", when=at(1, 12))
    emit("messagerie.message_sent", 16, department="35", when=at(2, 9))
    emit("messagerie.message_sent", 3, department="29", when=at(2, 10))
    emit("messagerie.message_sent", 8, department="56", when=at(3, 10))
    emit("dmp.document_submitted", 12, department="35", when=at(1, 20), type_code="11488-4", source="portail")
    emit("dmp.document_submitted", 2, department="35", when=at(1, 21), type_code="34133-9", source="portail")
    emit("dmp.document_submitted", 7, department="35", when=at(1, 22), type_code="11506-3", source="portail")
    emit("auth.sign_in", 20, department="35", when=at(3, 2), method="password", role="clinician")
    emit("auth.sign_in", 12, department="35", when=at(3, 3), method="cps", role="clinician")
    emit("auth.sign_in", 2, department="35", when=at(3, 4), method="psc", role="clinician")
    emit("auth.sign_in_upgraded", 6, department="35", when=at(3, 5), method="otp", role="clinician")
    rollup_rebuild()
    return UsageData(sent_35=36, sent_29=3, submitted={"11488-4": 12, "34133-9": 2, "11506-3": 7})


@pytest.fixture
def rpu_data(db: None) -> EmergencyDepartment:
    """One emergency department (with a contact address) and 24 passages on 1 February 2026: 8 aged 80,
    12 by ambulance, 6 admitted (MODE_SORTIE 6), stays of 2 to 5 hours."""
    ed = EmergencyDepartment.objects.create(
        finess="350000022",
        name="Urgences adultes de Rennes",
        department="35",
        contact_email="urgences.rennes@chu-exemple.fr",
    )
    rpu_file = RpuFile.objects.create(
        emergency_department=ed,
        source=FileSource.UPLOAD,
        sha256="0" * 64,
        received_at=dt.datetime(2026, 2, 2, 3, tzinfo=PARIS),
        status=FileStatus.IMPORTED,
        period_start=dt.date(2026, 2, 1),
        period_end=dt.date(2026, 2, 1),
    )
    entry = dt.datetime(2026, 2, 1, 14, tzinfo=PARIS)
    RpuPassage.objects.bulk_create(
        RpuPassage(
            file=rpu_file,
            emergency_department=ed,
            record_index=i,
            entry_at=entry,
            entry_day=entry.date(),
            exit_at=entry + dt.timedelta(hours=2 + i % 4),
            length_minutes=120 + 60 * (i % 4),
            postal_code="35000",
            commune="RENNES",
            age_years=80 if i % 3 == 0 else 30,
            sex="F",
            transport="AMBU" if i % 2 else "PERSO",
            gravite="2",
            dp="S0600",
            mode_sortie="6" if i % 4 == 0 else "8",
        )
        for i in range(24)
    )
    return ed
