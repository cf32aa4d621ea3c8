"""Directory pages: the search page (landing page of the annuaire), professional and structure details.
Access for every role, French DSFR markup with errors next to their field, pagination, query counts."""

import re
from collections.abc import Callable

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from annuaire.models import MailboxKind
from enrs.accounts.roles import Role
from tests.annuaire.factories import ExerciceFactory, MailboxAddressFactory, StructureFactory
from tests.annuaire.test_search_selectors import Directory, build_directory, pro

INDEX = reverse("annuaire:index")

pytestmark = pytest.mark.django_db


@pytest.fixture
def directory(db: None) -> Directory:
    return build_directory()


@pytest.fixture
def reader(client_as: Callable[[Role], Client]) -> Client:
    """A signed-in user (password only: the directory asks for no strong authentication)."""
    return client_as(Role.CLINICIAN)


def professional_url(pk: int) -> str:
    return reverse("annuaire:professional_detail", args=[pk])


def structure_url(pk: int) -> str:
    return reverse("annuaire:structure_detail", args=[pk])


def result_names(html: str) -> list[str]:
    """The names of the results table, in order."""
    table = html.split('id="resultats-', 1)[1].split("</table>", 1)[0]
    return re.findall(
        r'<tr>\s*<td>\s*<a href="/annuaire/(?:professionnels|structures)/\d+/">([^<]+)</a>', table
    )


# --- Access ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["index", "professional", "structure"])
def test_anonymous_visitors_are_sent_to_the_sign_in_page(
    client: Client, directory: Directory, path: str
) -> None:
    url = {
        "index": INDEX + "?q=martin",
        "professional": professional_url(directory.helene.pk),
        "structure": structure_url(directory.chu.pk),
    }[path]
    response = client.get(url)
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("accounts:login") + "?next=")
    assert "Hélène" not in response.content.decode()


@pytest.mark.parametrize("role", list(Role))
def test_every_role_reads_the_directory(
    client_as: Callable[[Role], Client], directory: Directory, role: Role
) -> None:
    client = client_as(role)
    search = client.get(INDEX, {"q": "helene lefevre"})
    assert search.status_code == 200
    assert result_names(search.content.decode()) == ["Hélène LEFÈVRE"]
    assert client.get(professional_url(directory.helene.pk)).status_code == 200
    assert client.get(structure_url(directory.chu.pk)).status_code == 200


# --- The search page --------------------------------------------------------------------------------


def test_the_landing_page_is_the_search_form_without_results(reader: Client) -> None:
    html = reader.get(INDEX).content.decode()
    assert 'role="search"' in html
    assert '<label class="fr-label" for="id_q">' in html
    for name in ("profession", "specialite", "departement", "type_structure"):
        assert f'<select class="fr-select" id="id_{name}"' in html
        assert f'<label class="fr-label" for="id_{name}">' in html
    assert '<optgroup label="Médecin">' in html  # specialties grouped by profession
    assert 'id="resultats"' not in html


def test_a_search_shows_name_profession_commune_and_structure(reader: Client, directory: Directory) -> None:
    html = reader.get(INDEX, {"q": "Jean Martin"}).content.decode()
    assert result_names(html)[0] == "Jean MARTIN"
    row = html.split(f'href="{professional_url(directory.jean_martin.pk)}"', 1)[1].split("</tr>", 1)[0]
    assert "Médecin" in row
    assert "Cardiologie et maladies vasculaires" in row
    assert "Rennes (35000)" in row
    assert f'<a href="{structure_url(directory.chu_site.pk)}">Hôpital Pontchaillou</a>' in row
    assert f"RPPS {directory.jean_martin.rpps}" in row
    assert "<title>Annuaire — recherche « Jean Martin » — ENRS" in html


def test_how_the_query_was_read_is_shown(reader: Client, directory: Directory) -> None:
    html = reader.get(INDEX, {"q": "cardiologue martin rennes"}).content.decode()
    assert result_names(html) == ["Jean MARTIN"]
    callout = html.split('id="interpretation"', 1)[1].split("</div>", 1)[0]
    assert "spécialité : Cardiologie et maladies vasculaires" in callout
    assert "commune : Rennes (35)" in callout
    assert "nom : « martin »" in callout
    rpps = reader.get(INDEX, {"q": directory.helene.rpps}).content.decode()
    assert "Recherche par identifiant : RPPS, valeur exacte." in rpps


def test_filters_and_the_structure_search(reader: Client, directory: Directory) -> None:
    html = reader.get(INDEX, {"q": "jean", "profession": "10", "departement": "35"}).content.decode()
    assert result_names(html) == ["Jean MARTIN", "Jean PARIS"]
    assert '<option value="35" selected>35 — Ille-et-Vilaine</option>' in html
    structures = reader.get(INDEX, {"quoi": "structures", "q": "pharmacie eglise"}).content.decode()
    assert result_names(structures) == ["Pharmacie de l&#x27;Église"]
    assert f"FINESS ET {directory.pharmacy.finess_et}" in structures
    assert 'id="quoi-structures" name="quoi" value="structures"\n                   checked' in structures


def test_no_result_says_what_to_try(reader: Client, directory: Directory) -> None:
    html = reader.get(INDEX, {"q": "zzyzx"}).content.decode()
    assert 'id="aucun-resultat"' in html
    assert "Aucun résultat" in html


def test_wrong_filters_are_reported_next_to_their_field(reader: Client, directory: Directory) -> None:
    html = reader.get(INDEX, {"q": "martin", "profession": "999", "departement": "00"}).content.decode()
    assert 'id="resultats"' not in html
    for name in ("profession", "departement"):
        group = html.split(f'<label class="fr-label" for="id_{name}">', 1)[1].split("</select>", 2)[1]
        assert (
            f'<div id="id_{name}-erreurs"><p class="fr-error-text">Choisissez une valeur de la liste.</p>'
            in (group.replace("\n", "").replace("  ", ""))
        )
        assert f'aria-describedby="id_{name}-erreurs"' in html
    mismatch = reader.get(INDEX, {"profession": "60", "specialite": "SM04"}).content.decode()
    assert "Cette spécialité n&#x27;est pas une spécialité de la profession choisie." in mismatch
    assert "fr-select-group fr-select-group--error" in mismatch


def test_pages_link_to_each_other_and_stop_at_the_limit(reader: Client, db: None) -> None:
    structure = StructureFactory.create(name="Maison de santé du Port")
    for n in range(25):
        pro("GUILLOU", f"Prénom{n:02d}", at=structure)
    first = reader.get(INDEX, {"q": "guillou", "departement": "35"}).content.decode()
    assert len(result_names(first)) == 20
    assert "Résultats 1 à 20" in first
    assert 'href="?q=guillou&amp;departement=35&amp;page=2" rel="next"' in first
    assert "Page précédente</a>" in first
    assert 'aria-disabled="true" role="link">Page précédente' in first
    second = reader.get(INDEX, {"q": "guillou", "departement": "35", "page": "2"}).content.decode()
    assert result_names(second) == [f"Prénom{n:02d} GUILLOU" for n in range(20, 25)]
    assert "Résultats 21 à 25" in second
    assert 'href="?q=guillou&amp;departement=35&amp;page=1" rel="prev"' in second
    too_far = reader.get(INDEX, {"q": "guillou", "page": "51"}).content.decode()
    assert "Les résultats s&#x27;arrêtent à la page 50" in too_far
    assert 'id="resultats"' not in too_far


def request_overhead(client: Client) -> int:
    """Queries of any signed-in page (session, user, session save): the landing page runs no other."""
    with CaptureQueriesContext(connection) as context:
        client.get(INDEX)
    return len(context.captured_queries)


def test_query_count_of_the_search_page(
    reader: Client, directory: Directory, django_assert_num_queries
) -> None:
    overhead = request_overhead(reader)
    # The search: read the query (lexicon, communes), the ranked lists, the rows, their exercices.
    with django_assert_num_queries(overhead + 4):
        response = reader.get(INDEX, {"q": "martin"})
    assert result_names(response.content.decode()) == ["Jean MARTIN", "Marie MARTIN"]
    # Structures: read the query, the ranked lists, the rows (commune and department joined).
    with django_assert_num_queries(overhead + 3):
        response = reader.get(INDEX, {"quoi": "structures", "q": "hopital"})
    assert result_names(response.content.decode()) == ["Hôpital de la Mer", "Hôpital Pontchaillou"]
    # A filter on where people work: + the ids of the professionals of the department.
    with django_assert_num_queries(overhead + 5):
        response = reader.get(INDEX, {"q": "martin", "departement": "29"})
    assert result_names(response.content.decode()) == ["Marie MARTIN"]


# --- Professional page ---------------------------------------------------------------------------------


def test_the_professional_page(reader: Client, directory: Directory, django_assert_num_queries) -> None:
    helene = directory.helene
    ExerciceFactory(professional=helene, structure=directory.pharmacy, role_code="FON-05")
    MailboxAddressFactory(professional=helene, address="helene.lefevre@chu-rennes.mssante.fr")
    overhead = request_overhead(reader)
    with django_assert_num_queries(overhead + 3):  # professional, exercices, mailboxes
        response = reader.get(professional_url(helene.pk))
    html = response.content.decode()
    assert '<h1 id="professionnel">Hélène LEFÈVRE</h1>' in html
    assert f"<dt>Identifiant national (IdNat_PS)</dt><dd>{helene.idnat_ps}</dd>" in html
    assert f"<dt>RPPS</dt>\n      <dd>{helene.rpps}" in html
    exercices = html.split('id="exercices"', 1)[1].split("</table>", 1)[0]
    assert f'<a href="{structure_url(directory.chu_site.pk)}">Hôpital Pontchaillou</a>' in exercices
    assert f'<a href="{structure_url(directory.pharmacy.pk)}">Pharmacie de l&#x27;Église</a>' in exercices
    assert "Salarié" in exercices
    assert "https://www.openstreetmap.org/?mlat=48.110000&amp;mlon=-1.680000" in exercices
    assert "helene.lefevre@chu-rennes.mssante.fr" in html.split('id="messageries"', 1)[1]
    assert "<iframe" not in html  # no embedded map: the CSP allows no outside tiles


def test_an_unknown_professional_is_a_french_404(reader: Client, db: None) -> None:
    response = reader.get(professional_url(999_999))
    assert response.status_code == 404


# --- Structure page ------------------------------------------------------------------------------------


def test_the_structure_page_of_a_site(
    reader: Client, directory: Directory, django_assert_num_queries
) -> None:
    site = directory.chu_site
    MailboxAddressFactory(organizational=True, structure=site, address="secretariat@pontchaillou.mssante.fr")
    MailboxAddressFactory(professional=directory.helene, address="helene@chu-rennes.mssante.fr")  # not shown
    overhead = request_overhead(reader)
    # The structure (+ legal entity, commune), its sites, its mailboxes, then its professionals: the ids
    # of its staff, the ranked list, the rows, their exercices.
    with django_assert_num_queries(overhead + 7):
        response = reader.get(structure_url(site.pk))
    html = response.content.decode()
    assert '<h1 id="structure">Hôpital Pontchaillou</h1>' in html
    assert f"<dt>FINESS géographique (ET)</dt><dd>{site.finess_et}</dd>" in html
    assert (
        f'{site.finess_ej} — <a href="{structure_url(directory.chu.pk)}">'
        "Centre hospitalier universitaire de Rennes</a>"
    ) in html
    assert "35000 Rennes — Ille-et-Vilaine (35)" in html
    assert "latitude 48.11000, longitude -1.68000" in html
    assert 'href="https://www.openstreetmap.org/?mlat=48.110000&amp;mlon=-1.680000#map=16/' in html
    assert "<iframe" not in html
    mailboxes = html.split('id="messageries"', 1)[1].split("</ul>", 1)[0]
    assert "secretariat@pontchaillou.mssante.fr" in mailboxes
    assert "helene@chu-rennes.mssante.fr" not in html
    assert result_names(html) == ["Hélène LEFÈVRE", "Jean MARTIN", "Jean PARIS"]
    assert "Établissements (sites géographiques)" not in html


def test_the_structure_page_of_a_legal_entity_lists_its_sites_and_everyone(
    reader: Client, directory: Directory
) -> None:
    html = reader.get(structure_url(directory.chu.pk)).content.decode()
    sites = html.split('id="sites"', 1)[1].split("</ul>", 1)[0]
    assert f'<a href="{structure_url(directory.chu_annex.pk)}">Hôpital de la Mer</a>' in sites
    assert f'<a href="{structure_url(directory.chu_site.pk)}">Hôpital Pontchaillou</a>' in sites
    assert result_names(html) == ["Hélène LEFÈVRE", "Jean MARTIN", "Marie MARTIN", "Jean PARIS"]
    assert "tous sites confondus" in html


def test_the_professionals_of_a_structure_are_paginated(reader: Client, db: None) -> None:
    structure = StructureFactory.create(name="Centre de santé des Lices")
    for n in range(23):
        pro("RIOU", f"Prénom{n:02d}", at=structure)
    first = reader.get(structure_url(structure.pk)).content.decode()
    assert len(result_names(first)) == 20
    assert 'href="?page=2" rel="next"' in first
    second = reader.get(structure_url(structure.pk), {"page": "2"}).content.decode()
    assert result_names(second) == ["Prénom20 RIOU", "Prénom21 RIOU", "Prénom22 RIOU"]
    assert reader.get(structure_url(structure.pk), {"page": "abc"}).status_code == 200  # back to page 1


def test_a_structure_without_position_or_staff(reader: Client, db: None) -> None:
    structure = StructureFactory.create(
        without_finess=True, name="Cabinet infirmier", latitude=None, longitude=None
    )
    MailboxAddressFactory(kind=MailboxKind.APPLICATION, professional=None, structure=structure,
                          address="logiciel@cabinet.mssante.fr")  # fmt: skip
    html = reader.get(structure_url(structure.pk)).content.decode()
    assert "Position inconnue." in html
    assert 'id="aucun-professionnel"' in html
    assert "logiciel@cabinet.mssante.fr" in html
    assert reader.get(structure_url(999_999)).status_code == 404
