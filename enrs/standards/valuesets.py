"""XDS / CDA value sets, read from the committed ``data/valuesets.json``.

The JSON is written by ``build_valuesets.py`` from the ANS CI-SIS value sets (plus hand-kept tables with
their source); this module only reads it. Pure code: no Django import.

    codes("type_code")["85208-7"]        → Code("85208-7", "2.16.840.1.113883.6.1", "CR de télémédecine")
    lookup("confidentiality", "N")       → Code("N", "2.16.840.1.113883.5.25", "Normal")
    class_for_type("11488-4")            → Code("10", "1.2.250.1.213.1.1.4.1", "Compte rendu")
"""

import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from types import MappingProxyType
from typing import Any

DATA_FILE = Path(__file__).resolve().parent / "data" / "valuesets.json"

NAMES = frozenset(
    {
        "type_code",  # J07 XDS typeCode (LOINC or TRE_A05)
        "class_code",  # J06 XDS classCode (TRE_A03)
        "confidentiality",  # J08 confidentialityCode
        "facility_type",  # J02 healthcareFacilityTypeCode
        "practice_setting",  # J04 practiceSettingCode
        "format_code",  # formatCode of CDA level 1 (TRE_A11)
        "content_type",  # J59 submission-set contentTypeCode (TRE_R209 extract)
        "author_specialty",  # J01 authorSpecialty
    }
)

LOINC = "2.16.840.1.113883.6.1"


@dataclass(frozen=True)
class Code:
    """A coded value as XDS/CDA carry it."""

    code: str
    system: str  # codeSystem OID
    display: str = ""


@cache
def _data() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(DATA_FILE.read_text(encoding="utf-8"))
    return data


@cache
def _codes(name: str) -> MappingProxyType[str, Code]:
    if name not in NAMES:
        raise KeyError(name)
    table = _data()[name]["codes"]
    return MappingProxyType(
        {code: Code(code, entry["codeSystem"], entry["displayName"]) for code, entry in table.items()}
    )


def codes(name: str) -> dict[str, Code]:
    """Every code of the value set `name` (one of NAMES), by code (a copy). KeyError for an unknown name."""
    return dict(_codes(name))


def lookup(name: str, code: str) -> Code | None:
    """The code `code` of the value set `name`, or None when it is not in it."""
    return _codes(name).get(code)


def author_specialty(profession_code: str, specialty_code: str = "") -> str:
    """J01 author specialty of a professional: ``G15_10/SM54`` (profession/savoir-faire) when the value set
    has it, else ``G15_10`` (profession), else "" (not carried)."""
    base = f"G15_{profession_code}"
    if specialty_code and lookup("author_specialty", f"{base}/{specialty_code}") is not None:
        return f"{base}/{specialty_code}"
    return base if lookup("author_specialty", base) is not None else ""


def source(name: str) -> str:
    """Where the codes of `name` come from (file and version, or the hand-kept table's source)."""
    return str(_data()[name]["source"])


def class_for_type(type_code: str) -> Code:
    """The XDS classCode derived from a typeCode. Raises KeyError when no mapping is kept for it."""
    class_code = _data()["type_to_class"]["map"][type_code]
    return _codes("class_code")[class_code]


def format_for_media_type(media_type: str) -> Code:
    """The XDS formatCode of a CDA level-1 document whose body has `media_type`. KeyError if unknown."""
    return _codes("format_code")[_data()["media_type_to_format"]["map"][media_type]]
