"""The orientation search page (ror.views.search) for signed-in users."""

import re
from collections.abc import Callable
from datetime import timedelta

import pytest
from django.test import Client
from django.urls import reverse
from pytest_django.fixtures import DjangoAssertNumQueries

from enrs.accounts.roles import Role
from ror.models import OfferClosure
from tests.annuaire.factories import CommuneFactory
from tests.ror.test_search import (
    DAY_HOSPITALISATION,
    ORIGIN_INSEE,
    Region,
    build_region,
    build_standard_region,
    place_offer,
)

URL = "/ror/recherche/"
ClientAs = Callable[[Role], Client]


@pytest.fixture
def region(db: None) -> Region:
    return build_standard_region()


def result_rows(html: str) -> list[str]:
    return re.findall(r'<tr id="resultat-\d+" class="ror-resultat">(.*?)</tr>', html, flags=re.S)


def test_url_names() -> None:
    assert reverse("ror:index") == "/ror/"
    assert reverse("ror:search") == URL


@pytest.mark.django_db
def test_anonymous_visitors_are_sent_to_sign_in(client: Client) -> None:
    response = client.get(URL, {"origin": ORIGIN_INSEE})
    assert response.status_code == 302
    assert response["Location"].startswith("/compte/connexion/?next=")


@pytest.mark.parametrize("role", list(Role))
def test_every_role_opens_the_search_form(client_as: ClientAs, role: Role) -> None:
    response = client_as(role).get(URL)
    assert response.status_code == 200
    html = response.content.decode()
    assert 'id="recherche-orientation"' in html
    assert "Lits ou places disponibles maintenant" in html
    assert "Cardiologie générale" in html  # J17 choices from the value sets
    assert "Hospitalisation complète (HC)" in html  # J19
    assert 'id="resultats"' not in html


def test_landing_page_links_to_both_searches(client_as: ClientAs, db: None) -> None:
    html = client_as(Role.CLINICIAN).get("/ror/").content.decode()
    assert 'href="/ror/recherche/"' in html
    assert 'href="/ror/public/"' in html


def test_results_sorted_by_distance_with_free_beds_freshness_and_contacts(
    client_as: ClientAs, region: Region
) -> None:
    place_offer(region, "old", distance_km=3, updated_hours_ago=72, free_beds=6, email="cardio@example.org")
    response = client_as(Role.CLINICIAN).get(URL, {"origin": "Rennes", "radius_km": "50"})
    assert response.status_code == 200
    html = response.content.decode()
    assert "7 résultats à moins de 50 km de Rennes (35238)" in html
    rows = result_rows(html)
    names = [re.search(r"Offre (\w+)", row).group(1) for row in rows]  # type: ignore[union-attr]
    assert names == ["old", "c5", "pneumo8", "c12", "psy20", "c30", "c45"]
    old, c5, _pneumo8, _c12, _psy20, c30, _c45 = rows
    assert "3,0 km" in old  # French decimal comma
    assert "6 lits" in old
    assert "données anciennes" in old
    assert 'href="mailto:cardio@example.org"' in old
    assert 'href="tel:0299000000"' in old
    assert "0 lit" in c5
    assert "données anciennes" not in c5
    assert "2 lits" in c30
    assert "1 place" in c30
    assert "https://www.openstreetmap.org/?mlat=" in old


def test_filters_and_available_only(client_as: ClientAs, region: Region) -> None:
    response = client_as(Role.CLINICIAN).get(
        URL,
        {
            "origin": ORIGIN_INSEE,
            "radius_km": "100",
            "activity": "01",
            "specialty": "013",
            "care_mode": "28",
            "age_group": "adult",
            "available_only": "on",
        },
    )
    html = response.content.decode()
    names = [re.search(r"Offre (\w+)", row).group(1) for row in result_rows(html)]  # type: ignore[union-attr]
    assert names == ["c12", "c30", "c45", "c60", "c90"]  # c5 is full, pneumo8 and psy20 filtered out
    assert 'name="available_only" value="on" checked' in html
    assert '<option value="013" selected>' in html


def test_closed_offer_has_a_badge(client_as: ClientAs, region: Region) -> None:
    OfferClosure.objects.create(offer=region.offers["c5"], start=region.now - timedelta(hours=2))
    html = client_as(Role.CLINICIAN).get(URL, {"origin": ORIGIN_INSEE, "radius_km": "10"}).content.decode()
    first = result_rows(html)[0]
    assert "Offre c5" in first
    assert "fermée" in first


def test_origin_as_latitude_longitude(client_as: ClientAs, region: Region) -> None:
    html = (
        client_as(Role.CLINICIAN).get(URL, {"origin": "48.1173, -1.6778", "radius_km": "10"}).content.decode()
    )
    assert "2 résultats à moins de 10 km de 48.11730, -1.67780" in html


def test_the_map_is_a_self_contained_svg(client_as: ClientAs, region: Region) -> None:
    html = client_as(Role.CLINICIAN).get(URL, {"origin": ORIGIN_INSEE, "radius_km": "50"}).content.decode()
    svg = html[html.index("<svg") : html.index("</svg>")]
    markers = re.findall(r'<a href="#resultat-(\d+)">\s*<circle cx="([\d.]+)" cy="([\d.]+)"', svg)
    assert [int(n) for n, _, _ in markers] == [1, 2, 3, 4, 5, 6]
    # c5 is 5 km at bearing 10°: near the centre (200, 200), a little up; SVG numbers use a decimal point.
    _, x, y = markers[0]
    assert 200 < float(x) < 205
    assert 175 < float(y) < 185
    # No outside resource anywhere on the page (CSP: img-src 'self' data:, script-src 'self').
    assert not re.search(r'<(script|img|link|iframe)[^>]+(src|href)="https?://', html)
    assert "#18753c" in svg  # free and fresh
    assert "#929292" in svg  # c5: nothing free


def test_ambiguous_commune_offers_a_choice(client_as: ClientAs, region: Region) -> None:
    CommuneFactory(insee_code="35999", name="Rennes-Sud", department=region.commune.department, latitude=48.0)
    html = client_as(Role.CLINICIAN).get(URL, {"origin": "Renn", "activity": "01"}).content.decode()
    assert "Plusieurs communes correspondent" in html
    assert "?origin=35238&amp;activity=01" in html
    assert "?origin=35999&amp;activity=01" in html
    assert 'id="resultats"' not in html


def test_unknown_commune_shows_an_error_next_to_the_field(client_as: ClientAs, region: Region) -> None:
    html = client_as(Role.CLINICIAN).get(URL, {"origin": "Nulle-part"}).content.decode()
    assert 'id="id_origin-erreurs"' in html
    assert "Aucune commune ne correspond" in html
    html = client_as(Role.CLINICIAN).get(URL, {"origin": "95, 2"}).content.decode()
    assert "Position impossible" in html


def test_bad_radius_is_refused(client_as: ClientAs, region: Region) -> None:
    html = client_as(Role.CLINICIAN).get(URL, {"origin": ORIGIN_INSEE, "radius_km": "9999"}).content.decode()
    assert 'id="resultats"' not in html
    assert "fr-select-group--error" in html


def test_query_count_does_not_grow_with_results(
    client_as: ClientAs, db: None, django_assert_num_queries: DjangoAssertNumQueries
) -> None:
    region = build_region()
    client = client_as(Role.CLINICIAN)
    client.get(URL)  # warm the session
    place_offer(region, "first", distance_km=2, free_beds=1)
    # Session + user, the commune, the search, then the session saved again (SESSION_SAVE_EVERY_REQUEST:
    # savepoint, update, release): 7 queries for one result ...
    with django_assert_num_queries(7):
        response = client.get(URL, {"origin": ORIGIN_INSEE, "radius_km": "50"})
    assert len(result_rows(response.content.decode())) == 1
    for i in range(40):
        place_offer(region, f"n{i}", distance_km=3 + i, bearing=i * 29 % 360, free_beds=i % 4)
    place_offer(region, "hdj", distance_km=4, care_mode=DAY_HOSPITALISATION, free_beds=0)
    # ... and for 42.
    with django_assert_num_queries(7):
        response = client.get(URL, {"origin": ORIGIN_INSEE, "radius_km": "50"})
    assert len(result_rows(response.content.decode())) == 42
