"""CSV and XLSX exports: they open with the csv module and openpyxl and hold the page's figures."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from typing import Any

import openpyxl
from django.test import Client
from django.urls import reverse

from enrs.accounts.roles import Role

from .conftest import PERIOD, UsageData

ClientAs = Callable[[Role], Client]


def read_csv(response: Any) -> list[list[str]]:
    text = b"".join(response.streaming_content).decode("utf-8")
    assert text.startswith("\ufeff")
    return list(csv.reader(io.StringIO(text[1:]), delimiter=";"))


def test_csv_export_opens_and_matches(client_as: ClientAs, usage_data: UsageData) -> None:
    client = client_as(Role.ARS_ANALYST)
    url = reverse("dashboards:export_csv", args=["messagerie", "envois"])
    response = client.get(url, {**PERIOD, "pas": "month", "departement": "29"})
    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert 'filename="enrs-messagerie-envois-20260101-20260331.csv"' in response["Content-Disposition"]
    rows = read_csv(response)
    assert rows[0] == ["Mois", "Messages envoyés"]
    assert rows[1:] == [["01/2026", "0"], ["02/2026", "< 5"], ["03/2026", "0"]]


def test_xlsx_export_opens_and_matches(client_as: ClientAs, usage_data: UsageData) -> None:
    client = client_as(Role.ARS_ANALYST)
    url = reverse("dashboards:export_xlsx", args=["messagerie", "par-departement"])
    response = client.get(url, PERIOD)
    assert response.status_code == 200
    assert response["Content-Type"].startswith("application/vnd.openxmlformats")
    workbook = openpyxl.load_workbook(io.BytesIO(response.content))
    sheet = workbook["Données"]
    values = [list(row) for row in sheet.iter_rows(values_only=True)]
    assert values[0] == ["Département", "Messages envoyés"]
    assert values[1:] == [["Ille-et-Vilaine", 36], ["Morbihan", "s"], ["Finistère", "< 5"]]
    about = {row[0]: row[1] for row in workbook["Filtres et notes"].iter_rows(values_only=True)}
    assert about["Période"] == "du 01/01/2026 au 31/03/2026"
    assert about["Département"] == "tous"


def test_share_export_keeps_small_cells_hidden(client_as: ClientAs, usage_data: UsageData) -> None:
    client = client_as(Role.GCS_STAFF)
    response = client.get(reverse("dashboards:export_csv", args=["connexions", "methodes"]), PERIOD)
    rows = {row[0]: row[1:] for row in read_csv(response)[1:]}
    assert rows["Connexions par Pro Santé Connect"] == ["< 5", "< 5"]
    assert rows["Connexions par mot de passe + code à usage unique"] == ["s", "s"]
    assert rows["Connexions par carte CPS"][0] == "12"
    assert rows["Connexions par carte CPS"][1] == "46,2 %"


def test_export_errors(client_as: ClientAs, usage_data: UsageData) -> None:
    client = client_as(Role.ARS_ANALYST)
    bad = client.get(
        reverse("dashboards:export_csv", args=["messagerie", "envois"]),
        {"debut": "2026-02-01", "fin": "2026-01-01"},
    )
    assert bad.status_code == 400
    assert "La fin de la période doit suivre son début." in bad.content.decode()
    assert client.get(reverse("dashboards:export_xlsx", args=["messagerie", "inconnu"])).status_code == 404
    assert client.get("/tableaux-de-bord/messagerie/envois/export.pdf").status_code == 404
