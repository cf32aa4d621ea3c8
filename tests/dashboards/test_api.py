"""``/api/tableaux-de-bord/``: JSON figures for the ARS's tools, documented in the OpenAPI schema."""

from __future__ import annotations

from collections.abc import Callable

from django.test import Client
from django.urls import reverse

from enrs.accounts.roles import Role

from .conftest import PERIOD, UsageData

ClientAs = Callable[[Role], Client]


def test_page_list_links_every_chart(client_as: ClientAs, usage_data: UsageData) -> None:
    response = client_as(Role.ARS_ANALYST).get(reverse("dashboards-api:pages"))
    assert response.status_code == 200
    pages = {p["tableau"]: p for p in response.json()}
    assert {
        "synthese",
        "messagerie",
        "dmp",
        "telemedecine",
        "ror",
        "connexions",
        "annuaire",
        "urgences",
    } <= set(pages)
    charts = {c["graphique"]: c["url"] for c in pages["messagerie"]["graphiques"]}
    assert charts["envois"].endswith("/api/tableaux-de-bord/messagerie/envois/")


def test_figure_json_with_filters_and_small_cells(client_as: ClientAs, usage_data: UsageData) -> None:
    client = client_as(Role.ARS_ANALYST)
    url = reverse("dashboards-api:figure", args=["messagerie", "envois"])
    body = client.get(url, {**PERIOD, "pas": "month", "departement": "29"}).json()
    assert body["filtres"] == {
        "debut": "2026-01-01",
        "fin": "2026-03-31",
        "pas": "month",
        "departement": "29",
        "categorie": None,
        "college": None,
        "membre": None,
    }
    assert body["colonnes"] == ["Mois", "Messages envoyés"]
    february = body["lignes"][1]
    assert february["cle"] == "2026-02-01"
    assert february["cellules"] == [{"valeur": None, "masque": True, "texte": "< 5"}]
    body = client.get(url, {**PERIOD, "pas": "month", "departement": "35"}).json()
    assert [row["cellules"][0]["valeur"] for row in body["lignes"]] == [20, 16, 0]


def test_api_errors_are_french(client_as: ClientAs, usage_data: UsageData) -> None:
    client = client_as(Role.ARS_ANALYST)
    url = reverse("dashboards-api:figure", args=["messagerie", "envois"])
    bad = client.get(url, {"debut": "2026-02-01", "fin": "2026-01-01"})
    assert bad.status_code == 400
    assert "La fin de la période doit suivre son début." in bad.json()["erreur"]
    missing = client.get(reverse("dashboards-api:figure", args=["messagerie", "inconnu"]))
    assert missing.status_code == 404
    assert missing.json() == {"erreur": "Graphique inconnu."}


def test_openapi_schema_documents_the_figures(client_as: ClientAs) -> None:
    schema = client_as(Role.ARS_ANALYST).get(reverse("api-schema"), {"format": "json"}).json()
    operation = schema["paths"]["/api/tableaux-de-bord/{page}/{chart}/"]["get"]
    assert {p["name"] for p in operation["parameters"]} >= {"debut", "fin", "pas", "departement", "membre"}
    ref = operation["responses"]["200"]["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[-1]
    assert {"lignes", "objectifs", "colonnes", "filtres"} <= set(
        schema["components"]["schemas"][ref]["properties"]
    )
    assert "/api/tableaux-de-bord/" in schema["paths"]
