"""The ARS crawl: every dashboard page, export and API answer an ARS analyst can reach, with patients,
e-mail addresses and emergency visits in the database, holds no INS/NIR-like number, no patient name and no
e-mail address."""

from __future__ import annotations

import io
import re
from collections.abc import Callable
from typing import Any, cast

import openpyxl
from django.test import Client
from django.urls import get_resolver, resolve, reverse

from enrs.accounts.models import User
from enrs.accounts.roles import Role
from enrs.dashboards import urls as dashboard_urls
from enrs.dashboards.api import urls as api_urls
from enrs.dashboards.selectors import dashboard_pages
from enrs.rpu.models import EmergencyDepartment
from enrs.usage.services import target_set
from tests.factories import UserFactory
from tests.patients.factories import make_patient

from .conftest import PERIOD, UsageData

ClientAs = Callable[[Role], Client]
# 13 to 15 digits in a row, or spaced as a NIR is often printed ("2 79 03 51 215 ...").
INS_LIKE = re.compile(r"(?<!\d)(?:\d ?){12,14}\d(?!\d)")
EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")


def _text_of(response: Any) -> str:
    if response.get("Content-Type", "").startswith("application/vnd.openxmlformats"):
        workbook = openpyxl.load_workbook(io.BytesIO(response.content))
        return "\n".join(
            str(value)
            for sheet in workbook.worksheets
            for row in sheet.iter_rows(values_only=True)
            for value in row
            if value is not None
        )
    if response.streaming:
        return b"".join(response.streaming_content).decode("utf-8")
    return response.content.decode("utf-8")


def _crawl_urls() -> list[str]:
    query = "?debut={debut}&fin={fin}".format(**PERIOD)
    urls = [reverse("dashboards:targets"), reverse("dashboards-api:pages")]
    for page in dashboard_pages():
        if page.slug == "synthese":
            base = reverse("dashboards:index")
        elif page.slug == "urgences":
            base = reverse("dashboards:urgences")
        else:
            base = reverse("dashboards:page", args=[page.slug])
        for suffix in (query, query + "&departement=35", query + "&pas=day"):
            urls.append(base + suffix)
        for chart in page.charts:
            for name in ("dashboards:export_csv", "dashboards:export_xlsx"):
                urls.append(reverse(name, args=[page.slug, chart.key]) + query)
            urls.append(reverse("dashboards-api:figure", args=[page.slug, chart.key]) + query)
    return urls


def test_ars_crawl_finds_no_identifier(
    client_as: ClientAs, usage_data: UsageData, rpu_data: EmergencyDepartment
) -> None:
    patients = [make_patient(qualified=True, birth_family_name=f"DUPATIENT{i}") for i in range(3)]
    ed = rpu_data
    admin = cast(User, UserFactory(admin=True, email="chef.projet@gcs-exemple.fr"))
    target_set(indicator="dmp.documents_submitted", year=2026, value=500.0, actor=admin)
    forbidden = [p.ins for p in patients if p.ins] + [p.birth_family_name for p in patients]
    forbidden += [ed.contact_email, admin.email]
    assert len(forbidden) == 8

    client = client_as(Role.ARS_ANALYST)
    visited: set[str] = set()
    rpu_seen = False
    for url in _crawl_urls():
        response = client.get(url)
        assert response.status_code == 200, url
        match = resolve(url.split("?", 1)[0])
        visited.add(f"{match.namespace}:{match.url_name}")
        text = _text_of(response)
        assert not INS_LIKE.search(text), (url, INS_LIKE.search(text))
        assert not EMAIL.search(text), (url, EMAIL.search(text))
        for value in forbidden:
            assert value not in text, (url, value)
        rpu_seen = rpu_seen or "Urgences adultes de Rennes" in text
    assert rpu_seen  # the RPU figures were really drawn from the passages above

    # Every GET route of the dashboards was crawled (removing a target is POST-only and refused to ARS).
    names = {f"dashboards:{p.name}" for p in dashboard_urls.urlpatterns}
    names |= {f"dashboards-api:{p.name}" for p in api_urls.urlpatterns}
    assert names - visited == {"dashboards:target_remove"}
    assert get_resolver()  # the project's URLconf is the one serving these routes
