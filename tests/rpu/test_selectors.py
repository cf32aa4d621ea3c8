"""RPU indicators: values against hand-counted data, the small-cell rule, series and breakdowns."""

from datetime import date, timedelta

import pytest

from enrs.rpu import selectors, services
from enrs.rpu.models import EmergencyDepartment
from enrs.rpu.selectors import Cell, count_cell, share_cell
from tests.rpu.conftest import OTHER_FINESS, full_patient, oscour_xml, sample

pytestmark = pytest.mark.django_db

DAY = date(2026, 3, 10)


def test_small_cell_rule() -> None:
    assert count_cell(0) == Cell(value=0)
    assert count_cell(4) == Cell(value=None, suppressed=True)
    assert count_cell(5) == Cell(value=5)
    assert share_cell(0, 0) == Cell(value=None)
    assert share_cell(3, 3) == Cell(value=None, suppressed=True)  # denominator under 5
    assert share_cell(2, 100) == Cell(value=None, suppressed=True)  # numerator under 5
    assert share_cell(0, 10) == Cell(value=0.0)
    assert share_cell(5, 8) == Cell(value=62.5)
    assert Cell(value=None, suppressed=True).display == "< 5"
    assert Cell(value=62.5).display == "62,5"
    assert Cell(value=1234).display == "1\u202f234"


def _twenty_passages() -> None:
    """20 passages on DAY: ages, CCMU, lengths, exits and arrivals chosen to give round shares."""
    patients = []
    for i in range(20):
        patients.append(
            full_patient(
                "10/03/2026 08:00",
                # 5 babies, 5 children, 5 adults, 5 elderly
                NAISSANCE=["01/01/2026", "01/01/2015", "01/01/1980", "01/01/1940"][i // 5],
                GRAVITE=["1", "2", "2", "3"][i % 4],
                # 10 stays of 2 h, 10 of 6 h
                SORTIE="10/03/2026 10:00" if i < 10 else "10/03/2026 14:00",
                # 5 admitted (6), 15 home (8)
                MODE_SORTIE="6" if i >= 15 else "8",
                # 5 SMUR, 5 ambulance, 10 personal
                TRANSPORT="SMUR" if i < 5 else "AMBU" if i < 10 else "PERSO",
                # DP filled in 15 of 20
                DP="" if i >= 15 else "R104",
            )
        )
    services.rpu_file_import(data=oscour_xml(patients), source="drop")


def test_indicators_against_hand_counts(emergency_department: EmergencyDepartment) -> None:
    _twenty_passages()
    figures = selectors.rpu_indicators(start=DAY, end=DAY)
    assert figures.visits == Cell(value=20)
    assert figures.visits_per_day.value == 20.0
    assert figures.under_1.value == 25.0
    assert figures.under_18.value == 50.0
    assert figures.over_75.value == 25.0
    assert figures.ccmu["1"].value == 25.0
    assert figures.ccmu["2"].value == 50.0
    assert figures.ccmu["3"].value == 25.0
    assert figures.ccmu["45"] == Cell(value=0.0)
    assert figures.stays_under_4h.value == 50.0
    assert figures.admission_rate.value == 25.0
    assert figures.arrival_smur.value == 25.0
    assert figures.arrival_ambulance.value == 25.0
    assert figures.completeness["dp"].value == 75.0
    assert figures.completeness["sortie"].value == 100.0
    assert figures.completeness["destination"] == Cell(value=0.0)
    # Same figures through each filter, nothing for another ED or another period.
    assert (
        selectors.rpu_indicators(
            start=DAY, end=DAY, emergency_department_id=emergency_department.pk
        ).visits.value
        == 20
    )
    assert selectors.rpu_indicators(start=DAY, end=DAY, establishment="350000006").visits.value == 20
    assert selectors.rpu_indicators(start=DAY, end=DAY, department="35").visits.value == 20
    assert selectors.rpu_indicators(start=DAY, end=DAY, department="29").visits == Cell(value=0)
    later = selectors.rpu_indicators(start=DAY + timedelta(days=1), end=DAY + timedelta(days=2))
    assert later.visits == Cell(value=0)
    assert later.under_1 == Cell(value=None)


def test_small_ed_is_suppressed(emergency_department: EmergencyDepartment) -> None:
    services.rpu_file_import(data=oscour_xml([full_patient()] * 3), source="drop")
    figures = selectors.rpu_indicators(start=DAY, end=DAY)
    assert figures.visits.suppressed
    assert figures.visits.value is None
    assert figures.visits_per_day.suppressed
    assert figures.admission_rate.suppressed
    assert all(cell.suppressed for cell in figures.completeness.values() if cell.denominator != 0)
    assert figures.completeness["dp"].suppressed


def test_indicators_take_one_query(
    emergency_department: EmergencyDepartment, django_assert_num_queries: object
) -> None:
    _twenty_passages()
    with django_assert_num_queries(1):  # type: ignore[operator]
        selectors.rpu_indicators(start=DAY, end=DAY)


def test_visits_series(emergency_department: EmergencyDepartment) -> None:
    services.rpu_file_import(data=sample("valide.xml"), source="drop")
    services.rpu_file_import(
        data=oscour_xml([full_patient("12/03/2026 09:00")] * 2, start="12/03/2026", end="12/03/2026"),
        source="drop",
    )
    series = selectors.rpu_visits_series(start=DAY - timedelta(days=1), end=DAY + timedelta(days=3))
    assert [(p.period, p.value, p.suppressed) for p in series] == [
        (date(2026, 3, 9), 0, False),
        (date(2026, 3, 10), 5, False),
        (date(2026, 3, 11), 0, False),
        (date(2026, 3, 12), None, True),
        (date(2026, 3, 13), 0, False),
    ]
    weekly = selectors.rpu_visits_series(start=DAY, end=DAY + timedelta(days=3), granularity="week")
    assert [(p.period, p.value) for p in weekly] == [(date(2026, 3, 9), 7)]
    monthly = selectors.rpu_visits_series(start=date(2026, 2, 20), end=DAY, granularity="month")
    assert [(p.period, p.value) for p in monthly] == [(date(2026, 2, 1), 0), (date(2026, 3, 1), 5)]


def test_breakdowns(emergency_department: EmergencyDepartment, other_department: EmergencyDepartment) -> None:
    _twenty_passages()
    services.rpu_file_import(data=oscour_xml([full_patient()] * 2, finess=OTHER_FINESS), source="drop")
    rows = selectors.rpu_breakdown(start=DAY, end=DAY, by="emergency_department")
    assert [(r.label, r.value, r.suppressed) for r in rows] == [
        ("Urgences adultes et pédiatriques de Fictiville", 20, False),
        ("Urgences de Bourg-Exemple", None, True),
    ]
    by_establishment = selectors.rpu_breakdown(start=DAY, end=DAY, by="establishment", indicator="under_1")
    assert [(r.key, r.label, r.value, r.suppressed) for r in by_establishment] == [
        ("350000006", "CH de Fictiville", 25.0, False),
        (OTHER_FINESS, "Urgences de Bourg-Exemple", None, True),
    ]
    by_department = selectors.rpu_breakdown(start=DAY, end=DAY, by="department", indicator="admission_rate")
    assert [(r.key, r.value, r.suppressed) for r in by_department] == [
        ("29", None, True),
        ("35", 25.0, False),
    ]
    with pytest.raises(ValueError, match="unknown"):
        selectors.rpu_breakdown(start=DAY, end=DAY, indicator="unknown")  # type: ignore[arg-type]


def test_feed_status_live_without_a_recorded_check(
    emergency_department: EmergencyDepartment, other_department: EmergencyDepartment
) -> None:
    services.rpu_file_import(data=sample("valide.xml"), source="drop")
    rows = selectors.rpu_feed_status(day=DAY)
    assert [(r.name, r.state, r.passages) for r in rows] == [
        ("Urgences de Bourg-Exemple", "missing", 0),
        ("Urgences adultes et pédiatriques de Fictiville", "late", 5),  # received now, long after the day
    ]
    assert rows[0].state_label == "Absent"
