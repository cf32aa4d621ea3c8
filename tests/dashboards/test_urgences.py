"""The "Urgences (RPU)" page: figures from the RPU selectors, same table / chart / export mechanics."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable

from django.test import Client
from django.urls import reverse

from enrs.accounts.roles import Role
from enrs.rpu.models import EmergencyDepartment, FileSource, FileStatus, RpuFile, RpuPassage
from tests.annuaire.factories import DepartmentFactory

from .conftest import PARIS, PERIOD
from .test_exports import read_csv
from .test_views import chart_json, table_cells

ClientAs = Callable[[Role], Client]


def test_urgences_page_figures(client_as: ClientAs, rpu_data: EmergencyDepartment) -> None:
    client = client_as(Role.ARS_ANALYST)
    response = client.get(reverse("dashboards:urgences"), {**PERIOD, "pas": "month"})
    assert response.status_code == 200
    content = response.content.decode()
    assert table_cells(content, "passages") == [["01/2026", "0"], ["02/2026", "24"], ["03/2026", "0"]]
    assert chart_json(content, "donnees-urgences-passages")["datasets"][0]["data"] == [0, 24, 0]
    profile = {row[0]: row[1] for row in table_cells(content, "profil")}
    assert profile["75 ans et plus (%)"] == "33,3 %"
    assert profile["Arrivées en ambulance (%)"] == "50 %"
    assert profile["Hospitalisation après le passage (%)"] == "25 %"
    assert profile["Moins de 1 an (%)"] == "0 %"
    assert ["Urgences adultes de Rennes", "24", "50 %", "25 %"] in table_cells(content, "par-service")
    assert reverse("rpu:supervision") in content
    assert "Urgences (RPU)" in content


def test_urgences_small_cells_and_export(client_as: ClientAs, rpu_data: EmergencyDepartment) -> None:
    DepartmentFactory(code="29", name="Finistère", region_code="53")
    small = EmergencyDepartment.objects.create(
        finess="290000017", name="Urgences de Carhaix", department="29"
    )
    rpu_file = RpuFile.objects.create(
        emergency_department=small,
        source=FileSource.DROP,
        sha256="1" * 64,
        received_at=dt.datetime(2026, 2, 2, 2, tzinfo=PARIS),
        status=FileStatus.IMPORTED,
    )
    entry = dt.datetime(2026, 2, 1, 9, tzinfo=PARIS)
    for i in range(3):
        RpuPassage.objects.create(
            file=rpu_file, emergency_department=small, record_index=i, entry_at=entry, entry_day=entry.date()
        )
    client = client_as(Role.ARS_ANALYST)
    one_day = {"debut": "2026-02-01", "fin": "2026-02-01", "pas": "day"}
    content = client.get(reverse("dashboards:urgences"), one_day).content.decode()
    # One small department: the other one is hidden too ("s"), or 27 minus 24 would give Carhaix's 3.
    assert table_cells(content, "par-service") == [
        ["Urgences adultes de Rennes", "s", "50 %", "25 %"],
        ["Urgences de Carhaix", "< 5", "—", "—"],
    ]
    finistere = client.get(reverse("dashboards:urgences"), {**one_day, "departement": "29"}).content.decode()
    assert table_cells(finistere, "passages") == [["01/02/2026", "< 5"]]
    response = client.get(reverse("dashboards:export_csv", args=["urgences", "par-service"]), one_day)
    rows = read_csv(response)
    assert rows[0][0] == "Service d'urgence"
    assert rows[1:] == [
        ["Urgences adultes de Rennes", "s", "50 %", "25 %"],
        ["Urgences de Carhaix", "< 5", "—", "—"],
    ]


def test_urgences_page_lists_yesterdays_missing_feeds(
    client_as: ClientAs, rpu_data: EmergencyDepartment
) -> None:
    from django.utils import timezone

    from enrs.rpu.models import FeedCheck, FeedState
    from enrs.rpu.selectors import yesterday

    other = EmergencyDepartment.objects.create(finess="350000030", name="Urgences de Vitré", department="35")
    day = yesterday()
    for ed, state in ((rpu_data, FeedState.OK), (other, FeedState.MISSING)):
        FeedCheck.objects.create(
            emergency_department=ed,
            day=day,
            state=state,
            passages=3,
            problems=["3 passage(s)"],
            checked_at=timezone.now(),
        )
    client = client_as(Role.ARS_ANALYST)
    content = client.get(reverse("dashboards:urgences")).content.decode()
    section = content.split('id="envois-rpu"', 1)[1].split("</section>", 1)[0]
    assert f"Envois des RPU du {day:%d/%m/%Y}" in section
    rows = re.findall(r"<tr>(.*?)</tr>", section, re.S)
    assert len(rows) == 2  # header + the one department in trouble
    assert "Urgences de Vitré" in rows[1]
    assert "Absent" in rows[1]
    assert "Urgences adultes de Rennes" not in section
    assert "passage" not in section  # the check's counts stay on the supervision page
    assert f"{reverse('rpu:supervision')}?jour={day:%Y-%m-%d}" in section
