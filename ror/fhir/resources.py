"""The ROR on ``/fhir/``: HealthcareService and Location (read and search).

Registered in ``enrs.fhir.registry`` by ``RorConfig.ready()``; access rule ``ROR_ACCESS`` (every
signed-in role). ``Organization`` is the annuaire's (``providedBy`` / ``managingOrganization`` use its
ids, the structure primary keys). Each function loads rows with their relations in a fixed number of
queries, turns them into records and lets ``ror.fhir.mapping`` build the JSON.

Search semantics (on top of ``enrs.fhir.orm``):

* ``_id``; ``identifier`` (token): the offer's / location's identifier, given bare (``UE1``) or
  without system (``|UE1``); any other system matches nothing (the ROR's identifier system is not
  known here, the resources carry none).
* ``_lastUpdated`` (date, prefixes eq, ne, gt, ge, lt, le):

  * HealthcareService: the offer's ``updated_at`` (its own fields; capacities are on the Location);
  * Location: the latest of the location's ``updated_at`` and of its capacity rows' ``updated_at``
    (``meta.lastUpdated`` is the same value), so that ``Location?_lastUpdated=ge…`` — the ROR's
    incremental capacity sync — returns the locations whose availability changed. A capacity row
    deleted without another update does not move it.
* HealthcareService ``location`` (Location/[id]), ``organization`` (Organization/[id]), ``active``.
* ``_revinclude=HealthcareService:location`` on Location; ``_include=HealthcareService:location`` and
  ``_include=HealthcareService:organization`` on HealthcareService.
  ``_revinclude=HealthcareService:organization`` on the annuaire's Organization (the offers of a
  structure), registered here so that ``annuaire`` never imports ``ror``.
"""

from collections.abc import Sequence

from django.db.models import Exists, OuterRef, Prefetch, Q, QuerySet, Subquery
from django.db.models.functions import Greatest
from django.utils import timezone

from annuaire.fhir.resources import organization_resource, structures
from enrs.accounts.roles import ROR_ACCESS
from enrs.fhir import orm
from enrs.fhir.orm import NOTHING
from enrs.fhir.params import Token, parse_reference
from enrs.fhir.registry import (
    Inclusion,
    ParamValue,
    Registry,
    Resource,
    ResourceType,
    SearchPage,
    SearchParam,
    SearchQuery,
    id_param,
    last_updated_param,
)
from ror.models import Capacity, Offer, OfferClosure, OfferLocation
from ror.standards.valuesets import valuesets

from . import mapping
from .records import (
    CapacityRecord,
    ClosureRecord,
    CodeRecord,
    HealthcareServiceRecord,
    LocationRecord,
    ReferenceRecord,
)

_FHIR = "http://hl7.org/fhir/SearchParameter"
OfferLocationLink = OfferLocation.offers.through

# --- Querysets: every relation the mapping reads is loaded up front ------------------------------------


def offers() -> QuerySet[Offer]:
    """Offers with their structure, locations and closures not over yet (3 queries for a page)."""
    now = timezone.now()
    open_closures = OfferClosure.objects.filter(Q(end__isnull=True) | Q(end__gt=now)).order_by("start", "pk")
    return Offer.objects.select_related("structure").prefetch_related(
        Prefetch(
            "locations",
            queryset=OfferLocation.objects.only("pk", "name").order_by("pk"),
            to_attr="fhir_locations",
        ),
        Prefetch("closures", queryset=open_closures, to_attr="fhir_closures"),
    )


def _latest_capacity_update() -> Subquery:
    rows = Capacity.objects.filter(location=OuterRef("pk")).order_by("-updated_at").values("updated_at")[:1]
    return Subquery(rows)


def locations() -> QuerySet[OfferLocation]:
    """Locations with commune, structure and capacity rows (2 queries for a page), annotated with
    ``fhir_last_updated``: PostgreSQL's GREATEST ignores NULL (a location without capacity)."""
    capacities = Capacity.objects.select_related("offer").order_by(
        "offer__identifier", "capacity_type", "status", "pk"
    )
    return (
        OfferLocation.objects.select_related("commune", "structure")
        .annotate(fhir_last_updated=Greatest("updated_at", _latest_capacity_update()))
        .prefetch_related(Prefetch("capacities", queryset=capacities, to_attr="fhir_capacities"))
    )


# --- Rows → records → resources ------------------------------------------------------------------------


def _code(table: str, code: str) -> CodeRecord | None:
    return CodeRecord(code, valuesets().label(table, code)) if code else None


def healthcare_service_record(offer: Offer) -> HealthcareServiceRecord:
    return HealthcareServiceRecord(
        id=str(offer.pk),
        last_updated=offer.updated_at,
        active=offer.is_active,
        identifier=offer.identifier,
        name=offer.name,
        organization=ReferenceRecord(str(offer.structure_id), offer.structure.name),
        locations=tuple(ReferenceRecord(str(loc.pk), loc.name) for loc in offer.fhir_locations),  # type: ignore[attr-defined]
        activity_field=_code("activity_fields", offer.activity_field_code),
        offer_type=_code("offer_types", offer.offer_type_code),
        care_mode=_code("care_modes", offer.care_mode_code),
        reception_type=_code("reception_types", offer.reception_type_code),
        operational_activity=_code("operational_activities", offer.operational_activity_code),
        # No J51 table in ror.standards: the family goes out without a label.
        operational_activity_family=(
            CodeRecord(offer.operational_activity_family_code)
            if offer.operational_activity_family_code
            else None
        ),
        closures=tuple(
            ClosureRecord(c.start, c.end, c.reason)
            for c in offer.fhir_closures  # type: ignore[attr-defined]
        ),
    )


def capacity_record(capacity: Capacity) -> CapacityRecord:
    tables = valuesets()
    return CapacityRecord(
        capacity_type=CodeRecord(
            capacity.capacity_type, tables.label("capacity_types", capacity.capacity_type)
        ),
        status=CodeRecord(capacity.status, tables.label("capacity_statuses", capacity.status)),
        count=capacity.count,
        updated_at=capacity.updated_at,
        gender=_code("capacity_genders", capacity.gender),
    )


def location_record(location: OfferLocation) -> LocationRecord:
    commune = location.commune
    return LocationRecord(
        id=str(location.pk),
        last_updated=location.fhir_last_updated,  # type: ignore[attr-defined]
        identifier=location.identifier,
        name=location.name,
        organization=ReferenceRecord(str(location.structure_id), location.structure.name),
        address_line=location.address_line,
        postal_code=location.postal_code,
        city=commune.name if commune else "",
        insee_code=commune.insee_code if commune else "",
        latitude=location.latitude,
        longitude=location.longitude,
        phone=location.phone,
        email=location.email,
        capacities=tuple(capacity_record(c) for c in location.fhir_capacities),  # type: ignore[attr-defined]
    )


def healthcare_service_resource(offer: Offer) -> Resource:
    return mapping.healthcare_service(healthcare_service_record(offer))


def location_resource(location: OfferLocation) -> Resource:
    return mapping.location(location_record(location))


# --- orm.Filters ------------------------------------------------------------------------------------------


def _identifier(token: Token) -> Q:
    if not token.code or token.system not in (None, ""):
        return NOTHING
    return Q(identifier=token.code)


def _reference_ids(param: ParamValue, target: str) -> list[int]:
    ids = [
        parse_reference(v, resource_type=target, name=param.name, type_modifier=param.modifier)
        for v in param.values
    ]
    return orm.reference_ids(ids)


def _offers_at(location_ids: Sequence[int]) -> Q:
    """Offers given at one of `location_ids` (EXISTS on the link table: no duplicate rows)."""
    if not location_ids:
        return NOTHING
    links = OfferLocationLink.objects.filter(offer_id=OuterRef("pk"), offerlocation_id__in=location_ids)
    return Q(Exists(links))


def _organization_q(param: ParamValue) -> Q:
    ids = _reference_ids(param, "Organization")
    return Q(structure_id__in=ids) if ids else NOTHING


HEALTHCARE_SERVICE_FILTERS: orm.Filters = {
    "_id": orm.ids_q,
    "_lastUpdated": lambda p: orm.date_q("updated_at", p),
    "identifier": lambda p: orm.tokens_q(p, _identifier),
    "location": lambda p: _offers_at(_reference_ids(p, "Location")),
    "organization": _organization_q,
    "active": lambda p: orm.bool_q(p, "is_active"),
}

LOCATION_FILTERS: orm.Filters = {
    "_id": orm.ids_q,
    "_lastUpdated": lambda p: orm.date_q("fhir_last_updated", p),
    "identifier": lambda p: orm.tokens_q(p, _identifier),
}

# --- Read and search -----------------------------------------------------------------------------------


def healthcare_service_read(resource_id: str) -> Resource | None:
    row = orm.first_or_none(offers(), resource_id)
    return healthcare_service_resource(row) if row else None


def healthcare_service_search(query: SearchQuery) -> SearchPage:
    rows = offers().filter(orm.filters_q(HEALTHCARE_SERVICE_FILTERS, query))
    return orm.paginate(rows, query, healthcare_service_resource)


def location_read(resource_id: str) -> Resource | None:
    row = orm.first_or_none(locations(), resource_id)
    return location_resource(row) if row else None


def location_search(query: SearchQuery) -> SearchPage:
    rows = locations().filter(orm.filters_q(LOCATION_FILTERS, query))
    return orm.paginate(rows, query, location_resource)


# --- _include / _revinclude ----------------------------------------------------------------------------


def revinclude_offers_of_locations(matches: Sequence[Resource], limit: int) -> list[Resource]:
    rows = offers().filter(_offers_at(orm.resource_ids(matches)))
    return orm.limited(rows, limit, healthcare_service_resource)


def revinclude_offers_of_organizations(matches: Sequence[Resource], limit: int) -> list[Resource]:
    rows = offers().filter(structure_id__in=orm.resource_ids(matches))
    return orm.limited(rows, limit, healthcare_service_resource)


def include_offer_locations(matches: Sequence[Resource], limit: int) -> list[Resource]:
    rows = locations().filter(pk__in=orm.referenced_ids(matches, "location"))
    return orm.limited(rows, limit, location_resource)


def include_offer_organizations(matches: Sequence[Resource], limit: int) -> list[Resource]:
    rows = structures().filter(pk__in=orm.referenced_ids(matches, "providedBy"))
    return orm.limited(rows, limit, organization_resource)


# --- Registration --------------------------------------------------------------------------------------

_IDENTIFIER_DOC = (
    "Identifiant {what} (valeur seule, ou |valeur : les identifiants ROR n'ont pas de système ici)."
)

HEALTHCARE_SERVICE = ResourceType(
    name="HealthcareService",
    read=healthcare_service_read,
    search=healthcare_service_search,
    access_rule=ROR_ACCESS,
    profile=mapping.PROFILE_HEALTHCARE_SERVICE,
    documentation=(
        "Offres opérationnelles du ROR régional : champ d'activité (J20), type d'offre (J238), mode de "
        "prise en charge (J19), temporalité d'accueil (J30), activité opérationnelle (J17), fermetures."
    ),
    owner="ror",
    search_params=(
        id_param("HealthcareService"),
        last_updated_param(),
        SearchParam(
            "identifier",
            "token",
            _IDENTIFIER_DOC.format(what="de l'offre"),
            f"{_FHIR}/HealthcareService-identifier",
        ),
        SearchParam(
            "location",
            "reference",
            "Lieu de réalisation de l'offre (Location/[id]).",
            f"{_FHIR}/HealthcareService-location",
            frozenset({"Location"}),
        ),
        SearchParam(
            "organization",
            "reference",
            "Structure qui porte l'offre (Organization/[id]).",
            f"{_FHIR}/HealthcareService-organization",
            frozenset({"Organization"}),
        ),
        SearchParam("active", "token", "true ou false.", f"{_FHIR}/HealthcareService-active"),
    ),
)

LOCATION = ResourceType(
    name="Location",
    read=location_read,
    search=location_search,
    access_rule=ROR_ACCESS,
    profile=mapping.PROFILE_LOCATION,
    documentation=(
        "Lieux de réalisation des offres du ROR régional, avec les capacités (lits et places par statut, "
        "extension ror-location-supported-capacity). Synchronisation incrémentale : "
        "Location?_lastUpdated=ge[date]&_revinclude=HealthcareService:location (la date de mise à jour "
        "d'un lieu est la plus récente de celle du lieu et de celles de ses capacités)."
    ),
    owner="ror",
    search_params=(
        id_param("Location"),
        SearchParam(
            "_lastUpdated",
            "date",
            "Dernière mise à jour du lieu ou de l'une de ses capacités (préfixes eq, ne, gt, ge, lt, le).",
            last_updated_param().definition,
        ),
        SearchParam(
            "identifier", "token", _IDENTIFIER_DOC.format(what="du lieu"), f"{_FHIR}/Location-identifier"
        ),
    ),
)

ORGANIZATION_REVINCLUDE = Inclusion(
    "HealthcareService", "organization", "Organization", revinclude_offers_of_organizations
)
INCLUSIONS = (
    (Inclusion("HealthcareService", "location", "Location", revinclude_offers_of_locations), True),
    (Inclusion("HealthcareService", "location", "Location", include_offer_locations), False),
    (Inclusion("HealthcareService", "organization", "Organization", include_offer_organizations), False),
    (ORGANIZATION_REVINCLUDE, True),
)


def register(target: Registry) -> None:
    """Serve the ROR's resource types on ``/fhir/`` (called once, from RorConfig.ready())."""
    for resource_type in (HEALTHCARE_SERVICE, LOCATION):
        target.register(resource_type)
    for inclusion, reverse in INCLUSIONS:
        target.register_inclusion(inclusion, reverse=reverse)
