"""Reading the FINESS establishments extraction published on data.gouv.fr (``etalab_cs1100507_stock_*.csv``).

Pure code, no Django import. What is known of the format, and from where (all [V-3p]: third-party parsers
and tests that copy real lines verbatim; no ANS/DREES specification was found to confirm it):

* ``;``-separated; a field that holds quotes is quoted, its quotes doubled (CSV style);
  published in Windows-1252 for years, UTF-8 lately: the encoding is detected (``rpps_extract``).
* line 1: ``finess;etalab;<version>;<date>`` (e.g. ``finess;etalab;111;2026-05-12``), no column names;
* ``structureet`` lines, 32 fields: the tag then ``nofinesset nofinessej rs rslongue complrs
  compldistrib numvoie typvoie voie compvoie lieuditbp commune departement libdepartement
  ligneacheminement telephone telecopie categetab libcategetab categagretab libcategagretab siret
  codeape codemft libmft codesph libsph dateouv dateautor datemaj numuai`` (older files end at
  ``datemaj``: 31 fields, also read);
* ``geolocalisation`` lines, 6 fields: the tag then ``nofinesset coordxet coordyet sourcecoordet datemaj``;
  the source ends with the projection, e.g. ``1,ATLASANTE,100,IGN,BD_ADRESSE,V2.2,LAMBERT_93``. Only
  Lambert-93 pairs (metropolitan France) are converted to latitude/longitude (``lambert93``); overseas
  sites use other projections (UTM zones, [unverified] names), so they get no coordinates.
* ``departement`` is the INSEE code in metropolitan France (``01``, ``2A``); overseas it is a FINESS code
  (``9A`` Guadeloupe, ``9B`` Martinique, ``9C`` Guyane, ``9D`` La Réunion, ``9F`` Mayotte, ``9J``
  Wallis-et-Futuna) and ``commune`` then holds the last three digits of the INSEE code (``9D`` + ``411``
  → ``97411`` Saint-Denis), inferred from those real lines.
"""

import csv
import re
from dataclasses import dataclass

from . import identifiers, lambert93
from .rpps_extract import COLUMN_COUNT, RAW_EXCERPT, ExtractFormatError, Rejection

SEPARATOR = ";"
HEADER_TAG = "finess"
STRUCTURE_TAG = "structureet"
GEO_TAG = "geolocalisation"
STRUCTURE_COLUMNS = (
    "structureet", "nofinesset", "nofinessej", "rs", "rslongue", "complrs", "compldistrib", "numvoie",
    "typvoie", "voie", "compvoie", "lieuditbp", "commune", "departement", "libdepartement",
    "ligneacheminement", "telephone", "telecopie", "categetab", "libcategetab", "categagretab",
    "libcategagretab", "siret", "codeape", "codemft", "libmft", "codesph", "libsph", "dateouv", "dateautor",
    "datemaj", "numuai",
)  # fmt: skip
GEO_COLUMNS = ("geolocalisation", "nofinesset", "coordxet", "coordyet", "sourcecoordet", "datemaj")
_S = {name: index for index, name in enumerate(STRUCTURE_COLUMNS)}
_G = {name: index for index, name in enumerate(GEO_COLUMNS)}
LAMBERT_93_SOURCE = "LAMBERT_93"
# FINESS "département" codes of the overseas territories → first two digits of their INSEE codes.
OVERSEAS_INSEE_PREFIX = {"9A": "97", "9B": "97", "9C": "97", "9D": "97", "9E": "97", "9F": "97", "9J": "98"}
TEXT_MAX = 255
_CATEGORY_RE = re.compile(r"^\d{1,4}$")
_METROPOLITAN_DEPARTMENT_RE = re.compile(r"^(?:\d{2}|2[AB])$")


@dataclass(frozen=True, slots=True)
class FinessHeader:
    version: str  # what follows "finess;" on line 1, e.g. "etalab;111;2026-05-12"


def parse_header(text: str) -> FinessHeader:
    line = text.lstrip("\ufeff").strip()
    fields = line.split(SEPARATOR)
    if fields[0].strip().casefold() == HEADER_TAG and len(fields) >= 2:
        return FinessHeader(version=";".join(f.strip() for f in fields[1:]).strip(";"))
    if "|" in line and "identifiant pp" in line.casefold():
        raise ExtractFormatError(
            "Ce fichier est l'extraction RPPS (PS_LibreAcces_Personne_activite), pas l'extraction FINESS : "
            "utilisez la commande import_rpps."
        )
    raise ExtractFormatError(
        "Ce fichier n'est pas l'extraction FINESS des établissements : sa première ligne devrait commencer "
        "par « finess;etalab; »."
    )


@dataclass(frozen=True, slots=True)
class FinessSite:
    """A ``structureet`` line: one geographic establishment (ET)."""

    line: int
    finess_et: str
    finess_ej: str
    name: str
    address_line: str
    postal_code: str
    commune_code: str  # INSEE, "" when unknown
    category_code: str
    category_label: str
    siret: str
    siren: str


@dataclass(frozen=True, slots=True)
class FinessGeo:
    """A ``geolocalisation`` line: where an ET is (WGS84 degrees when its source is Lambert-93)."""

    line: int
    finess_et: str
    latitude: float | None
    longitude: float | None
    source: str


def split(text: str) -> list[str]:
    """The fields of a line: a plain split, or the CSV reader when the line holds quotes."""
    if '"' not in text:
        return text.split(SEPARATOR)
    return next(csv.reader([text], delimiter=SEPARATOR, quotechar='"', strict=True))


def insee_code(department: str, commune: str) -> str:
    """INSEE code of a commune from FINESS's ``departement`` and ``commune`` fields ("" when unknown)."""
    if not (len(commune) == 3 and commune.isdigit()):
        return ""
    if _METROPOLITAN_DEPARTMENT_RE.match(department):
        return department + commune
    prefix = OVERSEAS_INSEE_PREFIX.get(department)
    return prefix + commune if prefix else ""


def _clip(value: str, length: int = TEXT_MAX) -> str:
    return value if len(value) <= length else value[:length].rstrip()


def _number(value: str) -> float | None:
    try:
        return float(value.replace(",", ".").replace(" ", ""))
    except ValueError:
        return None


def _finess_failure(label: str, number: str) -> str:
    if not identifiers.finess_is_well_formed(number):
        return f"numéro {label} mal formé « {number} » : 9 caractères attendus"
    return f"numéro {label} « {number} » : clé de contrôle (Luhn) fausse"


class FinessRowParser:
    """Turn data lines into sites, geolocations or rejections. Remembers the ETs seen (a FINESS ET twice in
    a file is rejected the second time)."""

    def __init__(self) -> None:
        self._seen: dict[str, int] = {}

    def parse(self, number: int, text: str) -> FinessSite | FinessGeo | Rejection:
        raw = text[:RAW_EXCERPT]
        try:
            fields = [field.strip() for field in split(text)]
        except csv.Error:
            return Rejection(number, "guillemets mal fermés", raw, kind=COLUMN_COUNT)
        tag = fields[0].casefold()
        if tag == STRUCTURE_TAG:
            return self._site(number, fields, raw)
        if tag == GEO_TAG:
            return self._geo(number, fields, raw)
        return Rejection(number, f"type de ligne inconnu « {fields[0][:30]} »", raw)

    def _site(self, number: int, fields: list[str], raw: str) -> FinessSite | Rejection:
        if len(fields) == len(STRUCTURE_COLUMNS) - 1:
            fields.append("")  # extractions published before "numuai"
        if len(fields) != len(STRUCTURE_COLUMNS):
            return Rejection(
                number,
                f"nombre de colonnes incorrect : {len(fields)} au lieu de {len(STRUCTURE_COLUMNS)}",
                raw,
                kind=COLUMN_COUNT,
            )
        finess_et, finess_ej = fields[_S["nofinesset"]], fields[_S["nofinessej"]]
        if not identifiers.finess_is_valid(finess_et):
            return Rejection(number, _finess_failure("FINESS ET", finess_et), raw)
        key = finess_et
        if finess_ej and not identifiers.finess_is_valid(finess_ej):
            return Rejection(number, _finess_failure("FINESS EJ", finess_ej), raw, key)
        siret = fields[_S["siret"]]
        if siret and not identifiers.siret_is_valid(siret):
            reason = f"numéro SIRET invalide « {siret} » (14 chiffres, clé de Luhn)"
            return Rejection(number, reason, raw, key)
        name = fields[_S["rslongue"]] or fields[_S["rs"]]
        if not name:
            return Rejection(number, "raison sociale vide", raw, key)
        category = fields[_S["categetab"]]
        if category and not _CATEGORY_RE.match(category):
            return Rejection(number, f"code catégorie d'établissement invalide « {category} »", raw, key)
        first = self._seen.setdefault(finess_et, number)
        if first != number:
            return Rejection(number, f"FINESS ET {finess_et} en double (déjà ligne {first})", raw, key)
        street_number = " ".join(p for p in (fields[_S["numvoie"]], fields[_S["compvoie"]]) if p)
        address = " ".join(p for p in (street_number, fields[_S["typvoie"]], fields[_S["voie"]]) if p)
        if fields[_S["lieuditbp"]]:
            address = f"{address}, {fields[_S['lieuditbp']]}" if address else fields[_S["lieuditbp"]]
        routing = fields[_S["ligneacheminement"]]
        postal_code = routing[:5] if len(routing) >= 5 and routing[:5].isdigit() else ""
        return FinessSite(
            line=number,
            finess_et=finess_et,
            finess_ej=finess_ej,
            name=_clip(name),
            address_line=_clip(address),
            postal_code=postal_code,
            commune_code=insee_code(fields[_S["departement"]], fields[_S["commune"]]),
            category_code=category,
            category_label=_clip(fields[_S["libcategetab"]]),
            siret=siret,
            siren=siret[:9],
        )

    def _geo(self, number: int, fields: list[str], raw: str) -> FinessGeo | Rejection:
        if len(fields) != len(GEO_COLUMNS):
            return Rejection(
                number,
                f"nombre de colonnes incorrect : {len(fields)} au lieu de {len(GEO_COLUMNS)}",
                raw,
                kind=COLUMN_COUNT,
            )
        finess_et = fields[_G["nofinesset"]]
        if not identifiers.finess_is_valid(finess_et):
            return Rejection(number, _finess_failure("FINESS ET", finess_et), raw)
        source = fields[_G["sourcecoordet"]]
        x, y = _number(fields[_G["coordxet"]]), _number(fields[_G["coordyet"]])
        if x is None or y is None:
            return Rejection(number, "coordonnées illisibles", raw)
        latitude = longitude = None
        if source.upper().endswith(LAMBERT_93_SOURCE):
            if not lambert93.is_plausible(x, y):
                reason = "coordonnées Lambert-93 hors de la France métropolitaine"
                return Rejection(number, reason, raw)
            latitude, longitude = (round(v, 6) for v in lambert93.to_lat_lon(x, y))
        return FinessGeo(number, finess_et, latitude, longitude, _clip(source, 100))
