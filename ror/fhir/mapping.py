"""ROR records → FHIR R4 resources following the ANS ROR IG (« modèle d'exposition 3.0 »).

Pure code: no Django import (the records come from ``ror.fhir.resources``). Sources: standards §5 and
ansforge/IG-fhir-repertoire-offre-ressources-sante (``input/fsh/extensions/RORLocationSupportedCapacity
.fsh``, ``input/fsh/aliases.fsh``, ``input/fsh/examples/RORLocationExemple.fsh``).

* HealthcareService (``ror-healthcareservice``): identifier = identifiantOffre; ``providedBy`` →
  the structure's ``Organization`` as the annuaire serves it (same ids); ``location`` → the offer's
  Locations; ``type`` = champ d'activité (J20); ``category`` = type d'offre (J238);
  ``characteristic`` = mode de prise en charge (J19) and temporalité d'accueil (J30); ``specialty`` =
  activité opérationnelle (J17) and its family (J51); ``notAvailable`` = closing periods.
* Location (``ror-location``): identifier, name, telecom (phone, e-mail), address with the COG commune
  (``fr-core-address-insee-code``, as the annuaire's Organization), WGS84 ``position``,
  ``managingOrganization``, and one ``ror-location-supported-capacity`` extension per capacity row with
  capacityType (J187), capacityStatus (J188 / TRE_R330), nbCapacity, capacityUpdateDate and, when known,
  genderCapacityAvailable (J190).

Known gaps (the ror tables do not hold the data): the capacity sub-extensions temporalityCapacity (J189),
capacitySourceType (J193) and temporaryAssignement (J195), 1..1 in the IG, are left out, as are
capacityClosingType, additionalBedType and crisisType (the table only has a "crisis" flag, not a J194
code); a capacity row belongs to one offer at the location, but the extension cannot say which (rows
are ordered by offer identifier). Identifiers of offers and locations carry no system (the ROR's is not
known here): search them by value. Canonicals are not version-pinned.
"""

from typing import Any

from annuaire.fhir.mapping import INSEE_CODE_EXTENSION, TRE_R13_COMMUNE
from enrs.fhir.bundle import format_instant
from enrs.fhir.elements import meta, reference

from .records import (
    CapacityRecord,
    ClosureRecord,
    CodeRecord,
    HealthcareServiceRecord,
    LocationRecord,
)

Resource = dict[str, Any]

# --- Canonical URLs ---------------------------------------------------------------------------------
ROR_CANONICAL = "https://interop.esante.gouv.fr/ig/fhir/ror"  # standards §5, ror-IG sushi-config
# ror-location: confirmed in the IG example RORLocationExemple.fsh; ror-healthcareservice: by analogy
# (the extensions are named ror-healthcareservice-*), not confirmed.
PROFILE_HEALTHCARE_SERVICE = f"{ROR_CANONICAL}/StructureDefinition/ror-healthcareservice"
PROFILE_LOCATION = f"{ROR_CANONICAL}/StructureDefinition/ror-location"
# Id confirmed in the IG (input/fsh/extensions/RORLocationSupportedCapacity.fsh).
SUPPORTED_CAPACITY_EXTENSION = f"{ROR_CANONICAL}/StructureDefinition/ror-location-supported-capacity"

# --- Terminologies (NOS) ----------------------------------------------------------------------------
_NOS = "https://mos.esante.gouv.fr/NOS"


def _nos(name: str) -> str:
    return f"{_NOS}/{name}/FHIR/{name.replace('_', '-')}"


# Code systems the value sets are drawn from (TRE_R211 and TRE_R213 are aliases of the IG; TRE_R329 and
# TRE_R330 are the sources named in ror/standards/data/valuesets.json).
TRE_R211_ACTIVITE_OPERATIONNELLE = _nos("TRE_R211-ActiviteOperationnelle")  # J17
TRE_R213_MODE_PRISE_EN_CHARGE = _nos("TRE_R213-ModePriseEnCharge")  # J19
TRE_R329_NATURE_CAPACITE = _nos("TRE_R329-NatureCapacite")  # J187
TRE_R330_TYPE_STATUT_CAPACITE = _nos("TRE_R330-TypeStatutCapacite")  # J188
# Unverified: the TRE behind these value sets is not known here, so the codings name the JDV canonical
# (aliases.fsh of the IG) as their system. Replace with the TRE code systems once confirmed.
JDV_J20_CHAMP_ACTIVITE = _nos("JDV_J20-ChampActivite-ROR")
JDV_J238_TYPE_OFFRE = _nos("JDV_J238-TypeOffre-ROR")
JDV_J30_TEMPORALITE_ACCUEIL = _nos("JDV_J30-TemporaliteAccueil-ROR")
JDV_J51_FAMILLE_ACTIVITE_OPERATIONNELLE = _nos("JDV_J51-FamilleActiviteOperationnelle-ROR")
JDV_J190_GENRE_CAPACITE = _nos("JDV_J190-GenreCapacite-ROR")


def _concept(system: str, code: CodeRecord) -> dict[str, Any]:
    coding = {"system": system, "code": code.code}
    if code.label:
        coding["display"] = code.label
    return {"coding": [coding]}


def _identifier(value: str) -> list[dict[str, str]]:
    return [{"use": "official", "value": value}]


# --- HealthcareService ------------------------------------------------------------------------------


def _not_available(closure: ClosureRecord) -> dict[str, Any]:
    during = {"start": format_instant(closure.start)}
    if closure.end is not None:
        during["end"] = format_instant(closure.end)
    return {"description": closure.reason or "Fermeture", "during": during}


def healthcare_service(record: HealthcareServiceRecord) -> Resource:
    resource: Resource = {
        "resourceType": "HealthcareService",
        "id": record.id,
        "meta": meta(record.last_updated, PROFILE_HEALTHCARE_SERVICE),
        "language": "fr",
        "identifier": _identifier(record.identifier),
        "active": record.active,
        "providedBy": reference("Organization", record.organization.id, record.organization.display),
    }
    if record.offer_type:
        resource["category"] = [_concept(JDV_J238_TYPE_OFFRE, record.offer_type)]
    if record.activity_field:
        resource["type"] = [_concept(JDV_J20_CHAMP_ACTIVITE, record.activity_field)]
    specialties = []
    if record.operational_activity:
        specialties.append(_concept(TRE_R211_ACTIVITE_OPERATIONNELLE, record.operational_activity))
    if record.operational_activity_family:
        specialties.append(
            _concept(JDV_J51_FAMILLE_ACTIVITE_OPERATIONNELLE, record.operational_activity_family)
        )
    if specialties:
        resource["specialty"] = specialties
    if record.locations:
        resource["location"] = [reference("Location", loc.id, loc.display) for loc in record.locations]
    resource["name"] = record.name
    characteristics = []
    if record.care_mode:
        characteristics.append(_concept(TRE_R213_MODE_PRISE_EN_CHARGE, record.care_mode))
    if record.reception_type:
        characteristics.append(_concept(JDV_J30_TEMPORALITE_ACCUEIL, record.reception_type))
    if characteristics:
        resource["characteristic"] = characteristics
    if record.closures:
        resource["notAvailable"] = [_not_available(c) for c in record.closures]
    return resource


# --- Location ---------------------------------------------------------------------------------------


def supported_capacity(capacity: CapacityRecord) -> dict[str, Any]:
    """One ``ror-location-supported-capacity`` extension (the sub-extensions the data allows)."""
    parts: list[dict[str, Any]] = [
        {
            "url": "capacityType",
            "valueCodeableConcept": _concept(TRE_R329_NATURE_CAPACITE, capacity.capacity_type),
        },
        {
            "url": "capacityStatus",
            "valueCodeableConcept": _concept(TRE_R330_TYPE_STATUT_CAPACITE, capacity.status),
        },
        {"url": "nbCapacity", "valueInteger": capacity.count},
    ]
    if capacity.gender:
        parts.append(
            {
                "url": "genderCapacityAvailable",
                "valueCodeableConcept": _concept(JDV_J190_GENRE_CAPACITE, capacity.gender),
            }
        )
    parts.append({"url": "capacityUpdateDate", "valueDateTime": format_instant(capacity.updated_at)})
    return {"url": SUPPORTED_CAPACITY_EXTENSION, "extension": parts}


def location(record: LocationRecord) -> Resource:
    resource: Resource = {
        "resourceType": "Location",
        "id": record.id,
        "meta": meta(record.last_updated, PROFILE_LOCATION),
        "language": "fr",
    }
    if record.capacities:
        resource["extension"] = [supported_capacity(c) for c in record.capacities]
    resource["identifier"] = _identifier(record.identifier)
    resource["name"] = record.name
    telecom = []
    if record.phone:
        telecom.append({"system": "phone", "value": record.phone})
    if record.email:
        telecom.append({"system": "email", "value": record.email})
    if telecom:
        resource["telecom"] = telecom
    address: dict[str, Any] = {}
    if record.insee_code:
        address["extension"] = [
            {
                "url": INSEE_CODE_EXTENSION,
                "valueCoding": {"system": TRE_R13_COMMUNE, "code": record.insee_code},
            }
        ]
    if record.address_line:
        address["line"] = [record.address_line]
    if record.city:
        address["city"] = record.city
    if record.postal_code:
        address["postalCode"] = record.postal_code
    if address:
        resource["address"] = address
    if record.latitude is not None and record.longitude is not None:
        resource["position"] = {"longitude": record.longitude, "latitude": record.latitude}
    resource["managingOrganization"] = reference(
        "Organization", record.organization.id, record.organization.display
    )
    return resource
