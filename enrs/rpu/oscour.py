"""OSCOUR XML files (résumés de passage aux urgences, RPU): a safe parser and a record validator.

Pure code, no Django: bytes in, plain dataclasses out. What the format looks like (standards.md §9):

    <OSCOUR>
      <ETABLISSEMENT><FINESS>…</FINESS><ORDRE/><EXTRACT>JJ/MM/AAAA hh:mm[:ss]</EXTRACT>
                     <DATEDEBUT>JJ/MM/AAAA</DATEDEBUT><DATEFIN>JJ/MM/AAAA</DATEFIN></ETABLISSEMENT>
      <PASSAGES><PATIENT><CP/><COMMUNE/><NAISSANCE/><SEXE/><ENTREE/>…<ORIENT/></PATIENT>…</PASSAGES>
    </OSCOUR>

(the ETABLISSEMENT children ORDRE/EXTRACT/DATEDEBUT/DATEFIN are seen in gpmsi's scripts, [V-3p]).

Two levels of failure:

* the file as a whole (not XML, a DOCTYPE/entity declaration, too big, wrong root, FINESS missing or
  with a wrong key, bad period): `OscourFileError` with a French message, nothing is kept;
* one record (a passage): its reasons are listed in `OscourFile.errors`, the other records are kept.

XML safety: lxml with no DTD loading, no entity resolution, no network, no huge trees; any DOCTYPE or
ENTITY declaration is refused before parsing (this also stops "billion laughs" bombs); a byte limit
and a record limit bound the work.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, datetime

from lxml import etree

DEFAULT_MAX_BYTES = 20 * 1024 * 1024
DEFAULT_MAX_RECORDS = 100_000
MAX_PERIOD_DAYS = 366

# Code lists of §9 (InVS/DCAR/SSI specification as quoted by gpmsi, [V-3p]).
SEXES = {"M": "Masculin", "F": "Féminin", "I": "Inconnu"}
MODES_ENTREE = {"6": "Mutation", "7": "Transfert", "8": "Domicile"}
PROVENANCES = {
    "1": "MCO",
    "2": "SSR",
    "3": "SLD",
    "4": "Psychiatrie",
    "5": "Prise en charge autre qu'organisationnelle",
    "6": "Hospitalisation à domicile",
    "7": "Structure médico-sociale",
    "8": "Prise en charge organisationnelle",
}
TRANSPORTS = {
    "PERSO": "Moyens personnels",
    "AMBU": "Ambulance",
    "VSAB": "Pompiers (VSAB)",
    "SMUR": "SMUR",
    "HELI": "Hélicoptère",
    "FO": "Forces de l'ordre",
}
TRANSPORTS_PEC = {"MED": "Médicalisée", "PARAMED": "Paramédicalisée", "AUCUN": "Aucune"}
GRAVITES = {
    "1": "CCMU 1",
    "P": "CCMU P",
    "2": "CCMU 2",
    "3": "CCMU 3",
    "4": "CCMU 4",
    "5": "CCMU 5",
    "D": "CCMU D",
}
MODES_SORTIE = {"6": "Mutation", "7": "Transfert", "8": "Domicile", "9": "Décès"}
DESTINATIONS = {
    "1": "MCO",
    "2": "SSR",
    "3": "SLD",
    "4": "Psychiatrie",
    "6": "Hospitalisation à domicile",
    "7": "Structure médico-sociale",
}
# ORIENT: the list of §9 is [unverified], so only the shape of the code is checked, not its value.
KNOWN_ORIENTATIONS = frozenset(
    {"HDT", "HO", "SC", "SI", "REA", "UHCD", "MED", "CHIR", "OBST", "FUGUE", "SCAM", "PSA", "REO"}
)

_DATE_RE = re.compile(r"^(\d{2})/(\d{2})/(\d{4})$")
_DATETIME_RE = re.compile(r"^(\d{2})/(\d{2})/(\d{4}) (\d{2}):(\d{2})(?::(\d{2}))?$")
_CP_RE = re.compile(r"^\d{5}$")
# CIM-10: a letter, two digits, then up to 4 more characters, with or without the dot ("A09.9", "A090");
# "+" extensions of the French PMSI version ("S7200+1") are accepted. Shape only, not the nomenclature.
_CIM10_RE = re.compile(r"^[A-Z]\d{2}(?:\.?[0-9A-Z+]{1,4})?$")
# CCAM: 4 letters + 3 digits, optionally followed by a "-" and a phase/activity suffix [unverified].
_CCAM_RE = re.compile(r"^[A-Z]{4}\d{3}(?:-\d{1,3})?$")
# A coded reason for the visit (SFMU thesaurus such as "TRAUMATO10", or a CIM-10 code); free text is not
# kept (it may name a person), only the fact that the item is filled.
_MOTIF_CODE_RE = re.compile(r"^[A-Z][A-Z0-9.+]{2,11}$")
_ORIENT_RE = re.compile(r"^[A-Z0-9]{1,10}$")
_FINESS_RE = re.compile(r"^(?:\d{2}|2[AB])\d{7}$")
_FORBIDDEN_MARKUP = (b"<!DOCTYPE", b"<!ENTITY", b"<!doctype", b"<!entity")

PATIENT_ITEMS = (
    "CP",
    "COMMUNE",
    "NAISSANCE",
    "SEXE",
    "ENTREE",
    "MODE_ENTREE",
    "PROVENANCE",
    "TRANSPORT",
    "TRANSPORT_PEC",
    "MOTIF",
    "GRAVITE",
    "DP",
    "LISTE_DA",
    "LISTE_ACTES",
    "SORTIE",
    "MODE_SORTIE",
    "DESTINATION",
    "ORIENT",
)


class OscourFileError(ValueError):
    """The whole file is refused; `str(error)` is a French message for the sender."""


@dataclass(frozen=True, slots=True)
class RpuRecord:
    """One valid passage. Datetimes are naive local times, as written in the file."""

    index: int
    line: int | None
    entry: datetime
    postal_code: str = ""
    commune: str = ""
    birth_date: date | None = None
    sex: str = ""
    mode_entree: str = ""
    provenance: str = ""
    transport: str = ""
    transport_pec: str = ""
    motif: str = ""
    motif_filled: bool = False
    gravite: str = ""
    dp: str = ""
    da: tuple[str, ...] = ()
    actes: tuple[str, ...] = ()
    exit: datetime | None = None
    mode_sortie: str = ""
    destination: str = ""
    orientation: str = ""


@dataclass(frozen=True, slots=True)
class RecordError:
    """A rejected passage: its rank in the file (1-based), its line and why (French)."""

    index: int
    line: int | None
    reasons: tuple[str, ...]


@dataclass(slots=True)
class OscourFile:
    finess: str
    extracted_at: datetime | None
    period_start: date | None
    period_end: date | None
    records: list[RpuRecord] = field(default_factory=list)
    errors: list[RecordError] = field(default_factory=list)

    @property
    def total(self) -> int:
        return len(self.records) + len(self.errors)


# --- identifiers ------------------------------------------------------------------------------------


def luhn_valid(digits: str) -> bool:
    """Luhn check over a string of digits (the last one is the key)."""
    if not digits.isdigit():
        return False
    total = 0
    for position, char in enumerate(reversed(digits)):
        value = int(char)
        if position % 2 == 1:
            value *= 2
            if value > 9:
                value -= 9
        total += value
    return total % 10 == 0


def finess_error(value: str) -> str | None:
    """None when `value` is a well-formed FINESS, else a French reason. The Luhn key is checked except
    for Corsica (2A/2B), whose key rule is [unverified] (standards.md §1.2)."""
    if not _FINESS_RE.match(value):
        return f"FINESS « {value[:20]} » : 9 caractères attendus (2 pour le département puis 7 chiffres)."
    if value[:2] in ("2A", "2B"):
        return None
    if not luhn_valid(value):
        return f"FINESS « {value} » : clé de contrôle incorrecte."
    return None


def finess_department(value: str) -> str:
    """Department code of a FINESS (standards.md §1.2): "2A"/"2B"; overseas "97" + the 4th character
    (9701… → 971); "98" is Mayotte (976); else the first 2 digits."""
    if value.startswith("97") and len(value) >= 4:
        return "97" + value[3]
    if value.startswith("98"):
        return "976"
    return value[:2]


# --- values -----------------------------------------------------------------------------------------


def parse_date(value: str) -> date:
    """JJ/MM/AAAA → date; ValueError otherwise."""
    match = _DATE_RE.match(value)
    if not match:
        raise ValueError(value)
    day, month, year = (int(part) for part in match.groups())
    return date(year, month, day)


def parse_datetime(value: str) -> datetime:
    """JJ/MM/AAAA hh:mm (seconds tolerated, as some senders write them) → naive datetime."""
    match = _DATETIME_RE.match(value)
    if not match:
        raise ValueError(value)
    day, month, year, hour, minute = (int(part) for part in match.groups()[:5])
    second = int(match.group(6) or 0)
    return datetime(year, month, day, hour, minute, second)


def normalise_cim10(value: str) -> str:
    return value.replace(".", "")


def age_at(birth: date, when: date) -> tuple[int, int]:
    """(completed years, completed months) at `when`."""
    months = (when.year - birth.year) * 12 + (when.month - birth.month)
    if when.day < birth.day:
        months -= 1
    return months // 12, months


# --- parsing ----------------------------------------------------------------------------------------


def _parser() -> etree.XMLParser:
    return etree.XMLParser(
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        dtd_validation=False,
        huge_tree=False,
        remove_comments=True,
        remove_pis=True,
        collect_ids=False,
    )


def _text(element: etree._Element | None) -> str:
    if element is None:
        return ""
    return " ".join("".join(element.itertext()).split())


def _single(parent: etree._Element, tag: str) -> etree._Element | None:
    found = parent.findall(tag)
    if len(found) > 1:
        raise ValueError(tag)
    return found[0] if found else None


def parse_oscour(
    data: bytes, *, max_bytes: int = DEFAULT_MAX_BYTES, max_records: int = DEFAULT_MAX_RECORDS
) -> OscourFile:
    """Parse and validate an OSCOUR file. Raises `OscourFileError` when the file is refused as a whole."""
    if len(data) > max_bytes:
        raise OscourFileError(
            f"Fichier trop volumineux ({len(data)} octets) : la limite est de {max_bytes} octets."
        )
    if not data.strip():
        raise OscourFileError("Le fichier est vide.")
    if any(marker in data for marker in _FORBIDDEN_MARKUP):
        raise OscourFileError(
            "Le fichier contient une déclaration DOCTYPE ou ENTITY : refusée pour des raisons de sécurité."
        )
    try:
        root = etree.fromstring(data, parser=_parser())
    except etree.XMLSyntaxError as exc:
        raise OscourFileError(f"XML mal formé : {exc.msg} (ligne {exc.lineno}).") from None
    tree = root.getroottree()
    if tree.docinfo.doctype or tree.docinfo.internalDTD is not None:
        raise OscourFileError(
            "Le fichier contient une déclaration DOCTYPE ou ENTITY : refusée pour des raisons de sécurité."
        )
    if root.tag != "OSCOUR":
        raise OscourFileError(f"Élément racine « {root.tag} » : « OSCOUR » attendu.")

    header = _header(root)
    passages = root.find("PASSAGES")
    if passages is None:
        raise OscourFileError("Élément « PASSAGES » absent.")
    patients = passages.findall("PATIENT")
    if len(patients) > max_records:
        raise OscourFileError(
            f"Trop de passages dans le fichier ({len(patients)}) : la limite est de {max_records}."
        )
    for index, patient in enumerate(patients, start=1):
        record, reasons = _record(patient, index, header)
        if reasons:
            header.errors.append(RecordError(index=index, line=patient.sourceline, reasons=tuple(reasons)))
        elif record is not None:
            header.records.append(record)
    return header


def _header(root: etree._Element) -> OscourFile:
    etab = root.find("ETABLISSEMENT")
    if etab is None:
        raise OscourFileError("Élément « ETABLISSEMENT » absent.")
    finess = _text(etab.find("FINESS")).upper()
    if not finess:
        raise OscourFileError("FINESS de l'établissement absent.")
    reason = finess_error(finess)
    if reason:
        raise OscourFileError(reason)

    extracted_at: datetime | None = None
    extract = _text(etab.find("EXTRACT"))
    if extract:
        try:
            extracted_at = parse_datetime(extract)
        except ValueError:
            raise OscourFileError("EXTRACT : date et heure attendues au format JJ/MM/AAAA hh:mm.") from None

    period: list[date | None] = []
    for tag in ("DATEDEBUT", "DATEFIN"):
        raw = _text(etab.find(tag))
        if not raw:
            period.append(None)
            continue
        try:
            period.append(parse_date(raw))
        except ValueError:
            raise OscourFileError(f"{tag} : date attendue au format JJ/MM/AAAA.") from None
    start, end = period
    if (start is None) != (end is None):
        raise OscourFileError("DATEDEBUT et DATEFIN vont ensemble : les deux ou aucune.")
    if start is not None and end is not None:
        if start > end:
            raise OscourFileError("DATEDEBUT est postérieure à DATEFIN.")
        if (end - start).days >= MAX_PERIOD_DAYS:
            raise OscourFileError(f"Période du fichier trop longue (plus de {MAX_PERIOD_DAYS} jours).")
    return OscourFile(finess=finess, extracted_at=extracted_at, period_start=start, period_end=end)


def _coded(
    patient: etree._Element, tag: str, codes: dict[str, str], reasons: list[str], *, upper: bool = True
) -> str:
    value = _text(_single(patient, tag))
    if upper:
        value = value.upper()
    if value and value not in codes:
        reasons.append(f"{tag} : code « {value[:10]} » inconnu (attendu : {', '.join(codes)}).")
        return ""
    return value


def _record(patient: etree._Element, index: int, header: OscourFile) -> tuple[RpuRecord | None, list[str]]:
    reasons: list[str] = []
    for tag in PATIENT_ITEMS:
        if len(patient.findall(tag)) > 1:
            reasons.append(f"{tag} : élément répété.")
    if reasons:
        return None, reasons

    entry: datetime | None = None
    raw_entry = _text(patient.find("ENTREE"))
    if not raw_entry:
        reasons.append("ENTREE : date et heure d'entrée absentes (obligatoires).")
    else:
        try:
            entry = parse_datetime(raw_entry)
        except ValueError:
            reasons.append("ENTREE : date et heure attendues au format JJ/MM/AAAA hh:mm.")
    if (
        entry is not None
        and header.period_start is not None
        and header.period_end is not None
        and not header.period_start <= entry.date() <= header.period_end
    ):
        reasons.append("ENTREE : hors de la période DATEDEBUT/DATEFIN du fichier.")

    exit_at: datetime | None = None
    raw_exit = _text(patient.find("SORTIE"))
    if raw_exit:
        try:
            exit_at = parse_datetime(raw_exit)
        except ValueError:
            reasons.append("SORTIE : date et heure attendues au format JJ/MM/AAAA hh:mm.")
    if entry is not None and exit_at is not None and exit_at < entry:
        reasons.append("SORTIE : la sortie précède l'entrée.")

    # Birth date, postal code and commune are never echoed in a reason (they would help re-identify).
    birth: date | None = None
    raw_birth = _text(patient.find("NAISSANCE"))
    if raw_birth:
        try:
            birth = parse_date(raw_birth)
        except ValueError:
            reasons.append("NAISSANCE : date attendue au format JJ/MM/AAAA.")
    if birth is not None and entry is not None:
        if birth > entry.date():
            reasons.append("NAISSANCE : postérieure à l'entrée.")
        elif entry.year - birth.year > 130:
            reasons.append("NAISSANCE : âge supérieur à 130 ans.")

    postal_code = _text(patient.find("CP"))
    if postal_code and not _CP_RE.match(postal_code):
        reasons.append("CP : 5 chiffres attendus.")
    commune = _text(patient.find("COMMUNE")).upper()[:80]

    sex = _coded(patient, "SEXE", SEXES, reasons)
    mode_entree = _coded(patient, "MODE_ENTREE", MODES_ENTREE, reasons)
    provenance = _coded(patient, "PROVENANCE", PROVENANCES, reasons)
    transport = _coded(patient, "TRANSPORT", TRANSPORTS, reasons)
    transport_pec = _coded(patient, "TRANSPORT_PEC", TRANSPORTS_PEC, reasons)
    gravite = _coded(patient, "GRAVITE", GRAVITES, reasons)
    mode_sortie = _coded(patient, "MODE_SORTIE", MODES_SORTIE, reasons)
    destination = _coded(patient, "DESTINATION", DESTINATIONS, reasons)

    orientation = _text(patient.find("ORIENT")).upper()
    if orientation and not _ORIENT_RE.match(orientation):
        reasons.append("ORIENT : code de 1 à 10 lettres ou chiffres attendu.")

    raw_motif = _text(patient.find("MOTIF"))
    motif = raw_motif.upper() if _MOTIF_CODE_RE.match(raw_motif.upper()) else ""

    dp = _text(patient.find("DP")).upper()
    if dp and not _CIM10_RE.match(dp):
        reasons.append(f"DP : code CIM-10 « {dp[:10]} » mal formé.")
    da: list[str] = []
    liste_da = patient.find("LISTE_DA")
    for element in liste_da.findall("DA") if liste_da is not None else []:
        code = _text(element).upper()
        if not code:
            continue
        if not _CIM10_RE.match(code):
            reasons.append(f"DA : code CIM-10 « {code[:10]} » mal formé.")
        da.append(normalise_cim10(code))
    actes: list[str] = []
    liste_actes = patient.find("LISTE_ACTES")
    for element in liste_actes.findall("ACTE") if liste_actes is not None else []:
        code = _text(element).upper()
        if not code:
            continue
        if not _CCAM_RE.match(code):
            reasons.append(f"ACTE : code CCAM « {code[:12]} » mal formé.")
        actes.append(code)

    if reasons or entry is None:
        return None, reasons
    return (
        RpuRecord(
            index=index,
            line=patient.sourceline,
            entry=entry,
            postal_code=postal_code,
            commune=commune,
            birth_date=birth,
            sex=sex,
            mode_entree=mode_entree,
            provenance=provenance,
            transport=transport,
            transport_pec=transport_pec,
            motif=motif,
            motif_filled=bool(raw_motif),
            gravite=gravite,
            dp=normalise_cim10(dp),
            da=tuple(da),
            actes=tuple(actes),
            exit=exit_at,
            mode_sortie=mode_sortie,
            destination=destination,
            orientation=orientation,
        ),
        [],
    )
