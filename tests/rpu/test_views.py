"""RPU pages: access by role, upload with errors next to the field, supervision and indicators content."""

import re
from collections.abc import Callable
from datetime import datetime

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse

from enrs.accounts.roles import Role
from enrs.rpu import services
from enrs.rpu.models import EmergencyDepartment, FileStatus, RpuFile, RpuPassage
from tests.rpu.conftest import full_patient, oscour_xml, paris, sample

pytestmark = pytest.mark.django_db

DASHBOARD_PAGES = ["rpu:index", "rpu:supervision", "rpu:indicators"]
STAFF_PAGES = ["rpu:upload", "rpu:file_list"]


@pytest.mark.parametrize("role", [Role.ARS_ANALYST, Role.GCS_STAFF, Role.ADMIN])
@pytest.mark.parametrize("name", DASHBOARD_PAGES)
def test_dashboard_roles_see_supervision_and_indicators(
    client_as: Callable[[Role], Client], role: Role, name: str
) -> None:
    assert client_as(role).get(reverse(name)).status_code == 200


@pytest.mark.parametrize("name", DASHBOARD_PAGES + STAFF_PAGES)
def test_clinicians_are_turned_away(client_as: Callable[[Role], Client], name: str) -> None:
    assert client_as(Role.CLINICIAN).get(reverse(name)).status_code == 403


@pytest.mark.parametrize("name", STAFF_PAGES)
def test_ars_analysts_cannot_upload_or_read_files(client_as: Callable[[Role], Client], name: str) -> None:
    assert client_as(Role.ARS_ANALYST).get(reverse(name)).status_code == 403


def test_anonymous_goes_to_sign_in(client: Client) -> None:
    response = client.get(reverse("rpu:supervision"))
    assert response.status_code == 302
    assert reverse("accounts:login") in response["Location"]


def test_upload_imports_and_shows_rejections(
    client_as: Callable[[Role], Client], emergency_department: EmergencyDepartment
) -> None:
    client = client_as(Role.GCS_STAFF)
    response = client.post(
        reverse("rpu:upload"),
        {
            "emergency_department": emergency_department.pk,
            "file": SimpleUploadedFile("rpu.xml", sample("passages_invalides.xml"), "text/xml"),
        },
        follow=True,
    )
    rpu_file = RpuFile.objects.get()
    assert response.redirect_chain == [(reverse("rpu:file_detail", args=[rpu_file.pk]), 302)]
    assert rpu_file.uploaded_by is not None
    content = response.content.decode()
    assert "2 passage(s) accepté(s), 4 rejeté(s)" in content
    assert "CP : 5 chiffres attendus." in content
    assert "ENTREE : date et heure d&#x27;entrée absentes (obligatoires)." in content
    assert RpuPassage.objects.count() == 2


def test_upload_of_a_refused_file_shows_the_error_next_to_the_field(
    client_as: Callable[[Role], Client], emergency_department: EmergencyDepartment
) -> None:
    response = client_as(Role.ADMIN).post(
        reverse("rpu:upload"),
        {
            "emergency_department": emergency_department.pk,
            "file": SimpleUploadedFile("bombe.xml", sample("bombe.xml"), "text/xml"),
        },
    )
    assert response.status_code == 400
    content = response.content.decode()
    assert 'id="id_file-erreurs"' in content
    assert "Fichier refusé : Le fichier contient une déclaration DOCTYPE ou ENTITY" in content
    assert RpuFile.objects.get().status == FileStatus.REFUSED
    assert RpuPassage.objects.count() == 0


def test_upload_form_errors(
    client_as: Callable[[Role], Client], emergency_department: EmergencyDepartment
) -> None:
    response = client_as(Role.GCS_STAFF).post(reverse("rpu:upload"), {})
    assert response.status_code == 400
    content = response.content.decode()
    assert "Choisissez la structure des urgences." in content
    assert "Choisissez le fichier à déposer." in content


def test_supervision_page_lists_missing_feeds(
    client_as: Callable[[Role], Client],
    emergency_department: EmergencyDepartment,
    other_department: EmergencyDepartment,
    freeze: Callable[[datetime], None],
) -> None:
    services.rpu_file_import(data=sample("valide.xml"), source="drop", received_at=paris(2026, 3, 11, 2, 0))
    freeze(paris(2026, 3, 11, 8, 0))
    client = client_as(Role.ARS_ANALYST)
    content = client.get(reverse("rpu:supervision")).content.decode()
    assert "Supervision des envois RPU du 10/03/2026" in content
    assert "<strong>1</strong> structure(s) sur 2 à relancer." in content
    assert "Aucun fichier reçu pour le 10/03/2026." in content
    assert "Urgences de Bourg-Exemple" in content
    # Another day through the form.
    other = client.get(reverse("rpu:supervision"), {"jour": "2026-03-09"}).content.decode()
    assert "Supervision des envois RPU du 09/03/2026" in other
    assert other.count("Aucun fichier reçu pour le 09/03/2026.") == 2


def test_indicators_page_shows_aggregates_only(
    client_as: Callable[[Role], Client], emergency_department: EmergencyDepartment
) -> None:
    services.rpu_file_import(data=sample("valide.xml"), source="drop")
    services.rpu_file_import(
        data=oscour_xml([full_patient("11/03/2026 10:00")] * 3, start="11/03/2026", end="11/03/2026"),
        source="drop",
    )
    response = client_as(Role.ARS_ANALYST).get(
        reverse("rpu:indicators"), {"du": "2026-03-10", "au": "2026-03-11"}
    )
    content = response.content.decode()
    assert response.status_code == 200
    assert "Du 10/03/2026 au 11/03/2026" in content
    assert re.search(r'<th scope="row">Passages</th><td>\s*8\s*</td>', content)
    assert "&lt; 5" in content  # the day with 3 passages
    # No passage-level data: no birth date, commune or free-text reason of the sample file.
    for secret in ("15/09/2025", "30/06/1940", "CESSON", "douleur abdominale"):
        assert secret not in content


def test_indicators_filter_errors(client_as: Callable[[Role], Client]) -> None:
    response = client_as(Role.GCS_STAFF).get(
        reverse("rpu:indicators"), {"du": "2026-03-11", "au": "2026-03-10"}
    )
    assert "La date de début doit précéder la date de fin." in response.content.decode()


def test_file_list_query_count(
    client_as: Callable[[Role], Client],
    emergency_department: EmergencyDepartment,
    django_assert_max_num_queries: Callable,
) -> None:
    for _ in range(5):
        services.rpu_file_import(data=sample("valide.xml"), source="drop")
    client = client_as(Role.GCS_STAFF)
    with django_assert_max_num_queries(8):
        response = client.get(reverse("rpu:file_list"))
    assert response.content.decode().count(reverse("rpu:file_detail", args=[RpuFile.objects.first().pk])) == 1  # type: ignore[union-attr]


def test_indicators_per_emergency_department_keep_the_filter(
    client_as: Callable[[Role], Client],
    emergency_department: EmergencyDepartment,
    other_department: EmergencyDepartment,
) -> None:
    services.rpu_file_import(data=sample("valide.xml"), source="drop")
    services.rpu_file_import(
        data=oscour_xml([full_patient()] * 6, finess=other_department.finess), source="drop"
    )
    client = client_as(Role.GCS_STAFF)
    query = {"du": "2026-03-10", "au": "2026-03-10"}
    whole = client.get(reverse("rpu:indicators"), query).content.decode()
    assert re.search(r'<th scope="row">Passages</th><td>\s*11\s*</td>', whole)
    one = client.get(
        reverse("rpu:indicators"), {**query, "structure": str(other_department.pk)}
    ).content.decode()
    assert re.search(r'<th scope="row">Passages</th><td>\s*6\s*</td>', one)
    assert f'<option value="{other_department.pk}" selected>' in one
    establishment = client.get(
        reverse("rpu:indicators"), {**query, "etablissement": "350000006"}
    ).content.decode()
    assert re.search(r'<th scope="row">Passages</th><td>\s*5\s*</td>', establishment)
    assert '<option value="350000006" selected>CH de Fictiville</option>' in establishment
    unknown = client.get(reverse("rpu:indicators"), {**query, "structure": "999999"}).content.decode()
    assert "fr-select-group--error" in unknown
