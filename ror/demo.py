"""Deterministic demo offers of care, locations and capacities for the structures of the directory
(``seed_ror_demo``).

Like ``annuaire.demo``, everything is drawn from ``random.Random`` objects seeded from ``(seed, stream)``:
the same seed and the same directory give the same offers. Codes come from the ROR value sets
(``ror/standards/data/valuesets.json``). Rows carry their primary keys and are written with
``annuaire.bulk.write_rows`` (COPY on PostgreSQL), so 50 000 offers load in seconds.
"""

import json
import math
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import connection, transaction
from django.utils import timezone

from annuaire.bulk import Method, Progress, Row, Table, flush, reset_sequences, write_rows
from annuaire.models import Structure, StructureKind

from .models import Capacity, CapacityUpdate, Offer, OfferClosure, OfferLocation, StaleNotice
from .standards import valuesets as vs

DEFAULT_SEED = 2025

OfferLocationLink = OfferLocation.offers.through


@dataclass(frozen=True)
class OfferTemplate:
    name: str
    field: str  # J20
    offer_type: str  # J238
    care_mode: str  # J19
    reception: str  # J30
    activity: str  # J17 ("" when none)
    capacity_type: str  # J187: 01 lit, 02 place
    beds: tuple[int, int]
    age: tuple[int | None, int | None] = (18, None)


T = OfferTemplate
MCO = (
    T("Urgences adultes", "01", "20", "33", "02", "", "02", (8, 30)),
    T("Unité d'hospitalisation de courte durée", "01", "16", "13", "02", "115", "01", (6, 16)),
    T("Réanimation polyvalente", "01", "16", "28", "02", "127", "01", (8, 24)),
    T("Réanimation pédiatrique", "01", "16", "28", "02", "130", "01", (6, 12), (0, 17)),
    T("Cardiologie — hospitalisation complète", "01", "16", "28", "02", "013", "01", (15, 40)),
    T("Pneumologie — hospitalisation complète", "01", "16", "28", "02", "114", "01", (15, 35)),
    T("Gériatrie aiguë", "01", "16", "28", "02", "050", "01", (20, 40), (75, None)),
    T("Chirurgie orthopédique et traumatologique", "01", "16", "28", "02", "025", "01", (15, 40)),
    T("Chirurgie digestive", "01", "16", "28", "02", "033", "01", (15, 35)),
    T("Chirurgie ambulatoire", "01", "11", "09", "02", "007", "02", (8, 24)),
    T("Hôpital de jour de médecine", "01", "11", "29", "02", "055", "02", (6, 20)),
    T("Consultations de diabétologie", "01", "69", "32", "02", "039", "02", (2, 6)),
)
PSY = (
    T("Psychiatrie adulte — hospitalisation complète", "03", "16", "28", "02", "", "01", (20, 40)),
    T("Unité de soins intensifs psychiatriques", "03", "15", "28", "02", "", "01", (8, 14)),
    T("Hôpital de jour de psychiatrie", "03", "11", "29", "02", "", "02", (10, 25)),
    T("Centre médico-psychologique adulte", "03", "10", "32", "02", "", "02", (4, 10)),
    T("Psychiatrie du sujet âgé", "03", "16", "28", "02", "051", "01", (12, 25), (65, None)),
)
SMR = (
    T("SMR polyvalent", "02", "100", "28", "02", "", "01", (20, 50)),
    T("SMR gériatrique", "02", "101", "28", "02", "050", "01", (20, 40), (75, None)),
    T("SMR locomoteur", "02", "102", "28", "02", "025", "01", (15, 40)),
    T("SMR — hôpital de jour", "02", "11", "29", "02", "", "02", (8, 20)),
)
MEDICO_SOCIAL = (
    T("Hébergement permanent EHPAD", "04", "21", "46", "02", "", "01", (40, 100), (60, None)),
    T("Hébergement temporaire EHPAD", "04", "21", "46", "01", "", "01", (2, 8), (60, None)),
    T("Accueil de jour EHPAD", "04", "21", "47", "02", "", "02", (6, 15), (60, None)),
)
HOME = (
    T("Hospitalisation à domicile", "01", "16", "31", "02", "", "02", (20, 80), (None, None)),
    T("Soins infirmiers à domicile", "04", "28", "49", "02", "", "02", (20, 60), (60, None)),
)
DIALYSIS = (
    T("Hémodialyse chronique", "01", "69", "20", "02", "059", "02", (10, 30)),
    T("Hémodialyse en urgence", "01", "16", "28", "02", "058", "01", (2, 6)),
)

# TRE_R66 category of a site → the offers it may have.
TEMPLATES_BY_CATEGORY: dict[str, Sequence[OfferTemplate]] = {
    "101": MCO + PSY + SMR,
    "355": MCO + SMR,
    "106": MCO[:2] + SMR,
    "292": PSY,
    "365": MCO + SMR,
    "128": MCO[7:10],
    "109": SMR,
    "127": HOME[:1],
    "141": DIALYSIS,
    "500": MEDICO_SOCIAL,
    "354": HOME[1:],
}
HEALTH_CATEGORIES = tuple(TEMPLATES_BY_CATEGORY)


@dataclass(frozen=True)
class _Site:
    pk: int
    finess: str
    name: str
    category: str
    commune_id: int | None
    postal_code: str
    address: str
    latitude: float
    longitude: float


def _rng(seed: int, stream: str) -> random.Random:
    return random.Random(f"enrs-ror-demo:{seed}:{stream}")  # noqa: S311 — demo data, not a secret


def demo_sites() -> list[_Site]:
    """The directory's health sites (FINESS ET of a category that has ROR offers) with a position."""
    rows = (
        Structure.objects.filter(
            kind=StructureKind.SITE,
            is_active=True,
            finess_et__isnull=False,
            category_code__in=HEALTH_CATEGORIES,
        )
        .select_related("commune")
        .order_by("pk")
    )
    sites = []
    for s in rows:
        lat = s.latitude if s.latitude is not None else (s.commune.latitude if s.commune else None)
        lon = s.longitude if s.longitude is not None else (s.commune.longitude if s.commune else None)
        if lat is None or lon is None:
            continue
        sites.append(
            _Site(
                s.pk,
                s.finess_et or "",
                s.name,
                s.category_code,
                s.commune_id,
                s.postal_code,
                s.address_line,
                lat,
                lon,
            )
        )
    return sites


class RorDemoData:
    """The demo ROR for a list of sites, as a stream of ``(table, row)`` for ``write_rows``.

    Without `offers`, each site gets 3 to 10 offers (fewer when its category has fewer templates); with
    `offers`, exactly that many offers are spread over the sites in turn (the big benchmark case)."""

    OFFER = Table(
        Offer,
        (
            "id",
            "identifier",
            "structure_id",
            "name",
            "activity_field_code",
            "offer_type_code",
            "care_mode_code",
            "reception_type_code",
            "operational_activity_code",
            "operational_activity_family_code",
            "age_min",
            "age_max",
            "public_code",
            "specialised_care_codes",
            "is_active",
            "created_at",
            "updated_at",
            "capacity_updated_at",
        ),
    )
    LOCATION = Table(
        OfferLocation,
        (
            "id",
            "structure_id",
            "identifier",
            "name",
            "address_line",
            "postal_code",
            "commune_id",
            "latitude",
            "longitude",
            "phone",
            "email",
            "created_at",
            "updated_at",
        ),
    )
    LINK = Table(OfferLocationLink, ("id", "offerlocation_id", "offer_id"))
    CAPACITY = Table(
        Capacity,
        (
            "id",
            "offer_id",
            "location_id",
            "capacity_type",
            "status",
            "count",
            "gender",
            "crisis",
            "updated_at",
            "updated_by_id",
        ),
    )

    def __init__(
        self,
        *,
        sites: Sequence[_Site],
        seed: int,
        offers: int | None = None,
        now: datetime | None = None,
        json_as_text: bool = True,
    ):
        self.sites = list(sites)
        self.json_as_text = json_as_text  # COPY takes JSON as text; bulk_create takes Python values
        self.seed = seed
        self.now = now or timezone.now()
        self.plan = self._plan(offers)
        self.counts = {"offers": sum(self.plan), "locations": 0, "capacities": 0}

    def _plan(self, offers: int | None) -> list[int]:
        """Number of offers per site."""
        if not self.sites:
            return []
        if offers is None:
            rng = _rng(self.seed, "plan")
            return [min(rng.randint(3, 10), 3 * len(TEMPLATES_BY_CATEGORY[s.category])) for s in self.sites]
        base, extra = divmod(offers, len(self.sites))
        return [base + (1 if i < extra else 0) for i in range(len(self.sites))]

    def _json(self, value: object) -> object:
        return json.dumps(value) if self.json_as_text else value

    def locations_per_site(self, n_offers: int) -> int:
        # A few buildings for a usual site; satellite places (antennas, CMP…) for the big benchmark case.
        return max(1, min(250, math.ceil(n_offers / 10)))

    def rows(self) -> Iterator[tuple[Table, Row]]:
        # Locations first (offers' links point to them), then offers with their links and capacities.
        vsets = vs.valuesets()
        rng = _rng(self.seed, "locations")
        location_ids: list[list[int]] = []
        loc_id = 0
        for site, n_offers in zip(self.sites, self.plan, strict=True):
            ids = []
            for j in range(self.locations_per_site(n_offers)):
                loc_id += 1
                ids.append(loc_id)
                # Within ~1 km of the site (0.009° of latitude ≈ 1 km), up to ~15 km for many places.
                spread = 0.009 * min(15.0, math.sqrt(j + 1))
                lat = round(site.latitude + rng.uniform(-spread, spread), 6)
                lon = round(site.longitude + rng.uniform(-spread, spread) * 1.4, 6)
                yield (
                    self.LOCATION,
                    (
                        loc_id,
                        site.pk,
                        f"LOC-{site.finess}-{j + 1:03d}",
                        f"{site.name} — bâtiment {chr(65 + j)}"
                        if j < 26
                        else f"{site.name} — antenne {j - 25}",
                        site.address,
                        site.postal_code,
                        site.commune_id,
                        lat,
                        lon,
                        "02 " + " ".join(f"{rng.randint(10, 99)}" for _ in range(4)),
                        "",
                        self.now,
                        self.now,
                    ),
                )
            location_ids.append(ids)
        self.counts["locations"] = loc_id

        rng = _rng(self.seed, "offers")
        offer_id = link_id = capacity_id = 0
        specialised = list(vsets.specialised_care)
        for site, n_offers, locs in zip(self.sites, self.plan, location_ids, strict=True):
            templates = TEMPLATES_BY_CATEGORY[site.category]
            for k in range(n_offers):
                offer_id += 1
                template = templates[k % len(templates)]
                suffix = f" ({k // len(templates) + 1})" if k >= len(templates) else ""
                # 80 % fresh (updated within 20 h), 20 % stale (1 to 4 days old).
                age = timedelta(
                    minutes=rng.randint(5, 20 * 60) if rng.random() < 0.8 else rng.randint(25 * 60, 96 * 60)
                )
                updated = self.now - age
                spec_codes = (
                    [rng.choice(specialised)] if template.field == "03" and rng.random() < 0.5 else []
                )
                yield (
                    self.OFFER,
                    (
                        offer_id,
                        f"ROR-{site.finess}-{k + 1:05d}",
                        site.pk,
                        template.name + suffix,
                        template.field,
                        template.offer_type,
                        template.care_mode,
                        template.reception,
                        template.activity,
                        "",
                        template.age[0],
                        template.age[1],
                        "",
                        self._json(spec_codes),
                        True,
                        self.now,
                        self.now,
                        updated,
                    ),
                )
                location = locs[k % len(locs)]
                link_id += 1
                yield self.LINK, (link_id, location, offer_id)
                installed = rng.randint(*template.beds)
                closed = rng.randint(0, max(0, installed // 10))
                available = rng.randint(0, max(0, (installed - closed) // 3))
                reserved = rng.randint(0, min(2, installed - closed - available))
                occupied = installed - closed - available - reserved
                for status, count in (
                    (vs.INSTALLED, installed),
                    (vs.AVAILABLE, available),
                    (vs.OCCUPIED, occupied),
                    (vs.RESERVED, reserved),
                    (vs.CLOSED, closed),
                ):
                    capacity_id += 1
                    yield (
                        self.CAPACITY,
                        (
                            capacity_id,
                            offer_id,
                            location,
                            template.capacity_type,
                            status,
                            count,
                            "",
                            False,
                            updated,
                            None,
                        ),
                    )
        self.counts["capacities"] = capacity_id


ROR_MODELS = (CapacityUpdate, Capacity, OfferLocationLink, OfferLocation, OfferClosure, Offer, StaleNotice)


def ror_is_empty() -> bool:
    return not Offer.objects.exists() and not OfferLocation.objects.exists()


def seed_ror_demo(
    *,
    seed: int = DEFAULT_SEED,
    offers: int | None = None,
    reset: bool = False,
    method: Method = "auto",
    progress: Progress | None = None,
) -> dict[str, int]:
    """Load the demo ROR in one transaction; returns the counts. Refuses to load over existing offers
    unless `reset` (which empties the ROR tables first)."""
    with transaction.atomic():
        if reset:
            flush(ROR_MODELS)
        elif not ror_is_empty():
            raise ValueError("Le ROR contient déjà des offres : relancez avec --reset pour les remplacer.")
        copy = method == "copy" or (method == "auto" and connection.vendor == "postgresql")
        data = RorDemoData(sites=demo_sites(), seed=seed, offers=offers, json_as_text=copy)
        write_rows(data.rows(), method=method, progress=progress)
        reset_sequences([Offer, OfferLocation, OfferLocationLink, Capacity])
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            for model in (Offer, OfferLocation, OfferLocationLink, Capacity):
                cursor.execute(f"ANALYZE {connection.ops.quote_name(model._meta.db_table)}")
    return dict(data.counts)
