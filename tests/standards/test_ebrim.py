"""ebRIM SubmitObjectsRequest: build → parse round trip, IHE structure, validation, RPLC."""

import dataclasses
import hashlib

import pytest
from lxml import etree

from enrs.standards import ebrim
from enrs.standards.ebrim import Author, DocumentEntry, SubmissionSet
from enrs.standards.valuesets import Code, class_for_type, lookup

NS = ebrim.XPATH_NS
TEST_INS = "279035121518989"  # ANS test INS (key 89)
INS_TEST_OID = "1.2.250.1.213.1.4.10"
DOC = b"%PDF-1.4 fake pdf body for tests"


def _code(valueset: str, code: str) -> Code:
    found = lookup(valueset, code)
    assert found is not None, (valueset, code)
    return found


def make_entry(**overrides: object) -> DocumentEntry:
    type_code = _code("type_code", "11488-4")
    values: dict[str, object] = {
        "entry_uuid": "urn:uuid:0b1c7f1e-1c1d-4a3b-9d3e-5a6f7e8d9c01",
        "unique_id": "1.2.250.1.999.1.2.3.4^DOC1",
        "patient_id": ebrim.ins_cx(TEST_INS, INS_TEST_OID),
        "source_patient_id": "IPP123^^^&1.2.250.1.999.1.1&ISO^PI",
        "source_patient_info": ("PID-3|IPP123^^^&1.2.250.1.999.1.1&ISO^PI", "PID-5|DUPONT^Jeanne^^^^^L"),
        "class_code": class_for_type(type_code.code),
        "type_code": type_code,
        "confidentiality": (_code("confidentiality", "N"), _code("confidentiality", "MASQUE_PS")),
        "format_code": _code("format_code", "urn:ihe:iti:xds-sd:pdf:2008"),
        "healthcare_facility_type": _code("facility_type", "SA07"),
        "practice_setting": _code("practice_setting", "AMBULATOIRE"),
        "event_codes": (Code("GLUC", "2.16.840.1.113883.6.1", "Glucose"),),
        "creation_time": "20261124101500",
        "service_start_time": "20261124090000",
        "service_stop_time": "20261124100000",
        "title": "CR de consultation — été",
        "comments": "Commentaire avec accents é à",
        "hash_sha1": hashlib.sha1(DOC).hexdigest(),  # noqa: S324 - XDS mandates SHA-1
        "size": len(DOC),
        "uri": "DOC0001.XML",
        "authors": (
            Author(
                person="899700000011^DURAND^Claire^^^^^^&1.2.250.1.71.4.2.1&ISO^D^^^IDNPS",
                institution="Cabinet Durand^^^^^&1.2.250.1.71.4.2.2&ISO^IDNST^^^31234567890123",
                role="Médecin",
                specialty=_code("author_specialty", "G15_10/SM26"),
            ),
        ),
        "legal_authenticator": "899700000011^DURAND^Claire^^^^^^&1.2.250.1.71.4.2.1&ISO^D^^^IDNPS",
        "repository_unique_id": "1.2.250.1.999.9",
        "reference_ids": ("VN123^^^&1.2.250.1.999.2&ISO^urn:ihe:iti:xds:2013:encounterId",),
    }
    values.update(overrides)
    return DocumentEntry(**values)  # type: ignore[arg-type]


def make_submission(**overrides: object) -> SubmissionSet:
    values: dict[str, object] = {
        "entry_uuid": "urn:uuid:5d7c2e10-77aa-4b0e-8f1a-2e3c4d5e6f70",
        "unique_id": "1.2.250.1.999.1.2.3.5",
        "source_id": "1.2.250.1.999.1",
        "patient_id": ebrim.ins_cx(TEST_INS, INS_TEST_OID),
        "submission_time": "20261124101600",
        "content_type": _code("content_type", "07"),
        "authors": make_entry().authors,
        "title": "Lot de soumission",
        "comments": "",
    }
    values.update(overrides)
    return SubmissionSet(**values)  # type: ignore[arg-type]


def test_round_trip_gives_back_the_same_objects() -> None:
    entry = make_entry()
    submission = make_submission()
    xml = ebrim.to_bytes(ebrim.build_submit_objects_request(submission, [entry]))
    assert xml.startswith(b"<?xml")
    parsed_submission, entries, replaces = ebrim.parse_submit_objects_request(xml)
    assert parsed_submission == submission
    assert entries == [entry]
    assert replaces == {}


def test_build_is_deterministic() -> None:
    entry, submission = make_entry(), make_submission()
    first = ebrim.to_bytes(ebrim.build_submit_objects_request(submission, [entry]))
    second = ebrim.to_bytes(ebrim.build_submit_objects_request(submission, [entry]))
    assert first == second


def test_structure_follows_ihe_schemes() -> None:
    entry, submission = make_entry(), make_submission()
    root = ebrim.build_submit_objects_request(submission, [entry])
    assert root.tag == f"{{{ebrim.NS_LCM}}}SubmitObjectsRequest"
    (extrinsic,) = root.xpath("rim:RegistryObjectList/rim:ExtrinsicObject", namespaces=NS)
    assert extrinsic.get("objectType") == "urn:uuid:7edca82f-054d-47f2-a032-9b2a5b5186c1"
    assert extrinsic.get("mimeType") == "text/xml"
    assert extrinsic.get("id") == entry.entry_uuid

    def scheme_codes(scheme: str) -> list[str]:
        return extrinsic.xpath(
            f"rim:Classification[@classificationScheme='{scheme}']/@nodeRepresentation", namespaces=NS
        )

    assert scheme_codes("urn:uuid:41a5887f-8865-4c09-adf7-e362475b143a") == ["10"]  # classCode
    assert scheme_codes("urn:uuid:f0306f51-975f-434e-a61c-c59651d33983") == ["11488-4"]  # typeCode
    assert scheme_codes("urn:uuid:f4f85eac-e6cb-4883-b524-f2705394840f") == ["N", "MASQUE_PS"]
    assert scheme_codes("urn:uuid:a09d5840-386c-46f2-b5ad-9c3699a4309d") == ["urn:ihe:iti:xds-sd:pdf:2008"]
    assert scheme_codes("urn:uuid:f33fb8ac-18af-42cc-ae0e-ed0b0bdb91e1") == ["SA07"]
    assert scheme_codes("urn:uuid:cccf5598-8b07-4b77-a05e-ae952c785ead") == ["AMBULATOIRE"]
    assert scheme_codes("urn:uuid:2c6b8cb7-8b2a-4051-b291-b1ae6a575ef4") == ["GLUC"]
    type_scheme = extrinsic.xpath(
        "rim:Classification[@classificationScheme='urn:uuid:f0306f51-975f-434e-a61c-c59651d33983']"
        "/rim:Slot[@name='codingScheme']/rim:ValueList/rim:Value/text()",
        namespaces=NS,
    )
    assert type_scheme == ["2.16.840.1.113883.6.1"]
    author = extrinsic.xpath(
        "rim:Classification[@classificationScheme='urn:uuid:93606bcf-9494-43ec-9b4e-a7748d1a838d']",
        namespaces=NS,
    )[0]
    assert author.get("nodeRepresentation") == ""
    assert author.xpath(
        "rim:Slot[@name='authorSpecialty']/rim:ValueList/rim:Value/text()", namespaces=NS
    ) == ["G15_10/SM26^Médecin - Qualifié en Médecine Générale (SM)^1.2.250.1.213.1.1.4.5"]
    ext = {
        e.get("identificationScheme"): e.get("value")
        for e in extrinsic.xpath("rim:ExternalIdentifier", namespaces=NS)
    }
    assert ext == {
        "urn:uuid:58a6f841-87b3-4a3e-92fd-a8ffeff98427": f"{TEST_INS}^^^&{INS_TEST_OID}&ISO^NH",
        "urn:uuid:2e82c1f6-a085-4c72-9da3-8640a32e42ab": "1.2.250.1.999.1.2.3.4^DOC1",
    }
    slot_names = extrinsic.xpath("rim:Slot/@name", namespaces=NS)
    for name in (
        "creationTime",
        "languageCode",
        "sourcePatientId",
        "hash",
        "size",
        "URI",
        "legalAuthenticator",
    ):
        assert name in slot_names
    assert "urn:ihe:iti:xds:2013:referenceIdList" in slot_names
    assert extrinsic.xpath("rim:Slot[@name='size']/rim:ValueList/rim:Value/text()", namespaces=NS) == [
        str(len(DOC))
    ]
    # Child order required by the rim schema: Slot*, Name, Description, Classification*, ExternalIdentifier*.
    local = [etree.QName(child).localname for child in extrinsic]
    assert local.index("Name") > max(i for i, n in enumerate(local) if n == "Slot")
    assert local.index("Description") > local.index("Name")
    assert min(i for i, n in enumerate(local) if n == "Classification") > local.index("Description")
    assert min(i for i, n in enumerate(local) if n == "ExternalIdentifier") > max(
        i for i, n in enumerate(local) if n == "Classification"
    )

    (package,) = root.xpath("rim:RegistryObjectList/rim:RegistryPackage", namespaces=NS)
    assert package.get("id") == submission.entry_uuid
    classified = root.xpath(
        "rim:RegistryObjectList/rim:Classification[@classificationNode='urn:uuid:a54d6aa5-d40d-43f9-88c5-b4633d873bdd']"
        "/@classifiedObject",
        namespaces=NS,
    )
    assert classified == [submission.entry_uuid]
    ss_ext = {
        e.get("identificationScheme"): e.get("value")
        for e in package.xpath("rim:ExternalIdentifier", namespaces=NS)
    }
    assert ss_ext == {
        "urn:uuid:96fdda7c-d067-4183-912e-bf5ee74998a8": submission.unique_id,
        "urn:uuid:554ac39e-e3fe-47fe-b233-965d2a147832": submission.source_id,
        "urn:uuid:6b5aea1a-874d-4603-a4bc-96a0a7b38446": submission.patient_id,
    }
    assert package.xpath(
        "rim:Classification[@classificationScheme='urn:uuid:aa543740-bdda-424e-8c96-df4873be8500']/@nodeRepresentation",
        namespaces=NS,
    ) == ["07"]
    assert package.xpath(
        "rim:Classification[@classificationScheme='urn:uuid:a7058bb9-b4e4-4307-ba5b-e3f0ab85e12d']",
        namespaces=NS,
    )
    (member,) = root.xpath("rim:RegistryObjectList/rim:Association", namespaces=NS)
    assert member.get("associationType") == "urn:oasis:names:tc:ebxml-regrep:AssociationType:HasMember"
    assert (member.get("sourceObject"), member.get("targetObject")) == (
        submission.entry_uuid,
        entry.entry_uuid,
    )
    assert member.xpath(
        "rim:Slot[@name='SubmissionSetStatus']/rim:ValueList/rim:Value/text()", namespaces=NS
    ) == ["Original"]
    # Every sub-object id is a urn:uuid, and none repeats.
    ids = root.xpath("//@id")
    assert len(ids) == len(set(ids))
    assert all(str(i).startswith("urn:uuid:") for i in ids)


def test_rplc_association_for_a_replacement() -> None:
    previous = "urn:uuid:11111111-2222-4333-8444-555555555555"
    entry = make_entry()
    root = ebrim.build_submit_objects_request(
        make_submission(), [entry], replaces={entry.entry_uuid: previous}
    )
    rplc = root.xpath(
        "rim:RegistryObjectList/rim:Association[@associationType='urn:ihe:iti:2007:AssociationType:RPLC']",
        namespaces=NS,
    )
    assert len(rplc) == 1
    assert (rplc[0].get("sourceObject"), rplc[0].get("targetObject")) == (entry.entry_uuid, previous)
    _, _, replaces = ebrim.parse_submit_objects_request(ebrim.to_bytes(root))
    assert replaces == {entry.entry_uuid: previous}


def test_replacing_an_entry_not_in_the_submission_is_refused() -> None:
    with pytest.raises(ebrim.EbrimError, match="inconnue"):
        ebrim.build_submit_objects_request(
            make_submission(), [make_entry()], replaces={"urn:uuid:99999999-2222-4333-8444-555555555555": "x"}
        )


def test_metadata_update_carries_lid_and_previous_version() -> None:
    logical = "urn:uuid:11111111-2222-4333-8444-555555555555"
    entry = make_entry(logical_id=logical, confidentiality=(_code("confidentiality", "R"),))
    root = ebrim.build_submit_objects_request(
        make_submission(), [entry], previous_versions={entry.entry_uuid: "1"}
    )
    (extrinsic,) = root.xpath("//rim:ExtrinsicObject", namespaces=NS)
    assert extrinsic.get("lid") == logical
    assert root.xpath(
        "//rim:Association/rim:Slot[@name='PreviousVersion']/rim:ValueList/rim:Value/text()", namespaces=NS
    ) == ["1"]
    _, (parsed,), _ = ebrim.parse_submit_objects_request(root)
    assert parsed.logical_id == logical
    assert parsed.confidentiality == (_code("confidentiality", "R"),)


def test_availability_update_association() -> None:
    submission = make_submission()
    root = ebrim.build_submit_objects_request(submission, [])
    target = "urn:uuid:11111111-2222-4333-8444-555555555555"
    ebrim.add_availability_update(
        root,
        submission_uuid=submission.entry_uuid,
        entry_uuid=target,
        original_status=ebrim.STATUS_APPROVED,
        new_status="urn:asip:ci-sis:2010:StatusType:Archived",
    )
    associations = ebrim.parse_associations(root)
    update = next(a for a in associations if a.association_type == ebrim.ASSOCIATION_UPDATE_AVAILABILITY)
    assert update.target == target
    assert update.slots["NewStatus"] == ("urn:asip:ci-sis:2010:StatusType:Archived",)
    member = next(a for a in associations if a.association_type == ebrim.ASSOCIATION_HAS_MEMBER)
    assert member.target == update.id


def test_valid_entry_has_no_error() -> None:
    assert ebrim.validate_entry(make_entry()) == []
    assert ebrim.validate_submission_set(make_submission()) == []


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"type_code": Code("99999-9", "2.16.840.1.113883.6.1")}, "typeCode « 99999-9 »"),
        ({"class_code": Code("11", "1.2.250.1.213.1.1.4.1")}, "classCode « 11 » incohérent"),
        ({"confidentiality": ()}, "confidentialityCode obligatoire"),
        ({"confidentiality": (Code("SECRET", "2.16.840.1.113883.5.25"),)}, "confidentialityCode « SECRET »"),
        ({"healthcare_facility_type": Code("SA99", "1.2.250.1.71.4.2.4")}, "healthcareFacilityTypeCode"),
        ({"practice_setting": Code("NOPE", "1.2.250.1.213.1.1.4.9")}, "practiceSettingCode"),
        ({"format_code": Code("urn:x:y", "1.3.6.1.4.1.19376.1.2.3")}, "formatCode"),
        ({"patient_id": "279035121518989"}, "mal formé"),
        ({"patient_id": ebrim.ins_cx(TEST_INS, "1.2.3.4")}, "n'est pas un OID d'INS"),
        ({"patient_id": ebrim.ins_cx("279035121518988", INS_TEST_OID)}, "invalide (format ou clé)"),
        ({"hash_sha1": "abc"}, "hash invalide"),
        ({"size": 0}, "size doit être strictement positive"),
        ({"creation_time": "2026-11-24"}, "creationTime"),
        ({"creation_time": "20261324101500"}, "creationTime"),
        ({"service_start_time": "2026112410150"}, "serviceStartTime"),
        ({"entry_uuid": "Document01"}, "entryUUID"),
        ({"unique_id": "abc"}, "uniqueId"),
        ({"unique_id": "1.2.250.1.999^0123456789abcdefXYZ"}, "dépasse 16 caractères"),
        ({"authors": ()}, "Au moins un auteur"),
        ({"legal_authenticator": ""}, "legalAuthenticator obligatoire"),
        ({"source_patient_id": ""}, "sourcePatientId obligatoire"),
    ],
)
def test_validation_errors_are_in_french(overrides: dict[str, object], expected: str) -> None:
    errors = ebrim.validate_entry(make_entry(**overrides))
    assert len(errors) >= 1
    assert any(expected in e for e in errors), errors


def test_uuid_oid_is_a_valid_unique_id() -> None:
    unique_id = ebrim.uuid_oid()
    assert unique_id.startswith("2.25.")
    assert len(unique_id) <= 64
    assert ebrim.validate_entry(make_entry(unique_id=unique_id)) == []
    assert unique_id != ebrim.uuid_oid()


def test_code_with_wrong_system_is_refused() -> None:
    wrong = dataclasses.replace(_code("facility_type", "SA07"), system="1.2.3")
    errors = ebrim.validate_entry(make_entry(healthcare_facility_type=wrong))
    assert errors == ["healthcareFacilityTypeCode « SA07 » (1.2.3) inconnu du jeu de valeurs."]


def test_ins_key_vectors() -> None:
    assert ebrim.ins_key_valid("279035121518989")
    assert not ebrim.ins_key_valid("279035121518988")
    # Corsica: 2A → 19 before the modulo.
    body = "185032A123456"
    key = 97 - int(body.replace("2A", "19")) % 97
    assert ebrim.ins_key_valid(f"{body}{key:02d}")
    assert (
        ebrim.ins_cx("279035121518989", "1.2.250.1.213.1.4.8")
        == "279035121518989^^^&1.2.250.1.213.1.4.8&ISO^NH"
    )


def test_parse_refuses_doctype_and_garbage() -> None:
    evil = b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]><x>&e;</x>'
    with pytest.raises(ebrim.EbrimError, match="DOCTYPE"):
        ebrim.parse_submit_objects_request(evil)
    with pytest.raises(ebrim.EbrimError, match="illisible"):
        ebrim.parse_submit_objects_request(b"<not xml")


def test_parse_requires_a_submission_set_and_identifiers() -> None:
    root = ebrim.build_submit_objects_request(make_submission(), [make_entry()])
    for node in root.xpath("//rim:Classification[@classificationNode]", namespaces=NS):
        node.getparent().remove(node)
    with pytest.raises(ebrim.EbrimError, match="SubmissionSet"):
        ebrim.parse_submit_objects_request(root)
    root = ebrim.build_submit_objects_request(make_submission(), [make_entry()])
    for node in root.xpath(
        "//rim:ExternalIdentifier[@identificationScheme='urn:uuid:2e82c1f6-a085-4c72-9da3-8640a32e42ab']",
        namespaces=NS,
    ):
        node.getparent().remove(node)
    with pytest.raises(ebrim.EbrimError, match="uniqueId"):
        ebrim.parse_document_entries(root)
