"""Plain values the ROR FHIR mapping works on, filled by the Django layer (``ror.fhir.resources``).

Pure code: no Django import. Codes are the national ones stored by the ror app (J20 champ d'activité,
J238 type d'offre, J19 mode de prise en charge, J30 temporalité d'accueil, J17 activité opérationnelle,
J51 famille, J187 nature de capacité, TRE_R330 statut de capacité, J190 genre, COG commune), labels
next to them ("" when unknown).
"""

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True, slots=True)
class CodeRecord:
    code: str
    label: str = ""


@dataclass(frozen=True, slots=True)
class ClosureRecord:
    """A closing period of an offer; no end: until further notice."""

    start: datetime
    end: datetime | None = None
    reason: str = ""


@dataclass(frozen=True, slots=True)
class ReferenceRecord:
    id: str
    display: str = ""


@dataclass(frozen=True, slots=True)
class HealthcareServiceRecord:
    id: str
    last_updated: datetime
    active: bool
    identifier: str  # identifiantOffre
    name: str
    organization: ReferenceRecord  # the structure (annuaire Organization id)
    locations: tuple[ReferenceRecord, ...] = ()
    activity_field: CodeRecord | None = None  # J20 → type
    offer_type: CodeRecord | None = None  # J238 → category
    care_mode: CodeRecord | None = None  # J19 → characteristic[careMode]
    reception_type: CodeRecord | None = None  # J30 → characteristic[receptionType]
    operational_activity: CodeRecord | None = None  # J17 → specialty[operationalActivity]
    operational_activity_family: CodeRecord | None = None  # J51 → specialty
    closures: tuple[ClosureRecord, ...] = ()


@dataclass(frozen=True, slots=True)
class CapacityRecord:
    """One capacity row: a count of beds or places of one status, for one offer at the location."""

    capacity_type: CodeRecord  # J187
    status: CodeRecord  # J188 / TRE_R330
    count: int
    updated_at: datetime
    gender: CodeRecord | None = None  # J190


@dataclass(frozen=True, slots=True)
class LocationRecord:
    id: str
    last_updated: datetime
    identifier: str
    name: str
    organization: ReferenceRecord  # managingOrganization (annuaire Organization id)
    address_line: str = ""
    postal_code: str = ""
    city: str = ""
    insee_code: str = ""  # COG commune (TRE_R13)
    latitude: float | None = None
    longitude: float | None = None
    phone: str = ""
    email: str = ""
    capacities: tuple[CapacityRecord, ...] = ()
