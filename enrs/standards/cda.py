"""CDA R2 level 1 documents (structured French header, base64 body) for the DMP, telemedicine, MSSanté.

* ``build_cda_level1(spec)`` writes the document, modelled on the CI-SIS kit examples
  ``DOC_NON_STRUCTURE_CDA-R2-N1.xml`` and ``TLM-CR_2022.01.xml`` (standards.md §4);
* ``validate_cda(xml)`` checks it against the CI-SIS schema ``CDA_extended.xsd`` (vendored in ``schema/``);
* ``parse_cda(xml)`` reads the header fields the DMP and the inboxes need from any CDA R2 document.

Untrusted XML is parsed without DTD, entities or network; a DOCTYPE is refused. Pure code: no Django import.
"""

import base64
import binascii
import datetime as dt
import re
import threading
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import TypedDict
from zoneinfo import ZoneInfo

from lxml import etree

from enrs.patients.ins import INS_OIDS, InsTraits
from enrs.standards import valuesets
from enrs.standards.valuesets import LOINC, Code

NS = "urn:hl7-org:v3"
XSI = "http://www.w3.org/2001/XMLSchema-instance"
SCHEMA_FILE = Path(__file__).resolve().parent / "schema" / "CDA_extended.xsd"
MAX_CDA_BYTES = 40 * 1024 * 1024  # larger documents are refused before parsing

IDNAT_PS_OID = "1.2.250.1.71.4.2.1"
IDNAT_STRUCT_OID = "1.2.250.1.71.4.2.2"
SPECIALTY_SYSTEM = "1.2.250.1.213.1.1.4.5"  # TRE_G15 (J01 authorSpecialty)
GENDER_SYSTEM = "2.16.840.1.113883.5.1"
CONFIDENTIALITY_SYSTEM = "2.16.840.1.113883.5.25"
TEMPLATE_IDS = (
    "2.16.840.1.113883.2.8.2.1",  # HL7 France
    "1.2.250.1.213.1.1.1.1",  # CI-SIS
    "1.3.6.1.4.1.19376.1.2.20",  # IHE XDS-SD (non-structured body)
)
GENDER_LABELS = {"M": "Masculin", "F": "Féminin", "U": "Inconnu"}
_FRANCE = ZoneInfo("Europe/Paris")  # time of a TS written without offset (French documents)


class CdaError(ValueError):
    """A CDA document cannot be built or read; the message is French, for the user."""


@dataclass(frozen=True)
class PatientIdentity:
    ins: str
    ins_oid: str
    birth_family_name: str
    birth_given_names: tuple[str, ...]
    first_given_name: str
    sex: str  # "M" | "F" | "U"
    birth_date: dt.date
    birth_place_insee: str
    used_family_name: str = ""


@dataclass(frozen=True)
class Person:
    idnat_ps: str
    family: str
    given: str
    profession_code: str = ""  # "G15_10" (or "10")
    specialty_code: str = ""  # "G15_10/SM26"; wins over profession_code


@dataclass(frozen=True)
class Organization:
    idnat_struct: str
    name: str


@dataclass(frozen=True, kw_only=True)
class CdaLevel1Spec:
    document_id_root: str
    document_id_extension: str
    set_id_root: str
    set_id_extension: str
    version_number: int
    type_code: Code  # J07
    title: str
    effective_time: dt.datetime  # aware
    confidentiality: Code  # N, R or V
    patient: PatientIdentity
    author: Person
    author_organization: Organization
    custodian: Organization
    legal_authenticator: Person
    legal_authentication_time: dt.datetime
    service_start: dt.datetime
    service_end: dt.datetime | None
    encounter_start: dt.datetime
    encounter_end: dt.datetime | None
    facility_type: Code  # J02
    practice_setting: Code  # J04
    body_media_type: str = "application/pdf"
    body: bytes
    replaces: tuple[str, str] | None = None  # (root, extension) of the previous version: relatedDocument RPLC
    service_code: Code | None = None  # documentationOf/serviceEvent/code (act), when known


@dataclass(frozen=True)
class ParsedCda:
    document_id: str  # "root^extension", or "root" without extension (XDS uniqueId)
    set_id: str
    version_number: int
    type_code: Code
    title: str
    confidentiality: Code
    effective_time: dt.datetime | None
    ins: str
    ins_oid: str
    qualified_ins: bool  # an INS OID and all five traits
    patient_family: str
    patient_given: str
    birth_date: dt.date | None
    body_media_type: str  # "" for a structured body
    body: bytes  # b"" for a structured body
    patient_sex: str = ""
    birth_given_names: tuple[str, ...] = ()
    birth_place_insee: str = ""
    author_idnat: str = ""
    author_specialty: Code | None = None
    author_organization_idnat: str = ""
    legal_authenticator_idnat: str = ""
    facility_type: Code | None = None
    practice_setting: Code | None = None
    service_start: dt.datetime | None = None
    service_end: dt.datetime | None = None
    replaces: str = ""  # "root^extension" of the replaced version (relatedDocument RPLC)


# --- Building ----------------------------------------------------------------------------------------------


def _q(tag: str) -> str:
    return f"{{{NS}}}{tag}"


def _sub(parent: etree._Element, tag: str, text: str | None = None, **attrs: str) -> etree._Element:
    element = etree.SubElement(parent, _q(tag), {k: v for k, v in attrs.items() if v})
    if text is not None:
        element.text = text
    return element


def hl7_ts(moment: dt.datetime) -> str:
    """An aware datetime as an HL7 TS with its offset, as the kit writes it: ``20210401134745+0100``."""
    offset = moment.utcoffset()
    if offset is None:
        raise CdaError("Date et heure sans fuseau horaire : impossible de les écrire dans le document CDA.")
    minutes = int(offset.total_seconds()) // 60
    sign = "+" if minutes >= 0 else "-"
    return f"{moment:%Y%m%d%H%M%S}{sign}{abs(minutes) // 60:02d}{abs(minutes) % 60:02d}"


def _coded(parent: etree._Element, tag: str, code: Code, **extra: str) -> etree._Element:
    return _sub(parent, tag, code=code.code, codeSystem=code.system, displayName=code.display, **extra)


def _ii(parent: etree._Element, root: str, extension: str = "") -> etree._Element:
    return _sub(parent, "id", root=root, extension=extension)


def _person_code(person: Person) -> Code | None:
    code = person.specialty_code or person.profession_code
    if not code:
        return None
    if re.fullmatch(r"\d{2}", code):
        code = f"G15_{code}"
    found = valuesets.lookup("author_specialty", code)
    if found is None:
        raise CdaError(f"Profession ou spécialité inconnue (JDV_J01) : « {code} ».")
    return found


def _person_name(parent: etree._Element, person: Person) -> None:
    name = _sub(_sub(parent, "assignedPerson"), "name")
    _sub(name, "given", person.given)
    _sub(name, "family", person.family)


def _organization(parent: etree._Element, tag: str, org: Organization, setting: Code | None = None) -> None:
    element = _sub(parent, tag)
    _ii(element, IDNAT_STRUCT_OID, org.idnat_struct)
    _sub(element, "name", org.name)
    if setting is not None:
        _coded(element, "standardIndustryClassCode", setting, codeSystemName="practiceSettingCode")


def _interval(parent: etree._Element, start: dt.datetime, end: dt.datetime | None) -> None:
    effective = _sub(parent, "effectiveTime")
    _sub(effective, "low", value=hl7_ts(start))
    if end is not None:
        _sub(effective, "high", value=hl7_ts(end))


def _check(spec: CdaLevel1Spec) -> None:
    """French errors for a spec the document cannot carry."""
    checks = [
        ("type_code", spec.type_code, "Type de document inconnu (JDV_J07)"),
        ("facility_type", spec.facility_type, "Type d'établissement inconnu (J02)"),
        ("practice_setting", spec.practice_setting, "Cadre d'exercice inconnu (J04)"),
    ]
    for table, given, message in checks:
        found = valuesets.lookup(table, given.code)
        if found is None or found.system != given.system:
            raise CdaError(f"{message} : « {given.code} » ({given.system}).")
    if spec.confidentiality.system != CONFIDENTIALITY_SYSTEM or spec.confidentiality.code not in {
        "N",
        "R",
        "V",
    }:
        raise CdaError("Le niveau de confidentialité d'un document CDA doit être N, R ou V.")
    if spec.version_number < 1:
        raise CdaError("Le numéro de version du document doit être un entier positif.")
    if spec.patient.sex not in GENDER_LABELS:
        raise CdaError("Sexe du patient inconnu (M, F ou U attendu).")
    if not spec.patient.ins or not spec.patient.ins_oid:
        raise CdaError("Identifiant du patient manquant.")
    if not spec.document_id_root or not spec.set_id_root or not spec.title.strip():
        raise CdaError("Identifiant, lot de versions et titre du document sont obligatoires.")
    if not spec.body:
        raise CdaError("Le document n'a pas de contenu.")
    try:
        valuesets.format_for_media_type(spec.body_media_type)
    except KeyError:
        raise CdaError(f"Format de contenu non pris en charge : « {spec.body_media_type} ».") from None
    if spec.body_media_type == "application/pdf" and not spec.body.startswith(b"%PDF"):
        raise CdaError("Le contenu annoncé PDF n'est pas un fichier PDF.")


def _record_target(root: etree._Element, patient: PatientIdentity) -> None:
    role = _sub(_sub(root, "recordTarget"), "patientRole")
    _ii(role, patient.ins_oid, patient.ins)
    person = _sub(role, "patient", classCode="PSN")
    name = _sub(person, "name")
    _sub(name, "family", patient.birth_family_name, qualifier="BR")
    _sub(name, "given", " ".join(patient.birth_given_names))
    _sub(name, "given", patient.first_given_name, qualifier="BR")
    if patient.used_family_name:
        _sub(name, "family", patient.used_family_name, qualifier="CL")
    _sub(
        person,
        "administrativeGenderCode",
        code=patient.sex,
        displayName=GENDER_LABELS[patient.sex],
        codeSystem=GENDER_SYSTEM,
    )
    _sub(person, "birthTime", value=f"{patient.birth_date:%Y%m%d}")
    if patient.birth_place_insee:
        addr = _sub(_sub(_sub(person, "birthplace"), "place"), "addr")
        _sub(addr, "county", patient.birth_place_insee)


def _header(root: etree._Element, spec: CdaLevel1Spec) -> None:
    _sub(root, "realmCode", code="FR")
    _sub(root, "typeId", root="2.16.840.1.113883.1.3", extension="POCD_HD000040")
    for template in TEMPLATE_IDS:
        _sub(root, "templateId", root=template)
    _ii(root, spec.document_id_root, spec.document_id_extension)
    name = "LOINC" if spec.type_code.system == LOINC else ""
    _coded(root, "code", spec.type_code, codeSystemName=name)
    _sub(root, "title", spec.title)
    _sub(root, "effectiveTime", value=hl7_ts(spec.effective_time))
    _coded(root, "confidentialityCode", spec.confidentiality, codeSystemName="Confidentiality")
    _sub(root, "languageCode", code="fr-FR")
    _sub(root, "setId", root=spec.set_id_root, extension=spec.set_id_extension)
    _sub(root, "versionNumber", value=str(spec.version_number))


def _participants(root: etree._Element, spec: CdaLevel1Spec) -> None:
    author = _sub(root, "author")
    _sub(author, "time", value=hl7_ts(spec.effective_time))
    assigned = _sub(author, "assignedAuthor")
    _ii(assigned, IDNAT_PS_OID, spec.author.idnat_ps)
    if (code := _person_code(spec.author)) is not None:
        _coded(assigned, "code", code)
    _person_name(assigned, spec.author)
    _organization(assigned, "representedOrganization", spec.author_organization, spec.practice_setting)

    custodian = _sub(_sub(root, "custodian"), "assignedCustodian")
    _organization(custodian, "representedCustodianOrganization", spec.custodian)

    legal = _sub(root, "legalAuthenticator")
    _sub(legal, "time", value=hl7_ts(spec.legal_authentication_time))
    _sub(legal, "signatureCode", code="S")
    entity = _sub(legal, "assignedEntity")
    _ii(entity, IDNAT_PS_OID, spec.legal_authenticator.idnat_ps)
    if (code := _person_code(spec.legal_authenticator)) is not None:
        _coded(entity, "code", code)
    _person_name(entity, spec.legal_authenticator)


def _context(root: etree._Element, spec: CdaLevel1Spec) -> None:
    event = _sub(_sub(root, "documentationOf"), "serviceEvent", classCode="ACT")
    if spec.service_code is not None:
        _coded(event, "code", spec.service_code)
    _interval(event, spec.service_start, spec.service_end)
    performer = _sub(_sub(event, "performer", typeCode="PRF"), "assignedEntity")
    _ii(performer, IDNAT_PS_OID, spec.author.idnat_ps)
    _person_name(performer, spec.author)
    # The practice setting (J04) rides on the performer's organization, as in the kit examples.
    _organization(performer, "representedOrganization", spec.author_organization, spec.practice_setting)

    if spec.replaces is not None:
        parent = _sub(_sub(root, "relatedDocument", typeCode="RPLC"), "parentDocument")
        _ii(parent, *spec.replaces)

    encounter = _sub(_sub(root, "componentOf"), "encompassingEncounter")
    _interval(encounter, spec.encounter_start, spec.encounter_end)
    facility = _sub(_sub(encounter, "location"), "healthCareFacility")
    _coded(facility, "code", spec.facility_type, codeSystemName="healthCareFacilityTypeCode")


def build_cda_level1(spec: CdaLevel1Spec) -> bytes:
    """The CDA R2 level-1 document (UTF-8 XML bytes). Raises CdaError (French) on a spec it cannot carry."""
    _check(spec)
    root = etree.Element(_q("ClinicalDocument"), nsmap={None: NS, "xsi": XSI})
    _header(root, spec)
    _record_target(root, spec.patient)
    _participants(root, spec)
    _context(root, spec)
    body = _sub(_sub(_sub(root, "component"), "nonXMLBody"), "text")
    body.set("mediaType", spec.body_media_type)
    body.set("representation", "B64")
    body.text = base64.b64encode(spec.body).decode("ascii")
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True)


# --- Safe parsing and validation ---------------------------------------------------------------------------


def _parse_untrusted(xml: bytes) -> etree._ElementTree:
    """Parse outside XML: no DTD, no entity expansion, no network; a DOCTYPE is refused."""
    if len(xml) > MAX_CDA_BYTES:
        raise CdaError(f"Document trop volumineux (plus de {MAX_CDA_BYTES // (1024 * 1024)} Mo).")
    parser = etree.XMLParser(
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        dtd_validation=False,
        huge_tree=True,  # base64 bodies exceed libxml2's 10 MB text node limit; size is capped above
        remove_pis=True,
    )
    try:
        tree = etree.ElementTree(etree.fromstring(xml, parser))
    except etree.XMLSyntaxError as exc:
        raise CdaError(f"Document XML mal formé : {exc}") from None
    if tree.docinfo.doctype or tree.docinfo.internalDTD is not None:
        raise CdaError("Document refusé : une déclaration DOCTYPE (DTD, entités) est interdite.")
    return tree


@cache
def _schema() -> etree.XMLSchema:
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)
    return etree.XMLSchema(etree.parse(str(SCHEMA_FILE), parser))


_SCHEMA_LOCK = threading.Lock()  # an XMLSchema's error log is shared by the threads that use it


def validate_cda(xml: bytes) -> list[str]:
    """Errors of the document against the CI-SIS schema CDA_extended.xsd, in reading order; [] = valid.

    Unreadable or unsafe XML (not well formed, DOCTYPE, too large) gives a single error, never an exception.
    """
    try:
        tree = _parse_untrusted(xml)
    except CdaError as exc:
        return [str(exc)]
    with _SCHEMA_LOCK:
        schema = _schema()
        if schema.validate(tree):
            return []
        errors = list(schema.error_log)
    return [f"ligne {error.line} : {error.message.replace('{' + NS + '}', '')}" for error in errors]


# --- Reading -----------------------------------------------------------------------------------------------

_TS = re.compile(r"^(\d{4})(\d{2})?(\d{2})?(\d{2})?(\d{2})?(\d{2})?(?:\.\d+)?([+-]\d{4})?$")


def parse_ts(value: str) -> dt.datetime | None:
    """An HL7 TS as an aware datetime (missing offset read as French time), None when empty or invalid."""
    match = _TS.match(value.strip())
    if not match:
        return None
    year, month, day, hour, minute, second, offset = match.groups()
    try:
        moment = dt.datetime(
            int(year), int(month or 1), int(day or 1), int(hour or 0), int(minute or 0), int(second or 0)
        )
    except ValueError:
        return None
    if offset is None:
        return moment.replace(tzinfo=_FRANCE)
    minutes = int(offset[1:3]) * 60 + int(offset[3:5])
    return moment.replace(tzinfo=dt.timezone(dt.timedelta(minutes=minutes if offset[0] == "+" else -minutes)))


def _find(element: etree._Element | None, path: str) -> etree._Element | None:
    if element is None:
        return None
    return element.find(path, {"h": NS})


def _all(element: etree._Element | None, path: str) -> list[etree._Element]:
    return [] if element is None else list(element.iterfind(path, {"h": NS}))


def _attr(element: etree._Element | None, name: str) -> str:
    return "" if element is None else str(element.get(name, "")).strip()


def _text(element: etree._Element | None) -> str:
    return "" if element is None else " ".join("".join(element.itertext()).split())


def _code(element: etree._Element | None) -> Code | None:
    if element is None or not element.get("code"):
        return None
    return Code(_attr(element, "code"), _attr(element, "codeSystem"), _attr(element, "displayName"))


def _id(element: etree._Element | None) -> str:
    root, extension = _attr(element, "root"), _attr(element, "extension")
    return f"{root}^{extension}" if extension else root


def _body(document: etree._Element) -> tuple[str, bytes]:
    text = _find(document, "h:component/h:nonXMLBody/h:text")
    if text is None:
        return "", b""
    content = "".join(text.itertext())
    if _attr(text, "representation").upper() != "B64":
        return _attr(text, "mediaType") or "text/plain", content.encode("utf-8")
    try:
        return _attr(text, "mediaType"), base64.b64decode("".join(content.split()), validate=True)
    except (binascii.Error, ValueError):
        raise CdaError("Le contenu base64 du document est illisible.") from None


class _PatientFields(TypedDict):
    ins: str
    ins_oid: str
    qualified_ins: bool
    patient_family: str
    patient_given: str
    birth_date: dt.date | None
    patient_sex: str
    birth_given_names: tuple[str, ...]
    birth_place_insee: str


def _practice_setting(document: etree._Element, author: etree._Element | None) -> Code | None:
    """J04 code: on the service performer's organization (kit examples), else on the author's."""
    path = "h:standardIndustryClassCode"
    performer = _find(document, "h:documentationOf/h:serviceEvent/h:performer/h:assignedEntity")
    found = _find(_find(performer, "h:representedOrganization"), path)
    if found is None:
        found = _find(_find(author, "h:representedOrganization"), path)
    return _code(found)


def _patient(document: etree._Element) -> _PatientFields:
    role = _find(document, "h:recordTarget/h:patientRole")
    ins_id = next((i for i in _all(role, "h:id") if _attr(i, "root") in INS_OIDS), None)
    person = _find(role, "h:patient")
    names = _all(person, "h:name")
    name = names[0] if names else None
    family_br = _find(name, "h:family[@qualifier='BR']")
    given_br = _find(name, "h:given[@qualifier='BR']")
    givens = [_text(g) for g in _all(name, "h:given") if not g.get("qualifier")]
    birth = _attr(_find(person, "h:birthTime"), "value")
    birth_time = parse_ts(birth) if len(birth) >= 8 else None
    traits = InsTraits(
        birth_family_name=_text(family_br),
        birth_given_names=tuple(" ".join(givens).split()),
        first_given_name=_text(given_br),
        sex=_attr(_find(person, "h:administrativeGenderCode"), "code"),
        birth_date_iso=birth_time.date().isoformat() if birth_time else "",
        birth_place_insee=_text(_find(person, "h:birthplace/h:place/h:addr/h:county")),
    )
    return {
        "ins": _attr(ins_id, "extension"),
        "ins_oid": _attr(ins_id, "root"),
        "qualified_ins": ins_id is not None and bool(_attr(ins_id, "extension")) and not traits.missing(),
        "patient_family": traits.birth_family_name or _text(_find(name, "h:family")),
        "patient_given": traits.first_given_name or (givens[0].split()[0] if givens and givens[0] else ""),
        "birth_date": birth_time.date() if birth_time else None,
        "patient_sex": traits.sex,
        "birth_given_names": traits.birth_given_names,
        "birth_place_insee": traits.birth_place_insee,
    }


def parse_cda(xml: bytes) -> ParsedCda:
    """The header fields of a CDA R2 document and its non-structured body. CdaError on bad or unsafe XML."""
    document = _parse_untrusted(xml).getroot()
    if document.tag != _q("ClinicalDocument"):
        raise CdaError("Ce n'est pas un document CDA R2 (élément racine ClinicalDocument attendu).")
    type_code = _code(_find(document, "h:code"))
    confidentiality = _code(_find(document, "h:confidentialityCode"))
    if type_code is None or confidentiality is None or _find(document, "h:id") is None:
        raise CdaError("En-tête CDA incomplet : identifiant, type ou confidentialité du document manquant.")
    version = _attr(_find(document, "h:versionNumber"), "value") or "1"
    if not version.isdigit():
        raise CdaError(f"Numéro de version du document invalide : « {version} ».")
    media_type, body = _body(document)
    author = _find(document, "h:author/h:assignedAuthor")
    event_time = _find(document, "h:documentationOf/h:serviceEvent/h:effectiveTime")
    return ParsedCda(
        document_id=_id(_find(document, "h:id")),
        set_id=_id(_find(document, "h:setId")),
        version_number=int(version),
        type_code=type_code,
        title=_text(_find(document, "h:title")),
        confidentiality=confidentiality,
        effective_time=parse_ts(_attr(_find(document, "h:effectiveTime"), "value")),
        body_media_type=media_type,
        body=body,
        author_idnat=_attr(_find(author, f"h:id[@root='{IDNAT_PS_OID}']"), "extension"),
        author_specialty=_code(_find(author, "h:code")),
        author_organization_idnat=_attr(
            _find(author, f"h:representedOrganization/h:id[@root='{IDNAT_STRUCT_OID}']"), "extension"
        ),
        legal_authenticator_idnat=_attr(
            _find(document, f"h:legalAuthenticator/h:assignedEntity/h:id[@root='{IDNAT_PS_OID}']"),
            "extension",
        ),
        facility_type=_code(
            _find(document, "h:componentOf/h:encompassingEncounter/h:location/h:healthCareFacility/h:code")
        ),
        practice_setting=_practice_setting(document, author),
        service_start=parse_ts(_attr(_find(event_time, "h:low"), "value")),
        service_end=parse_ts(_attr(_find(event_time, "h:high"), "value")),
        replaces=_id(_find(document, "h:relatedDocument[@typeCode='RPLC']/h:parentDocument/h:id")),
        **_patient(document),
    )
