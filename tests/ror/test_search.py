"""The orientation search (ror.selectors.offer_orientation_search) on a generated small region: offers
placed at known distances and bearings from an origin commune, with known capacities."""

import itertools
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, cast

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone
from pytest_django.fixtures import DjangoAssertNumQueries, Settings

from annuaire.models import Commune, MailboxAddress, MailboxKind, Structure
from ror import geo
from ror.models import Capacity, Offer, OfferClosure, OfferLocation
from ror.selectors import (
    AgeGroup,
    OrientationRow,
    Origin,
    offer_orientation_search,
    offer_public_search,
    origin_resolve,
)
from tests.annuaire.factories import CommuneFactory, DepartmentFactory, StructureFactory

ORIGIN: geo.Point = (48.1173, -1.6778)  # Rennes
ORIGIN_INSEE = "35238"
LIT, PLACE = "01", "02"
INSTALLED, AVAILABLE, OCCUPIED = "01", "02", "03"
CARDIOLOGY, INTERVENTIONAL_CARDIOLOGY, PNEUMOLOGY = "013", "014", "114"
MCO, PSY = "01", "03"
FULL_HOSPITALISATION, DAY_HOSPITALISATION = "28", "29"

_serial = itertools.count(1)


def make_structure(**kwargs: Any) -> Structure:
    return cast(Structure, StructureFactory(**kwargs))


def make_commune(**kwargs: Any) -> Commune:
    return cast(Commune, CommuneFactory(**kwargs))


@dataclass
class Region:
    origin: Origin
    commune: Commune
    now: datetime
    offers: dict[str, Offer] = field(default_factory=dict)
    locations: dict[str, OfferLocation] = field(default_factory=dict)


def place_offer(
    region: Region,
    key: str,
    *,
    distance_km: float,
    bearing: float = 0.0,
    activity: str = MCO,
    specialty: str = CARDIOLOGY,
    family: str = "",
    care_mode: str = FULL_HOSPITALISATION,
    age_min: int | None = None,
    age_max: int | None = None,
    free_beds: int | None = 0,
    free_places: int = 0,
    installed: int = 20,
    updated_hours_ago: float | None = 1.0,
    structure: Structure | None = None,
    phone: str = "02 99 00 00 00",
    email: str = "",
    is_active: bool = True,
) -> Offer:
    """An offer at its own location, ``distance_km`` from the region's origin along ``bearing``, with
    its capacities: ``installed`` lits « installé », ``free_beds`` lits « disponible » (None: no
    capacity row at all) and ``free_places`` places « disponible »."""
    n = next(_serial)
    lat, lon = geo.destination(region.origin.point, bearing, distance_km)
    if structure is None:
        structure = make_structure(name=f"Hôpital {key}", commune=region.commune, latitude=lat, longitude=lon)
    offer = Offer.objects.create(
        identifier=f"UE-{n:06d}",
        structure=structure,
        name=f"Offre {key}",
        activity_field_code=activity,
        care_mode_code=care_mode,
        operational_activity_code=specialty,
        operational_activity_family_code=family,
        age_min=age_min,
        age_max=age_max,
        is_active=is_active,
    )
    location = OfferLocation.objects.create(
        structure=structure,
        identifier=f"LIEU-{n:06d}",
        name=f"Service {key}",
        address_line=f"{n} rue des Tests",
        postal_code="35000",
        commune=region.commune,
        latitude=lat,
        longitude=lon,
        phone=phone,
        email=email,
    )
    location.offers.add(offer)
    if updated_hours_ago is not None and free_beds is not None:
        updated_at = region.now - timedelta(hours=updated_hours_ago)
        rows = [
            (LIT, INSTALLED, installed),
            (LIT, AVAILABLE, free_beds),
            (LIT, OCCUPIED, installed - free_beds),
        ]
        if free_places:
            rows.append((PLACE, AVAILABLE, free_places))
        Capacity.objects.bulk_create(
            Capacity(
                offer=offer,
                location=location,
                capacity_type=kind,
                status=status,
                count=count,
                updated_at=updated_at,
            )
            for kind, status, count in rows
        )
    region.offers[key] = offer
    region.locations[key] = location
    return offer


def build_region(now: datetime | None = None) -> Region:
    """An origin commune (Rennes) and no offer yet; tests place theirs with ``place_offer``."""
    department = DepartmentFactory(code="35", name="Ille-et-Vilaine", region_code="53")
    commune = make_commune(
        insee_code=ORIGIN_INSEE,
        name="Rennes",
        department=department,
        postal_code="35000",
        latitude=ORIGIN[0],
        longitude=ORIGIN[1],
    )
    origin = Origin(ORIGIN[0], ORIGIN[1], "Rennes (35238)", ORIGIN_INSEE)
    return Region(origin=origin, commune=commune, now=now or timezone.now())


def build_standard_region(now: datetime | None = None) -> Region:
    """Six cardiology offers at 5, 12, 30, 45, 60 and 90 km in several directions, plus a few others."""
    region = build_region(now)
    place_offer(region, "c45", distance_km=45, bearing=200, free_beds=4)
    place_offer(region, "c5", distance_km=5, bearing=10, free_beds=0)
    place_offer(region, "c30", distance_km=30, bearing=300, free_beds=2, free_places=1)
    place_offer(region, "c12", distance_km=12, bearing=120, free_beds=1)
    place_offer(region, "c60", distance_km=60, bearing=45, free_beds=7)
    place_offer(region, "c90", distance_km=90, bearing=270, free_beds=3)
    place_offer(region, "pneumo8", distance_km=8, bearing=90, specialty=PNEUMOLOGY, free_beds=5)
    place_offer(region, "psy20", distance_km=20, bearing=0, activity=PSY, specialty="", free_beds=2)
    return region


def keys(region: Region, rows: list[OrientationRow]) -> list[str]:
    by_id = {offer.pk: key for key, offer in region.offers.items()}
    return [by_id[row.offer_id] for row in rows]


def by_key(region: Region, rows: list[OrientationRow]) -> dict[str, OrientationRow]:
    return dict(zip(keys(region, rows), rows, strict=True))


@pytest.fixture
def region(db: None) -> Region:
    return build_standard_region()


# --- distance and radius ---------------------------------------------------------------------------------


def test_results_are_sorted_by_distance_within_the_radius(region: Region) -> None:
    rows = offer_orientation_search(origin=region.origin, radius_km=50, now=region.now)
    assert keys(region, rows) == ["c5", "pneumo8", "c12", "psy20", "c30", "c45"]
    for row in rows:
        location = region.locations[keys(region, [row])[0]]
        expected = geo.haversine_km(ORIGIN, (location.latitude or 0, location.longitude or 0))
        assert row.distance_km == pytest.approx(expected, abs=0.001)  # SQL and Python agree to the metre
    assert [round(r.distance_km) for r in rows] == [5, 8, 12, 20, 30, 45]


def test_the_radius_is_a_circle_not_the_bounding_box(db: None) -> None:
    region = build_region()
    # 55 km to the north-east: inside the 50 km box (its corner is 70 km away), outside the circle.
    place_offer(region, "corner", distance_km=55, bearing=45, free_beds=1)
    place_offer(region, "edge", distance_km=49.9, bearing=90, free_beds=1)
    box = geo.bounding_box(ORIGIN, 50)
    corner = region.locations["corner"]
    assert box.contains((corner.latitude or 0, corner.longitude or 0))
    rows = offer_orientation_search(origin=region.origin, radius_km=50, now=region.now)
    assert keys(region, rows) == ["edge"]
    rows = offer_orientation_search(origin=region.origin, radius_km=56, now=region.now)
    assert keys(region, rows) == ["edge", "corner"]


def test_radius_widens_the_search(region: Region) -> None:
    rows = offer_orientation_search(origin=region.origin, radius_km=100, specialty=CARDIOLOGY, now=region.now)
    assert keys(region, rows) == ["c5", "c12", "c30", "c45", "c60", "c90"]
    rows = offer_orientation_search(origin=region.origin, radius_km=10, now=region.now)
    assert keys(region, rows) == ["c5", "pneumo8"]


def test_origin_by_commune_insee_code(region: Region) -> None:
    by_commune = offer_orientation_search(commune_insee=ORIGIN_INSEE, radius_km=50, now=region.now)
    by_point = offer_orientation_search(origin=ORIGIN, radius_km=50, now=region.now)
    assert by_commune == by_point
    with pytest.raises(ValidationError, match="Commune inconnue"):
        offer_orientation_search(commune_insee="99999", radius_km=50)


def test_an_origin_is_required_and_the_radius_bounded(region: Region) -> None:
    with pytest.raises(ValidationError, match="commune ou une position"):
        offer_orientation_search(radius_km=50)
    with pytest.raises(ValidationError, match="rayon"):
        offer_orientation_search(origin=ORIGIN, radius_km=0)
    with pytest.raises(ValidationError, match="rayon"):
        offer_orientation_search(origin=ORIGIN, radius_km=501)


def test_limit_keeps_the_nearest(region: Region) -> None:
    rows = offer_orientation_search(origin=ORIGIN, radius_km=100, limit=3, now=region.now)
    assert keys(region, rows) == ["c5", "pneumo8", "c12"]


def test_search_across_the_antimeridian(db: None) -> None:
    region = build_region()
    fiji = Origin(-17.7, 179.95, "Fidji")
    region.origin = fiji
    place_offer(region, "east", distance_km=10, bearing=90, free_beds=1)  # longitude ≈ -179.96
    place_offer(region, "west", distance_km=20, bearing=270, free_beds=1)
    east = region.locations["east"]
    assert (east.longitude or 0) < 0
    rows = offer_orientation_search(origin=fiji, radius_km=30, now=region.now)
    assert keys(region, rows) == ["east", "west"]


# --- filters ---------------------------------------------------------------------------------------------


def test_filter_by_activity_field(region: Region) -> None:
    rows = offer_orientation_search(origin=ORIGIN, radius_km=50, activity=PSY, now=region.now)
    assert keys(region, rows) == ["psy20"]
    assert {r.activity_field_code for r in rows} == {PSY}


def test_filter_by_specialty_code_or_family(region: Region) -> None:
    place_offer(
        region, "interv25", distance_km=25, bearing=180, specialty=INTERVENTIONAL_CARDIOLOGY, family="F1"
    )
    rows = offer_orientation_search(origin=ORIGIN, radius_km=50, specialty=PNEUMOLOGY, now=region.now)
    assert keys(region, rows) == ["pneumo8"]
    rows = offer_orientation_search(
        origin=ORIGIN, radius_km=50, specialty=INTERVENTIONAL_CARDIOLOGY, now=region.now
    )
    assert keys(region, rows) == ["interv25"]
    rows = offer_orientation_search(origin=ORIGIN, radius_km=50, specialty="F1", now=region.now)
    assert keys(region, rows) == ["interv25"]


def test_filter_by_care_mode(region: Region) -> None:
    place_offer(region, "hdj15", distance_km=15, bearing=0, care_mode=DAY_HOSPITALISATION, free_beds=0)
    rows = offer_orientation_search(
        origin=ORIGIN, radius_km=50, care_mode=DAY_HOSPITALISATION, now=region.now
    )
    assert keys(region, rows) == ["hdj15"]
    rows = offer_orientation_search(
        origin=ORIGIN, radius_km=50, care_mode=FULL_HOSPITALISATION, now=region.now
    )
    assert "hdj15" not in keys(region, rows)


def test_filter_by_age_group_and_age(db: None) -> None:
    region = build_region()
    place_offer(region, "any", distance_km=3, free_beds=1)
    place_offer(region, "kids", distance_km=4, age_min=0, age_max=17, free_beds=1)
    place_offer(region, "adults", distance_km=5, age_min=18, free_beds=1)
    place_offer(region, "elderly", distance_km=6, age_min=75, free_beds=1)
    search: dict[str, Any] = {"origin": ORIGIN, "radius_km": 20, "now": region.now}
    assert keys(region, offer_orientation_search(**search, age_group=AgeGroup.ADULT)) == [
        "any",
        "adults",
        "elderly",
    ]
    assert keys(region, offer_orientation_search(**search, age_group="child")) == ["any", "kids"]
    assert keys(region, offer_orientation_search(**search, age=40)) == ["any", "adults"]
    assert keys(region, offer_orientation_search(**search, age=80)) == ["any", "adults", "elderly"]
    assert keys(region, offer_orientation_search(**search, age=17)) == ["any", "kids"]


def test_inactive_offers_and_structures_are_left_out(region: Region) -> None:
    place_offer(region, "inactive", distance_km=2, is_active=False, free_beds=9)
    closed_structure = make_structure(is_active=False, commune=region.commune)
    place_offer(region, "gone", distance_km=3, structure=closed_structure, free_beds=9)
    rows = offer_orientation_search(origin=ORIGIN, radius_km=10, now=region.now)
    assert keys(region, rows) == ["c5", "pneumo8"]


# --- availability ----------------------------------------------------------------------------------------


def test_free_beds_sum_the_available_status_only(region: Region) -> None:
    rows = by_key(region, offer_orientation_search(origin=ORIGIN, radius_km=50, now=region.now))
    assert rows["c30"].free_beds == 2  # not the 20 installed nor the 18 occupied
    assert rows["c30"].free_places == 1
    assert rows["c30"].free_total == 3
    assert rows["c5"].free_beds == 0
    assert rows["c12"].free_beds == 1


def test_free_beds_add_up_over_several_rows_of_one_location(db: None) -> None:
    region = build_region()
    offer = place_offer(region, "two-genders", distance_km=5, free_beds=2)
    location = region.locations["two-genders"]
    Capacity.objects.create(
        offer=offer,
        location=location,
        capacity_type=PLACE,
        status=AVAILABLE,
        count=4,
        updated_at=region.now,
    )
    (row,) = offer_orientation_search(origin=ORIGIN, radius_km=10, now=region.now)
    assert (row.free_beds, row.free_places) == (2, 4)


def test_available_only_keeps_offers_with_a_free_bed_now(region: Region) -> None:
    rows = offer_orientation_search(origin=ORIGIN, radius_km=50, available_only=True, now=region.now)
    assert keys(region, rows) == ["pneumo8", "c12", "psy20", "c30", "c45"]  # c5 is full
    assert all(r.free_total > 0 for r in rows)


def test_available_only_leaves_out_offers_without_capacity_data(db: None) -> None:
    region = build_region()
    place_offer(region, "unknown", distance_km=5, free_beds=None)
    place_offer(region, "known", distance_km=6, free_beds=1)
    assert keys(region, offer_orientation_search(origin=ORIGIN, radius_km=10, now=region.now)) == [
        "unknown",
        "known",
    ]
    rows = offer_orientation_search(origin=ORIGIN, radius_km=10, available_only=True, now=region.now)
    assert keys(region, rows) == ["known"]


def test_places_count_as_available(db: None) -> None:
    region = build_region()
    place_offer(region, "places", distance_km=5, free_beds=0, free_places=2)
    rows = offer_orientation_search(origin=ORIGIN, radius_km=10, available_only=True, now=region.now)
    assert keys(region, rows) == ["places"]


def test_a_closed_offer_is_not_available(region: Region) -> None:
    OfferClosure.objects.create(offer=region.offers["c12"], start=region.now - timedelta(days=1))
    OfferClosure.objects.create(  # over: reopened yesterday
        offer=region.offers["c30"],
        start=region.now - timedelta(days=10),
        end=region.now - timedelta(days=1),
    )
    OfferClosure.objects.create(offer=region.offers["c45"], start=region.now + timedelta(days=3))  # future
    rows = offer_orientation_search(origin=ORIGIN, radius_km=50, available_only=True, now=region.now)
    assert keys(region, rows) == ["pneumo8", "psy20", "c30", "c45"]
    every = by_key(region, offer_orientation_search(origin=ORIGIN, radius_km=50, now=region.now))
    assert every["c12"].is_closed
    assert not every["c30"].is_closed
    assert not every["c45"].is_closed


def test_nearest_free_adult_cardiology_bed_in_one_search(region: Region) -> None:
    """The issue's "done when": a regulator finds the nearest free adult cardiology bed in one search."""
    place_offer(region, "kids-cardio3", distance_km=3, age_max=17, free_beds=2)  # nearer, but for children
    place_offer(
        region, "cardio-hdj4", distance_km=4, care_mode=DAY_HOSPITALISATION, free_beds=0, free_places=3
    )
    rows = offer_orientation_search(
        origin=ORIGIN,
        radius_km=100,
        activity=MCO,
        specialty=CARDIOLOGY,
        care_mode=FULL_HOSPITALISATION,
        age_group=AgeGroup.ADULT,
        available_only=True,
        now=region.now,
    )
    assert keys(region, rows)[0] == "c12"  # c5 is nearer but full
    assert rows[0].free_beds == 1
    assert rows[0].phone == "02 99 00 00 00"


# --- freshness and contacts ------------------------------------------------------------------------------


def test_stale_flag_follows_the_setting(db: None, settings: Settings) -> None:
    settings.ROR_STALE_AFTER_HOURS = 12
    region = build_region()
    place_offer(region, "fresh", distance_km=1, updated_hours_ago=2, free_beds=1)
    place_offer(region, "old", distance_km=2, updated_hours_ago=13, free_beds=1)
    place_offer(region, "never", distance_km=3, free_beds=None)
    rows = offer_orientation_search(origin=ORIGIN, radius_km=10, now=region.now)
    assert [(k, r.is_stale) for k, r in zip(keys(region, rows), rows, strict=True)] == [
        ("fresh", False),
        ("old", True),
        ("never", True),
    ]
    assert rows[0].capacity_updated_at == region.now - timedelta(hours=2)
    assert rows[2].capacity_updated_at is None
    settings.ROR_STALE_AFTER_HOURS = 24
    rows = offer_orientation_search(origin=ORIGIN, radius_km=10, now=region.now)
    assert [r.is_stale for r in rows] == [False, False, True]


def test_rows_carry_structure_location_and_contacts(db: None) -> None:
    region = build_region()
    structure = make_structure(name="CHU de Rennes", commune=region.commune)
    MailboxAddress.objects.create(
        address="regulation@chu-rennes.mssante.fr", kind=MailboxKind.ORGANIZATIONAL, structure=structure
    )
    place_offer(
        region,
        "chu",
        distance_km=2,
        structure=structure,
        phone="02 99 28 43 21",
        email="cardio@chu-rennes.fr",
        free_beds=1,
    )
    (row,) = offer_orientation_search(origin=ORIGIN, radius_km=10, now=region.now)
    assert row.structure_name == "CHU de Rennes"
    assert row.structure_finess == structure.finess_et
    assert row.offer_name == "Offre chu"
    assert row.location_name == "Service chu"
    assert row.commune_name == "Rennes"
    assert row.phone == "02 99 28 43 21"
    assert row.email == "cardio@chu-rennes.fr"
    assert row.mssante_address == "regulation@chu-rennes.mssante.fr"


def test_an_offer_at_two_locations_gives_two_rows(db: None) -> None:
    region = build_region()
    offer = place_offer(region, "main", distance_km=5, free_beds=1)
    lat, lon = geo.destination(ORIGIN, 180, 15)
    annex = OfferLocation.objects.create(
        structure=offer.structure, identifier="LIEU-ANNEXE", name="Annexe", latitude=lat, longitude=lon
    )
    annex.offers.add(offer)
    rows = offer_orientation_search(origin=ORIGIN, radius_km=20, now=region.now)
    assert [(r.offer_id, r.location_name, round(r.distance_km)) for r in rows] == [
        (offer.pk, "Service main", 5),
        (offer.pk, "Annexe", 15),
    ]
    assert rows[1].capacity_updated_at is None  # capacities are per location


# --- query counts ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("available_only", [False, True])
def test_one_query_whatever_the_number_of_results(
    db: None, django_assert_num_queries: DjangoAssertNumQueries, available_only: bool
) -> None:
    region = build_region()
    for i in range(30):
        place_offer(region, f"o{i}", distance_km=1 + i, bearing=i * 37 % 360, free_beds=i % 3)
    with django_assert_num_queries(1):
        rows = offer_orientation_search(origin=ORIGIN, radius_km=50, available_only=available_only)
    assert len(rows) == (20 if available_only else 30)
    with django_assert_num_queries(2):  # + the commune's position
        offer_orientation_search(commune_insee=ORIGIN_INSEE, radius_km=50, available_only=available_only)


# --- origins ---------------------------------------------------------------------------------------------


def test_origin_resolve(region: Region) -> None:
    other = CommuneFactory(
        insee_code="35001",
        name="Rennes-le-Château",
        department=region.commune.department,
        latitude=48.0,
        longitude=-1.5,
    )
    origin, candidates = origin_resolve(text="48.1, -1.6")
    assert origin == Origin(48.1, -1.6, "48.10000, -1.60000")
    assert candidates == []
    origin, _ = origin_resolve(text="35238")
    assert origin == region.origin
    origin, _ = origin_resolve(text="rennes")  # the exact name wins over the prefix
    assert origin is not None
    assert origin.commune_insee == ORIGIN_INSEE
    origin, candidates = origin_resolve(text="Renn")
    assert origin is None
    assert candidates == [region.commune, other]
    with pytest.raises(ValidationError, match="Aucune commune"):
        origin_resolve(text="Nulle-part")
    with pytest.raises(ValidationError, match="Position impossible"):
        origin_resolve(text="95, 2")


# --- the public search -----------------------------------------------------------------------------------


def test_public_search_has_no_capacity_nor_staff_contact(region: Region) -> None:
    OfferClosure.objects.create(offer=region.offers["c12"], start=region.now - timedelta(hours=1))
    rows = offer_public_search(origin=ORIGIN, radius_km=50, activity=MCO, now=region.now)
    names = [r.offer_name for r in rows]
    assert names == ["Offre c5", "Offre pneumo8", "Offre c30", "Offre c45"]  # c12 closed, psy20 filtered
    fields = set(type(rows[0]).__dataclass_fields__)
    assert not fields & {
        "free_beds",
        "free_places",
        "capacity_updated_at",
        "is_stale",
        "email",
        "mssante_address",
    }
    assert rows[0].distance_km == pytest.approx(5, abs=0.01)
