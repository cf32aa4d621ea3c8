"""The ROR on /fhir/: HealthcareService and Location (with the ror-location-supported-capacity extension).

Mapping vectors with hand-written expected JSON, then the API: metadata, access, read, every search
parameter, the incremental capacity sync (``Location?_lastUpdated=ge…&_revinclude=HealthcareService:
location``), _include / _revinclude and query counts. Every resource and Bundle the API returns is
parsed with the fhir.resources R4B models (which refuse unknown elements).
"""

import ast
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from urllib.parse import quote

import pytest
from django.test import Client
from django.utils import timezone
from fhir.resources.R4B import get_fhir_model_class
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.capabilitystatement import CapabilityStatement

from enrs.accounts.roles import Role
from enrs.fhir.registry import registry
from ror.fhir import mapping, records
from ror.fhir.records import (
    CapacityRecord,
    ClosureRecord,
    CodeRecord,
    HealthcareServiceRecord,
    LocationRecord,
    ReferenceRecord,
)
from ror.fhir.resources import ORGANIZATION_REVINCLUDE
from ror.models import Capacity, Offer, OfferClosure, OfferLocation
from tests.annuaire.factories import CommuneFactory, StructureFactory
from tests.ror.factories import CapacityFactory, OfferFactory, OfferLocationFactory

FHIR_JSON = "application/fhir+json; charset=utf-8"
ROR = "https://interop.esante.gouv.fr/ig/fhir/ror/StructureDefinition"
NOS = "https://mos.esante.gouv.fr/NOS"
J20 = f"{NOS}/JDV_J20-ChampActivite-ROR/FHIR/JDV-J20-ChampActivite-ROR"
J238 = f"{NOS}/JDV_J238-TypeOffre-ROR/FHIR/JDV-J238-TypeOffre-ROR"
J30 = f"{NOS}/JDV_J30-TemporaliteAccueil-ROR/FHIR/JDV-J30-TemporaliteAccueil-ROR"
J51 = f"{NOS}/JDV_J51-FamilleActiviteOperationnelle-ROR/FHIR/JDV-J51-FamilleActiviteOperationnelle-ROR"
J190 = f"{NOS}/JDV_J190-GenreCapacite-ROR/FHIR/JDV-J190-GenreCapacite-ROR"
R211 = f"{NOS}/TRE_R211-ActiviteOperationnelle/FHIR/TRE-R211-ActiviteOperationnelle"
R213 = f"{NOS}/TRE_R213-ModePriseEnCharge/FHIR/TRE-R213-ModePriseEnCharge"
R329 = f"{NOS}/TRE_R329-NatureCapacite/FHIR/TRE-R329-NatureCapacite"
R330 = f"{NOS}/TRE_R330-TypeStatutCapacite/FHIR/TRE-R330-TypeStatutCapacite"
R13 = f"{NOS}/TRE_R13-Commune/FHIR/TRE-R13-Commune"
INSEE = "https://hl7.fr/ig/fhir/core/StructureDefinition/fr-core-address-insee-code"
CAPACITY = f"{ROR}/ror-location-supported-capacity"

T0 = datetime(2026, 3, 1, 8, 30, tzinfo=UTC)
T1 = datetime(2026, 3, 2, 9, 15, 30, tzinfo=UTC)


# --- Helpers -------------------------------------------------------------------------------------------


def parse(resource: dict[str, Any]) -> Any:
    return get_fhir_model_class(resource["resourceType"]).model_validate(resource)


def get(client: Client, url: str, status: int = 200) -> dict[str, Any]:
    response = client.get(url)
    assert response.status_code == status, response.content
    assert response["Content-Type"] == FHIR_JSON
    data = response.json()
    parse(data)
    if data["resourceType"] == "Bundle":
        Bundle.model_validate(data)
        for entry in data.get("entry", []):
            parse(entry["resource"])
    return data


def matches(bundle: dict[str, Any]) -> list[dict[str, Any]]:
    return [e["resource"] for e in bundle.get("entry", []) if e["search"]["mode"] == "match"]


def included(bundle: dict[str, Any]) -> list[dict[str, Any]]:
    return [e["resource"] for e in bundle.get("entry", []) if e["search"]["mode"] == "include"]


def keys(resources: list[dict[str, Any]]) -> set[tuple[str, str]]:
    return {(r["resourceType"], r["id"]) for r in resources}


def ids(resources: list[dict[str, Any]]) -> list[str]:
    return [r["id"] for r in resources]


def instant(value: datetime) -> str:
    return quote(value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"))


# --- Mapping vectors -----------------------------------------------------------------------------------


def test_healthcare_service_vector() -> None:
    record = HealthcareServiceRecord(
        id="12",
        last_updated=T0,
        active=True,
        identifier="UE-0001",
        name="Réanimation polyvalente",
        organization=ReferenceRecord("7", "CH de Vitré"),
        locations=(ReferenceRecord("3", "Bâtiment A"), ReferenceRecord("4")),
        activity_field=CodeRecord("01", "MCO"),
        offer_type=CodeRecord("16", "Unité d'hospitalisation"),
        care_mode=CodeRecord("28", "Hospitalisation complète (HC)"),
        reception_type=CodeRecord("02", "Permanent"),
        operational_activity=CodeRecord("127", "Réanimation polyvalente"),
        operational_activity_family=CodeRecord("13"),
        closures=(ClosureRecord(T0, T1, "Travaux"), ClosureRecord(T1)),
    )
    expected = {
        "resourceType": "HealthcareService",
        "id": "12",
        "meta": {"lastUpdated": "2026-03-01T08:30:00.000Z", "profile": [f"{ROR}/ror-healthcareservice"]},
        "language": "fr",
        "identifier": [{"use": "official", "value": "UE-0001"}],
        "active": True,
        "providedBy": {"reference": "Organization/7", "display": "CH de Vitré"},
        "category": [{"coding": [{"system": J238, "code": "16", "display": "Unité d'hospitalisation"}]}],
        "type": [{"coding": [{"system": J20, "code": "01", "display": "MCO"}]}],
        "specialty": [
            {"coding": [{"system": R211, "code": "127", "display": "Réanimation polyvalente"}]},
            {"coding": [{"system": J51, "code": "13"}]},
        ],
        "location": [{"reference": "Location/3", "display": "Bâtiment A"}, {"reference": "Location/4"}],
        "name": "Réanimation polyvalente",
        "characteristic": [
            {"coding": [{"system": R213, "code": "28", "display": "Hospitalisation complète (HC)"}]},
            {"coding": [{"system": J30, "code": "02", "display": "Permanent"}]},
        ],
        "notAvailable": [
            {
                "description": "Travaux",
                "during": {"start": "2026-03-01T08:30:00.000Z", "end": "2026-03-02T09:15:30.000Z"},
            },
            {"description": "Fermeture", "during": {"start": "2026-03-02T09:15:30.000Z"}},
        ],
    }
    resource = mapping.healthcare_service(record)
    assert resource == expected
    parse(resource)


def test_healthcare_service_vector_minimal() -> None:
    record = HealthcareServiceRecord(
        id="1",
        last_updated=T1,
        active=False,
        identifier="X",
        name="Offre",
        organization=ReferenceRecord("2"),
    )
    assert mapping.healthcare_service(record) == {
        "resourceType": "HealthcareService",
        "id": "1",
        "meta": {"lastUpdated": "2026-03-02T09:15:30.000Z", "profile": [f"{ROR}/ror-healthcareservice"]},
        "language": "fr",
        "identifier": [{"use": "official", "value": "X"}],
        "active": False,
        "providedBy": {"reference": "Organization/2"},
        "name": "Offre",
    }


def test_location_vector_with_capacities() -> None:
    record = LocationRecord(
        id="3",
        last_updated=T1,
        identifier="LIEU-1",
        name="Bâtiment A",
        organization=ReferenceRecord("7", "CH de Vitré"),
        address_line="30 route de Rennes",
        postal_code="35500",
        city="Vitré",
        insee_code="35360",
        latitude=48.12,
        longitude=-1.2,
        phone="0299000000",
        email="rea@ch-vitre.fr",
        capacities=(
            CapacityRecord(CodeRecord("01", "Lit"), CodeRecord("01", "Installé"), 12, T0),
            CapacityRecord(
                CodeRecord("01", "Lit"), CodeRecord("02", "Disponible"), 3, T1, CodeRecord("01", "Femme")
            ),
        ),
    )
    expected = {
        "resourceType": "Location",
        "id": "3",
        "meta": {"lastUpdated": "2026-03-02T09:15:30.000Z", "profile": [f"{ROR}/ror-location"]},
        "language": "fr",
        "extension": [
            {
                "url": CAPACITY,
                "extension": [
                    {
                        "url": "capacityType",
                        "valueCodeableConcept": {
                            "coding": [{"system": R329, "code": "01", "display": "Lit"}]
                        },
                    },
                    {
                        "url": "capacityStatus",
                        "valueCodeableConcept": {
                            "coding": [{"system": R330, "code": "01", "display": "Installé"}]
                        },
                    },
                    {"url": "nbCapacity", "valueInteger": 12},
                    {"url": "capacityUpdateDate", "valueDateTime": "2026-03-01T08:30:00.000Z"},
                ],
            },
            {
                "url": CAPACITY,
                "extension": [
                    {
                        "url": "capacityType",
                        "valueCodeableConcept": {
                            "coding": [{"system": R329, "code": "01", "display": "Lit"}]
                        },
                    },
                    {
                        "url": "capacityStatus",
                        "valueCodeableConcept": {
                            "coding": [{"system": R330, "code": "02", "display": "Disponible"}]
                        },
                    },
                    {"url": "nbCapacity", "valueInteger": 3},
                    {
                        "url": "genderCapacityAvailable",
                        "valueCodeableConcept": {
                            "coding": [{"system": J190, "code": "01", "display": "Femme"}]
                        },
                    },
                    {"url": "capacityUpdateDate", "valueDateTime": "2026-03-02T09:15:30.000Z"},
                ],
            },
        ],
        "identifier": [{"use": "official", "value": "LIEU-1"}],
        "name": "Bâtiment A",
        "telecom": [
            {"system": "phone", "value": "0299000000"},
            {"system": "email", "value": "rea@ch-vitre.fr"},
        ],
        "address": {
            "extension": [{"url": INSEE, "valueCoding": {"system": R13, "code": "35360"}}],
            "line": ["30 route de Rennes"],
            "city": "Vitré",
            "postalCode": "35500",
        },
        "position": {"longitude": -1.2, "latitude": 48.12},
        "managingOrganization": {"reference": "Organization/7", "display": "CH de Vitré"},
    }
    resource = mapping.location(record)
    assert resource == expected
    parse(resource)


def test_location_vector_minimal() -> None:
    record = LocationRecord(
        id="9", last_updated=T0, identifier="L", name="Lieu", organization=ReferenceRecord("2"), latitude=48.0
    )
    assert mapping.location(record) == {
        "resourceType": "Location",
        "id": "9",
        "meta": {"lastUpdated": "2026-03-01T08:30:00.000Z", "profile": [f"{ROR}/ror-location"]},
        "language": "fr",
        "identifier": [{"use": "official", "value": "L"}],
        "name": "Lieu",
        "managingOrganization": {"reference": "Organization/2"},
    }


@pytest.mark.parametrize("module", [mapping, records])
def test_mapping_modules_import_no_django(module: Any) -> None:
    tree = ast.parse(Path(module.__file__).read_text(encoding="utf-8"))
    imported: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            imported.append(node.module or "")
    assert imported
    assert not [name for name in imported if name.startswith(("django", "ror.models"))]


# --- Fixtures ------------------------------------------------------------------------------------------


@pytest.fixture
def fhir(client_as: Callable[[Role], Client]) -> Client:
    return client_as(Role.ARS_ANALYST)


@pytest.fixture
def ror(db: None) -> SimpleNamespace:
    """Two structures; the CH gives `rea` and `usc` at `batiment_a`, `rea` also at `batiment_b`; the
    clinic gives `ssr` at `clinique`. Every row was last updated at T0 (before the tests' updates)."""
    vitre = CommuneFactory.create(insee_code="35360", name="Vitré", postal_code="35500")
    ch = StructureFactory.create(name="CH de Vitré", commune=vitre)
    clinic = StructureFactory.create(name="Clinique de la Baie")
    rea = OfferFactory.create(identifier="UE-REA", structure=ch, name="Réanimation", offer_type_code="16")
    usc = OfferFactory.create(identifier="UE-USC", structure=ch, name="Soins continus", care_mode_code="")
    ssr = OfferFactory.create(identifier="UE-SSR", structure=clinic, name="SSR", is_active=False)
    batiment_a = OfferLocationFactory.create(
        structure=ch,
        identifier="LIEU-A",
        name="Bâtiment A",
        address_line="30 route de Rennes",
        postal_code="35500",
        phone="0299000000",
        offers=[rea, usc],
    )
    batiment_b = OfferLocationFactory.create(
        structure=ch, identifier="LIEU-B", name="Bâtiment B", offers=[rea]
    )
    clinique = OfferLocationFactory.create(
        structure=clinic, identifier="LIEU-C", name="Clinique", latitude=None, offers=[ssr]
    )
    CapacityFactory.create(offer=rea, location=batiment_a, status="01", count=12, updated_at=T0)
    CapacityFactory.create(offer=rea, location=batiment_a, status="02", count=3, gender="01", updated_at=T0)
    CapacityFactory.create(offer=usc, location=batiment_a, status="02", count=1, updated_at=T0)
    CapacityFactory.create(offer=rea, location=batiment_b, status="02", count=2, updated_at=T0)
    now = timezone.now()
    OfferClosure.objects.create(offer=rea, start=now - timedelta(days=30), end=now - timedelta(days=20))
    OfferClosure.objects.create(offer=rea, start=now + timedelta(days=2), reason="Travaux")
    Offer.objects.update(updated_at=T0)
    OfferLocation.objects.update(updated_at=T0)
    return SimpleNamespace(**locals())


# --- metadata and access -------------------------------------------------------------------------------


def test_metadata_lists_healthcare_service_and_location(client: Client) -> None:
    statement = get(client, "/fhir/metadata")
    CapabilityStatement.model_validate(statement)
    resources = {r["type"]: r for r in statement["rest"][0]["resource"]}
    service, location = resources["HealthcareService"], resources["Location"]
    assert service["profile"] == f"{ROR}/ror-healthcareservice"
    assert location["profile"] == f"{ROR}/ror-location"
    assert {p["name"] for p in service["searchParam"]} == {
        "_id",
        "_lastUpdated",
        "identifier",
        "location",
        "organization",
        "active",
    }
    assert {p["name"] for p in location["searchParam"]} == {"_id", "_lastUpdated", "identifier"}
    assert location["searchRevInclude"] == ["HealthcareService:location"]
    assert service["searchInclude"] == ["HealthcareService:location", "HealthcareService:organization"]
    assert "Organization" in resources  # shared with the annuaire


@pytest.mark.parametrize("url", ["/fhir/Location", "/fhir/HealthcareService/1"])
def test_anonymous_callers_get_401(client: Client, url: str) -> None:
    outcome = get(client, url, status=401)
    assert outcome["issue"][0]["code"] == "login"


# --- read ----------------------------------------------------------------------------------------------


def test_read_healthcare_service(fhir: Client, ror: SimpleNamespace) -> None:
    resource = get(fhir, f"/fhir/HealthcareService/{ror.rea.pk}")
    assert resource["id"] == str(ror.rea.pk)
    assert resource["meta"] == {
        "lastUpdated": "2026-03-01T08:30:00.000Z",
        "profile": [f"{ROR}/ror-healthcareservice"],
    }
    assert resource["identifier"] == [{"use": "official", "value": "UE-REA"}]
    assert resource["active"] is True
    assert resource["name"] == "Réanimation"
    assert resource["providedBy"] == {"reference": f"Organization/{ror.ch.pk}", "display": "CH de Vitré"}
    assert resource["location"] == [
        {"reference": f"Location/{ror.batiment_a.pk}", "display": "Bâtiment A"},
        {"reference": f"Location/{ror.batiment_b.pk}", "display": "Bâtiment B"},
    ]
    assert resource["type"] == [
        {"coding": [{"system": J20, "code": "01", "display": "Médecine, Chirurgie, Obstétrique (MCO)"}]}
    ]
    assert resource["category"] == [
        {"coding": [{"system": J238, "code": "16", "display": "Unité d'hospitalisation (hors HDJ)"}]}
    ]
    assert resource["characteristic"] == [
        {"coding": [{"system": R213, "code": "28", "display": "Hospitalisation complète (HC)"}]},
        {"coding": [{"system": J30, "code": "02", "display": "Permanent"}]},
    ]
    assert resource["specialty"] == [
        {"coding": [{"system": R211, "code": "127", "display": "Réanimation polyvalente"}]}
    ]
    # The closure over is left out; the coming one is there, without end.
    (closure,) = resource["notAvailable"]
    assert closure["description"] == "Travaux"
    assert set(closure["during"]) == {"start"}


def test_read_location_with_its_capacities(fhir: Client, ror: SimpleNamespace) -> None:
    resource = get(fhir, f"/fhir/Location/{ror.batiment_a.pk}")
    assert resource["meta"] == {"lastUpdated": "2026-03-01T08:30:00.000Z", "profile": [f"{ROR}/ror-location"]}
    assert resource["identifier"] == [{"use": "official", "value": "LIEU-A"}]
    assert resource["name"] == "Bâtiment A"
    assert resource["managingOrganization"] == {
        "reference": f"Organization/{ror.ch.pk}",
        "display": "CH de Vitré",
    }
    assert resource["address"] == {
        "extension": [{"url": INSEE, "valueCoding": {"system": R13, "code": "35360"}}],
        "line": ["30 route de Rennes"],
        "city": "Vitré",
        "postalCode": "35500",
    }
    assert resource["position"] == {"longitude": -1.68, "latitude": 48.11}
    assert resource["telecom"] == [{"system": "phone", "value": "0299000000"}]
    capacities = [{e["url"]: e for e in extension["extension"]} for extension in resource["extension"]]
    assert all(extension["url"] == CAPACITY for extension in resource["extension"])
    summary = [
        (
            c["capacityType"]["valueCodeableConcept"]["coding"][0]["code"],
            c["capacityStatus"]["valueCodeableConcept"]["coding"][0],
            c["nbCapacity"]["valueInteger"],
            c.get("genderCapacityAvailable", {})
            .get("valueCodeableConcept", {})
            .get("coding", [{}])[0]
            .get("code"),
            c["capacityUpdateDate"]["valueDateTime"],
        )
        for c in capacities
    ]
    # Ordered by offer identifier, then type and status.
    assert summary == [
        ("01", {"system": R330, "code": "01", "display": "Installé"}, 12, None, "2026-03-01T08:30:00.000Z"),
        ("01", {"system": R330, "code": "02", "display": "Disponible"}, 3, "01", "2026-03-01T08:30:00.000Z"),
        ("01", {"system": R330, "code": "02", "display": "Disponible"}, 1, None, "2026-03-01T08:30:00.000Z"),
    ]


def test_location_without_capacity_nor_position(fhir: Client, ror: SimpleNamespace) -> None:
    resource = get(fhir, f"/fhir/Location/{ror.clinique.pk}")
    assert "extension" not in resource
    assert "position" not in resource


@pytest.mark.parametrize("url", ["/fhir/HealthcareService/999999", "/fhir/Location/abc"])
def test_unknown_ids_are_404(fhir: Client, ror: SimpleNamespace, url: str) -> None:
    outcome = get(fhir, url, status=404)
    assert outcome["issue"][0]["code"] == "not-found"


# --- search --------------------------------------------------------------------------------------------


def test_search_by_id(fhir: Client, ror: SimpleNamespace) -> None:
    bundle = get(fhir, f"/fhir/HealthcareService?_id={ror.usc.pk},{ror.ssr.pk},nope")
    assert sorted(ids(matches(bundle))) == sorted([str(ror.usc.pk), str(ror.ssr.pk)])
    assert bundle["total"] == 2
    bundle = get(fhir, f"/fhir/Location?_id={ror.batiment_b.pk}")
    assert ids(matches(bundle)) == [str(ror.batiment_b.pk)]


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("identifier=UE-REA", ["rea"]),
        ("identifier=%7CUE-USC", ["usc"]),  # |UE-USC: no system
        ("identifier=UE-REA,UE-SSR", ["rea", "ssr"]),
        ("identifier=https://example.org%7CUE-REA", []),  # an unknown system matches nothing
        ("identifier=UE", []),  # exact value
        ("active=false", ["ssr"]),
    ],
)
def test_search_healthcare_service_by_identifier(
    fhir: Client, ror: SimpleNamespace, query: str, expected: list[str]
) -> None:
    bundle = get(fhir, f"/fhir/HealthcareService?{query}")
    assert sorted(ids(matches(bundle))) == sorted(str(getattr(ror, name).pk) for name in expected)


def test_search_location_by_identifier(fhir: Client, ror: SimpleNamespace) -> None:
    bundle = get(fhir, "/fhir/Location?identifier=LIEU-C")
    (found,) = matches(bundle)
    assert found["id"] == str(ror.clinique.pk)
    assert found["managingOrganization"]["reference"] == f"Organization/{ror.clinic.pk}"


def test_search_healthcare_service_by_location_and_organization(fhir: Client, ror: SimpleNamespace) -> None:
    bundle = get(fhir, f"/fhir/HealthcareService?location=Location/{ror.batiment_a.pk}")
    assert sorted(ids(matches(bundle))) == sorted([str(ror.rea.pk), str(ror.usc.pk)])
    both = f"{ror.batiment_b.pk},{ror.clinique.pk}"
    bundle = get(fhir, f"/fhir/HealthcareService?location={both}")
    assert sorted(ids(matches(bundle))) == sorted([str(ror.rea.pk), str(ror.ssr.pk)])
    bundle = get(fhir, f"/fhir/HealthcareService?organization=Organization/{ror.clinic.pk}")
    assert ids(matches(bundle)) == [str(ror.ssr.pk)]
    bundle = get(
        fhir, f"/fhir/HealthcareService?organization:Organization={ror.ch.pk}&location={ror.batiment_b.pk}"
    )
    assert ids(matches(bundle)) == [str(ror.rea.pk)]
    outcome = get(fhir, f"/fhir/HealthcareService?location=Organization/{ror.ch.pk}", status=400)
    assert outcome["issue"][0]["code"] == "invalid"


def test_search_healthcare_service_by_last_updated(fhir: Client, ror: SimpleNamespace) -> None:
    Offer.objects.filter(pk=ror.usc.pk).update(updated_at=T1)
    bundle = get(fhir, f"/fhir/HealthcareService?_lastUpdated=gt{instant(T0)}")
    assert ids(matches(bundle)) == [str(ror.usc.pk)]
    assert matches(bundle)[0]["meta"]["lastUpdated"] == "2026-03-02T09:15:30.000Z"
    bundle = get(fhir, f"/fhir/HealthcareService?_lastUpdated=lt{instant(T1)}")
    assert sorted(ids(matches(bundle))) == sorted([str(ror.rea.pk), str(ror.ssr.pk)])
    bundle = get(fhir, "/fhir/HealthcareService?_lastUpdated=2026-03-01")
    assert len(matches(bundle)) == 2


def test_incremental_sync_returns_only_the_locations_whose_capacities_changed(
    fhir: Client, ror: SimpleNamespace
) -> None:
    since = instant(T0 + timedelta(hours=1))
    url = f"/fhir/Location?_lastUpdated=ge{since}&_revinclude=HealthcareService:location"
    assert get(fhir, url)["total"] == 0

    # One capacity row of bâtiment B changes: only bâtiment B comes back, with the offers given there.
    Capacity.objects.filter(location=ror.batiment_b, status="02").update(count=0, updated_at=T1)
    bundle = get(fhir, url)
    (location,) = matches(bundle)
    assert location["id"] == str(ror.batiment_b.pk)
    assert location["meta"]["lastUpdated"] == "2026-03-02T09:15:30.000Z"
    (capacity,) = location["extension"]
    values = {e["url"]: e for e in capacity["extension"]}
    assert values["nbCapacity"]["valueInteger"] == 0
    assert values["capacityUpdateDate"]["valueDateTime"] == "2026-03-02T09:15:30.000Z"
    assert keys(included(bundle)) == {("HealthcareService", str(ror.rea.pk))}
    assert bundle["total"] == 1

    # A change of the location itself counts too; le / eq / ne follow the same date.
    OfferLocation.objects.filter(pk=ror.clinique.pk).update(updated_at=T1 + timedelta(minutes=1))
    assert sorted(ids(matches(get(fhir, url)))) == sorted([str(ror.batiment_b.pk), str(ror.clinique.pk)])
    assert ids(matches(get(fhir, f"/fhir/Location?_lastUpdated=le{instant(T0)}"))) == [str(ror.batiment_a.pk)]
    assert ids(matches(get(fhir, "/fhir/Location?_lastUpdated=eq2026-03-02"))) == sorted(
        [str(ror.batiment_b.pk), str(ror.clinique.pk)], key=int
    )
    assert ids(matches(get(fhir, "/fhir/Location?_lastUpdated=ne2026-03-02"))) == [str(ror.batiment_a.pk)]


def test_revinclude_offers_of_every_location(fhir: Client, ror: SimpleNamespace) -> None:
    bundle = get(fhir, "/fhir/Location?_revinclude=HealthcareService:location")
    assert ids(matches(bundle)) == [str(ror.batiment_a.pk), str(ror.batiment_b.pk), str(ror.clinique.pk)]
    assert keys(included(bundle)) == {
        ("HealthcareService", str(ror.rea.pk)),
        ("HealthcareService", str(ror.usc.pk)),
        ("HealthcareService", str(ror.ssr.pk)),
    }
    assert all(e["fullUrl"].startswith("http://testserver/fhir/") for e in bundle["entry"])


def test_include_locations_and_organizations_of_offers(fhir: Client, ror: SimpleNamespace) -> None:
    bundle = get(
        fhir,
        f"/fhir/HealthcareService?_id={ror.rea.pk}&_include=HealthcareService:location"
        "&_include=HealthcareService:organization",
    )
    assert ids(matches(bundle)) == [str(ror.rea.pk)]
    assert keys(included(bundle)) == {
        ("Location", str(ror.batiment_a.pk)),
        ("Location", str(ror.batiment_b.pk)),
        ("Organization", str(ror.ch.pk)),
    }
    organization = next(r for r in included(bundle) if r["resourceType"] == "Organization")
    assert organization["name"] == "CH de Vitré"


def test_revinclude_offers_of_an_organization(fhir: Client, ror: SimpleNamespace) -> None:
    assert ORGANIZATION_REVINCLUDE.name in registry.revincludes("Organization")
    bundle = get(fhir, f"/fhir/Organization?_id={ror.ch.pk}&_revinclude=HealthcareService:organization")
    assert ids(matches(bundle)) == [str(ror.ch.pk)]
    assert keys(included(bundle)) == {
        ("HealthcareService", str(ror.rea.pk)),
        ("HealthcareService", str(ror.usc.pk)),
    }


def test_count_pages_the_results(fhir: Client, ror: SimpleNamespace) -> None:
    bundle = get(fhir, "/fhir/Location?_count=2")
    assert ids(matches(bundle)) == [str(ror.batiment_a.pk), str(ror.batiment_b.pk)]
    assert bundle["total"] == 3
    next_link = next(li["url"] for li in bundle["link"] if li["relation"] == "next")
    assert "_offset=2" in next_link
    bundle = get(fhir, "/fhir/Location?_count=2&_offset=2")
    assert ids(matches(bundle)) == [str(ror.clinique.pk)]


def test_unknown_parameters_are_refused(fhir: Client, ror: SimpleNamespace) -> None:
    outcome = get(fhir, "/fhir/Location?organization=1", status=400)
    assert outcome["resourceType"] == "OperationOutcome"


# --- Query counts --------------------------------------------------------------------------------------

# Session and user reads, session save and its savepoint pair (as tests/annuaire/test_fhir_api.py).
REQUEST_OVERHEAD = 5


def _more_ror(n: int) -> None:
    for _ in range(n):
        offer = OfferFactory.create()
        location = OfferLocationFactory.create(structure=offer.structure, offers=[offer])
        CapacityFactory.create(offer=offer, location=location, status="01")
        CapacityFactory.create(offer=offer, location=location, status="02")
        OfferClosure.objects.create(offer=offer, start=timezone.now())


@pytest.mark.parametrize("extra", [0, 8])
def test_query_counts_do_not_grow_with_the_page(
    fhir: Client, ror: SimpleNamespace, django_assert_num_queries: Any, extra: int
) -> None:
    _more_ror(extra)
    cases = [
        # page (with structure) + locations + closures
        ("/fhir/HealthcareService?_count=20&_total=none", 3),
        (
            f"/fhir/HealthcareService?_count=20&_total=none&location={ror.batiment_a.pk}&organization={ror.ch.pk}",
            3,
        ),
        # page (with commune and structure, last update annotated) + capacities (with offer)
        ("/fhir/Location?_count=20&_total=none", 2),
        ("/fhir/Location?_count=20&_total=none&_lastUpdated=ge2026-01-01", 2),
        # + the offers given there (page, locations, closures)
        ("/fhir/Location?_count=20&_total=none&_revinclude=HealthcareService:location", 5),
        # + locations and capacities, + organizations and their mailboxes
        (
            "/fhir/HealthcareService?_count=20&_total=none&_include=HealthcareService:location"
            "&_include=HealthcareService:organization",
            7,
        ),
        (f"/fhir/HealthcareService/{ror.rea.pk}", 3),
        (f"/fhir/Location/{ror.batiment_a.pk}", 2),
    ]
    for url, queries in cases:
        with django_assert_num_queries(REQUEST_OVERHEAD + queries):
            get(fhir, url)
