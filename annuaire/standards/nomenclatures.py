"""National code tables of the directory, read from the committed ``data/nomenclatures.json``.

The JSON is written by ``build_nomenclatures.py`` from the ANS value sets; this module only reads it
(the application never reads the ANS kit at run time). Pure code: no Django import.
"""

import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from types import MappingProxyType
from typing import Any

DATA_FILE = Path(__file__).resolve().parent / "data" / "nomenclatures.json"

Codes = MappingProxyType[str, str]


@dataclass(frozen=True, slots=True)
class Nomenclatures:
    professions: Codes  # TRE_G15: "10" → "Médecin"
    specialties: MappingProxyType[
        str, Codes
    ]  # savoir-faire per profession: "10" → {"SM54": "Médecine Générale"}
    sectors: Codes  # TRE_R02: "SA01" → "Etablissement public de santé"
    structure_categories: Codes  # TRE_R66 (extract): "355" → "Centre hospitalier (CH)"
    exercise_modes: Codes  # TRE_R23: "S" / "L" / "B"
    roles: Codes  # TRE_R21 (extract): "FON-01" → "Titulaire de cabinet"
    civilities: Codes  # TRE_R81: "M" / "MME"
    professional_categories: Codes  # TRE_R09: "C" / "E" / "M"
    sources: MappingProxyType[str, str]  # table name → where its codes come from

    def profession_label(self, code: str) -> str:
        return self.professions.get(code, "")

    def specialty_label(self, profession_code: str, specialty_code: str) -> str:
        return self.specialties.get(profession_code, MappingProxyType({})).get(specialty_code, "")


def _codes(table: dict[str, Any]) -> Codes:
    return MappingProxyType(dict(table["codes"]))


def load(path: Path = DATA_FILE) -> Nomenclatures:
    data = json.loads(path.read_text(encoding="utf-8"))
    return Nomenclatures(
        professions=_codes(data["professions"]),
        specialties=MappingProxyType(
            {
                profession: MappingProxyType(dict(codes))
                for profession, codes in data["specialties"]["codes"].items()
            }
        ),
        sectors=_codes(data["sectors"]),
        structure_categories=_codes(data["structure_categories"]),
        exercise_modes=_codes(data["exercise_modes"]),
        roles=_codes(data["roles"]),
        civilities=_codes(data["civilities"]),
        professional_categories=_codes(data["professional_categories"]),
        sources=MappingProxyType(
            {
                name: table["source"]
                for name, table in data.items()
                if isinstance(table, dict) and "source" in table
            }
        ),
    )


@cache
def nomenclatures() -> Nomenclatures:
    """The committed tables, read once per process."""
    return load()
