"""Dashboard pages: access, filters, small cells shown "< 5", chart data as JSON script, query counts."""

from __future__ import annotations

import html
import json
import re
from collections.abc import Callable
from typing import cast

import pytest
from django.test import Client
from django.urls import reverse

from enrs.accounts.roles import Role
from enrs.dashboards.catalog import PAGES

from .conftest import PERIOD, UsageData

ClientAs = Callable[[Role], Client]


def page_url(slug: str) -> str:
    return reverse("dashboards:index") if slug == "synthese" else reverse("dashboards:page", args=[slug])


def chart_json(content: str, element_id: str) -> dict:
    match = re.search(rf'<script id="{element_id}" type="application/json">(.*?)</script>', content, re.S)
    assert match, f"no JSON script {element_id}"
    return json.loads(match.group(1))


def table_cells(content: str, key: str) -> list[list[str]]:
    """The rows of the data table of chart `key` (header row excluded), as plain text."""
    section = content.split(f'id="graphique-{key}"', 1)[1].split("</section>", 1)[0]
    body = section.split("<tbody>", 1)[1].split("</tbody>", 1)[0]
    rows = []
    for row in re.findall(r"<tr>(.*?)</tr>", body, re.S):
        cells = re.findall(r"<t[hd][^>]*>(.*?)</t[hd]>", row, re.S)
        rows.append([html.unescape(re.sub(r"<[^>]+>", "", c)).strip() for c in cells])
    return rows


@pytest.mark.parametrize("role", [Role.ARS_ANALYST, Role.GCS_STAFF, Role.ADMIN])
def test_dashboard_roles_open_every_page(client_as: ClientAs, usage_data: UsageData, role: Role) -> None:
    client = client_as(role)
    for page in PAGES:
        response = client.get(page_url(page.slug), PERIOD)
        assert response.status_code == 200, page.slug
        content = response.content.decode()
        for chart in page.charts:
            assert f'id="graphique-{chart.key}"' in content
    assert client.get(reverse("dashboards:urgences"), PERIOD).status_code == 200


def test_clinicians_and_anonymous_visitors_are_turned_away(client: Client, client_as: ClientAs) -> None:
    response = client.get(reverse("dashboards:index"))
    assert response.status_code == 302
    assert "/compte/" in response["Location"]
    assert client.get(reverse("dashboards-api:pages")).status_code == 403
    clinician = client_as(Role.CLINICIAN)
    assert clinician.get(reverse("dashboards:index")).status_code == 403
    assert clinician.get(reverse("dashboards:export_csv", args=["messagerie", "envois"])).status_code == 403
    assert clinician.get(reverse("dashboards-api:figure", args=["messagerie", "envois"])).status_code == 403


def test_page_shows_chart_table_and_exports_with_the_same_figures(
    client_as: ClientAs, usage_data: UsageData
) -> None:
    response = client_as(Role.ARS_ANALYST).get(page_url("messagerie"), {**PERIOD, "pas": "month"})
    content = response.content.decode()
    data = chart_json(content, "donnees-messagerie-envois")
    assert data["labels"] == ["01/2026", "02/2026", "03/2026"]
    assert data["datasets"][0]["data"] == [20, 19, 8]
    assert table_cells(content, "envois") == [["01/2026", "20"], ["02/2026", "19"], ["03/2026", "8"]]
    query = "debut=2026-01-01&amp;fin=2026-03-31&amp;pas=month"
    assert f"{reverse('dashboards:export_csv', args=['messagerie', 'envois'])}?{query}" in content
    assert f"{reverse('dashboards:export_xlsx', args=['messagerie', 'envois'])}?{query}" in content
    # Chart.js from our own static files, and no inline script (CSP).
    assert "dashboards/vendor/chart.umd.min.js" in content
    assert not re.search(r"<script(?![^>]*(src=|application/json))[^>]*>", content)
    assert "'unsafe-inline'" not in response.get("Content-Security-Policy", "")


def test_department_filter_and_small_cell_in_the_page(client_as: ClientAs, usage_data: UsageData) -> None:
    client = client_as(Role.ARS_ANALYST)
    content = client.get(
        page_url("messagerie"), {**PERIOD, "pas": "month", "departement": "29"}
    ).content.decode()
    assert table_cells(content, "envois")[1] == ["02/2026", "< 5"]
    assert chart_json(content, "donnees-messagerie-envois")["datasets"][0]["data"] == [0, None, 0]
    assert "Département : 29 — Finistère" in content
    content = client.get(
        page_url("messagerie"), {**PERIOD, "pas": "month", "departement": "35"}
    ).content.decode()
    assert table_cells(content, "envois")[1] == ["02/2026", "16"]
    regional = client.get(page_url("messagerie"), PERIOD).content.decode()
    assert table_cells(regional, "par-departement") == [
        ["Ille-et-Vilaine", "36"],
        ["Morbihan", "s"],
        ["Finistère", "< 5"],
    ]


def test_invalid_filters_are_shown_next_to_the_field(client_as: ClientAs, usage_data: UsageData) -> None:
    client = client_as(Role.ARS_ANALYST)
    response = client.get(page_url("dmp"), {"debut": "2026-03-01", "fin": "2026-01-01"})
    assert response.status_code == 200
    content = html.unescape(response.content.decode())
    assert 'id="id_fin-erreurs"' in content
    assert "La fin de la période doit suivre son début." in content
    response = client.get(page_url("dmp"), {**PERIOD, "departement": "99"})
    assert 'id="id_departement-erreurs"' in response.content.decode()
    assert client.get(reverse("dashboards:page", args=["inconnu"])).status_code == 404


def test_overview_is_the_dashboards_landing(client_as: ClientAs, usage_data: UsageData) -> None:
    response = client_as(Role.ARS_ANALYST).get("/tableaux-de-bord/", PERIOD)
    content = response.content.decode()
    assert response.status_code == 200
    assert "Synthèse" in content
    rows = {r[0]: r[1:] for r in table_cells(content, "objectifs")}
    assert rows["Messages envoyés"][0] == "47"
    assert rows["Documents envoyés au DMP"][0] == "21"
    # Drill-down by department: each department row opens the overview filtered on it.
    by_department = table_cells(content, "par-departement")
    assert by_department == [
        ["Finistère", "< 5", "0", "0"],
        ["Ille-et-Vilaine", "36", "21", "0"],
        ["Morbihan", "s", "0", "0"],
    ]
    assert 'href="?debut=2026-01-01&amp;fin=2026-03-31&amp;departement=29"' in content


def _queries(client: Client, url: str, params: dict) -> list[str]:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as queries:
        assert client.get(url, params).status_code == 200
    return [q["sql"][:100] for q in queries.captured_queries]


# Locked query counts: session + user, the filter choices (departments, categories), then per chart one
# query per distinct selector call (series / total / breakdown, and the target lookup of each indicator;
# identical calls of one page run once), the label lookups of breakdowns, the session save. A weekly series
# of distinct actors is two queries (whole weeks precomputed, then the partial first and last weeks).
# Independent of the amount of data.
LOCKED_QUERIES = {"messagerie": 22, "connexions": 21, "synthese": 30}


@pytest.mark.parametrize("slug", sorted(LOCKED_QUERIES))
def test_query_counts_are_locked(client_as: ClientAs, usage_data: UsageData, slug: str) -> None:
    from .conftest import at, emit

    client = client_as(Role.ARS_ANALYST)
    before = _queries(client, page_url(slug), PERIOD)
    emit("messagerie.message_sent", 40, department="29", when=at(3, 15))
    emit("auth.sign_in", 30, department="29", when=at(1, 15), method="psc", role="gcs_staff")
    from enrs.usage.rollups import rollup_rebuild

    rollup_rebuild()
    after = _queries(client, page_url(slug), PERIOD)
    assert len(before) == len(after) == LOCKED_QUERIES[slug], "\n".join(after)


def test_member_category_and_college_filters(client_as: ClientAs, usage_data: UsageData) -> None:
    """Events of a member structure carry its department, category and collège (directory resolver)."""
    from annuaire.models import College, Structure
    from enrs.usage.rollups import rollup_rebuild
    from enrs.usage.services import usage_emit
    from tests.annuaire.factories import AdherentFactory, StructureFactory

    from .conftest import at

    clinic = cast(
        Structure, StructureFactory(name="Clinique des Lices", category_code="365", category_label="Clinique")
    )
    AdherentFactory(structure=clinic, college=College.PRIVATE_ESTABLISHMENTS)
    for i in range(7):
        usage_emit("messagerie.message_sent", structure_id=clinic.pk, occurred_at=at(2, 20, 8 + i))
    rollup_rebuild()
    client = client_as(Role.ARS_ANALYST)
    url = page_url("messagerie")
    for filters in ({"membre": str(clinic.pk)}, {"categorie": "365"}, {"college": "2"}):
        content = client.get(url, {**PERIOD, "pas": "month", **filters}).content.decode()
        assert table_cells(content, "envois") == [["01/2026", "0"], ["02/2026", "7"], ["03/2026", "0"]], (
            filters
        )
    content = client.get(url, {**PERIOD, "membre": str(clinic.pk)}).content.decode()
    assert "Membre : Clinique des Lices" in content
    assert f'<option value="{clinic.pk}" selected>Clinique des Lices</option>' in content
    everyone = client.get(url, {**PERIOD, "pas": "month"}).content.decode()
    assert table_cells(everyone, "envois")[1] == ["02/2026", "26"]
