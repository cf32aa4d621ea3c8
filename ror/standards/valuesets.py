"""ROR value sets, read from the committed ``data/valuesets.json``.

The JSON is written by ``build_valuesets.py`` from the ANS value sets; this module only reads it (the
application never reads the ANS kit at run time). Pure code: no Django import.
"""

import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from types import MappingProxyType
from typing import Any

DATA_FILE = Path(__file__).resolve().parent / "data" / "valuesets.json"

Codes = MappingProxyType[str, str]

# TRE_R330 codes used by the capacity rules.
INSTALLED = "01"
AVAILABLE = "02"
OCCUPIED = "03"
RESERVED = "04"
CLOSED = "05"
ADDITIONAL = "06"


@dataclass(frozen=True, slots=True)
class ValueSets:
    activity_fields: Codes  # J20 champ d'activité: "01" → "Médecine, Chirurgie, Obstétrique (MCO)"
    offer_types: Codes  # J238 type d'offre (extract)
    care_modes: Codes  # J19 mode de prise en charge
    reception_types: Codes  # J30 temporalité d'accueil
    operational_activities: Codes  # J17 activité opérationnelle (TRE_R211 extract)
    specialised_care: Codes  # J35 spécialisation de prise en charge
    capacity_types: Codes  # J187 nature de capacité: "01" Lit, "02" Place
    capacity_statuses: Codes  # TRE_R330 statut de capacité: "01" Installé … "09" Autorisé
    deprecated_capacity_statuses: frozenset[str]  # TRE_R330 codes no longer to be exchanged ("07")
    capacity_genders: Codes  # J190 genre de capacité
    sources: MappingProxyType[str, str]  # table name → where its codes come from

    def label(self, table: str, code: str) -> str:
        """The label of `code` in `table` (an attribute name above), or "" when unknown."""
        codes = getattr(self, table)
        return str(codes.get(code, "")) if isinstance(codes, MappingProxyType) else ""

    def choices(self, table: str) -> list[tuple[str, str]]:
        codes: Codes = getattr(self, table)
        return [(code, f"{label}") for code, label in codes.items()]


def _codes(table: dict[str, Any]) -> Codes:
    return MappingProxyType(dict(table["codes"]))


def load(path: Path = DATA_FILE) -> ValueSets:
    data = json.loads(path.read_text(encoding="utf-8"))
    return ValueSets(
        activity_fields=_codes(data["activity_fields"]),
        offer_types=_codes(data["offer_types"]),
        care_modes=_codes(data["care_modes"]),
        reception_types=_codes(data["reception_types"]),
        operational_activities=_codes(data["operational_activities"]),
        specialised_care=_codes(data["specialised_care"]),
        capacity_types=_codes(data["capacity_types"]),
        capacity_statuses=_codes(data["capacity_statuses"]),
        deprecated_capacity_statuses=frozenset(data["capacity_statuses"].get("deprecated", [])),
        capacity_genders=_codes(data["capacity_genders"]),
        sources=MappingProxyType(
            {
                name: table["source"]
                for name, table in data.items()
                if isinstance(table, dict) and "source" in table
            }
        ),
    )


@cache
def valuesets() -> ValueSets:
    """The committed value sets, read once per process."""
    return load()
