"""The DMP double, started as a real HTTPS process and driven with the ENRS XDS client code
(`enrs.standards.cda`/`ebrim`, `dmp.standards.iti`/`vihf`) presenting the ORG client certificate."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import os
import re
import socket
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import httpx
import pytest
from lxml import etree

from dmp.standards import iti, vihf
from enrs.standards import ebrim, valuesets
from enrs.standards.cda import (
    CdaLevel1Spec,
    Organization,
    PatientIdentity,
    Person,
    build_cda_level1,
    parse_cda,
)
from tests.dmp.dmp_double_fixture import (
    STRUCTURE_ID,
    TEST_INS,
    TEST_INS_OID,
    DmpDoubleHandle,
    running_dmp_double,
)
from tests.helpers import wait_until

pytestmark = pytest.mark.integration

PATIENT_CX = ebrim.ins_cx(TEST_INS, TEST_INS_OID)
OTHER_INS = "180017512345678"  # not registered in the double
OTHER_STRUCTURE = "1130783236"
AUTHOR = Person("899700000011", "DURAND", "Claire", specialty_code="G15_10/SM26")
MASQUE_PS = valuesets.lookup("confidentiality", "MASQUE_PS")
NORMAL = valuesets.lookup("confidentiality", "N")


def code(name: str, value: str) -> valuesets.Code:
    found = valuesets.lookup(name, value)
    assert found is not None, (name, value)
    return found


@pytest.fixture(scope="module")
def double(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DmpDoubleHandle]:
    with running_dmp_double(
        tmp_path_factory.mktemp("dmp-double"), extra_args=["--max-body", "4000000"]
    ) as dmp:
        yield dmp


@pytest.fixture
def dmp(double: DmpDoubleHandle) -> Iterator[DmpDoubleHandle]:
    double.reset()
    double.add_patient(TEST_INS)
    yield double
    double.clear_faults()


@pytest.fixture
def http(dmp: DmpDoubleHandle) -> Iterator[httpx.Client]:
    with dmp.client() as client:
        yield client


# --- building requests with the ENRS client code --------------------------------------------------------


def assertion(
    dmp: DmpDoubleHandle, *, structure_id: str = STRUCTURE_ID, patient_cx: str = PATIENT_CX
) -> bytes:
    org = dmp.organisation(structure_id)
    claims = vihf.VihfClaims(
        idnat_ps=AUTHOR.idnat_ps,
        subject_name="DURAND Claire",
        structure_id=structure_id,
        activity_sector="SA07^1.2.250.1.71.4.2.4",
        profession=vihf.CodedValue("10", vihf.PROFESSION_SYSTEM, "professions", "Médecin"),
        patient_ins_cx=patient_cx,
        lps_id="ENRS",
        lps_name="ENRS",
        lps_version="1.0",
    )
    return vihf.build_vihf(claims, cert_pem=org.cert_pem, key_pem=org.key_pem)


@dataclass(frozen=True)
class Doc:
    content: bytes
    entry: ebrim.DocumentEntry


def make_doc(*, ins: str = TEST_INS, type_code: str = "11488-4") -> Doc:
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    spec = CdaLevel1Spec(
        document_id_root="1.2.250.1.213.1.1.9.999.2",
        document_id_extension=uuid.uuid4().hex,
        set_id_root="1.2.250.1.213.1.1.9.999.3",
        set_id_extension=uuid.uuid4().hex,
        version_number=1,
        type_code=code("type_code", type_code),
        title="Compte rendu de consultation",
        effective_time=now,
        confidentiality=code("confidentiality", "N"),
        patient=PatientIdentity(
            ins=ins,
            ins_oid=TEST_INS_OID,
            birth_family_name="PAT-TROIS",
            birth_given_names=("DOMINIQUE", "MARIE-LOUISE"),
            first_given_name="DOMINIQUE",
            sex="F",
            birth_date=dt.date(1979, 3, 28),
            birth_place_insee="51215",
        ),
        author=AUTHOR,
        author_organization=Organization(STRUCTURE_ID, "Cabinet de test"),
        custodian=Organization(STRUCTURE_ID, "Cabinet de test"),
        legal_authenticator=AUTHOR,
        legal_authentication_time=now,
        service_start=now - dt.timedelta(hours=1),
        service_end=now,
        encounter_start=now - dt.timedelta(hours=1),
        encounter_end=now,
        facility_type=code("facility_type", "SA07"),
        practice_setting=code("practice_setting", "AMBULATOIRE"),
        body=b"%PDF-1.4\n" + os.urandom(30_000) + b"\n%%EOF\n",
    )
    content = build_cda_level1(spec)
    parsed = parse_cda(content)
    patient_cx = ebrim.ins_cx(ins, TEST_INS_OID)
    entry = ebrim.DocumentEntry(
        entry_uuid=ebrim.new_uuid(),
        unique_id=parsed.document_id,
        patient_id=patient_cx,
        source_patient_id=patient_cx,
        source_patient_info=("PID-5|PAT-TROIS^DOMINIQUE^^^^^L", "PID-7|19790328", "PID-8|F"),
        class_code=valuesets.class_for_type(type_code),
        type_code=code("type_code", type_code),
        confidentiality=(code("confidentiality", "N"),),
        format_code=valuesets.format_for_media_type("application/pdf"),
        healthcare_facility_type=code("facility_type", "SA07"),
        practice_setting=code("practice_setting", "AMBULATOIRE"),
        creation_time=now.strftime("%Y%m%d%H%M%S"),
        title="Compte rendu de consultation",
        authors=(
            ebrim.Author(
                person=f"{AUTHOR.idnat_ps}^DURAND^Claire^^^^^^&1.2.250.1.71.4.2.1&ISO^D^^^IDNPS",
                institution=f"Cabinet de test^^^^^&1.2.250.1.71.4.2.2&ISO^IDNST^^^{STRUCTURE_ID}",
            ),
        ),
        legal_authenticator=f"{AUTHOR.idnat_ps}^DURAND^Claire^^^^^^&1.2.250.1.71.4.2.1&ISO^D^^^IDNPS",
    )
    return Doc(content, entry)


def submission(patient_cx: str = PATIENT_CX) -> ebrim.SubmissionSet:
    return ebrim.SubmissionSet(
        entry_uuid=ebrim.new_uuid(),
        unique_id=f"1.2.250.1.213.1.1.9.999.4.{uuid.uuid4().int}",
        source_id="1.2.250.1.213.1.1.9.999.5",
        patient_id=patient_cx,
        submission_time=dt.datetime.now(dt.UTC).strftime("%Y%m%d%H%M%S"),
        content_type=code("content_type", "07"),
    )


def iti41(dmp: DmpDoubleHandle, docs: list[Doc], *, replaces: dict[str, str] | None = None, **vihf_args: str):
    request = ebrim.build_submit_objects_request(
        submission(docs[0].entry.patient_id), [d.entry for d in docs], replaces=replaces or {}
    )
    return iti.build_iti41(
        request,
        {d.entry.entry_uuid: d.content for d in docs},
        assertion(dmp, **vihf_args),
        to_url=dmp.repository_url,
    )


def post(http: httpx.Client, url: str, message: tuple[bytes, str]) -> httpx.Response:
    body, content_type = message
    return http.post(url, content=body, headers={"Content-Type": content_type})


def register(
    dmp: DmpDoubleHandle, http: httpx.Client, docs: list[Doc], **kwargs: object
) -> iti.RegistryResult:
    response = post(http, dmp.repository_url, iti41(dmp, docs, **kwargs))  # type: ignore[arg-type]
    return iti.parse_registry_response(response.content, response.headers["content-type"])


def find(dmp: DmpDoubleHandle, http: httpx.Client, **kwargs: object) -> iti.QueryResult:
    structure_id = str(kwargs.pop("structure_id", STRUCTURE_ID))
    message = iti.build_iti18_find_documents(
        PATIENT_CX,
        assertion(dmp, structure_id=structure_id),
        to_url=dmp.registry_url,
        **kwargs,  # type: ignore[arg-type]
    )
    response = post(http, dmp.registry_url, message)
    assert response.status_code == 200, response.text
    return iti.parse_iti18_response(response.content, response.headers["content-type"])


def retrieve(
    dmp: DmpDoubleHandle, http: httpx.Client, unique_id: str, *, structure_id: str = STRUCTURE_ID
) -> iti.RetrieveResult:
    message = iti.build_iti43(
        [iti.DocumentRequest(dmp.repository_id, unique_id)],
        assertion(dmp, structure_id=structure_id),
        to_url=dmp.repository_url,
    )
    response = post(http, dmp.repository_url, message)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("multipart/related")
    return iti.parse_iti43_response(response.content, response.headers["content-type"])


def error_codes(result: iti.RegistryResult) -> list[str]:
    return [e.code for e in result.errors if e.is_error]


# --- TLS --------------------------------------------------------------------------------------------------


def test_client_without_certificate_is_refused_at_tls(dmp: DmpDoubleHandle) -> None:
    with dmp.client(client_cert=False) as anonymous, pytest.raises(httpx.TransportError):
        anonymous.get(f"{dmp.base_url}/_control/health")
    assert dmp.requests() == []


# --- ITI-41 / ITI-43 / ITI-18 ----------------------------------------------------------------------------


def test_provide_and_register_then_retrieve_bit_identical_and_find(
    dmp: DmpDoubleHandle, http: httpx.Client
) -> None:
    doc = make_doc()
    result = register(dmp, http, [doc])
    assert result.success, result.summary()
    assert error_codes(result) == []

    stored = dmp.documents()
    assert len(stored) == 1
    assert stored[0]["unique_id"] == doc.entry.unique_id
    assert stored[0]["hash"] == hashlib.sha1(doc.content).hexdigest()  # noqa: S324 - XDS hash
    assert stored[0]["size"] == len(doc.content)
    assert stored[0]["status"] == ebrim.STATUS_APPROVED
    assert stored[0]["submitter"] == {"structure_id": STRUCTURE_ID, "subject_id": AUTHOR.idnat_ps}

    retrieved = retrieve(dmp, http, doc.entry.unique_id)
    assert retrieved.result.success
    assert len(retrieved.documents) == 1
    assert retrieved.documents[0].content == doc.content
    assert retrieved.documents[0].mime_type == "text/xml"
    assert retrieved.documents[0].repository_unique_id == dmp.repository_id

    found = find(dmp, http)
    assert found.result.success
    assert [e.unique_id for e in found.entries] == [doc.entry.unique_id]
    listed = found.entries[0]
    assert listed.entry_uuid == doc.entry.entry_uuid
    assert listed.hash_sha1 == hashlib.sha1(doc.content).hexdigest()  # noqa: S324
    assert listed.size == len(doc.content)
    assert listed.repository_unique_id == dmp.repository_id
    assert listed.type_code == doc.entry.type_code
    assert [c.code for c in listed.confidentiality] == ["N"]


def test_inline_base64_request_without_mtom_is_accepted(dmp: DmpDoubleHandle, http: httpx.Client) -> None:
    doc = make_doc()
    body = etree.Element(
        f"{{{iti.NS_XDSB}}}ProvideAndRegisterDocumentSetRequest", nsmap={"xdsb": iti.NS_XDSB}
    )
    body.append(ebrim.build_submit_objects_request(submission(), [doc.entry]))
    document = etree.SubElement(body, f"{{{iti.NS_XDSB}}}Document", id=doc.entry.entry_uuid)
    document.text = base64.b64encode(doc.content).decode()
    envelope = iti.soap_envelope(
        action="urn:ihe:iti:2007:ProvideAndRegisterDocumentSet-b",
        body=body,
        to_url=dmp.repository_url,
        assertion_xml=assertion(dmp),
    )
    response = post(
        http, dmp.repository_url, iti.plain_soap(envelope, "urn:ihe:iti:2007:ProvideAndRegisterDocumentSet-b")
    )
    assert response.headers["content-type"].startswith("application/soap+xml")
    result = iti.parse_registry_response(response.content, response.headers["content-type"])
    assert result.success, result.summary()
    assert retrieve(dmp, http, doc.entry.unique_id).documents[0].content == doc.content


def _tamper_slot(message: tuple[bytes, str], name: str, new_value: str) -> tuple[bytes, str]:
    body, content_type = message
    pattern = re.compile(
        rb'(<rim:Slot name="' + name.encode() + rb'"><rim:ValueList><rim:Value>)([^<]*)(</rim:Value>)'
    )
    tampered, count = pattern.subn(lambda m: m.group(1) + new_value.encode() + m.group(3), body)
    assert count == 1
    return tampered, content_type


@pytest.mark.parametrize(
    ("slot", "value", "expected"),
    [("hash", "0" * 40, "XDSNonIdenticalHash"), ("size", "12", "XDSNonIdenticalSize")],
)
def test_hash_or_size_mismatch_is_refused(
    dmp: DmpDoubleHandle, http: httpx.Client, slot: str, value: str, expected: str
) -> None:
    doc = make_doc()
    response = post(http, dmp.repository_url, _tamper_slot(iti41(dmp, [doc]), slot, value))
    result = iti.parse_registry_response(response.content, response.headers["content-type"])
    assert not result.success
    assert error_codes(result) == [expected]
    assert result.errors[0].location == doc.entry.entry_uuid
    assert dmp.documents() == []


def test_unknown_closed_or_opposed_patient_is_refused(dmp: DmpDoubleHandle, http: httpx.Client) -> None:
    other_cx = ebrim.ins_cx(OTHER_INS, TEST_INS_OID)
    result = register(dmp, http, [make_doc(ins=OTHER_INS)], patient_cx=other_cx)
    assert error_codes(result) == ["XDSUnknownPatientId"]

    dmp.add_patient(OTHER_INS, status="closed")
    result = register(dmp, http, [make_doc(ins=OTHER_INS)], patient_cx=other_cx)
    assert error_codes(result) == ["XDSUnknownPatientId"]
    assert "fermé" in result.errors[0].context

    dmp.add_patient(OTHER_INS, status="opposed")
    result = register(dmp, http, [make_doc(ins=OTHER_INS)], patient_cx=other_cx)
    assert error_codes(result) == ["XDSUnknownPatientId"]
    assert "opposé" in result.errors[0].context

    dmp.add_patient(OTHER_INS, status="open")
    assert register(dmp, http, [make_doc(ins=OTHER_INS)], patient_cx=other_cx).success
    assert [d["ins"] for d in dmp.documents()] == [OTHER_INS]


def test_patient_other_than_the_vihf_resource_is_refused(dmp: DmpDoubleHandle, http: httpx.Client) -> None:
    dmp.add_patient(OTHER_INS)
    result = register(dmp, http, [make_doc()], patient_cx=ebrim.ins_cx(OTHER_INS, TEST_INS_OID))
    assert "XDSPatientIdDoesNotMatch" in error_codes(result)
    assert dmp.documents() == []


def test_code_outside_the_value_set_is_a_metadata_error(dmp: DmpDoubleHandle, http: httpx.Client) -> None:
    doc = make_doc()
    bad = Doc(
        doc.content,
        replace(doc.entry, practice_setting=valuesets.Code("CHIRURGIE_LUNAIRE", "1.2.250.1.213.1.1.4.9")),
    )
    result = register(dmp, http, [bad])
    assert error_codes(result) == ["XDSRegistryMetadataError"]
    assert "practiceSettingCode" in result.errors[0].context
    assert "CHIRURGIE_LUNAIRE" in result.errors[0].context
    assert result.errors[0].location == doc.entry.entry_uuid
    assert dmp.documents() == []


def test_type_code_different_from_the_cda_is_a_metadata_error(
    dmp: DmpDoubleHandle, http: httpx.Client
) -> None:
    doc = make_doc()
    bad = Doc(doc.content, replace(doc.entry, type_code=code("type_code", "11490-0")))
    result = register(dmp, http, [bad])
    assert error_codes(result) == ["XDSRegistryMetadataError"]
    assert "typeCode" in result.errors[0].context


def test_duplicate_unique_id_is_refused(dmp: DmpDoubleHandle, http: httpx.Client) -> None:
    doc = make_doc()
    assert register(dmp, http, [doc]).success
    again = Doc(doc.content, replace(doc.entry, entry_uuid=ebrim.new_uuid()))
    result = register(dmp, http, [again])
    assert error_codes(result) == ["XDSDuplicateUniqueIdInRegistry"]
    assert len(dmp.documents()) == 1


def test_replacement_deprecates_the_previous_entry(dmp: DmpDoubleHandle, http: httpx.Client) -> None:
    first = make_doc()
    assert register(dmp, http, [first]).success
    second = make_doc()
    result = register(dmp, http, [second], replaces={second.entry.entry_uuid: first.entry.entry_uuid})
    assert result.success, result.summary()
    by_uid = {d["unique_id"]: d for d in dmp.documents()}
    assert by_uid[first.entry.unique_id]["status"] == ebrim.STATUS_DEPRECATED
    assert by_uid[first.entry.unique_id]["replaced_by"] == second.entry.entry_uuid
    assert by_uid[second.entry.unique_id]["replaces"] == first.entry.entry_uuid
    assert [e.unique_id for e in find(dmp, http).entries] == [second.entry.unique_id]
    deprecated = find(dmp, http, statuses=(ebrim.STATUS_DEPRECATED,))
    assert [e.unique_id for e in deprecated.entries] == [first.entry.unique_id]


# --- VIHF -------------------------------------------------------------------------------------------------


def _fault(response: httpx.Response) -> iti.RegistryResult:
    result = iti.parse_registry_response(response.content, response.headers["content-type"])
    assert result.fault
    return result


def test_tampered_vihf_is_a_sender_fault(dmp: DmpDoubleHandle, http: httpx.Client) -> None:
    body, content_type = iti41(dmp, [make_doc()])
    tampered = body.replace(b"DURAND Claire", b"DUPONT Pierre", 1)
    assert tampered != body
    response = http.post(dmp.repository_url, content=tampered, headers={"Content-Type": content_type})
    assert response.status_code == 400
    result = _fault(response)
    assert result.errors[0].code == "wsse:FailedCheck"
    assert "Signature du VIHF invalide" in result.errors[0].context
    assert dmp.documents() == []


def test_unsigned_vihf_is_a_sender_fault(dmp: DmpDoubleHandle, http: httpx.Client) -> None:
    body, content_type = iti41(dmp, [make_doc()])
    unsigned = re.sub(rb"<ds:Signature .*?</ds:Signature>", b"", body, count=1, flags=re.S)
    assert unsigned != body
    response = http.post(dmp.repository_url, content=unsigned, headers={"Content-Type": content_type})
    assert response.status_code == 400
    assert "non signée" in _fault(response).errors[0].context


def test_vihf_signed_outside_the_trusted_ca_is_a_sender_fault(
    dmp: DmpDoubleHandle, http: httpx.Client
) -> None:
    from enrs.accounts.pki_testing import issue_organisation

    foreign = issue_organisation(
        issuer=dmp.pki.unknown_root,
        now=dt.datetime.now(dt.UTC),
        common_name="LPS inconnu",
        idnat_struct=STRUCTURE_ID,
        organisation="Inconnue",
    )
    claims = vihf.VihfClaims(
        idnat_ps=AUTHOR.idnat_ps,
        subject_name="DURAND Claire",
        structure_id=STRUCTURE_ID,
        activity_sector="SA07^1.2.250.1.71.4.2.4",
        profession=vihf.CodedValue("10", vihf.PROFESSION_SYSTEM),
        patient_ins_cx=PATIENT_CX,
        lps_id="X",
        lps_name="X",
        lps_version="1",
    )
    token = vihf.build_vihf(claims, cert_pem=foreign.cert_pem, key_pem=foreign.key_pem)
    doc = make_doc()
    message = iti.build_iti41(
        ebrim.build_submit_objects_request(submission(), [doc.entry]),
        {doc.entry.entry_uuid: doc.content},
        token,
        to_url=dmp.repository_url,
    )
    response = post(http, dmp.repository_url, message)
    assert response.status_code == 400
    assert "autorité de confiance" in _fault(response).errors[0].context


def test_expired_vihf_is_a_sender_fault(dmp: DmpDoubleHandle, http: httpx.Client) -> None:
    org = dmp.organisation(STRUCTURE_ID)
    claims = vihf.VihfClaims(
        idnat_ps=AUTHOR.idnat_ps,
        subject_name="DURAND Claire",
        structure_id=STRUCTURE_ID,
        activity_sector="SA07^1.2.250.1.71.4.2.4",
        profession=vihf.CodedValue("10", vihf.PROFESSION_SYSTEM),
        patient_ins_cx=PATIENT_CX,
        lps_id="X",
        lps_name="X",
        lps_version="1",
    )
    token = vihf.build_vihf(
        claims,
        cert_pem=org.cert_pem,
        key_pem=org.key_pem,
        now=dt.datetime.now(dt.UTC) - dt.timedelta(hours=1),
    )
    message = iti.build_iti18_find_documents(PATIENT_CX, token, to_url=dmp.registry_url)
    response = post(http, dmp.registry_url, message)
    assert response.status_code == 400
    result = iti.parse_iti18_response(response.content, response.headers["content-type"])
    assert result.result.fault
    assert result.result.errors[0].code == "wsse:MessageExpired"


# --- ITI-57 and visibility -------------------------------------------------------------------------------


def test_metadata_update_masks_the_document_from_other_structures(
    dmp: DmpDoubleHandle, http: httpx.Client
) -> None:
    doc = make_doc()
    assert register(dmp, http, [doc]).success
    current = find(dmp, http).entries[0]
    assert MASQUE_PS is not None
    assert NORMAL is not None
    request = iti.build_confidentiality_update(
        entry=current, confidentiality=(NORMAL, MASQUE_PS), submission=submission(), previous_version="1"
    )
    message = iti.build_iti57(request, assertion(dmp), to_url=dmp.registry_url)
    response = post(http, dmp.registry_url, message)
    result = iti.parse_registry_response(response.content, response.headers["content-type"])
    assert result.success, result.summary()

    mine = find(dmp, http).entries
    assert len(mine) == 1
    assert mine[0].unique_id == doc.entry.unique_id
    assert mine[0].entry_uuid != doc.entry.entry_uuid
    assert mine[0].logical_id == doc.entry.entry_uuid
    assert {c.code for c in mine[0].confidentiality} == {"N", "MASQUE_PS"}
    old = find(dmp, http, statuses=(ebrim.STATUS_DEPRECATED,)).entries
    assert [e.entry_uuid for e in old] == [doc.entry.entry_uuid]
    assert [c.code for c in old[0].confidentiality] == ["N"]

    # Another structure's professional sees nothing and cannot retrieve the document.
    assert find(dmp, http, structure_id=OTHER_STRUCTURE).entries == []
    hidden = retrieve(dmp, http, doc.entry.unique_id, structure_id=OTHER_STRUCTURE)
    assert not hidden.result.success
    assert error_codes(hidden.result) == ["XDSDocumentUniqueIdError"]
    # The author's structure still retrieves it, bit-identical.
    assert retrieve(dmp, http, doc.entry.unique_id).documents[0].content == doc.content

    # Updating from a stale version is refused.
    stale = iti.build_confidentiality_update(
        entry=current, confidentiality=(NORMAL,), submission=submission(), previous_version="1"
    )
    response = post(http, dmp.registry_url, iti.build_iti57(stale, assertion(dmp), to_url=dmp.registry_url))
    result = iti.parse_registry_response(response.content, response.headers["content-type"])
    assert not result.success
    assert error_codes(result) == ["XDSMetadataVersionError"]


def test_availability_update_archives_the_entry(dmp: DmpDoubleHandle, http: httpx.Client) -> None:
    doc = make_doc()
    assert register(dmp, http, [doc]).success
    archived = "urn:asip:ci-sis:2010:StatusType:Archived"
    request = iti.build_availability_update(
        entry_uuid=doc.entry.entry_uuid,
        submission=submission(),
        original_status=ebrim.STATUS_APPROVED,
        new_status=archived,
    )
    response = post(http, dmp.registry_url, iti.build_iti57(request, assertion(dmp), to_url=dmp.registry_url))
    result = iti.parse_registry_response(response.content, response.headers["content-type"])
    assert result.success, result.summary()
    assert [d["status"] for d in dmp.documents()] == [archived]
    assert find(dmp, http).entries == []
    assert [e.unique_id for e in find(dmp, http, statuses=(archived,)).entries] == [doc.entry.unique_id]

    # The same change again: the original status no longer matches.
    response = post(http, dmp.registry_url, iti.build_iti57(request, assertion(dmp), to_url=dmp.registry_url))
    result = iti.parse_registry_response(response.content, response.headers["content-type"])
    assert error_codes(result) == ["XDSMetadataUpdateError"]


# --- fault injection ---------------------------------------------------------------------------------------


def test_hang_then_recover(dmp: DmpDoubleHandle) -> None:
    dmp.add_fault("hang", seconds=3, transactions=["ITI-41"])
    doc = make_doc()
    body, content_type = iti41(dmp, [doc])
    with dmp.client(timeout=1.0) as impatient, pytest.raises(httpx.TimeoutException):
        impatient.post(dmp.repository_url, content=body, headers={"Content-Type": content_type})
    with dmp.client(timeout=10.0) as patient:
        result = register(dmp, patient, [doc])
    assert result.success, result.summary()
    assert [d["unique_id"] for d in dmp.documents()] == [doc.entry.unique_id]
    outcomes = [r["outcome"] for r in dmp.requests() if r.get("transaction") == "ITI-41"]
    assert outcomes == ["fault:hang", "Success"]


def test_hang_then_process_makes_the_retry_a_duplicate(dmp: DmpDoubleHandle) -> None:
    """A timeout does not mean "not stored": the slow answer was processed, the retry is a duplicate."""
    dmp.add_fault("hang", seconds=1.5, then="process")
    doc = make_doc()
    body, content_type = iti41(dmp, [doc])
    with dmp.client(timeout=0.5) as impatient, pytest.raises(httpx.TimeoutException):
        impatient.post(dmp.repository_url, content=body, headers={"Content-Type": content_type})
    with dmp.client() as client:
        wait_until(lambda: len(dmp.documents()) == 1, timeout=10, what="slow ITI-41 processed")
        result = register(dmp, client, [doc])
    assert error_codes(result) == ["XDSDuplicateUniqueIdInRegistry"]


def test_connection_reset_fault(dmp: DmpDoubleHandle, http: httpx.Client) -> None:
    dmp.add_fault("reset", paths=["/registry"])
    message = iti.build_iti18_find_documents(PATIENT_CX, assertion(dmp), to_url=dmp.registry_url)
    with pytest.raises(httpx.TransportError):
        post(http, dmp.registry_url, message)
    assert find(dmp, http).result.success


def test_http_503_then_recover(dmp: DmpDoubleHandle, http: httpx.Client) -> None:
    dmp.add_fault("http", status=503, count=2)
    doc = make_doc()
    message = iti41(dmp, [doc])
    assert post(http, dmp.repository_url, message).status_code == 503
    assert post(http, dmp.repository_url, message).status_code == 503
    assert dmp.documents() == []
    result = register(dmp, http, [doc])
    assert result.success


def test_injected_registry_error(dmp: DmpDoubleHandle, http: httpx.Client) -> None:
    dmp.add_fault("registry_error", error_code="XDSRegistryBusy", code_context="Plateforme saturée")
    result = register(dmp, http, [make_doc()])
    assert not result.success
    assert error_codes(result) == ["XDSRegistryBusy"]
    assert result.errors[0].context == "Plateforme saturée"
    assert dmp.documents() == []


def test_bad_fault_rule_is_rejected(dmp: DmpDoubleHandle) -> None:
    with pytest.raises(RuntimeError, match="400"):
        dmp.add_fault("explode")


# --- robustness --------------------------------------------------------------------------------------------


def test_malformed_and_unsafe_requests_get_faults_not_crashes(
    dmp: DmpDoubleHandle, http: httpx.Client
) -> None:
    soap = {"Content-Type": "application/soap+xml; charset=UTF-8"}
    response = http.post(dmp.repository_url, content=b"<soap:Envelope", headers=soap)
    assert response.status_code == 400
    assert "mal formé" in _fault(response).errors[0].context

    bomb = (
        b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;">]>'
        b'<soap:Envelope xmlns:soap="http://www.w3.org/2003/05/soap-envelope"><soap:Body>&b;</soap:Body>'
        b"</soap:Envelope>"
    )
    response = http.post(dmp.repository_url, content=bomb, headers=soap)
    assert response.status_code == 400
    assert "DOCTYPE" in _fault(response).errors[0].context

    response = http.post(dmp.repository_url, content=b"hello", headers={"Content-Type": "text/plain"})
    assert response.status_code == 415

    soap11 = b'<e:Envelope xmlns:e="http://schemas.xmlsoap.org/soap/envelope/"><e:Body/></e:Envelope>'
    response = http.post(dmp.registry_url, content=soap11, headers=soap)
    assert response.status_code == 400
    assert _fault(response).errors[0].code == "soap:VersionMismatch"

    assert http.get(dmp.repository_url).status_code == 405
    assert http.post(f"{dmp.base_url}/nowhere", content=b"").status_code == 404
    assert http.get(f"{dmp.base_url}/_control/health").json()["status"] == "ok"


def test_oversized_body_gets_413_without_being_read(dmp: DmpDoubleHandle) -> None:
    context = dmp.ssl_context()
    with (
        socket.create_connection(("127.0.0.1", dmp.port), timeout=5) as raw,
        context.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
    ):
        tls.sendall(
            b"POST /repository HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"Content-Type: application/soap+xml\r\nContent-Length: 999999999\r\n\r\n"
        )
        answer = tls.recv(4096)
    assert answer.startswith(b"HTTP/1.1 413")


# --- durability ------------------------------------------------------------------------------------------


def test_restart_keeps_documents_and_patients(dmp: DmpDoubleHandle, http: httpx.Client) -> None:
    doc = make_doc()
    assert register(dmp, http, [doc]).success
    before = dmp.documents()
    dmp.restart()
    assert dmp.documents() == before
    assert [p["ins"] for p in dmp.control("GET", "patients")] == [TEST_INS]
    with dmp.client() as fresh:
        assert retrieve(dmp, fresh, doc.entry.unique_id).documents[0].content == doc.content
        assert [e.unique_id for e in find(dmp, fresh).entries] == [doc.entry.unique_id]
    state = Path(dmp.data_dir / "state.json")
    assert doc.entry.unique_id in state.read_text(encoding="utf-8")


# --- pure pieces of the double ----------------------------------------------------------------------------


def test_mtom_round_trip_keeps_binary_attachments_bit_identical() -> None:
    from devtools.dmp_double import mime

    payload = (
        bytes(range(256)) * 8 + b"\r\n--MIMEBoundary_not_the_real_one\r\n\r\n" + os.urandom(4096) + b"\r\n"
    )
    content_type, body = mime.build(
        b"<env/>", [("doc1@test", "application/pdf", payload), ("e@t", "x/y", b"")]
    )
    package = mime.split(content_type, body)
    assert package.mtom
    assert package.envelope == b"<env/>"
    assert package.attachments == {"doc1@test": payload, "e@t": b""}


@pytest.mark.parametrize(
    ("content_type", "body", "message"),
    [
        ("application/json", b"{}", "non pris en charge"),
        ('multipart/related; type="application/xop+xml"', b"--x\r\n\r\n", "boundary"),
        (
            'multipart/related; boundary="b"',
            b"--b\r\nContent-Type: application/xop+xml\r\n\r\n<e/>",
            "incomplet",
        ),
        (
            'multipart/related; boundary="b"; start="<nope>"',
            b"--b\r\nContent-ID: <r>\r\n\r\n<e/>\r\n--b--",
            "start",
        ),
    ],
)
def test_mtom_split_rejects_malformed_packages(content_type: str, body: bytes, message: str) -> None:
    from devtools.dmp_double import mime

    with pytest.raises(mime.MimeError, match=message):
        mime.split(content_type, body)


def test_stored_query_values_and_patient_ids_are_read_like_the_registry() -> None:
    from devtools.dmp_double.metadata import query_values
    from devtools.dmp_double.vihf import split_patient_id

    assert query_values(["('urn:a', 'urn:b')", "'c'"]) == ["urn:a", "urn:b", "c"]
    assert split_patient_id(PATIENT_CX) == (TEST_INS, TEST_INS_OID)
    assert split_patient_id(TEST_INS) == (TEST_INS, "")
