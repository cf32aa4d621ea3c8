"""The public ROR page (ror.public_views.public_search): no sign-in, no restricted data, rate limit, cache."""

import re
from collections.abc import Callable, Iterator

import pytest
from django.core.cache import cache
from django.test import Client
from pytest_django.fixtures import DjangoAssertNumQueries, Settings

from annuaire.models import MailboxAddress, MailboxKind
from enrs.accounts.roles import Role
from ror.models import Capacity, OfferClosure
from tests.annuaire.factories import CommuneFactory
from tests.ror.test_search import (
    AVAILABLE,
    LIT,
    ORIGIN_INSEE,
    PSY,
    Region,
    build_region,
    make_structure,
    place_offer,
)

URL = "/ror/public/"


@pytest.fixture(autouse=True)
def empty_cache() -> Iterator[None]:
    cache.clear()  # rate-limit counters and cached results (a Redis database of this test run)
    yield
    cache.clear()


@pytest.fixture
def region(db: None) -> Region:
    region = build_region()
    structure = make_structure(name="Clinique Saint-Test", commune=region.commune)
    MailboxAddress.objects.create(
        address="bureau-des-lits@clinique.mssante.fr", kind=MailboxKind.ORGANIZATIONAL, structure=structure
    )
    place_offer(
        region,
        "cardio",
        distance_km=4,
        structure=structure,
        free_beds=987,
        installed=4321,
        free_places=654,
        updated_hours_ago=72,  # stale
        phone="02 99 11 22 33",
        email="cadre.cardio@clinique.example",
    )
    place_offer(region, "psy", distance_km=9, activity=PSY, specialty="", free_beds=3)
    place_offer(region, "loin", distance_km=80, free_beds=5)
    return region


def rows(html: str) -> list[str]:
    return re.findall(r'<tr class="ror-resultat">(.*?)</tr>', html, flags=re.S)


def test_the_page_needs_no_sign_in(client: Client, db: None) -> None:
    response = client.get(URL)
    assert response.status_code == 200
    html = response.content.decode()
    assert "Trouver une offre de soins près de chez vous" in html
    assert 'id="recherche-publique"' in html
    assert "appelez le 15" in html


def test_search_near_a_commune(client: Client, region: Region) -> None:
    response = client.get(URL, {"commune": "Rennes"})
    assert response.status_code == 200
    html = response.content.decode()
    assert "2 offres de soins à moins de 30 km de Rennes" in html
    cardio, psy = rows(html)
    assert "Clinique Saint-Test" in cardio
    assert "Offre cardio" in cardio
    assert "Médecine, Chirurgie, Obstétrique (MCO)" in cardio
    assert 'href="tel:0299112233"' in cardio
    assert "4,0 km" in cardio
    assert "Offre psy" in psy
    html = client.get(URL, {"commune": ORIGIN_INSEE, "activity": PSY, "radius_km": "50"}).content.decode()
    assert [re.search(r"Offre (\w+)", r).group(1) for r in rows(html)] == ["psy"]  # type: ignore[union-attr]


def test_no_capacity_freshness_or_staff_contact_in_the_html(client: Client, region: Region) -> None:
    html = client.get(URL, {"commune": "Rennes", "radius_km": "50"}).content.decode()
    assert len(rows(html)) == 2
    for restricted in ("987", "654", "4321", "cadre.cardio@clinique.example", "mailto:", "mssante"):
        assert restricted.casefold() not in html.casefold(), restricted
    results = html[html.index('id="resultats"') : html.index("</section>")]
    for word in ("lit", "place", "disponible", "données anciennes", "mise à jour", "fermée"):
        assert not re.search(rf"\b{word}", results, flags=re.I), word


def test_closed_offers_are_not_listed(client: Client, region: Region) -> None:
    OfferClosure.objects.create(offer=region.offers["cardio"], start=region.now)
    html = client.get(URL, {"commune": "Rennes"}).content.decode()
    assert [re.search(r"Offre (\w+)", r).group(1) for r in rows(html)] == ["psy"]  # type: ignore[union-attr]


def test_ambiguous_and_unknown_communes(client: Client, region: Region) -> None:
    CommuneFactory(
        insee_code="35998", name="Rennes-Nord", department=region.commune.department, latitude=48.2
    )
    html = client.get(URL, {"commune": "Renn"}).content.decode()
    assert "Plusieurs communes correspondent" in html
    assert "?commune=35238&amp;activity=&amp;radius_km=30" in html
    assert "?commune=35998&amp;activity=&amp;radius_km=30" in html
    html = client.get(URL, {"commune": "Atlantide"}).content.decode()
    assert "Commune introuvable" in html


def test_anonymous_answers_are_publicly_cacheable(client: Client, region: Region) -> None:
    response = client.get(URL, {"commune": "Rennes"})
    cache_control = {part.strip() for part in response["Cache-Control"].split(",")}
    assert cache_control == {"public", "max-age=600"}


def test_signed_in_answers_stay_private(client_as: Callable[[Role], Client], region: Region) -> None:
    response = client_as(Role.CLINICIAN).get(URL, {"commune": "Rennes"})
    assert response.status_code == 200
    assert "private" in response["Cache-Control"]
    assert "public" not in response["Cache-Control"]
    assert len(rows(response.content.decode())) == 2


def test_results_are_cached_per_normalised_query(
    client: Client, region: Region, django_assert_num_queries: DjangoAssertNumQueries
) -> None:
    first = client.get(URL, {"commune": "Rennes"}).content.decode()
    # Same query, written differently: served from the cache, without a single SQL query ...
    with django_assert_num_queries(0):
        second = client.get(URL, {"commune": "  rennes ", "radius_km": "30"}).content.decode()
    assert rows(second) == rows(first)
    # ... so a change shows only when the cached entry expires (ROR_PUBLIC_CACHE_SECONDS).
    OfferClosure.objects.create(offer=region.offers["cardio"], start=region.now)
    assert len(rows(client.get(URL, {"commune": "Rennes"}).content.decode())) == 2
    cache.clear()
    assert len(rows(client.get(URL, {"commune": "Rennes"}).content.decode())) == 1


def test_a_cache_hit_does_not_leak_between_signed_in_and_anonymous(
    client_as: Callable[[Role], Client], region: Region
) -> None:
    signed_in = client_as(Role.GCS_STAFF)
    html = signed_in.get(URL, {"commune": "Rennes"}).content.decode()
    assert "Se déconnecter" in html
    anonymous = Client()
    html = anonymous.get(URL, {"commune": "Rennes"}).content.decode()
    assert "Se déconnecter" not in html
    assert len(rows(html)) == 2


def test_rate_limit_per_client_ip(client: Client, region: Region, settings: Settings) -> None:
    settings.ROR_PUBLIC_RATE_LIMIT = 3
    for _ in range(3):
        assert client.get(URL, {"commune": "Rennes"}, REMOTE_ADDR="203.0.113.7").status_code == 200
    response = client.get(URL, {"commune": "Rennes"}, REMOTE_ADDR="203.0.113.7")
    assert response.status_code == 429
    assert response["Retry-After"] == "60"
    assert "no-store" in response["Cache-Control"]
    html = response.content.decode()
    assert "Trop de recherches" in html
    assert "plus de 3 recherches en une minute" in html
    # Another client is not affected ...
    assert client.get(URL, {"commune": "Rennes"}, REMOTE_ADDR="203.0.113.8").status_code == 200
    # ... and a forged X-Forwarded-For from an untrusted peer changes nothing.
    response = client.get(
        URL, {"commune": "Rennes"}, REMOTE_ADDR="203.0.113.7", HTTP_X_FORWARDED_FOR="198.51.100.1"
    )
    assert response.status_code == 429


def test_capacity_rows_of_every_status_stay_hidden(client: Client, region: Region) -> None:
    offer, location = region.offers["psy"], region.locations["psy"]
    Capacity.objects.filter(offer=offer).delete()
    Capacity.objects.create(
        offer=offer, location=location, capacity_type=LIT, status=AVAILABLE, count=4242, updated_at=region.now
    )
    html = client.get(URL, {"commune": "Rennes", "activity": PSY}).content.decode()
    assert len(rows(html)) == 1
    assert "4242" not in html
