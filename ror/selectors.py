"""Reads of the ror app: <entity>_list / _get / _search.

The orientation search (``offer_orientation_search``) answers « where is the nearest place that takes
this patient, and does it have a free bed now? » in one SQL statement:

1. candidates: the locations inside the bounding box of the origin and radius (``ror.geo.bounding_box``),
   an index range scan on ``ror_location_latlon_idx`` (latitude, longitude), kept when the exact
   haversine distance in SQL (same formula and radius as ``ror.geo.haversine_km``) is within the radius,
   and sorted by it — a few hundred to a couple of thousand locations, not offers;
2. each location, nearest first, brings its offers through a ``LATERAL`` join (index lookups on the
   location-offer link, the offer, the structure) filtered by champ d'activité, activité opérationnelle
   (or its family), mode de prise en charge, age, and for « disponible maintenant » an ``EXISTS`` on
   the capacities with status 02 and a positive count and a ``NOT EXISTS`` on a closing period now.
   PostgreSQL reads the locations in distance order (Incremental Sort on the presorted distance) and
   stops at the ``LIMIT``; sorting every (location, offer) pair instead was 25 to 30 % slower at p95;
3. only the rows kept by the ``LIMIT`` get their capacities summed (a ``LATERAL`` aggregate) and their
   display columns joined (structure, commune, organisational MSSanté address).

PostGIS is not installed and is not needed. ``bench/ror_search.py`` at 50 000 offers (8 729 locations,
250 000 capacity rows, a shared machine at load 4 to 5): selector p50 4.1 ms, p95 9.0 ms, p99 12.9 ms, i.e.
1.05 times the same statement run bare through psycopg; without the bounding box p95 is 1.35 times slower. The
plan of the densest case (Paris, 100 km, MCO, disponible maintenant): 1.4 ms planning, 3.1 ms execution.

The public search (``offer_public_search``) is a separate statement that never selects a capacity,
a freshness date or a staff contact, so that no template mistake can leak them.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from django.core.exceptions import ValidationError
from django.db import connection
from django.db.models import Prefetch, Q, QuerySet
from django.utils import timezone

from annuaire.models import Commune, MailboxAddress, MailboxKind, Structure

from . import freshness, geo
from .models import Capacity, CapacityUpdate, Offer, OfferClosure, OfferLocation
from .standards import valuesets as valuesets_module

# TRE_R330-TypeStatutCapacite: 02 = Disponible.
AVAILABLE_STATUS = valuesets_module.AVAILABLE
# J187 NatureCapacite (ror.standards.valuesets): 01 = lit, 02 = place.
BEDS_CAPACITY_TYPE = "01"
PLACES_CAPACITY_TYPE = "02"
ADULT_AGE = 18
MAX_RADIUS_KM = 500.0
MAX_LIMIT = 200


class AgeGroup(StrEnum):
    ADULT = "adult"
    CHILD = "child"


@dataclass(frozen=True, slots=True)
class Origin:
    """Where distances are measured from: a commune's position, or a point typed by the user."""

    latitude: float
    longitude: float
    label: str
    commune_insee: str = ""

    @property
    def point(self) -> geo.Point:
        return (self.latitude, self.longitude)


@dataclass(frozen=True, slots=True)
class OrientationRow:
    """One offer at one location, with its distance, free capacity and freshness."""

    offer_id: int
    offer_identifier: str
    offer_name: str
    activity_field_code: str
    care_mode_code: str
    operational_activity_code: str
    age_min: int | None
    age_max: int | None
    structure_id: int
    structure_name: str
    structure_finess: str
    location_id: int
    location_name: str
    address_line: str
    postal_code: str
    commune_name: str
    latitude: float
    longitude: float
    phone: str
    email: str
    mssante_address: str
    distance_km: float
    free_beds: int
    free_places: int
    capacity_updated_at: datetime | None
    is_stale: bool
    is_closed: bool

    @property
    def free_total(self) -> int:
        return self.free_beds + self.free_places

    @property
    def has_capacity_data(self) -> bool:
        return self.capacity_updated_at is not None


@dataclass(frozen=True, slots=True)
class PublicRow:
    """What the public page may show: no capacity, no freshness, no staff contact."""

    offer_id: int
    offer_name: str
    activity_field_code: str
    structure_name: str
    location_name: str
    address_line: str
    postal_code: str
    commune_name: str
    latitude: float
    longitude: float
    phone: str
    distance_km: float


# --- origins --------------------------------------------------------------------------------------------


def commune_origin_get(*, insee_code: str) -> Origin:
    """The position of a commune by its INSEE code; ValidationError when unknown or not placed."""
    commune = Commune.objects.filter(insee_code=insee_code).only(
        "name", "insee_code", "latitude", "longitude"
    )
    found = commune.first()
    if found is None:
        raise ValidationError(f"Commune inconnue : code INSEE « {insee_code} ».", code="unknown_commune")
    if found.latitude is None or found.longitude is None:
        raise ValidationError(f"La commune « {found.name} » n'a pas de position connue.", code="no_position")
    return Origin(found.latitude, found.longitude, f"{found.name} ({found.insee_code})", found.insee_code)


def commune_search(*, text: str, limit: int = 10) -> list[Commune]:
    """Communes whose INSEE code, postal code or name matches ``text`` (exact names first)."""
    cleaned = " ".join(text.split())
    if not cleaned:
        return []
    if cleaned.isdigit() or (len(cleaned) == 5 and cleaned[:2].upper() in {"2A", "2B"}):
        query = Q(insee_code=cleaned.upper()) | Q(postal_code=cleaned)
    else:
        query = Q(name__iexact=cleaned) | Q(name__istartswith=cleaned)
    communes = list(
        Commune.objects.filter(query, latitude__isnull=False, longitude__isnull=False)
        .select_related("department")
        .order_by("name", "insee_code")[: limit * 5]
    )
    exact = [c for c in communes if c.name.casefold() == cleaned.casefold() or c.insee_code == cleaned]
    rest = [c for c in communes if c not in exact]
    return (exact + rest)[:limit]


def commune_pick(*, text: str) -> tuple[Commune | None, list[Commune]]:
    """The commune the user meant: (the commune, []) when the INSEE code or the exact name is unique or
    only one commune matches, else (None, the candidates to choose from; empty when none matches)."""
    typed = " ".join(text.split())
    candidates = commune_search(text=typed)
    exact = [c for c in candidates if c.insee_code == typed.upper() or c.name.casefold() == typed.casefold()]
    if len(exact) == 1:
        return exact[0], []
    if len(candidates) == 1:
        return candidates[0], []
    return None, candidates


def origin_resolve(*, text: str) -> tuple[Origin | None, list[Commune]]:
    """What the user typed as an origin: "lat,lon" → that point; an INSEE code or a commune name with one
    match → that commune; several matches → (None, the candidates to choose from). ValidationError when
    nothing matches or the position is impossible."""
    try:
        point = geo.parse_point(text)
    except ValueError as error:
        raise ValidationError(f"Position impossible : {error}.", code="bad_point") from error
    if point is not None:
        return Origin(point[0], point[1], f"{point[0]:.5f}, {point[1]:.5f}"), []
    chosen, candidates = commune_pick(text=text)
    if chosen is None and not candidates:
        raise ValidationError(
            "Aucune commune ne correspond : saisissez un nom, un code INSEE ou « latitude, longitude ».",
            code="unknown_commune",
        )
    if chosen is None:
        return None, candidates
    assert chosen.latitude is not None  # commune_search keeps placed communes only
    assert chosen.longitude is not None
    label = f"{chosen.name} ({chosen.insee_code})"
    return Origin(chosen.latitude, chosen.longitude, label, chosen.insee_code), []


# --- freshness ------------------------------------------------------------------------------------------


def stale_before(now: datetime) -> datetime:
    """Capacity data updated before this instant is shown as « données anciennes »: the same rule
    (``ROR_STALE_AFTER_HOURS``) as the stale-offer notices and the freshness rate (``ror.freshness``)."""
    return freshness.stale_cutoff(now=now)


# --- the orientation search -----------------------------------------------------------------------------


def _tables() -> dict[str, str]:
    qn = connection.ops.quote_name
    return {
        "location": qn(OfferLocation._meta.db_table),
        "location_offers": qn(OfferLocation.offers.through._meta.db_table),
        "offer": qn(Offer._meta.db_table),
        "capacity": qn(Capacity._meta.db_table),
        "closure": qn(OfferClosure._meta.db_table),
        "structure": qn(Structure._meta.db_table),
        "commune": qn(Commune._meta.db_table),
        "mailbox": qn(MailboxAddress._meta.db_table),
    }


def _box_sql(origin: geo.Point, radius_km: float, params: dict[str, Any]) -> str:
    box = geo.bounding_box(origin, radius_km)
    params["lat_min"], params["lat_max"] = box.lat_min, box.lat_max
    ranges = []
    for i, (lo, hi) in enumerate(box.lon_ranges):
        params[f"lon_min_{i}"], params[f"lon_max_{i}"] = lo, hi
        ranges.append(f"l.longitude BETWEEN %(lon_min_{i})s AND %(lon_max_{i})s")
    return f"l.latitude BETWEEN %(lat_min)s AND %(lat_max)s AND ({' OR '.join(ranges)})"


def _offer_filters_sql(
    *,
    activity: str | None,
    specialty: str | None,
    care_mode: str | None,
    age: int | None,
    age_group: AgeGroup | str | None,
    params: dict[str, Any],
) -> list[str]:
    where = ["o.is_active", "s.is_active"]
    if activity:
        params["activity"] = activity
        where.append("o.activity_field_code = %(activity)s")
    if specialty:
        params["specialty"] = specialty
        # An activité opérationnelle (J17) or its family (J51).
        where.append(
            "(o.operational_activity_code = %(specialty)s"
            " OR o.operational_activity_family_code = %(specialty)s)"
        )
    if care_mode:
        params["care_mode"] = care_mode
        where.append("o.care_mode_code = %(care_mode)s")
    if age is not None:
        params["age"] = age
        where.append(
            "(o.age_min IS NULL OR o.age_min <= %(age)s) AND (o.age_max IS NULL OR o.age_max >= %(age)s)"
        )
    if age_group:
        params["adult_age"] = ADULT_AGE
        if AgeGroup(age_group) is AgeGroup.ADULT:
            where.append("(o.age_max IS NULL OR o.age_max >= %(adult_age)s)")
        else:
            where.append("(o.age_min IS NULL OR o.age_min < %(adult_age)s)")
    return where


def orientation_search_sql(
    *,
    origin: geo.Point,
    radius_km: float,
    activity: str | None = None,
    specialty: str | None = None,
    care_mode: str | None = None,
    age: int | None = None,
    age_group: AgeGroup | str | None = None,
    available_only: bool = False,
    limit: int = 50,
    now: datetime | None = None,
) -> tuple[str, dict[str, Any]]:
    """The SQL statement and its named parameters (psycopg ``%(name)s`` style) of the orientation search;
    the benchmark runs the very same statement through psycopg as its baseline."""
    if not 0 < radius_km <= MAX_RADIUS_KM:
        raise ValidationError(f"Le rayon doit être compris entre 1 et {MAX_RADIUS_KM:.0f} km.", code="radius")
    t = _tables()
    now = now or timezone.now()
    params: dict[str, Any] = {
        "lat": origin[0],
        "lon": origin[1],
        "radius": radius_km,
        "available": AVAILABLE_STATUS,
        "beds": BEDS_CAPACITY_TYPE,
        "places": PLACES_CAPACITY_TYPE,
        "now": now,
        "limit": max(1, min(limit, MAX_LIMIT)),
        "org_kind": MailboxKind.ORGANIZATIONAL.value,
    }
    distance = geo.haversine_sql("l.latitude", "l.longitude")
    box = _box_sql(origin, radius_km, params)
    where = _offer_filters_sql(
        activity=activity,
        specialty=specialty,
        care_mode=care_mode,
        age=age,
        age_group=age_group,
        params=params,
    )
    # S608: the f-strings only splice table names from the models' metadata and code-built fragments;
    # every value is a bound parameter.
    closed_now = (
        f"EXISTS (SELECT 1 FROM {t['closure']} z WHERE z.offer_id = o.id AND z.start <= %(now)s "  # noqa: S608
        'AND (z."end" IS NULL OR z."end" > %(now)s))'
    )
    if available_only:
        where.append(f"NOT {closed_now}")
        where.append(
            f"EXISTS (SELECT 1 FROM {t['capacity']} a WHERE a.offer_id = o.id "  # noqa: S608
            "AND a.location_id = c.location_id AND a.status = %(available)s AND a.count > 0)"
        )
    sql = f"""
WITH hits AS (
    SELECT x.offer_id, c.location_id, c.distance_km
    FROM (
        SELECT l.id AS location_id, {distance} AS distance_km
        FROM {t["location"]} l
        WHERE {box} AND {distance} <= %(radius)s
        ORDER BY 2
    ) c
    CROSS JOIN LATERAL (
        SELECT o.id AS offer_id
        FROM {t["location_offers"]} lo
        JOIN {t["offer"]} o ON o.id = lo.offer_id
        JOIN {t["structure"]} s ON s.id = o.structure_id
        WHERE lo.offerlocation_id = c.location_id AND {" AND ".join(where)}
    ) x
    ORDER BY c.distance_km, x.offer_id
    LIMIT %(limit)s
)
SELECT
    o.id, o.identifier, o.name, o.activity_field_code, o.care_mode_code, o.operational_activity_code,
    o.age_min, o.age_max,
    s.id, s.name, COALESCE(s.finess_et, s.finess_ej, ''),
    l.id, l.name, l.address_line, l.postal_code, COALESCE(cm.name, ''), l.latitude, l.longitude,
    l.phone, l.email,
    COALESCE((SELECT m.address FROM {t["mailbox"]} m WHERE m.structure_id = s.id AND m.kind = %(org_kind)s
              ORDER BY m.id LIMIT 1), ''),
    h.distance_km,
    COALESCE(cap.free_beds, 0), COALESCE(cap.free_places, 0), cap.updated_at,
    {closed_now}
FROM hits h
JOIN {t["offer"]} o ON o.id = h.offer_id
JOIN {t["structure"]} s ON s.id = o.structure_id
JOIN {t["location"]} l ON l.id = h.location_id
LEFT JOIN {t["commune"]} cm ON cm.id = l.commune_id
LEFT JOIN LATERAL (
    SELECT
        SUM(k.count) FILTER (WHERE k.status = %(available)s AND k.capacity_type = %(beds)s) AS free_beds,
        SUM(k.count) FILTER (WHERE k.status = %(available)s AND k.capacity_type = %(places)s) AS free_places,
        MAX(k.updated_at) AS updated_at
    FROM {t["capacity"]} k
    WHERE k.offer_id = h.offer_id AND k.location_id = h.location_id
) cap ON TRUE
ORDER BY h.distance_km, o.id
"""  # noqa: S608
    return sql, params


def offer_orientation_search(
    *,
    origin: geo.Point | Origin | None = None,
    commune_insee: str | None = None,
    radius_km: float = 50.0,
    activity: str | None = None,
    specialty: str | None = None,
    care_mode: str | None = None,
    age: int | None = None,
    age_group: AgeGroup | str | None = None,
    available_only: bool = False,
    limit: int = 50,
    now: datetime | None = None,
) -> list[OrientationRow]:
    """Offers within ``radius_km`` of ``origin`` (lat, lon) or of the commune ``commune_insee``, nearest
    first, with their free beds/places (status 02 « Disponible »), freshness and contacts.

    One query (two with ``commune_insee``: the commune's position)."""
    if (origin is None) == (commune_insee is None):
        raise ValidationError("Indiquez une commune ou une position d'origine.", code="origin")
    if commune_insee is not None:
        origin = commune_origin_get(insee_code=commune_insee)
    assert origin is not None
    point = origin.point if isinstance(origin, Origin) else origin
    now = now or timezone.now()
    sql, params = orientation_search_sql(
        origin=point,
        radius_km=radius_km,
        activity=activity,
        specialty=specialty,
        care_mode=care_mode,
        age=age,
        age_group=age_group,
        available_only=available_only,
        limit=limit,
        now=now,
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        raw = cursor.fetchall()
    cutoff = stale_before(now)
    return [_orientation_row(r, cutoff) for r in raw]


def _orientation_row(r: Sequence[Any], cutoff: datetime) -> OrientationRow:
    updated_at = r[24]
    return OrientationRow(
        offer_id=r[0],
        offer_identifier=r[1],
        offer_name=r[2],
        activity_field_code=r[3],
        care_mode_code=r[4],
        operational_activity_code=r[5],
        age_min=r[6],
        age_max=r[7],
        structure_id=r[8],
        structure_name=r[9],
        structure_finess=r[10],
        location_id=r[11],
        location_name=r[12],
        address_line=r[13],
        postal_code=r[14],
        commune_name=r[15],
        latitude=r[16],
        longitude=r[17],
        phone=r[18],
        email=r[19],
        mssante_address=r[20],
        distance_km=float(r[21]),
        free_beds=int(r[22]),
        free_places=int(r[23]),
        capacity_updated_at=updated_at,
        is_stale=updated_at is None or updated_at < cutoff,
        is_closed=bool(r[25]),
    )


# --- the public search ----------------------------------------------------------------------------------


def offer_public_search(
    *,
    origin: geo.Point,
    radius_km: float = 30.0,
    activity: str | None = None,
    limit: int = 30,
    now: datetime | None = None,
) -> list[PublicRow]:
    """The offer of care near a point, for the public: open offers only, nearest first, and no capacity,
    freshness or staff contact (not even selected). One query."""
    if not 0 < radius_km <= MAX_RADIUS_KM:
        raise ValidationError(f"Le rayon doit être compris entre 1 et {MAX_RADIUS_KM:.0f} km.", code="radius")
    t = _tables()
    params: dict[str, Any] = {
        "lat": origin[0],
        "lon": origin[1],
        "radius": radius_km,
        "now": now or timezone.now(),
        "limit": max(1, min(limit, MAX_LIMIT)),
    }
    distance = geo.haversine_sql("l.latitude", "l.longitude")
    box = _box_sql(origin, radius_km, params)
    where = _offer_filters_sql(
        activity=activity, specialty=None, care_mode=None, age=None, age_group=None, params=params
    )
    where.append(
        f"NOT EXISTS (SELECT 1 FROM {t['closure']} z WHERE z.offer_id = o.id AND z.start <= %(now)s "  # noqa: S608
        'AND (z."end" IS NULL OR z."end" > %(now)s))'
    )
    sql = f"""
WITH candidates AS (
    SELECT l.id AS location_id, {distance} AS distance_km
    FROM {t["location"]} l
    WHERE {box}
)
SELECT o.id, o.name, o.activity_field_code, s.name, l.name, l.address_line, l.postal_code,
       COALESCE(cm.name, ''), l.latitude, l.longitude, l.phone, c.distance_km
FROM candidates c
JOIN {t["location_offers"]} lo ON lo.offerlocation_id = c.location_id
JOIN {t["offer"]} o ON o.id = lo.offer_id
JOIN {t["structure"]} s ON s.id = o.structure_id
JOIN {t["location"]} l ON l.id = c.location_id
LEFT JOIN {t["commune"]} cm ON cm.id = l.commune_id
WHERE c.distance_km <= %(radius)s AND {" AND ".join(where)}
ORDER BY c.distance_km, o.id
LIMIT %(limit)s
"""  # noqa: S608
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        raw = cursor.fetchall()
    return [
        PublicRow(
            offer_id=r[0],
            offer_name=r[1],
            activity_field_code=r[2],
            structure_name=r[3],
            location_name=r[4],
            address_line=r[5],
            postal_code=r[6],
            commune_name=r[7],
            latitude=r[8],
            longitude=r[9],
            phone=r[10],
            distance_km=float(r[11]),
        )
        for r in raw
    ]


# --- Capacity pages (establishments' staff) -------------------------------------------------------------


def capacity_offer_list(*, user: Any) -> QuerySet[Offer]:
    """The active offers `user` may update (every offer for GCS staff), with their locations and
    capacities prefetched, least recently updated first."""
    from .services import user_is_gcs_staff, user_structure_ids

    offers = Offer.objects.filter(is_active=True)
    if not user_is_gcs_staff(user):
        offers = offers.filter(structure_id__in=user_structure_ids(user))
    return (
        offers.select_related("structure")
        .prefetch_related(
            Prefetch("locations", queryset=OfferLocation.objects.order_by("identifier")),
            Prefetch("capacities", queryset=Capacity.objects.order_by("capacity_type", "status")),
        )
        .order_by("capacity_updated_at", "identifier")
    )


def capacity_pair_get(*, offer_id: int, location_id: int) -> tuple[Offer, OfferLocation]:
    """An offer and one of its locations (Offer.DoesNotExist / OfferLocation.DoesNotExist otherwise)."""
    offer = Offer.objects.select_related("structure").get(pk=offer_id)
    return offer, OfferLocation.objects.filter(offers=offer).get(pk=location_id)


def capacity_rows(*, offer: Offer, location: OfferLocation) -> list[Capacity]:
    return list(Capacity.objects.filter(offer=offer, location=location).select_related("updated_by"))


def capacity_update_list(*, offer: Offer, location: OfferLocation) -> QuerySet[CapacityUpdate]:
    """The history of an offer at a location, newest first (the model's ordering)."""
    return CapacityUpdate.objects.filter(offer=offer, location=location).select_related("actor", "token")
