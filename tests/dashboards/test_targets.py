"""Yearly targets: read by every dashboard role, written by GCS staff and administrators only."""

from __future__ import annotations

import html
from collections.abc import Callable

import pytest
from django.test import Client
from django.urls import reverse

from enrs.accounts.roles import Role
from enrs.audit.models import AuditEvent
from enrs.usage.models import Target
from enrs.usage.services import target_set
from tests.factories import UserFactory

from .conftest import PERIOD, UsageData

ClientAs = Callable[[Role], Client]
FORM = {"indicateur": "dmp.documents_submitted", "annee": "2026", "departement": "", "valeur": "730"}


@pytest.mark.parametrize("role", [Role.GCS_STAFF, Role.ADMIN])
def test_gcs_staff_and_admins_set_targets_drawn_on_the_charts(
    client_as: ClientAs, usage_data: UsageData, role: Role
) -> None:
    client = client_as(role)
    response = client.post(reverse("dashboards:targets"), FORM)
    assert response.status_code == 302
    target = Target.objects.get(indicator="dmp.documents_submitted", year=2026, department="")
    assert target.value == 730
    assert AuditEvent.objects.filter(action="usage.target.set").exists()
    # Same indicator, year and department: replaced, not duplicated.
    client.post(reverse("dashboards:targets"), {**FORM, "valeur": "365"})
    assert Target.objects.get(indicator="dmp.documents_submitted", year=2026).value == 365
    page = html.unescape(client.get(reverse("dashboards:page", args=["dmp"]), PERIOD).content.decode())
    assert (
        "Documents envoyés au DMP — objectif 2026 : 365 ; attendu sur la période : 90 ; réalisé : 21" in page
    )
    assert "écart : \u221269, soit 23,3 % de l'attendu" in page


def test_department_target(client_as: ClientAs, usage_data: UsageData) -> None:
    client = client_as(Role.GCS_STAFF)
    client.post(reverse("dashboards:targets"), {**FORM, "departement": "35", "valeur": "3650"})
    assert Target.objects.get(department="35").value == 3650
    page = client.get(reverse("dashboards:page", args=["dmp"]), {**PERIOD, "departement": "35"})
    assert "objectif 2026 (35) : 3" in html.unescape(page.content.decode())
    regional = client.get(reverse("dashboards:page", args=["dmp"]), PERIOD)
    assert "objectif 2026" not in regional.content.decode()


def test_ars_analysts_read_targets_but_cannot_change_them(client_as: ClientAs, usage_data: UsageData) -> None:
    target = target_set(
        indicator="messagerie.messages_sent", year=2026, value=1000.0, actor=UserFactory(admin=True)
    )
    client = client_as(Role.ARS_ANALYST)
    page = client.get(reverse("dashboards:targets"))
    content = page.content.decode()
    assert page.status_code == 200
    assert "Messages envoyés" in content
    assert '<form method="post" class' not in content
    assert client.post(reverse("dashboards:targets"), FORM).status_code == 403
    assert client.post(reverse("dashboards:target_remove", args=[target.pk])).status_code == 403
    assert not Target.objects.filter(indicator="dmp.documents_submitted").exists()
    assert Target.objects.filter(pk=target.pk).exists()


def test_invalid_target_shows_errors_next_to_fields(client_as: ClientAs, usage_data: UsageData) -> None:
    client = client_as(Role.GCS_STAFF)
    response = client.post(reverse("dashboards:targets"), {**FORM, "valeur": "-3", "indicateur": "inconnu"})
    assert response.status_code == 400
    content = response.content.decode()
    assert 'id="id_valeur-erreurs"' in content
    assert 'id="id_indicateur-erreurs"' in content
    assert not Target.objects.exists()


def test_admin_removes_a_target(client_as: ClientAs, usage_data: UsageData) -> None:
    target = target_set(indicator="ror.freshness", year=2026, value=80.0, actor=UserFactory(admin=True))
    client = client_as(Role.ADMIN)
    response = client.post(reverse("dashboards:target_remove", args=[target.pk]))
    assert response.status_code == 302
    assert not Target.objects.exists()
    assert client.get(reverse("dashboards:target_remove", args=[target.pk])).status_code == 405
