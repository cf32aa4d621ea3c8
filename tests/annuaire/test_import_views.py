"""The GCS staff pages of the import runs: list, detail with rejections, CSV of the rejections, access."""

import csv
import io
from collections.abc import Callable
from pathlib import Path

import pytest
from django.test import Client
from django.urls import reverse
from pytest_django import DjangoAssertNumQueries

from annuaire.models import ImportRun
from annuaire.services.imports import ImportFailed, import_finess_file, import_rpps_file
from enrs.accounts.roles import Role

pytestmark = pytest.mark.django_db

DATA = Path(__file__).resolve().parent.parent / "data" / "annuaire"


@pytest.fixture
def runs() -> list[ImportRun]:
    finess = import_finess_file(path=DATA / "finess_etalab_2025_01.csv")
    rpps = import_rpps_file(path=DATA / "rpps_2025_01_utf8.txt")
    with pytest.raises(ImportFailed) as failure:
        import_rpps_file(path=DATA / "rpps_truncated.txt")
    assert failure.value.run is not None
    return [finess, rpps, failure.value.run]


def test_list_shows_every_run_newest_first(
    client_as: Callable[[Role], Client],
    runs: list[ImportRun],
    django_assert_num_queries: DjangoAssertNumQueries,
) -> None:
    client = client_as(Role.GCS_STAFF)
    # Session, user, the runs with their actor (one query whatever their number), and the session middleware's
    # save (savepoint, update, release).
    with django_assert_num_queries(6):
        response = client.get(reverse("annuaire:import_list"))

    assert response.status_code == 200
    assert [run.pk for run in response.context["runs"]] == [run.pk for run in reversed(runs)]
    html = response.content.decode()
    for text in ("rpps_2025_01_utf8.txt", "finess_etalab_2025_01.csv", "Échec", "Terminé"):
        assert text in html


def test_detail_shows_counts_changes_and_rejections(
    client_as: Callable[[Role], Client], runs: list[ImportRun]
) -> None:
    rpps = runs[1]
    response = client_as(Role.ADMIN).get(reverse("annuaire:import_detail", args=[rpps.pk]))

    assert response.status_code == 200
    assert [r.line_number for r in response.context["rejections"]] == list(range(16, 30))
    assert response.context["changes"] == [("Création", 19)]
    assert ("structures créées", 6) in response.context["extra"]
    html = response.content.decode()
    assert "numéro RPPS mal formé « 1060000012 » : 11 chiffres attendus" in html
    assert 'id="ligne-18"' in html


def test_detail_of_a_refused_file_shows_why(
    client_as: Callable[[Role], Client], runs: list[ImportRun]
) -> None:
    response = client_as(Role.GCS_STAFF).get(reverse("annuaire:import_detail", args=[runs[2].pk]))

    html = response.content.decode()
    assert "Fichier refusé : rien n'a été importé" in html
    assert "Fichier tronqué : la dernière ligne (n° 30)" in html
    assert "Aucune ligne rejetée." in html


def test_rejections_csv(client_as: Callable[[Role], Client], runs: list[ImportRun]) -> None:
    response = client_as(Role.GCS_STAFF).get(reverse("annuaire:import_rejections_csv", args=[runs[0].pk]))

    assert response["Content-Type"] == "text/csv; charset=utf-8"
    body = b"".join(response.streaming_content).decode("utf-8")  # type: ignore[attr-defined]
    rows = list(csv.reader(io.StringIO(body.lstrip("\ufeff")), delimiter=";"))
    assert rows[0] == ["ligne", "motif", "contenu"]
    assert [row[0] for row in rows[1:]] == ["10", "11", "12", "13", "14", "15", "19", "20", "21"]


@pytest.mark.parametrize("role", [Role.CLINICIAN, Role.ARS_ANALYST])
def test_only_gcs_staff_and_administrators(client_as: Callable[[Role], Client], role: Role) -> None:
    client = client_as(role)
    assert client.get(reverse("annuaire:import_list")).status_code == 403
    assert client.get(reverse("annuaire:import_detail", args=[1])).status_code == 403


def test_unknown_run(client_as: Callable[[Role], Client]) -> None:
    assert client_as(Role.GCS_STAFF).get(reverse("annuaire:import_detail", args=[999_999])).status_code == 404
