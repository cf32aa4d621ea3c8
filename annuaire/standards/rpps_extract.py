"""Reading the Annuaire Santé open extraction ``PS_LibreAcces_Personne_activite_*.txt``, line by line.

Pure code, no Django import. The file is pipe-separated, one line per activity of a professional, with a
header line of column names (shared/domain/standards.md §2, [V-3p]: several independent parsers agree on
the 56 names and their order; a third-party test holding real rows shows ``Type d'identifiant PP`` =
``8`` for RPPS / ``0`` for ADELI, ``Identification nationale PP`` = that digit + the number, a trailing
``|`` on every line, and technical structure ids such as ``C75912415900`` or ``R10100000328372``).

This module also holds the text-file layer shared with ``finess_extract``: encoding detection and the
numbered line iterator, and the two result types (:class:`Rejection`, :class:`ExtractFormatError`).

* **Encoding**: UTF-8 or Windows-1252 (the ANS has published both). :class:`EncodingSniffer` reads the
  bytes with a strict *incremental* UTF-8 decoder — a character split between two buffers is not an
  error — and answers UTF-8 when every byte decodes (a UTF-8 BOM decides it at once), else
  Windows-1252. A file cut in the middle of a multi-byte character is still UTF-8 (its last line is
  then incomplete: see truncation below).
* **Header**: columns are found by name (accents, case, spacing and apostrophes normalised), so that a
  reordered or extended file still reads; a file that lacks a column this import uses is refused before
  any row is read (:class:`ExtractFormatError`). The four last columns (``Code rôle`` … ``Libellé genre
  activité``) are optional: extractions published before them have 52 columns.
* **Rows**: :class:`RppsRowParser` turns a line into an :class:`ActivityRecord` or a :class:`Rejection`
  (French reason). A failing RPPS Luhn key is *not* a rejection (ANS test identities fail it): the record
  carries ``rpps_key_valid=False``.
* **Truncation**: a last line with no line break *and* the wrong number of columns (or cut inside a
  character) means the download was cut; :func:`check_not_truncated` raises, and the whole file is
  refused (a partial national file would deactivate every professional after the cut).
"""

import codecs
import re
import unicodedata
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import BinaryIO

from . import identifiers
from .nomenclatures import Nomenclatures

# --- Shared text-file layer -------------------------------------------------------------------------------

UTF8 = "utf-8"
UTF8_BOM = "utf-8-sig"
WINDOWS_1252 = "windows-1252"
_BOM = codecs.BOM_UTF8
RAW_EXCERPT = 500  # characters of a rejected line kept in the report


class ExtractFormatError(ValueError):
    """The file is not the expected extraction (or is cut short): nothing of it is imported."""


@dataclass(frozen=True, slots=True)
class Rejection:
    """A line that is not loaded, and why (French). ``key`` is the line's identifier when it could be read
    (IdNat_PS, FINESS ET): the import then knows the entity is still in the file and leaves it alone."""

    line: int
    reason: str
    raw: str
    key: str = ""
    kind: str = ""  # COLUMN_COUNT / UNDECODABLE for the shape errors that reveal a truncated file


COLUMN_COUNT = "columns"
UNDECODABLE = "encoding"


class EncodingSniffer:
    """Tell UTF-8 from Windows-1252 by feeding the file's bytes, in chunks of any size."""

    def __init__(self) -> None:
        self._decoder = codecs.getincrementaldecoder(UTF8)("strict")
        self._head = b""
        self._started = False
        self.bom = False
        self.valid_utf8 = True
        self.incomplete_tail = False  # UTF-8, but the bytes end inside a character
        self.non_ascii = False

    def feed(self, chunk: bytes) -> None:
        if not self._started:
            self._head += chunk
            if len(self._head) < len(_BOM) and self._head == _BOM[: len(self._head)]:
                return  # too short to tell whether a BOM starts the file
            self._start()
            return
        self._decode(chunk)

    def _start(self) -> None:
        self._started = True
        chunk, self._head = self._head, b""
        if chunk.startswith(_BOM):
            self.bom = True
            chunk = chunk[len(_BOM) :]
        self._decode(chunk)

    def _decode(self, chunk: bytes) -> None:
        if not self.non_ascii and not chunk.isascii():
            self.non_ascii = True
        if self.valid_utf8 and not self.bom:
            try:
                self._decoder.decode(chunk, final=False)
            except UnicodeDecodeError:
                self.valid_utf8 = False

    def encoding(self) -> str:
        """The codec name to read the file with: ``utf-8-sig``, ``utf-8`` or ``windows-1252``."""
        if not self._started:
            self._start()  # the whole file is shorter than a BOM
        if self.bom:
            return UTF8_BOM
        if self.valid_utf8:
            try:
                self._decoder.decode(b"", final=True)
            except UnicodeDecodeError:
                self.incomplete_tail = True  # cut inside a character: UTF-8 all the same
            return UTF8
        return WINDOWS_1252


def detect_encoding(chunks: Iterable[bytes]) -> str:
    """The encoding of a byte stream given in chunks (the whole file, or a sample of its beginning)."""
    sniffer = EncodingSniffer()
    for chunk in chunks:
        sniffer.feed(chunk)
    return sniffer.encoding()


@dataclass(frozen=True, slots=True)
class Line:
    """One physical line of the file: its number (1 = first line), its text without the line break (None
    when its bytes are not valid in the file's encoding), and whether a line break ended it."""

    number: int
    text: str | None
    raw: bytes
    terminated: bool


def iter_lines(
    stream: BinaryIO,
    encoding: str,
    *,
    on_bytes: Callable[[int], None] | None = None,
    report_every: int = 5_000,
) -> Iterator[Line]:
    """Yield every line of a binary stream, decoded. Lines are split on ``\\n`` (``\\r\\n`` too), which is
    safe in both encodings (ASCII-compatible). `on_bytes` receives the bytes read, every `report_every`
    lines and at the end."""
    codec = UTF8 if encoding == UTF8_BOM else encoding
    pending = 0
    for number, raw in enumerate(stream, start=1):
        pending += len(raw)
        terminated = raw.endswith(b"\n")
        body = raw[:-1] if terminated else raw
        if body.endswith(b"\r"):
            body = body[:-1]
        if number == 1 and body.startswith(_BOM):
            body = body[len(_BOM) :]
        try:
            text: str | None = body.decode(codec)
        except UnicodeDecodeError:
            text = None
        if text is not None and "\x00" in text:
            text = text.replace("\x00", "")  # PostgreSQL text cannot hold NUL
        if on_bytes is not None and number % report_every == 0:
            on_bytes(pending)
            pending = 0
        yield Line(number, text, body, terminated)
    if on_bytes is not None and pending:
        on_bytes(pending)


def excerpt(line: Line) -> str:
    """The line as text for a rejection report (undecodable bytes shown as replacement characters)."""
    text = line.text if line.text is not None else line.raw.decode(UTF8, "replace")
    return text[:RAW_EXCERPT]


def undecodable(line: Line, encoding: str) -> Rejection:
    label = "UTF-8" if encoding in (UTF8, UTF8_BOM) else "Windows-1252"
    return Rejection(line.number, f"caractères illisibles en {label}", excerpt(line), kind=UNDECODABLE)


def normalise_name(name: str) -> str:
    """A column name compared loosely: accents, case, apostrophes and spacing do not matter."""
    text = unicodedata.normalize("NFKD", name.replace("\ufeff", ""))
    text = "".join(c for c in text if not unicodedata.combining(c))
    text = text.replace("\u2019", "'").replace("`", "'").casefold()
    return " ".join(text.split())


# --- The RPPS extraction ------------------------------------------------------------------------------------

SEPARATOR = "|"
COLUMNS = (
    "Type d'identifiant PP", "Identifiant PP", "Identification nationale PP", "Code civilité d'exercice",
    "Libellé civilité d'exercice", "Code civilité", "Libellé civilité", "Nom d'exercice", "Prénom d'exercice",
    "Code profession", "Libellé profession", "Code catégorie professionnelle",
    "Libellé catégorie professionnelle", "Code type savoir-faire", "Libellé type savoir-faire",
    "Code savoir-faire", "Libellé savoir-faire", "Code mode exercice", "Libellé mode exercice",
    "Numéro SIRET site", "Numéro SIREN site", "Numéro FINESS site", "Numéro FINESS établissement juridique",
    "Identifiant technique de la structure", "Raison sociale site", "Enseigne commerciale site",
    "Complément destinataire (coord. structure)", "Complément point géographique (coord. structure)",
    "Numéro Voie (coord. structure)", "Indice répétition voie (coord. structure)",
    "Code type de voie (coord. structure)", "Libellé type de voie (coord. structure)",
    "Libellé Voie (coord. structure)", "Mention distribution (coord. structure)",
    "Bureau cedex (coord. structure)", "Code postal (coord. structure)", "Code commune (coord. structure)",
    "Libellé commune (coord. structure)", "Code pays (coord. structure)", "Libellé pays (coord. structure)",
    "Téléphone (coord. structure)", "Téléphone 2 (coord. structure)", "Télécopie (coord. structure)",
    "Adresse e-mail (coord. structure)", "Code Département (structure)", "Libellé Département (structure)",
    "Ancien identifiant de la structure", "Autorité d'enregistrement", "Code secteur d'activité",
    "Libellé secteur d'activité", "Code section tableau pharmaciens", "Libellé section tableau pharmaciens",
    "Code rôle", "Libellé rôle", "Code genre activité", "Libellé genre activité",
)  # fmt: skip
# Published later than the others: extractions without them are still read (no role: "FON-AU").
OPTIONAL_COLUMNS = frozenset({"Code rôle", "Libellé rôle", "Code genre activité", "Libellé genre activité"})

# What the import reads, by attribute name → column name.
_USED = {
    "id_type": "Type d'identifiant PP",
    "identifier": "Identifiant PP",
    "idnat": "Identification nationale PP",
    "civility": "Code civilité",
    "last_name": "Nom d'exercice",
    "first_name": "Prénom d'exercice",
    "profession": "Code profession",
    "category": "Code catégorie professionnelle",
    "specialty_type": "Code type savoir-faire",
    "specialty": "Code savoir-faire",
    "specialty_label": "Libellé savoir-faire",
    "mode": "Code mode exercice",
    "siret": "Numéro SIRET site",
    "siren": "Numéro SIREN site",
    "finess_et": "Numéro FINESS site",
    "finess_ej": "Numéro FINESS établissement juridique",
    "technical_id": "Identifiant technique de la structure",
    "company_name": "Raison sociale site",
    "trade_name": "Enseigne commerciale site",
    "recipient": "Complément destinataire (coord. structure)",
    "street_number": "Numéro Voie (coord. structure)",
    "street_repeat": "Indice répétition voie (coord. structure)",
    "street_type_code": "Code type de voie (coord. structure)",
    "street_type": "Libellé type de voie (coord. structure)",
    "street": "Libellé Voie (coord. structure)",
    "cedex": "Bureau cedex (coord. structure)",
    "postal_code": "Code postal (coord. structure)",
    "commune": "Code commune (coord. structure)",
    "sector": "Code secteur d'activité",
    "role": "Code rôle",
}

RPPS_TYPE, ADELI_TYPE = "8", "0"
NO_ROLE = "FON-AU"  # TRE_R21 "Fonction non définie": an activity whose role the file does not give
SPECIALTY_ORDINAL = "S"  # Code type savoir-faire of the "spécialité ordinale", preferred over the others
# Lengths of the directory's columns (annuaire.models); longer text is cut, longer codes are rejected.
NAME_MAX, LABEL_MAX, TEXT_MAX, SPECIALTY_MAX, TECHNICAL_ID_MAX = 100, 100, 255, 10, 32
_ROLE_RE = re.compile(r"^[A-Z0-9-]{1,6}$")
_COMMUNE_RE = re.compile(r"^(?:\d{5}|2[AB]\d{3})$")
_POSTAL_RE = re.compile(r"^\d{5}")
_TECHNICAL_ID_RE = re.compile(r"^[A-Za-z0-9]+$")


@dataclass(frozen=True, slots=True)
class RppsHeader:
    """Where each used column is (index in the split line), and how many fields a line has."""

    positions: dict[str, int]
    width: int


def parse_header(text: str) -> RppsHeader:
    """Read the header line; raise :class:`ExtractFormatError` (French) when it is not the extraction's."""
    line = text.lstrip("\ufeff").strip()
    if SEPARATOR not in line:
        first = line.split(";", 1)[0].strip().casefold()
        if first == "finess":
            raise ExtractFormatError(
                "Ce fichier est une extraction FINESS (« finess;… »), pas l'extraction RPPS : "
                "utilisez la commande import_finess."
            )
        raise ExtractFormatError(
            "Ce fichier n'est pas l'extraction RPPS PS_LibreAcces_Personne_activite : sa première ligne "
            "devrait être l'en-tête des colonnes séparées par « | »."
        )
    names = line.split(SEPARATOR)
    if names and names[-1] == "":
        names.pop()  # the extraction ends every line with a separator
    found = {normalise_name(name): index for index, name in reversed(list(enumerate(names)))}
    positions: dict[str, int] = {}
    missing = []
    for attribute, column in _USED.items():
        index = found.get(normalise_name(column))
        if index is None:
            if column not in OPTIONAL_COLUMNS:
                missing.append(column)
            continue
        positions[attribute] = index
    if missing:
        shown = ", ".join(f"« {name} »" for name in missing[:5])
        more = f" et {len(missing) - 5} autres" if len(missing) > 5 else ""
        raise ExtractFormatError(
            "Ce fichier n'a pas l'en-tête de l'extraction RPPS PS_LibreAcces_Personne_activite : "
            f"colonnes absentes : {shown}{more}."
        )
    return RppsHeader(positions=positions, width=len(names))


@dataclass(frozen=True, slots=True)
class Site:
    """The structure where an activity takes place, as the extraction describes it."""

    finess_et: str
    finess_ej: str
    siret: str
    siren: str
    technical_id: str
    name: str
    address_line: str
    postal_code: str
    commune_code: str
    sector_code: str
    sector_label: str

    @property
    def key(self) -> str:
        """One key per site in a file: the technical id, else the FINESS, else the SIRET."""
        if self.technical_id:
            return "T" + self.technical_id
        if self.finess_et:
            return "F" + self.finess_et
        return "S" + self.siret


@dataclass(frozen=True, slots=True)
class ActivityRecord:
    """An accepted line: the professional (the same on all their lines) and, when they work in a
    structure, the activity there."""

    line: int
    idnat_ps: str
    identifier_type: str  # "RPPS" / "ADELI" (annuaire.models.IdentifierType)
    rpps: str
    adeli: str
    rpps_key_valid: bool
    civility_code: str
    last_name: str
    first_name: str
    profession_code: str
    profession_label: str
    category_code: str
    specialty_code: str
    specialty_label: str
    specialty_rank: int  # 0 ordinal specialty, 1 another savoir-faire, 2 none: the import keeps the lowest
    site: Site | None
    role_code: str
    exercise_mode: str


def _clip(value: str, length: int) -> str:
    return value if len(value) <= length else value[:length].rstrip()


class RppsRowParser:
    """Turn data lines into records or rejections, with the national code tables of the directory."""

    def __init__(self, header: RppsHeader, codes: Nomenclatures) -> None:
        self.header = header
        self.codes = codes
        self._get = dict(header.positions)

    def parse(self, number: int, text: str) -> ActivityRecord | Rejection:
        fields = text.split(SEPARATOR)
        width = self.header.width
        if len(fields) == width + 1 and fields[-1] == "":
            fields.pop()
        if len(fields) != width:
            return Rejection(
                number,
                f"nombre de colonnes incorrect : {len(fields)} au lieu de {width}",
                text[:RAW_EXCERPT],
                kind=COLUMN_COUNT,
            )
        get = self._get
        role_index = get.get("role")

        def value(attribute: str) -> str:
            return fields[get[attribute]].strip()

        def reject(reason: str, key: str = "") -> Rejection:
            return Rejection(number, reason, text[:RAW_EXCERPT], key)

        # Identity: type, number, and the IdNat_PS that must be the prefixed number.
        id_type, identifier, idnat = value("id_type"), value("identifier"), value("idnat")
        if id_type == RPPS_TYPE:
            if not identifiers.rpps_is_well_formed(identifier):
                return reject(f"numéro RPPS mal formé « {identifier} » : 11 chiffres attendus")
            expected = "8" + identifier
        elif id_type == ADELI_TYPE:
            if not identifiers.adeli_is_well_formed(identifier):
                return reject(f"numéro ADELI mal formé « {identifier} » : 9 chiffres attendus")
            expected = "0" + identifier
        else:
            return reject(f"type d'identifiant PP inconnu « {id_type} » (8 = RPPS, 0 = ADELI)")
        if idnat != expected:
            return reject(
                f"identification nationale PP « {idnat} » incohérente avec l'identifiant : "
                f"« {expected} » attendu"
            )
        key = idnat  # from here on, a rejection still says that this professional is in the file

        last_name = value("last_name")
        if not last_name:
            return reject("nom d'exercice vide", key)
        profession = value("profession")
        profession_label = self.codes.professions.get(profession)
        if profession_label is None:
            return reject(f"code profession inconnu « {profession} » (TRE_G15)", key)
        category = value("category")
        if category and category not in self.codes.professional_categories:
            return reject(f"code catégorie professionnelle inconnu « {category} » (TRE_R09)", key)
        civility = value("civility")
        if civility and civility not in self.codes.civilities:
            return reject(f"code civilité inconnu « {civility} » (TRE_R81)", key)
        specialty = value("specialty")
        if len(specialty) > SPECIALTY_MAX:
            return reject(f"code savoir-faire trop long « {specialty} »", key)
        mode = value("mode")
        if mode and mode not in self.codes.exercise_modes:
            return reject(f"code mode d'exercice inconnu « {mode} » (TRE_R23)", key)

        site, failure = self._site(value)
        if failure:
            return reject(failure, key)
        role = ""
        if site is not None:
            if not mode:
                return reject("activité en structure sans mode d'exercice", key)
            role = fields[role_index].strip() if role_index is not None else ""
            if role and not _ROLE_RE.match(role):
                return reject(f"code rôle invalide « {role} »", key)
            role = role or NO_ROLE

        specialty_label = ""
        rank = 2
        if specialty:
            specialty_label = self.codes.specialty_label(profession, specialty) or value("specialty_label")
            rank = 0 if value("specialty_type") == SPECIALTY_ORDINAL else 1
        is_rpps = id_type == RPPS_TYPE
        return ActivityRecord(
            line=number,
            idnat_ps=idnat,
            identifier_type=identifiers.IdentifierType.RPPS.value
            if is_rpps
            else identifiers.IdentifierType.ADELI.value,
            rpps=identifier if is_rpps else "",
            adeli="" if is_rpps else identifier,
            rpps_key_valid=identifiers.rpps_key_is_valid(identifier) if is_rpps else True,
            civility_code=civility,
            last_name=_clip(last_name, NAME_MAX),
            first_name=_clip(value("first_name"), NAME_MAX),
            profession_code=profession,
            profession_label=_clip(profession_label, LABEL_MAX),
            category_code=category,
            specialty_code=specialty,
            specialty_label=_clip(specialty_label, TEXT_MAX),
            specialty_rank=rank,
            site=site,
            role_code=role,
            exercise_mode=mode if site is not None else "",
        )

    def _site(self, value: Callable[[str], str]) -> tuple[Site | None, str]:
        """The activity's structure (None when the line names none), or a rejection reason."""
        finess_et, finess_ej = value("finess_et"), value("finess_ej")
        siret, siren, technical_id = value("siret"), value("siren"), value("technical_id")
        for label, number in (("FINESS site", finess_et), ("FINESS établissement juridique", finess_ej)):
            if number and not identifiers.finess_is_valid(number):
                if not identifiers.finess_is_well_formed(number):
                    return None, f"numéro {label} mal formé « {number} » : 9 caractères attendus"
                return None, f"numéro {label} « {number} » : clé de contrôle (Luhn) fausse"
        if siret and not identifiers.siret_is_valid(siret):
            return None, f"numéro SIRET site invalide « {siret} » (14 chiffres, clé de Luhn)"
        if siren and not identifiers.siren_is_valid(siren):
            return None, f"numéro SIREN site invalide « {siren} » (9 chiffres, clé de Luhn)"
        if siret and siren and not siret.startswith(siren):
            return None, f"SIRET « {siret} » et SIREN « {siren} » du site incohérents"
        too_long = len(technical_id) > TECHNICAL_ID_MAX
        if technical_id and (too_long or not _TECHNICAL_ID_RE.match(technical_id)):
            return None, f"identifiant technique de structure invalide « {technical_id[:40]} »"
        if not (finess_et or siret or technical_id):
            return None, ""
        sector = value("sector")
        sector_label = ""
        if sector:
            sector_label = self.codes.sectors.get(sector, "")
            if not sector_label:
                return None, f"code secteur d'activité inconnu « {sector} » (TRE_R02)"
        name = value("company_name") or value("trade_name") or value("recipient")
        if not name:
            name = f"Structure {technical_id or finess_et or siret}"
        number = value("street_number") + value("street_repeat")
        street_type = value("street_type") or value("street_type_code")
        address = " ".join(part for part in (number, street_type, value("street")) if part)
        postal_code = value("postal_code")
        if not (len(postal_code) == 5 and postal_code.isdigit()):
            match = _POSTAL_RE.match(value("cedex"))
            postal_code = match.group(0) if match else ""
        commune = value("commune")
        return (
            Site(
                finess_et=finess_et,
                finess_ej=finess_ej,
                siret=siret,
                siren=siret[:9] if siret else siren,
                technical_id=technical_id,
                name=_clip(name, TEXT_MAX),
                address_line=_clip(address, TEXT_MAX),
                postal_code=postal_code,
                commune_code=commune if _COMMUNE_RE.match(commune) else "",
                sector_code=sector,
                sector_label=_clip(sector_label, TEXT_MAX),
            ),
            "",
        )


def check_not_truncated(last: Line | None, outcome: "Rejection | object") -> None:
    """Refuse a file whose last line has no line break and was rejected for its shape (too few columns,
    or cut inside a character): the download was interrupted. `outcome` is what the parser made of it."""
    if last is None or last.terminated or not isinstance(outcome, Rejection):
        return
    if outcome.kind not in (COLUMN_COUNT, UNDECODABLE):
        return
    raise ExtractFormatError(
        f"Fichier tronqué : la dernière ligne (n° {last.number}) est incomplète ({outcome.reason}) et ne se "
        "termine pas par un saut de ligne. Le téléchargement a probablement été interrompu : rien n'a été "
        "importé."
    )
