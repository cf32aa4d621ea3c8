"""IHE XDS.b SOAP transactions: request shape as a receiver sees it, response parsing."""

import base64
import datetime as dt
import email.parser
import email.policy
import hashlib
from dataclasses import replace
from email.message import EmailMessage
from pathlib import Path

import pytest
from lxml import etree

from dmp.standards import iti, vihf
from enrs.accounts import pki_testing
from enrs.standards import ebrim
from enrs.standards.ebrim import Author, DocumentEntry, SubmissionSet
from enrs.standards.valuesets import Code, class_for_type, lookup

NS = iti.NS
NOW = dt.datetime.now(dt.UTC).replace(microsecond=0)
TO = "https://dmp.example.test/si-dmp-server/v2/services"
PID = "279035121518989^^^&1.2.250.1.213.1.4.10&ISO^NH"
# Bytes that stress a MIME parser: CRLF, bare LF, a line that looks like a boundary, NUL, high bytes.
PDF = b"%PDF-1.4\r\n\x00\xff\xfe binary\n--MIMEBoundary_fake\r\n" + bytes(range(256)) + b"\r\n"
CDA = b'<?xml version="1.0"?><ClinicalDocument xmlns="urn:hl7-org:v3"/>\n'


def _code(valueset: str, code: str) -> Code:
    found = lookup(valueset, code)
    assert found is not None
    return found


def entry(entry_uuid: str, unique_id: str, **overrides: object) -> DocumentEntry:
    type_code = _code("type_code", "11488-4")
    values: dict[str, object] = {
        "entry_uuid": entry_uuid,
        "unique_id": unique_id,
        "patient_id": PID,
        "source_patient_id": "IPP1^^^&1.2.250.1.999.1.1&ISO^PI",
        "source_patient_info": ("PID-5|DUPONT^Jeanne^^^^^L",),
        "class_code": class_for_type(type_code.code),
        "type_code": type_code,
        "confidentiality": (_code("confidentiality", "N"),),
        "format_code": _code("format_code", "urn:ihe:iti:xds-sd:pdf:2008"),
        "healthcare_facility_type": _code("facility_type", "SA07"),
        "practice_setting": _code("practice_setting", "AMBULATOIRE"),
        "creation_time": "20261124101500",
        "authors": (Author(person="899700000011^DURAND^Claire^^^^^^&1.2.250.1.71.4.2.1&ISO^D^^^IDNPS"),),
        "legal_authenticator": "899700000011^DURAND^Claire^^^^^^&1.2.250.1.71.4.2.1&ISO^D^^^IDNPS",
    }
    values.update(overrides)
    return DocumentEntry(**values)  # type: ignore[arg-type]


SUBMISSION = SubmissionSet(
    entry_uuid="urn:uuid:5d7c2e10-77aa-4b0e-8f1a-2e3c4d5e6f70",
    unique_id="1.2.250.1.999.1.2.3.5",
    source_id="1.2.250.1.999.1",
    patient_id=PID,
    submission_time="20261124101600",
    content_type=Code("07", "1.2.250.1.213.2.2", "Consultation"),
)
E1 = "urn:uuid:0b1c7f1e-1c1d-4a3b-9d3e-5a6f7e8d9c01"
E2 = "urn:uuid:0b1c7f1e-1c1d-4a3b-9d3e-5a6f7e8d9c02"


@pytest.fixture(scope="module")
def pki() -> pki_testing.SamplePki:
    return pki_testing.build_test_pki(now=NOW)


@pytest.fixture(scope="module")
def assertion(pki: pki_testing.SamplePki) -> bytes:
    org = pki_testing.issue_organisation(
        issuer=pki.issuing, now=NOW, common_name="ENRS", idnat_struct="31234567890123", organisation="GCS"
    )
    claims = vihf.VihfClaims(
        idnat_ps="899700000011",
        subject_name="DURAND Claire",
        structure_id="31234567890123",
        activity_sector="SA07^1.2.250.1.71.4.2.4",
        profession=vihf.CodedValue("10", vihf.PROFESSION_SYSTEM, "professions", "Médecin"),
        patient_ins_cx=PID,
        lps_id="1.2.250.1.999.1",
        lps_name="ENRS",
        lps_version="1.0",
    )
    return vihf.build_vihf(claims, cert_pem=org.cert_pem, key_pem=org.key_pem, now=NOW)


def receive(body: bytes, content_type: str) -> EmailMessage:
    """Parse a request the way an HTTP receiver would, with nothing but the stdlib."""
    raw = b"Content-Type: " + content_type.encode() + b"\r\n\r\n" + body
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(raw)
    assert isinstance(message, EmailMessage)
    return message


def test_iti41_request_shape(pki: pki_testing.SamplePki, assertion: bytes) -> None:
    entries = [
        entry(E1, "1.2.250.1.999.1.2.3.4", mime_type="application/pdf"),
        entry(E2, "1.2.250.1.999.1.2.3.6"),
    ]
    request = ebrim.build_submit_objects_request(SUBMISSION, entries)
    body, content_type = iti.build_iti41(request, {E1: PDF, E2: CDA}, assertion, to_url=TO)

    message = receive(body, content_type)
    assert message.get_content_type() == "multipart/related"
    ct = message["Content-Type"]
    assert ct.params["type"] == "application/xop+xml"
    assert ct.params["start-info"] == "application/soap+xml"
    assert ct.params["action"] == "urn:ihe:iti:2007:ProvideAndRegisterDocumentSet-b"
    parts = list(message.iter_parts())
    assert len(parts) == 3
    root_part = parts[0]
    assert root_part["Content-ID"] == ct.params["start"]
    assert root_part.get_content_type() == "application/xop+xml"
    assert root_part["Content-Type"].params["type"] == "application/soap+xml"
    by_cid = {str(p["Content-ID"]).strip("<>"): p for p in parts[1:]}

    envelope = etree.fromstring(root_part.get_payload(decode=True))
    assert envelope.tag == "{http://www.w3.org/2003/05/soap-envelope}Envelope"
    assert (
        envelope.findtext("soap:Header/wsa:Action", namespaces=NS)
        == "urn:ihe:iti:2007:ProvideAndRegisterDocumentSet-b"
    )
    assert envelope.find("soap:Header/wsa:Action", NS).get(f"{{{iti.NS_SOAP}}}mustUnderstand") == "true"
    assert envelope.findtext("soap:Header/wsa:To", namespaces=NS) == TO
    assert envelope.findtext("soap:Header/wsa:MessageID", namespaces=NS).startswith("urn:uuid:")
    signed = envelope.find("soap:Header/wsse:Security/saml2:Assertion", NS)
    assert signed is not None
    verified = vihf.verify_vihf(etree.tostring(signed), pki.ca_bundle_pem, now=NOW)
    assert verified.idnat_ps == "899700000011"

    pnr = envelope.find("soap:Body/xdsb:ProvideAndRegisterDocumentSetRequest", NS)
    assert pnr[0].tag == f"{{{ebrim.NS_LCM}}}SubmitObjectsRequest"
    documents = pnr.findall("xdsb:Document", NS)
    assert [d.get("id") for d in documents] == [E1, E2]
    for document, expected in zip(documents, (PDF, CDA), strict=True):
        href = document.find("xop:Include", NS).get("href")
        assert href.startswith("cid:")
        part = by_cid[href[4:]]
        assert part.get_payload(decode=True) == expected
        assert part["Content-Transfer-Encoding"] == "binary"
        extrinsic = pnr.xpath(
            f"lcm:SubmitObjectsRequest//rim:ExtrinsicObject[@id='{document.get('id')}']", namespaces=NS
        )[0]
        slots = {
            name: extrinsic.xpath(f"rim:Slot[@name='{name}']/rim:ValueList/rim:Value/text()", namespaces=NS)
            for name in ("hash", "size")
        }
        assert slots == {"hash": [hashlib.sha1(expected).hexdigest()], "size": [str(len(expected))]}  # noqa: S324
    assert (
        by_cid[documents[0].find("xop:Include", NS).get("href")[4:]].get_content_type() == "application/pdf"
    )
    # The metadata still parse as the entries we gave, now with hash and size.
    _, parsed, _ = ebrim.parse_submit_objects_request(pnr[0])
    assert [p.entry_uuid for p in parsed] == [E1, E2]
    assert parsed[0].size == len(PDF)
    # Our own splitter (used on responses) agrees with the stdlib receiver.
    root_xml, split = iti.mtom_split(body, content_type)
    assert root_xml == root_part.get_payload(decode=True)
    assert sorted(split.values()) == sorted([PDF, CDA])
    _, docs_back = iti.parse_iti41_request(body, content_type)
    assert docs_back == {E1: PDF, E2: CDA}
    assert iti.soap_assertion(body, content_type) is not None


def test_iti41_keeps_the_callers_element_untouched(assertion: bytes) -> None:
    request = ebrim.build_submit_objects_request(SUBMISSION, [entry(E1, "1.2.250.1.999.1.2.3.4")])
    before = etree.tostring(request)
    iti.build_iti41(request, {E1: PDF}, assertion, to_url=TO)
    assert etree.tostring(request) == before


def test_iti41_refuses_mismatched_hash_and_missing_documents(assertion: bytes) -> None:
    wrong = entry(E1, "1.2.250.1.999.1.2.3.4", hash_sha1="0" * 40, size=len(PDF))
    request = ebrim.build_submit_objects_request(SUBMISSION, [wrong])
    with pytest.raises(iti.IheError, match="hash"):
        iti.build_iti41(request, {E1: PDF}, assertion, to_url=TO)
    good = ebrim.build_submit_objects_request(SUBMISSION, [entry(E1, "1.2.250.1.999.1.2.3.4")])
    with pytest.raises(iti.IheError, match="fiche\\(s\\) sans document"):
        iti.build_iti41(good, {}, assertion, to_url=TO)
    with pytest.raises(iti.IheError, match="document\\(s\\) sans fiche"):
        iti.build_iti41(good, {E1: PDF, E2: CDA}, assertion, to_url=TO)
    with pytest.raises(iti.IheError, match="assertion SAML"):
        iti.build_iti41(good, {E1: PDF}, b"<x/>", to_url=TO)


def test_iti57_confidentiality_update(assertion: bytes) -> None:
    current = entry(E1, "1.2.250.1.999.1.2.3.4")
    request = iti.build_confidentiality_update(
        entry=current,
        confidentiality=[_code("confidentiality", "N"), _code("confidentiality", "MASQUE_PS")],
        submission=SUBMISSION,
        new_entry_uuid=E2,
    )
    body, content_type = iti.build_iti57(request, assertion, to_url=TO)
    assert content_type == 'application/soap+xml; charset=UTF-8; action="urn:ihe:iti:2010:UpdateDocumentSet"'
    envelope = etree.fromstring(body)
    assert envelope.findtext("soap:Header/wsa:Action", namespaces=NS) == "urn:ihe:iti:2010:UpdateDocumentSet"
    extrinsic = envelope.find(
        "soap:Body/lcm:SubmitObjectsRequest/rim:RegistryObjectList/rim:ExtrinsicObject", NS
    )
    assert (extrinsic.get("id"), extrinsic.get("lid")) == (E2, E1)
    assert extrinsic.xpath(
        f"rim:Classification[@classificationScheme='{ebrim.DE_CONFIDENTIALITY_CODE}']/@nodeRepresentation",
        namespaces=NS,
    ) == ["N", "MASQUE_PS"]
    assert envelope.xpath(
        "//rim:Association[@associationType='urn:oasis:names:tc:ebxml-regrep:AssociationType:HasMember']"
        "/rim:Slot[@name='PreviousVersion']/rim:ValueList/rim:Value/text()",
        namespaces=NS,
    ) == ["1"]
    # MTOM-wrapped variant: one root part, same envelope.
    body, content_type = iti.build_iti57(request, assertion, to_url=TO, mtom=True)
    root_xml, parts = iti.mtom_split(body, content_type)
    assert parts == {}
    assert etree.fromstring(root_xml).findtext("soap:Header/wsa:Action", namespaces=NS) == iti.ACTION_ITI57


def test_iti57_availability_update() -> None:
    request = iti.build_availability_update(
        entry_uuid=E1,
        submission=SUBMISSION,
        original_status=ebrim.STATUS_APPROVED,
        new_status="urn:asip:ci-sis:2010:StatusType:Archived",
    )
    (update,) = request.xpath(
        "//rim:Association[@associationType='urn:ihe:iti:2010:AssociationType:UpdateAvailabilityStatus']",
        namespaces=NS,
    )
    assert update.get("targetObject") == E1
    assert update.xpath("rim:Slot[@name='NewStatus']/rim:ValueList/rim:Value/text()", namespaces=NS) == [
        "urn:asip:ci-sis:2010:StatusType:Archived"
    ]


def test_iti18_find_documents_request(assertion: bytes) -> None:
    body, content_type = iti.build_iti18_find_documents(
        PID, assertion, to_url=TO, type_codes=[_code("type_code", "11488-4")]
    )
    assert 'action="urn:ihe:iti:2007:RegistryStoredQuery"' in content_type
    envelope = etree.fromstring(body)
    assert (
        envelope.findtext("soap:Header/wsa:Action", namespaces=NS) == "urn:ihe:iti:2007:RegistryStoredQuery"
    )
    query = envelope.find("soap:Body/query:AdhocQueryRequest", NS)
    assert query.find("query:ResponseOption", NS).get("returnType") == "LeafClass"
    adhoc = query.find("rim:AdhocQuery", NS)
    assert adhoc.get("id") == "urn:uuid:14d4debf-8f97-4251-9a74-a90016b0af0d"
    slots = {
        s.get("name"): s.findtext("rim:ValueList/rim:Value", namespaces=NS)
        for s in adhoc.findall("rim:Slot", NS)
    }
    assert slots == {
        "$XDSDocumentEntryPatientId": f"'{PID}'",
        "$XDSDocumentEntryStatus": "('urn:oasis:names:tc:ebxml-regrep:StatusType:Approved')",
        "$XDSDocumentEntryTypeCode": "('11488-4^^2.16.840.1.113883.6.1')",
    }
    with pytest.raises(iti.IheError, match="mal formé"):
        iti.build_iti18_find_documents("279035121518989", assertion, to_url=TO)


def test_iti43_request(assertion: bytes) -> None:
    body, _ = iti.build_iti43(
        [iti.DocumentRequest("1.2.250.1.999.9", "1.2.250.1.999.1.2.3.4")], assertion, to_url=TO
    )
    envelope = etree.fromstring(body)
    assert (
        envelope.findtext("soap:Header/wsa:Action", namespaces=NS) == "urn:ihe:iti:2007:RetrieveDocumentSet"
    )
    request = envelope.find("soap:Body/xdsb:RetrieveDocumentSetRequest/xdsb:DocumentRequest", NS)
    assert request.findtext("xdsb:RepositoryUniqueId", namespaces=NS) == "1.2.250.1.999.9"
    assert request.findtext("xdsb:DocumentUniqueId", namespaces=NS) == "1.2.250.1.999.1.2.3.4"
    with pytest.raises(iti.IheError, match="au moins un document"):
        iti.build_iti43([], assertion, to_url=TO)


# ---------------------------------------------------------------------------------------------------
# Responses

ENV_OPEN = (
    '<?xml version="1.0" encoding="UTF-8"?>'
    '<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope" xmlns:a="http://www.w3.org/2005/08/addressing">'
    "<s:Header><a:Action>{action}</a:Action></s:Header><s:Body>"
)
ENV_CLOSE = "</s:Body></s:Envelope>"
RS = "urn:oasis:names:tc:ebxml-regrep:xsd:rs:3.0"


def soap(payload: str, action: str = "urn:ihe:iti:2007:ProvideAndRegisterDocumentSet-bResponse") -> bytes:
    return (ENV_OPEN.format(action=action) + payload + ENV_CLOSE).encode()


def mtom(root: bytes, parts: dict[str, bytes] | None = None) -> tuple[bytes, str]:
    boundary = "uuid:7a0f1d3c-boundary"
    chunks = [
        f'--{boundary}\r\nContent-Type: application/xop+xml; charset=UTF-8; type="application/soap+xml"\r\n'
        "Content-Transfer-Encoding: binary\r\nContent-ID: <root.message@cxf.apache.org>\r\n\r\n".encode()
        + root
        + b"\r\n"
    ]
    for cid, data in (parts or {}).items():
        chunks.append(
            f"--{boundary}\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: binary\r\n"
            f"Content-ID: <{cid}>\r\n\r\n".encode()
            + data
            + b"\r\n"
        )
    body = b"".join(chunks) + f"--{boundary}--".encode()
    content_type = (
        f'multipart/related; type="application/xop+xml"; boundary="{boundary}"; '
        'start="<root.message@cxf.apache.org>"; start-info="application/soap+xml"'
    )
    return body, content_type


SUCCESS = f'<rs:RegistryResponse xmlns:rs="{RS}" status="{iti.STATUS_SUCCESS}"/>'
FAILURE = (
    f'<rs:RegistryResponse xmlns:rs="{RS}" status="{iti.STATUS_FAILURE}">'
    '<rs:RegistryErrorList highestSeverity="urn:oasis:names:tc:ebxml-regrep:ErrorSeverityType:Error">'
    '<rs:RegistryError errorCode="XDSRegistryMetadataError" codeContext="classCode incohérent"'
    ' location="urn:uuid:0b1c7f1e" severity="urn:oasis:names:tc:ebxml-regrep:ErrorSeverityType:Error"/>'
    '<rs:RegistryError errorCode="XDSUnknownPatientId" codeContext="Patient inconnu"'
    ' severity="urn:oasis:names:tc:ebxml-regrep:ErrorSeverityType:Error"/>'
    '<rs:RegistryError errorCode="XDSExtraMetadataNotSaved" codeContext="slot ignoré"'
    ' severity="urn:oasis:names:tc:ebxml-regrep:ErrorSeverityType:Warning"/>'
    "</rs:RegistryErrorList></rs:RegistryResponse>"
)
FAULT = (
    "<s:Fault><s:Code><s:Value>s:Sender</s:Value><s:Subcode><s:Value>wsse:InvalidSecurityToken</s:Value>"
    '</s:Subcode></s:Code><s:Reason><s:Text xml:lang="fr">VIHF invalide</s:Text></s:Reason></s:Fault>'
)


def test_registry_response_success_plain_and_mtom() -> None:
    plain = iti.parse_registry_response(soap(SUCCESS), "application/soap+xml; charset=UTF-8")
    assert plain == iti.RegistryResult(success=True, errors=[], status=iti.STATUS_SUCCESS)
    assert plain.summary() == "Succès"
    body, content_type = mtom(soap(SUCCESS))
    assert iti.parse_registry_response(body, content_type).success


def test_registry_response_errors() -> None:
    body, content_type = mtom(soap(FAILURE))
    result = iti.parse_registry_response(body, content_type)
    assert not result.success
    assert result.status == iti.STATUS_FAILURE
    assert result.errors == [
        iti.RegistryError(
            "XDSRegistryMetadataError", "classCode incohérent", "urn:uuid:0b1c7f1e", iti.SEVERITY_ERROR
        ),
        iti.RegistryError("XDSUnknownPatientId", "Patient inconnu", "", iti.SEVERITY_ERROR),
        iti.RegistryError("XDSExtraMetadataNotSaved", "slot ignoré", "", iti.SEVERITY_WARNING),
    ]
    assert [e.is_error for e in result.errors] == [True, True, False]
    assert "XDSUnknownPatientId : Patient inconnu" in result.summary()


def test_soap_fault() -> None:
    result = iti.parse_registry_response(soap(FAULT), "application/soap+xml")
    assert result.fault
    assert not result.success
    assert result.errors == [iti.RegistryError("wsse:InvalidSecurityToken", "VIHF invalide")]
    assert result.summary() == "Erreur SOAP — wsse:InvalidSecurityToken : VIHF invalide"


def test_soap_11_fault() -> None:
    body = (
        b'<e:Envelope xmlns:e="http://schemas.xmlsoap.org/soap/envelope/"><e:Body><e:Fault>'
        b"<faultcode>e:Server</faultcode><faultstring>Service indisponible</faultstring>"
        b"</e:Fault></e:Body></e:Envelope>"
    )
    result = iti.parse_registry_response(body, "text/xml; charset=utf-8")
    assert result.fault
    assert result.errors == [iti.RegistryError("e:Server", "Service indisponible")]


@pytest.mark.parametrize(
    ("body", "content_type", "message"),
    [
        (b"<html>502 Bad Gateway</html>", "text/html", "inattendue"),
        (b"<not xml", "application/soap+xml", "illisible"),
        (b"<x/>", "application/soap+xml", "enveloppe SOAP"),
        (soap("<foo/>"), "application/soap+xml", "RegistryResponse attendue"),
        (soap('<!DOCTYPE x [<!ENTITY e "a">]><x/>'), "application/soap+xml", "DOCTYPE"),
    ],
)
def test_unreadable_responses_raise(body: bytes, content_type: str, message: str) -> None:
    with pytest.raises(iti.IheError, match=message):
        iti.parse_registry_response(body, content_type)


def test_iti18_response_gives_document_entries() -> None:
    registered = entry(
        E1, "1.2.250.1.999.1.2.3.4", repository_unique_id="1.2.250.1.999.9", size=12, hash_sha1="a" * 40
    )
    objects = ebrim.build_submit_objects_request(SUBMISSION, [registered]).find(
        f"{{{ebrim.NS_RIM}}}RegistryObjectList"
    )
    # A registry answers with only the DocumentEntries (LeafClass).
    for node in list(objects):
        if node.tag != f"{{{ebrim.NS_RIM}}}ExtrinsicObject":
            objects.remove(node)
    payload = (
        f'<query:AdhocQueryResponse xmlns:query="{ebrim.NS_QUERY}" status="{iti.STATUS_SUCCESS}">'
        + etree.tostring(objects).decode()
        + "</query:AdhocQueryResponse>"
    )
    result = iti.parse_iti18_response(
        soap(payload, "urn:ihe:iti:2007:RegistryStoredQueryResponse"), "application/soap+xml"
    )
    assert result.result.success
    assert result.entries == [registered]
    empty = f'<query:AdhocQueryResponse xmlns:query="{ebrim.NS_QUERY}" status="{iti.STATUS_SUCCESS}"/>'
    assert iti.parse_iti18_response(soap(empty), "application/soap+xml").entries == []
    refs = (
        f'<query:AdhocQueryResponse xmlns:query="{ebrim.NS_QUERY}" xmlns:rim="{ebrim.NS_RIM}"'
        f' status="{iti.STATUS_SUCCESS}"><rim:RegistryObjectList><rim:ObjectRef id="{E1}"/>'
        "</rim:RegistryObjectList></query:AdhocQueryResponse>"
    )
    assert iti.parse_iti18_response(soap(refs), "application/soap+xml").object_refs == [E1]
    failure = FAILURE.replace("rs:RegistryResponse", "query:AdhocQueryResponse").replace(
        f'xmlns:rs="{RS}"', f'xmlns:rs="{RS}" xmlns:query="{ebrim.NS_QUERY}"'
    )
    failed = iti.parse_iti18_response(soap(failure), "application/soap+xml")
    assert not failed.result.success
    assert failed.result.errors[1].code == "XDSUnknownPatientId"


def test_iti43_mtom_response_gives_documents() -> None:
    inline = b"second document, inline"
    payload = (
        f'<xdsb:RetrieveDocumentSetResponse xmlns:xdsb="urn:ihe:iti:xds-b:2007" xmlns:rs="{RS}"'
        ' xmlns:xop="http://www.w3.org/2004/08/xop/include">'
        f'<rs:RegistryResponse status="{iti.STATUS_SUCCESS}"/>'
        "<xdsb:DocumentResponse><xdsb:RepositoryUniqueId>1.2.250.1.999.9</xdsb:RepositoryUniqueId>"
        "<xdsb:DocumentUniqueId>1.2.3.4</xdsb:DocumentUniqueId><xdsb:mimeType>application/pdf</xdsb:mimeType>"
        '<xdsb:Document><xop:Include href="cid:doc%401.example"/></xdsb:Document></xdsb:DocumentResponse>'
        "<xdsb:DocumentResponse><xdsb:RepositoryUniqueId>1.2.250.1.999.9</xdsb:RepositoryUniqueId>"
        "<xdsb:DocumentUniqueId>1.2.3.5</xdsb:DocumentUniqueId><xdsb:mimeType>text/plain</xdsb:mimeType>"
        f"<xdsb:Document>{base64.b64encode(inline).decode()}</xdsb:Document></xdsb:DocumentResponse>"
        "</xdsb:RetrieveDocumentSetResponse>"
    )
    body, content_type = mtom(
        soap(payload, "urn:ihe:iti:2007:RetrieveDocumentSetResponse"), {"doc@1.example": PDF}
    )
    result = iti.parse_iti43_response(body, content_type)
    assert result.result.success
    assert result.documents == [
        iti.RetrievedDocument("1.2.250.1.999.9", "1.2.3.4", "application/pdf", PDF),
        iti.RetrievedDocument("1.2.250.1.999.9", "1.2.3.5", "text/plain", inline),
    ]
    broken = payload.replace("cid:doc%401.example", "cid:missing@x")
    body, content_type = mtom(soap(broken), {"doc@1.example": PDF})
    with pytest.raises(iti.IheError, match="sans partie MIME"):
        iti.parse_iti43_response(body, content_type)
    assert iti.parse_iti43_response(soap(FAULT), "application/soap+xml").result.fault


def test_mtom_split_edge_cases() -> None:
    with pytest.raises(iti.IheError, match="séparateur"):
        iti.mtom_split(b"", "multipart/related")
    body, content_type = mtom(b"<root/>", {"a@b": b"x"})
    with pytest.raises(iti.IheError, match="racine"):
        iti.mtom_split(body, content_type.replace("root.message@cxf", "nope@cxf"))
    root, parts = iti.mtom_split(body, content_type.replace('start="<root.message@cxf.apache.org>"; ', ""))
    assert (root, parts) == (b"<root/>", {"a@b": b"x"})


# ---------------------------------------------------------------------------------------------------
# Against the local DMP double (independent parser and checks): the full round trip over mutual TLS.


def _cda(document_extension: str) -> bytes:
    from enrs.standards import cda

    when = dt.datetime(2026, 11, 24, 10, 15, tzinfo=dt.UTC)
    doctor = cda.Person("899700000011", "DURAND", "Claire", specialty_code="G15_10/SM26")
    org = cda.Organization("1750712184", "GCS e-santé (test)")
    spec = cda.CdaLevel1Spec(
        document_id_root="1.2.250.1.999.1.2",
        document_id_extension=document_extension,
        set_id_root="1.2.250.1.999.1.3",
        set_id_extension=document_extension,
        version_number=1,
        type_code=_code("type_code", "11488-4"),
        title="CR de consultation",
        effective_time=when,
        confidentiality=_code("confidentiality", "N"),
        patient=cda.PatientIdentity(
            ins="279035121518989",
            ins_oid="1.2.250.1.213.1.4.10",
            birth_family_name="DUPONT",
            birth_given_names=("Jeanne", "Marie"),
            first_given_name="Jeanne",
            sex="F",
            birth_date=dt.date(1979, 3, 1),
            birth_place_insee="51215",
        ),
        author=doctor,
        author_organization=org,
        custodian=org,
        legal_authenticator=doctor,
        legal_authentication_time=when,
        service_start=when,
        service_end=None,
        encounter_start=when,
        encounter_end=None,
        facility_type=_code("facility_type", "SA07"),
        practice_setting=_code("practice_setting", "AMBULATOIRE"),
        body=b"%PDF-1.4 test\n",
    )
    return cda.build_cda_level1(spec)


@pytest.mark.integration
def test_round_trip_against_the_dmp_double(tmp_path: Path) -> None:
    import httpx

    from tests.dmp.dmp_double_fixture import running_dmp_double

    with running_dmp_double(tmp_path) as dmp:
        dmp.add_patient("279035121518989")
        claims = vihf.VihfClaims(
            idnat_ps="899700000011",
            subject_name="DURAND Claire",
            structure_id=dmp.structure_id,
            activity_sector="SA07^1.2.250.1.71.4.2.4",
            profession=vihf.CodedValue("10", vihf.PROFESSION_SYSTEM, "professions", "Médecin"),
            specialty=vihf.CodedValue("SM26", vihf.SPECIALTY_SYSTEM, "specialites RPPS", "Médecine générale"),
            patient_ins_cx=PID,
            lps_id="1.2.250.1.999.1",
            lps_name="ENRS",
            lps_version="1.0",
        )
        token = vihf.build_vihf(claims, cert_pem=dmp.signing_cert_pem, key_pem=dmp.signing_key_pem)
        document = _cda("DOC-IT-1")
        registered = entry(
            E1,
            "1.2.250.1.999.1.2^DOC-IT-1",
            repository_unique_id=dmp.repository_id,
            authors=(
                Author(
                    person="899700000011^DURAND^Claire^^^^^^&1.2.250.1.71.4.2.1&ISO^D^^^IDNPS",
                    institution="GCS^^^^^&1.2.250.1.71.4.2.2&ISO^IDNST^^^1750712184",
                    specialty=_code("author_specialty", "G15_10/SM26"),
                ),
            ),
        )
        assert ebrim.validate_entry(registered) == []
        submission = replace(SUBMISSION, unique_id="1.2.250.1.999.1.2.3.77")

        def post(url: str, built: tuple[bytes, str]) -> httpx.Response:
            with dmp.client() as http:
                response = http.post(url, content=built[0], headers={"Content-Type": built[1]})
            return response

        request = ebrim.build_submit_objects_request(submission, [registered])
        response = post(
            dmp.repository_url, iti.build_iti41(request, {E1: document}, token, to_url=dmp.repository_url)
        )
        result = iti.parse_registry_response(response.content, response.headers["content-type"])
        assert result.success, result.summary()

        response = post(dmp.registry_url, iti.build_iti18_find_documents(PID, token, to_url=dmp.registry_url))
        found = iti.parse_iti18_response(response.content, response.headers["content-type"])
        assert found.result.success, found.result.summary()
        assert [e.unique_id for e in found.entries] == ["1.2.250.1.999.1.2^DOC-IT-1"]
        assert found.entries[0].hash_sha1 == hashlib.sha1(document).hexdigest()  # noqa: S324

        wanted = iti.DocumentRequest(dmp.repository_id, "1.2.250.1.999.1.2^DOC-IT-1")
        response = post(dmp.repository_url, iti.build_iti43([wanted], token, to_url=dmp.repository_url))
        retrieved = iti.parse_iti43_response(response.content, response.headers["content-type"])
        assert retrieved.result.success, retrieved.result.summary()
        assert [d.content for d in retrieved.documents] == [document]

        hidden = iti.build_confidentiality_update(
            entry=found.entries[0],
            confidentiality=[_code("confidentiality", "N"), _code("confidentiality", "MASQUE_PS")],
            submission=replace(SUBMISSION, unique_id="1.2.250.1.999.1.2.3.78"),
        )
        response = post(dmp.registry_url, iti.build_iti57(hidden, token, to_url=dmp.registry_url))
        updated = iti.parse_registry_response(response.content, response.headers["content-type"])
        assert updated.success, updated.summary()

        # A registry error (injected in the double) comes back as a RegistryError list.
        dmp.add_fault("registry_error", error_code="XDSUnknownPatientId", code_context="Patient inconnu")
        response = post(
            dmp.repository_url, iti.build_iti41(request, {E1: document}, token, to_url=dmp.repository_url)
        )
        refused = iti.parse_registry_response(response.content, response.headers["content-type"])
        assert not refused.success
        assert [e.code for e in refused.errors] == ["XDSUnknownPatientId"]
