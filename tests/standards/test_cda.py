"""CDA R2 level 1: the kit examples, generated documents against the CI-SIS schema, safe parsing."""

import dataclasses
import datetime as dt
import itertools
import re
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from lxml import etree

from enrs.standards import cda
from enrs.standards.build_valuesets import DEFAULT_KIT
from enrs.standards.cda import (
    CdaError,
    CdaLevel1Spec,
    Organization,
    PatientIdentity,
    Person,
    build_cda_level1,
    parse_cda,
    validate_cda,
)
from enrs.standards.valuesets import Code, lookup

EXAMPLES = DEFAULT_KIT / "examples"
KIT_SCHEMA = DEFAULT_KIT / "infrastructure" / "cda"
needs_kit = pytest.mark.skipif(not EXAMPLES.is_dir(), reason="kit CDA de l'ANS absent")
KIT_FILES = [
    "DOC_NON_STRUCTURE_CDA-R2-N1.xml",
    "IMG_CR_IMG_2024.01_CDA-R2-Niveau-1.xml",
    "LDL-SES_2022.01.xml",
    "TLM-CR_2022.01.xml",
    "TLM-DA_2022.01_TCG.xml",
]
PARIS = ZoneInfo("Europe/Paris")
NOW = dt.datetime(2026, 11, 24, 10, 30, tzinfo=PARIS)
PDF = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"
H = {"h": cda.NS}


def _code(name: str, code: str) -> Code:
    found = lookup(name, code)
    assert found is not None
    return found


PATIENT = PatientIdentity(
    ins="279035121518989",
    ins_oid="1.2.250.1.213.1.4.10",
    birth_family_name="PAT-TROIS",
    birth_given_names=("DOMINIQUE", "MARIE-LOUISE"),
    first_given_name="DOMINIQUE",
    sex="F",
    birth_date=dt.date(1979, 3, 28),
    birth_place_insee="51215",
    used_family_name="MARTIN",
)


def make_spec(**changes: object) -> CdaLevel1Spec:
    doctor = Person("810003461033", "DUMAS", "Olivier", specialty_code="G15_10/SM26")
    hospital = Organization("1750803447", "CH de Test")
    spec = CdaLevel1Spec(
        document_id_root="1.2.250.1.999.1.1",
        document_id_extension="DOC-0001",
        set_id_root="1.2.250.1.999.1.2",
        set_id_extension="SET-0001",
        version_number=1,
        type_code=_code("type_code", "85208-7"),
        title="Compte rendu de téléconsultation",
        effective_time=NOW,
        confidentiality=_code("confidentiality", "N"),
        patient=PATIENT,
        author=doctor,
        author_organization=hospital,
        custodian=Organization("1750803448", "GCS e-santé"),
        legal_authenticator=Person("810002422979", "CHARLES", "Pascal", profession_code="10"),
        legal_authentication_time=NOW + dt.timedelta(minutes=5),
        service_start=NOW - dt.timedelta(minutes=30),
        service_end=NOW - dt.timedelta(minutes=10),
        encounter_start=NOW - dt.timedelta(minutes=30),
        encounter_end=None,
        facility_type=_code("facility_type", "SA01"),
        practice_setting=_code("practice_setting", "ETABLISSEMENT"),
        body=PDF,
    )
    return dataclasses.replace(spec, **changes)  # type: ignore[arg-type]


def _read(name: str) -> bytes:
    return (EXAMPLES / name).read_bytes()


# --- Kit examples (published vectors) -----------------------------------------------------------------------


@needs_kit
@pytest.mark.parametrize("name", KIT_FILES)
def test_every_kit_example_is_valid_and_readable(name: str) -> None:
    xml = _read(name)
    assert validate_cda(xml) == []
    parsed = parse_cda(xml)
    assert parsed.ins == "279035121518989"
    assert parsed.ins_oid == "1.2.250.1.213.1.4.10"
    assert parsed.qualified_ins is True
    assert (parsed.patient_family, parsed.patient_given) == ("PAT-TROIS", "DOMINIQUE")
    assert parsed.birth_date == dt.date(1979, 3, 28)


@needs_kit
def test_non_structured_example_fields() -> None:
    parsed = parse_cda(_read("DOC_NON_STRUCTURE_CDA-R2-N1.xml"))
    assert parsed.document_id == "1.3.6.1.4.1.19376.1.2.20.12345.1.1"
    assert parsed.set_id == "1.3.6.1.4.1.19376.1.2.20.12345.1"
    assert parsed.version_number == 1
    assert parsed.type_code == Code("11502-2", "2.16.840.1.113883.6.1", "CR d'examens biologiques")
    assert parsed.title == "Compte rendu d'examens biologiques"
    assert parsed.confidentiality == Code("N", "2.16.840.1.113883.5.25", "Normal")
    assert parsed.effective_time == dt.datetime(
        2021, 4, 1, 13, 47, 45, tzinfo=dt.timezone(dt.timedelta(hours=1))
    )
    assert parsed.body_media_type == "application/pdf"
    assert parsed.body.startswith(b"%PDF")
    assert parsed.body.rstrip().endswith(b"%%EOF")
    assert parsed.birth_given_names == ("DOMINIQUE", "MARIE-LOUISE")
    assert (parsed.patient_sex, parsed.birth_place_insee) == ("F", "51215")
    assert parsed.author_idnat == "801234534765"
    assert parsed.author_specialty == Code(
        "G15_10/SM03", "1.2.250.1.213.1.1.4.5", "Médecin - Biologie médicale (SM)"
    )
    assert parsed.author_organization_idnat == "1120459876"
    assert parsed.legal_authenticator_idnat == "807505123456"
    assert parsed.facility_type == Code("SA07", "1.2.250.1.71.4.2.4", "Cabinet individuel")
    assert parsed.practice_setting is not None
    assert parsed.practice_setting.code == "AMBULATOIRE"
    assert parsed.replaces == ""


@needs_kit
def test_imaging_example_replaces_a_previous_version() -> None:
    parsed = parse_cda(_read("IMG_CR_IMG_2024.01_CDA-R2-Niveau-1.xml"))
    assert parsed.replaces == "90E1C8EC-F951-4B26-A305-A34848818DD6"
    assert parsed.type_code.code == "18748-4"


@needs_kit
def test_structured_example_has_no_binary_body() -> None:
    parsed = parse_cda(_read("LDL-SES_2022.01.xml"))
    assert (parsed.body_media_type, parsed.body) == ("", b"")
    assert parsed.type_code.code == "11490-0"


# --- Generated documents ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("type_code", "confidentiality"),
    list(itertools.product(["11488-4", "85208-7", "75496-0", "18748-4"], "NRV")),
)
def test_generated_documents_are_schema_valid(type_code: str, confidentiality: str) -> None:
    spec = make_spec(
        type_code=_code("type_code", type_code), confidentiality=_code("confidentiality", confidentiality)
    )
    xml = build_cda_level1(spec)
    assert validate_cda(xml) == []
    parsed = parse_cda(xml)
    assert parsed.type_code == _code("type_code", type_code)
    assert parsed.confidentiality.code == confidentiality


def test_generated_header_follows_the_kit() -> None:
    root = etree.fromstring(build_cda_level1(make_spec()))
    assert root.xpath("h:realmCode/@code", namespaces=H) == ["FR"]
    assert root.xpath("h:typeId/@extension", namespaces=H) == ["POCD_HD000040"]
    assert root.xpath("h:templateId/@root", namespaces=H) == list(cda.TEMPLATE_IDS)
    assert root.xpath("h:languageCode/@code", namespaces=H) == ["fr-FR"]
    assert root.xpath("h:effectiveTime/@value", namespaces=H) == ["20261124103000+0100"]
    assert root.xpath("h:code/@codeSystemName", namespaces=H) == ["LOINC"]
    patient = "h:recordTarget/h:patientRole"
    assert root.xpath(f"{patient}/h:id/@root", namespaces=H) == ["1.2.250.1.213.1.4.10"]
    name = f"{patient}/h:patient/h:name"
    assert root.xpath(f"{name}/h:family[@qualifier='BR']/text()", namespaces=H) == ["PAT-TROIS"]
    assert root.xpath(f"{name}/h:family[@qualifier='CL']/text()", namespaces=H) == ["MARTIN"]
    assert root.xpath(f"{name}/h:given[not(@qualifier)]/text()", namespaces=H) == ["DOMINIQUE MARIE-LOUISE"]
    assert root.xpath(f"{name}/h:given[@qualifier='BR']/text()", namespaces=H) == ["DOMINIQUE"]
    assert root.xpath(f"{patient}/h:patient/h:birthTime/@value", namespaces=H) == ["19790328"]
    county = f"{patient}/h:patient/h:birthplace/h:place/h:addr/h:county/text()"
    assert root.xpath(county, namespaces=H) == ["51215"]
    author = "h:author/h:assignedAuthor"
    assert root.xpath(f"{author}/h:id/@root", namespaces=H) == ["1.2.250.1.71.4.2.1"]
    assert root.xpath(f"{author}/h:code/@code", namespaces=H) == ["G15_10/SM26"]
    assert root.xpath(f"{author}/h:code/@codeSystem", namespaces=H) == ["1.2.250.1.213.1.1.4.5"]
    org = f"{author}/h:representedOrganization"
    assert root.xpath(f"{org}/h:id/@root", namespaces=H) == ["1.2.250.1.71.4.2.2"]
    legal = "h:legalAuthenticator/h:assignedEntity/h:code/@code"
    assert root.xpath(legal, namespaces=H) == ["G15_10"]
    setting = ".//h:serviceEvent/h:performer//h:standardIndustryClassCode/@code"
    assert root.xpath(setting, namespaces=H) == ["ETABLISSEMENT"]
    facility = "h:componentOf/h:encompassingEncounter/h:location/h:healthCareFacility/h:code/@code"
    assert root.xpath(facility, namespaces=H) == ["SA01"]
    assert root.xpath("h:relatedDocument", namespaces=H) == []
    text = root.find("h:component/h:nonXMLBody/h:text", H)
    assert text is not None
    assert (text.get("mediaType"), text.get("representation")) == ("application/pdf", "B64")


def test_replacement_version_carries_rplc_and_validates() -> None:
    spec = make_spec(
        document_id_extension="DOC-0002", version_number=2, replaces=("1.2.250.1.999.1.1", "DOC-0001")
    )
    xml = build_cda_level1(spec)
    assert validate_cda(xml) == []
    root = etree.fromstring(xml)
    assert root.xpath("h:relatedDocument/@typeCode", namespaces=H) == ["RPLC"]
    parsed = parse_cda(xml)
    assert parsed.version_number == 2
    assert parsed.replaces == "1.2.250.1.999.1.1^DOC-0001"
    assert parsed.set_id == "1.2.250.1.999.1.2^SET-0001"


def test_round_trip_keeps_the_fields() -> None:
    spec = make_spec(body_media_type="text/plain", body=b"Compte rendu : RAS.", encounter_end=NOW)
    parsed = parse_cda(build_cda_level1(spec))
    assert parsed.document_id == "1.2.250.1.999.1.1^DOC-0001"
    assert parsed.title == spec.title
    assert parsed.type_code == spec.type_code
    assert parsed.confidentiality == spec.confidentiality
    assert parsed.effective_time == NOW
    assert (parsed.ins, parsed.ins_oid, parsed.qualified_ins) == (PATIENT.ins, PATIENT.ins_oid, True)
    assert (parsed.patient_family, parsed.patient_given) == ("PAT-TROIS", "DOMINIQUE")
    assert parsed.birth_given_names == PATIENT.birth_given_names
    assert (parsed.birth_date, parsed.patient_sex, parsed.birth_place_insee) == (
        PATIENT.birth_date,
        "F",
        "51215",
    )
    assert (parsed.body_media_type, parsed.body) == ("text/plain", spec.body)
    assert parsed.author_idnat == "810003461033"
    assert parsed.author_organization_idnat == "1750803447"
    assert parsed.legal_authenticator_idnat == "810002422979"
    assert parsed.facility_type == spec.facility_type
    assert parsed.practice_setting == spec.practice_setting
    assert (parsed.service_start, parsed.service_end) == (spec.service_start, spec.service_end)


def test_patient_without_ins_traits_is_not_qualified() -> None:
    no_birthplace = dataclasses.replace(PATIENT, birth_place_insee="")
    assert parse_cda(build_cda_level1(make_spec(patient=no_birthplace))).qualified_ins is False
    ipp = dataclasses.replace(PATIENT, ins="IPP-42", ins_oid="1.2.250.1.999.9")
    parsed = parse_cda(build_cda_level1(make_spec(patient=ipp)))
    assert (parsed.ins, parsed.ins_oid, parsed.qualified_ins) == ("", "", False)
    unknown_sex = dataclasses.replace(PATIENT, sex="U")
    assert parse_cda(build_cda_level1(make_spec(patient=unknown_sex))).qualified_ins is False


def test_large_bodies_are_read_back() -> None:
    body = PDF + b"\0" * (9 * 1024 * 1024)  # base64 text above libxml2's default 10 MB node limit
    assert parse_cda(build_cda_level1(make_spec(body=body))).body == body


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"effective_time": dt.datetime(2026, 11, 24, 10, 30)}, "fuseau horaire"),
        ({"type_code": Code("99999-9", "2.16.840.1.113883.6.1")}, "JDV_J07"),
        ({"confidentiality": Code("MASQUE_PS", "1.2.250.1.213.1.1.4.13")}, "N, R ou V"),
        ({"facility_type": Code("SA99", "1.2.250.1.71.4.2.4")}, "J02"),
        ({"type_code": Code("11488-4", "1.2.250.1.213.1.1.4.12")}, "JDV_J07"),  # right code, wrong system
        ({"practice_setting": Code("NOPE", "1.2.250.1.213.1.1.4.9")}, "J04"),
        ({"body": b"not a pdf"}, "PDF"),
        ({"body": b""}, "contenu"),
        ({"body_media_type": "application/zip"}, "non pris en charge"),
        ({"version_number": 0}, "version"),
        ({"author": Person("810003461033", "DUMAS", "Olivier", specialty_code="G15_10/SM99")}, "J01"),
        ({"patient": dataclasses.replace(PATIENT, sex="X")}, "Sexe"),
    ],
)
def test_build_refuses_what_a_document_cannot_carry(changes: dict[str, object], message: str) -> None:
    with pytest.raises(CdaError, match=message):
        build_cda_level1(make_spec(**changes))


# --- Validation errors and unsafe input ---------------------------------------------------------------------


def test_tampered_document_fails_with_readable_errors() -> None:
    root = etree.fromstring(build_cda_level1(make_spec()))
    target = root.find("h:recordTarget", H)
    assert target is not None
    root.remove(target)
    errors = validate_cda(etree.tostring(root))
    assert errors
    assert all(re.match(r"ligne \d+ : ", error) for error in errors)
    assert any("recordTarget" in error for error in errors)
    assert not any("{urn:hl7-org:v3}" in error for error in errors)


BOMB = b"""<?xml version="1.0"?>
<!DOCTYPE ClinicalDocument [
  <!ENTITY a "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa">
  <!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">
  <!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;">
  <!ENTITY d "&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;">
]>
<ClinicalDocument xmlns="urn:hl7-org:v3"><title>&d;</title></ClinicalDocument>"""
EXTERNAL = b"""<?xml version="1.0"?>
<!DOCTYPE ClinicalDocument [<!ENTITY x SYSTEM "file:///etc/passwd">]>
<ClinicalDocument xmlns="urn:hl7-org:v3"><title>&x;</title></ClinicalDocument>"""


@pytest.mark.parametrize("xml", [BOMB, EXTERNAL], ids=["entity-bomb", "external-entity"])
def test_doctype_and_entities_are_refused(xml: bytes) -> None:
    with pytest.raises(CdaError, match="DOCTYPE"):
        parse_cda(xml)
    errors = validate_cda(xml)
    assert len(errors) == 1
    assert "DOCTYPE" in errors[0]


def test_bad_input_gives_french_errors() -> None:
    with pytest.raises(CdaError, match="mal formé"):
        parse_cda(b"<ClinicalDocument")
    with pytest.raises(CdaError, match="ClinicalDocument"):
        parse_cda(b"<html/>")
    with pytest.raises(CdaError, match="incomplet"):
        parse_cda(b'<ClinicalDocument xmlns="urn:hl7-org:v3"/>')
    assert validate_cda(b"not xml")[0].startswith("Document XML mal formé")


def test_time_stamps() -> None:
    plus_one = dt.timezone(dt.timedelta(hours=1))
    assert cda.parse_ts("20210401134745+0100") == dt.datetime(2021, 4, 1, 13, 47, 45, tzinfo=plus_one)
    assert cda.parse_ts("202101040735+0100") == dt.datetime(2021, 1, 4, 7, 35, tzinfo=plus_one)
    assert cda.parse_ts("20200701134745") == dt.datetime(2020, 7, 1, 13, 47, 45, tzinfo=PARIS)
    assert cda.parse_ts("19790328") == dt.datetime(1979, 3, 28, tzinfo=PARIS)
    assert cda.parse_ts("2021-04-01") is None
    assert cda.parse_ts("20211341") is None
    minus = dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.timezone(-dt.timedelta(hours=3, minutes=30)))
    assert cda.hl7_ts(minus) == "20260102030405-0330"
    assert cda.hl7_ts(dt.datetime(2026, 7, 1, 12, tzinfo=PARIS)) == "20260701120000+0200"


# --- Vendored schema ----------------------------------------------------------------------------------------

SCHEMA_DIR = cda.SCHEMA_FILE.parent


def _closure(start: Path) -> set[Path]:
    """Every schema file reachable from `start` through xs:include / xs:import (local files only)."""
    seen: set[Path] = set()
    todo = [start]
    while todo:
        path = todo.pop().resolve()
        if path in seen or not path.exists():
            continue
        seen.add(path)
        tree = etree.parse(
            str(path), etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)
        )
        for ref in tree.iterfind(".//{http://www.w3.org/2001/XMLSchema}*[@schemaLocation]"):
            location = ref.get("schemaLocation", "")
            if ref.tag.endswith(("}include", "}import")) and "://" not in location:
                todo.append(path.parent / location)
    return seen


def test_vendored_schema_is_exactly_what_cda_extended_needs() -> None:
    vendored = {p.resolve() for p in SCHEMA_DIR.rglob("*.xsd")}
    assert _closure(cda.SCHEMA_FILE) == vendored
    assert (SCHEMA_DIR / "README.md").exists()


@pytest.mark.skipif(not KIT_SCHEMA.is_dir(), reason="kit CDA de l'ANS absent")
def test_vendored_schema_is_identical_to_the_kit() -> None:
    files = sorted(p.relative_to(SCHEMA_DIR) for p in SCHEMA_DIR.rglob("*.xsd"))
    assert len(files) == 14
    for relative in files:
        assert (SCHEMA_DIR / relative).read_bytes() == (KIT_SCHEMA / relative).read_bytes(), relative


def test_the_module_has_no_django_import() -> None:
    assert "django" not in Path(cda.__file__).read_text(encoding="utf-8")
