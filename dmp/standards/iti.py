"""IHE XDS.b SOAP transactions towards the DMP: requests and response parsers (standards.md §4).

Pure code (lxml + stdlib `email`), no Django import, no network: the caller posts the bytes with the
returned Content-Type header (mutual TLS, ORG certificate) and hands the response back to a parser.

* ITI-41 Provide and Register Document Set-b: SOAP 1.2 + MTOM/XOP, documents as binary MIME parts.
* ITI-57 Update Document Set (metadata update: confidentiality, availability status).
* ITI-18 Registry Stored Query (FindDocuments by patient).
* ITI-43 Retrieve Document Set (response is MTOM).

Every request carries WS-Addressing (Action, MessageID, ReplyTo, To) and a WS-Security header with the
signed VIHF assertion.
"""

from __future__ import annotations

import base64
import email.message
import email.parser
import email.policy
import hashlib
import re
import urllib.parse
import uuid
from collections.abc import Mapping, Sequence
from copy import deepcopy
from dataclasses import dataclass, field, replace

from lxml import etree

from enrs.standards import ebrim
from enrs.standards.ebrim import DocumentEntry, SubmissionSet
from enrs.standards.valuesets import Code

NS_SOAP = "http://www.w3.org/2003/05/soap-envelope"
NS_SOAP11 = "http://schemas.xmlsoap.org/soap/envelope/"
NS_WSA = "http://www.w3.org/2005/08/addressing"
NS_WSSE = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd"
NS_XOP = "http://www.w3.org/2004/08/xop/include"
NS_XDSB = "urn:ihe:iti:xds-b:2007"
NS_SAML = "urn:oasis:names:tc:SAML:2.0:assertion"
NS = {
    "soap": NS_SOAP,
    "wsa": NS_WSA,
    "wsse": NS_WSSE,
    "xop": NS_XOP,
    "xdsb": NS_XDSB,
    "saml2": NS_SAML,
    **ebrim.XPATH_NS,
}

ACTION_ITI41 = "urn:ihe:iti:2007:ProvideAndRegisterDocumentSet-b"
ACTION_ITI18 = "urn:ihe:iti:2007:RegistryStoredQuery"
ACTION_ITI43 = "urn:ihe:iti:2007:RetrieveDocumentSet"
ACTION_ITI57 = "urn:ihe:iti:2010:UpdateDocumentSet"
RESPONSE_ACTIONS = {
    ACTION_ITI41: "urn:ihe:iti:2007:ProvideAndRegisterDocumentSet-bResponse",
    ACTION_ITI18: "urn:ihe:iti:2007:RegistryStoredQueryResponse",
    ACTION_ITI43: "urn:ihe:iti:2007:RetrieveDocumentSetResponse",
    ACTION_ITI57: "urn:ihe:iti:2010:UpdateDocumentSetResponse",
}
WSA_ANONYMOUS = "http://www.w3.org/2005/08/addressing/anonymous"

FIND_DOCUMENTS = "urn:uuid:14d4debf-8f97-4251-9a74-a90016b0af0d"
STATUS_SUCCESS = "urn:oasis:names:tc:ebxml-regrep:ResponseStatusType:Success"
STATUS_FAILURE = "urn:oasis:names:tc:ebxml-regrep:ResponseStatusType:Failure"
STATUS_PARTIAL = "urn:ihe:iti:2007:ResponseStatusType:PartialSuccess"
SEVERITY_ERROR = "urn:oasis:names:tc:ebxml-regrep:ErrorSeverityType:Error"
SEVERITY_WARNING = "urn:oasis:names:tc:ebxml-regrep:ErrorSeverityType:Warning"

_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=True)
_CID_SAFE = re.compile(r"^[A-Za-z0-9._@-]+$")


class IheError(ValueError):
    """A request that cannot be built or a response that cannot be read (French message)."""


@dataclass(frozen=True)
class RegistryError:
    code: str  # errorCode, e.g. XDSRegistryMetadataError, XDSUnknownPatientId; SOAP fault code for a fault
    context: str  # codeContext (human text)
    location: str = ""
    severity: str = SEVERITY_ERROR

    @property
    def is_error(self) -> bool:
        return not self.severity.endswith(":Warning")


@dataclass(frozen=True)
class RegistryResult:
    success: bool
    errors: list[RegistryError] = field(default_factory=list)
    status: str = ""
    fault: bool = False  # the peer answered with a SOAP Fault

    @property
    def partial(self) -> bool:
        return self.status == STATUS_PARTIAL

    def summary(self) -> str:
        """One French line for people: "Succès" or the error codes and texts."""
        if self.success and not self.errors:
            return "Succès"
        head = "Succès avec avertissements" if self.success else ("Erreur SOAP" if self.fault else "Échec")
        details = " ; ".join(f"{e.code} : {e.context}" if e.context else e.code for e in self.errors)
        return f"{head} — {details}" if details else head


@dataclass(frozen=True)
class QueryResult:
    result: RegistryResult
    entries: list[DocumentEntry]
    object_refs: list[str]


@dataclass(frozen=True)
class DocumentRequest:
    repository_unique_id: str
    document_unique_id: str
    home_community_id: str = ""


@dataclass(frozen=True)
class RetrievedDocument:
    repository_unique_id: str
    document_unique_id: str
    mime_type: str
    content: bytes
    home_community_id: str = ""


@dataclass(frozen=True)
class RetrieveResult:
    result: RegistryResult
    documents: list[RetrievedDocument]


# ---------------------------------------------------------------------------------------------------
# XML helpers


def _parse(xml: bytes) -> etree._Element:
    if b"<!DOCTYPE" in xml or b"<!ENTITY" in xml:
        raise IheError("Réponse refusée : déclarations DOCTYPE/ENTITY interdites.")
    try:
        return etree.fromstring(xml, parser=_PARSER)
    except etree.XMLSyntaxError as exc:
        raise IheError(f"Réponse illisible (XML mal formé) : {exc}") from exc


def _assertion_element(assertion_xml: bytes | etree._Element) -> etree._Element:
    element = deepcopy(assertion_xml) if isinstance(assertion_xml, etree._Element) else _parse(assertion_xml)
    if element.tag != f"{{{NS_SAML}}}Assertion":
        raise IheError("Le jeton VIHF doit être une assertion SAML 2.0 (saml2:Assertion).")
    return element


def soap_envelope(
    *,
    action: str,
    body: etree._Element,
    to_url: str,
    assertion_xml: bytes | etree._Element,
    message_id: str | None = None,
) -> etree._Element:
    """A SOAP 1.2 envelope with WS-Addressing headers and the VIHF in wsse:Security."""
    soap = f"{{{NS_SOAP}}}"
    envelope = etree.Element(f"{soap}Envelope", nsmap={"soap": NS_SOAP, "wsa": NS_WSA})
    header = etree.SubElement(envelope, f"{soap}Header")
    action_node = etree.SubElement(header, f"{{{NS_WSA}}}Action", {f"{soap}mustUnderstand": "true"})
    action_node.text = action
    etree.SubElement(header, f"{{{NS_WSA}}}MessageID").text = message_id or f"urn:uuid:{uuid.uuid4()}"
    reply_to = etree.SubElement(header, f"{{{NS_WSA}}}ReplyTo")
    etree.SubElement(reply_to, f"{{{NS_WSA}}}Address").text = WSA_ANONYMOUS
    etree.SubElement(header, f"{{{NS_WSA}}}To", {f"{soap}mustUnderstand": "true"}).text = to_url
    security = etree.SubElement(
        header, f"{{{NS_WSSE}}}Security", {f"{soap}mustUnderstand": "true"}, nsmap={"wsse": NS_WSSE}
    )
    security.append(_assertion_element(assertion_xml))
    etree.SubElement(envelope, f"{soap}Body").append(body)
    return envelope


def _xml_bytes(element: etree._Element) -> bytes:
    return etree.tostring(element, xml_declaration=True, encoding="UTF-8")


def plain_soap(envelope: etree._Element, action: str) -> tuple[bytes, str]:
    """A SOAP 1.2 message without attachments."""
    return _xml_bytes(envelope), f'application/soap+xml; charset=UTF-8; action="{action}"'


@dataclass(frozen=True)
class Attachment:
    content_id: str  # without <>
    content: bytes
    content_type: str = "application/octet-stream"


def mtom_package(root_xml: bytes, attachments: Sequence[Attachment], *, action: str) -> tuple[bytes, str]:
    """A multipart/related MTOM/XOP message: the SOAP envelope as the root part, each attachment as a
    binary part. Returns (body, Content-Type header value)."""
    boundary = f"MIMEBoundary_{uuid.uuid4().hex}"
    marker = f"--{boundary}".encode()
    if marker in root_xml or any(marker in a.content for a in attachments):  # pragma: no cover - 1 in 2**128
        return mtom_package(root_xml, attachments, action=action)
    root_id = f"root.{uuid.uuid4().hex}@enrs.local"
    chunks = [
        marker,
        b'\r\nContent-Type: application/xop+xml; charset=UTF-8; type="application/soap+xml"\r\n'
        + b"Content-Transfer-Encoding: binary\r\n"
        + f"Content-ID: <{root_id}>\r\n\r\n".encode(),
        root_xml,
        b"\r\n",
    ]
    for attachment in attachments:
        if not _CID_SAFE.match(attachment.content_id):
            raise IheError(f"Content-ID « {attachment.content_id} » invalide.")
        chunks += [
            marker,
            f"\r\nContent-Type: {attachment.content_type}\r\n".encode()
            + b"Content-Transfer-Encoding: binary\r\n"
            + f"Content-ID: <{attachment.content_id}>\r\n\r\n".encode(),
            attachment.content,
            b"\r\n",
        ]
    chunks.append(marker + b"--\r\n")
    content_type = (
        f'multipart/related; boundary="{boundary}"; type="application/xop+xml"; start="<{root_id}>"; '
        f'start-info="application/soap+xml"; action="{action}"'
    )
    return b"".join(chunks), content_type


def _package(
    envelope: etree._Element, action: str, attachments: Sequence[Attachment], mtom: bool
) -> tuple[bytes, str]:
    if mtom or attachments:
        return mtom_package(_xml_bytes(envelope), attachments, action=action)
    return plain_soap(envelope, action)


# ---------------------------------------------------------------------------------------------------
# ITI-41


def _slot_value(extrinsic: etree._Element, name: str) -> str | None:
    values = extrinsic.xpath(f"rim:Slot[@name='{name}']/rim:ValueList/rim:Value/text()", namespaces=NS)
    return str(values[0]) if values else None


def _set_slot(extrinsic: etree._Element, name: str, value: str) -> None:
    slot = etree.Element(f"{{{ebrim.NS_RIM}}}Slot", name=name)
    etree.SubElement(
        etree.SubElement(slot, f"{{{ebrim.NS_RIM}}}ValueList"), f"{{{ebrim.NS_RIM}}}Value"
    ).text = value
    slots = extrinsic.findall(f"{{{ebrim.NS_RIM}}}Slot")
    if slots:
        slots[-1].addnext(slot)
    else:
        extrinsic.insert(0, slot)


def build_iti41(
    submit_objects_request: etree._Element,
    documents: Mapping[str, bytes],
    assertion_xml: bytes | etree._Element,
    *,
    to_url: str,
    message_id: str | None = None,
) -> tuple[bytes, str]:
    """ITI-41 Provide and Register Document Set-b as SOAP 1.2 + MTOM/XOP.

    `documents` maps each DocumentEntry entry_uuid to the document's bytes; every ExtrinsicObject needs
    one. Missing hash/size slots are filled in; present ones must match the bytes. Returns
    (body, Content-Type header)."""
    request = deepcopy(submit_objects_request)
    if request.tag != f"{{{ebrim.NS_LCM}}}SubmitObjectsRequest":
        raise IheError("ITI-41 : lcm:SubmitObjectsRequest attendu.")
    extrinsics = {node.get("id"): node for node in request.iter(f"{{{ebrim.NS_RIM}}}ExtrinsicObject")}
    if not extrinsics:
        raise IheError("ITI-41 : aucune fiche de document dans la soumission.")
    missing = sorted(set(extrinsics) - set(documents))
    extra = sorted(set(documents) - set(extrinsics))
    if missing or extra:
        raise IheError(
            "ITI-41 : documents et fiches ne correspondent pas"
            + (f" ; fiche(s) sans document : {', '.join(str(m) for m in missing)}" if missing else "")
            + (f" ; document(s) sans fiche : {', '.join(extra)}" if extra else "")
            + "."
        )
    body = etree.Element(f"{{{NS_XDSB}}}ProvideAndRegisterDocumentSetRequest", nsmap={"xdsb": NS_XDSB})
    body.append(request)
    attachments = []
    for index, (entry_uuid, content) in enumerate(documents.items(), start=1):
        extrinsic = extrinsics[entry_uuid]
        digest = hashlib.sha1(content).hexdigest()  # noqa: S324 - XDS metadata mandates SHA-1
        for name, expected in (("hash", digest), ("size", str(len(content)))):
            present = _slot_value(extrinsic, name)
            if present is None:
                _set_slot(extrinsic, name, expected)
            elif present.lower() != expected:
                raise IheError(f"ITI-41 : le {name} de la fiche {entry_uuid} ne correspond pas au document.")
        content_id = f"doc{index}.{uuid.uuid4().hex}@enrs.local"
        document = etree.SubElement(body, f"{{{NS_XDSB}}}Document", id=entry_uuid)
        etree.SubElement(document, f"{{{NS_XOP}}}Include", href=f"cid:{content_id}", nsmap={"xop": NS_XOP})
        attachments.append(
            Attachment(content_id, content, extrinsic.get("mimeType") or "application/octet-stream")
        )
    envelope = soap_envelope(
        action=ACTION_ITI41, body=body, to_url=to_url, assertion_xml=assertion_xml, message_id=message_id
    )
    return mtom_package(_xml_bytes(envelope), attachments, action=ACTION_ITI41)


# ---------------------------------------------------------------------------------------------------
# ITI-57


def build_confidentiality_update(
    *,
    entry: DocumentEntry,
    confidentiality: Sequence[Code],
    submission: SubmissionSet,
    previous_version: str = "1",
    new_entry_uuid: str | None = None,
) -> etree._Element:
    """SubmitObjectsRequest of an ITI-57 metadata update that gives `entry` (as currently registered)
    new confidentiality codes (e.g. N + MASQUE_PS to hide it from professionals, INVISIBLE_PATIENT…).
    The new version keeps the logical id (lid) and gets a new entryUUID."""
    if not confidentiality:
        raise IheError("Au moins un code de confidentialité est obligatoire.")
    new_version = replace(
        entry,
        entry_uuid=new_entry_uuid or ebrim.new_uuid(),
        logical_id=entry.logical_id or entry.entry_uuid,
        confidentiality=tuple(confidentiality),
    )
    return ebrim.build_submit_objects_request(
        submission, [new_version], previous_versions={new_version.entry_uuid: previous_version}
    )


def build_availability_update(
    *, entry_uuid: str, submission: SubmissionSet, original_status: str, new_status: str
) -> etree._Element:
    """SubmitObjectsRequest of an ITI-57 availability-status change (e.g. Approved → Archived/Deleted)."""
    request = ebrim.build_submit_objects_request(submission, [])
    ebrim.add_availability_update(
        request,
        submission_uuid=submission.entry_uuid,
        entry_uuid=entry_uuid,
        original_status=original_status,
        new_status=new_status,
    )
    return request


def build_iti57(
    submit_objects_request: etree._Element,
    assertion_xml: bytes | etree._Element,
    *,
    to_url: str,
    mtom: bool = False,
    message_id: str | None = None,
) -> tuple[bytes, str]:
    """ITI-57 Update Document Set (SOAP 1.2; MTOM-wrapped when `mtom`)."""
    if submit_objects_request.tag != f"{{{ebrim.NS_LCM}}}SubmitObjectsRequest":
        raise IheError("ITI-57 : lcm:SubmitObjectsRequest attendu.")
    envelope = soap_envelope(
        action=ACTION_ITI57,
        body=deepcopy(submit_objects_request),
        to_url=to_url,
        assertion_xml=assertion_xml,
        message_id=message_id,
    )
    return _package(envelope, ACTION_ITI57, (), mtom)


# ---------------------------------------------------------------------------------------------------
# ITI-18


def _quoted(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def build_iti18_find_documents(
    patient_id: str,
    assertion_xml: bytes | etree._Element,
    *,
    to_url: str,
    statuses: Sequence[str] = (ebrim.STATUS_APPROVED,),
    type_codes: Sequence[Code] = (),
    return_type: str = "LeafClass",
    mtom: bool = False,
    message_id: str | None = None,
) -> tuple[bytes, str]:
    """ITI-18 Registry Stored Query FindDocuments for a patient (CX "INS^^^&OID&ISO^NH")."""
    errors = ebrim.validate_patient_id(patient_id)
    if errors:
        raise IheError(errors[0])
    if return_type not in ("LeafClass", "ObjectRef"):
        raise IheError("returnType doit valoir LeafClass ou ObjectRef.")
    rim = f"{{{ebrim.NS_RIM}}}"
    query = etree.Element(
        f"{{{ebrim.NS_QUERY}}}AdhocQueryRequest", nsmap={"query": ebrim.NS_QUERY, "rim": ebrim.NS_RIM}
    )
    etree.SubElement(
        query, f"{{{ebrim.NS_QUERY}}}ResponseOption", returnComposedObjects="true", returnType=return_type
    )
    adhoc = etree.SubElement(query, f"{rim}AdhocQuery", id=FIND_DOCUMENTS)

    def slot(name: str, value: str) -> None:
        node = etree.SubElement(adhoc, f"{rim}Slot", name=name)
        etree.SubElement(etree.SubElement(node, f"{rim}ValueList"), f"{rim}Value").text = value

    slot("$XDSDocumentEntryPatientId", _quoted(patient_id))
    slot("$XDSDocumentEntryStatus", "(" + ",".join(_quoted(s) for s in statuses) + ")")
    if type_codes:
        slot(
            "$XDSDocumentEntryTypeCode",
            "(" + ",".join(_quoted(f"{c.code}^^{c.system}") for c in type_codes) + ")",
        )
    envelope = soap_envelope(
        action=ACTION_ITI18, body=query, to_url=to_url, assertion_xml=assertion_xml, message_id=message_id
    )
    return _package(envelope, ACTION_ITI18, (), mtom)


# ---------------------------------------------------------------------------------------------------
# ITI-43


def build_iti43(
    requests: Sequence[DocumentRequest],
    assertion_xml: bytes | etree._Element,
    *,
    to_url: str,
    mtom: bool = False,
    message_id: str | None = None,
) -> tuple[bytes, str]:
    """ITI-43 Retrieve Document Set for one or more documents."""
    if not requests:
        raise IheError("ITI-43 : au moins un document à récupérer.")
    xdsb = f"{{{NS_XDSB}}}"
    body = etree.Element(f"{xdsb}RetrieveDocumentSetRequest", nsmap={"xdsb": NS_XDSB})
    for request in requests:
        if not request.repository_unique_id or not request.document_unique_id:
            raise IheError("ITI-43 : identifiants d'entrepôt et de document obligatoires.")
        node = etree.SubElement(body, f"{xdsb}DocumentRequest")
        if request.home_community_id:
            etree.SubElement(node, f"{xdsb}HomeCommunityId").text = request.home_community_id
        etree.SubElement(node, f"{xdsb}RepositoryUniqueId").text = request.repository_unique_id
        etree.SubElement(node, f"{xdsb}DocumentUniqueId").text = request.document_unique_id
    envelope = soap_envelope(
        action=ACTION_ITI43, body=body, to_url=to_url, assertion_xml=assertion_xml, message_id=message_id
    )
    return _package(envelope, ACTION_ITI43, (), mtom)


# ---------------------------------------------------------------------------------------------------
# Responses


def _content_type_params(content_type: str) -> tuple[str, dict[str, str]]:
    message = email.message.EmailMessage()
    message["Content-Type"] = content_type
    params = {k.lower(): str(v) for k, v in message["Content-Type"].params.items()}
    return message.get_content_type(), params


def mtom_split(body: bytes, content_type: str) -> tuple[bytes, dict[str, bytes]]:
    """Split a SOAP message into (root XML, {content-id without <>: part bytes}). A plain SOAP message
    (application/soap+xml, text/xml) gives (body, {})."""
    media_type, params = _content_type_params(content_type)
    if media_type in ("application/soap+xml", "text/xml", "application/xml"):
        return body, {}
    if media_type != "multipart/related":
        raise IheError(f"Réponse de type « {media_type or content_type} » inattendue (SOAP ou MTOM attendu).")
    if not params.get("boundary"):
        raise IheError("Message MTOM sans séparateur (boundary).")
    raw = b"Content-Type: " + content_type.encode("latin-1") + b"\r\nMIME-Version: 1.0\r\n\r\n" + body
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(raw)
    if not message.is_multipart():
        raise IheError("Message MTOM illisible.")
    parts: dict[str, bytes] = {}
    ordered: list[tuple[str, bytes]] = []
    for part in message.iter_parts():
        payload = part.get_payload(decode=True)
        if not isinstance(payload, bytes):
            raise IheError("Partie MTOM illisible.")
        content_id = str(part.get("Content-ID", "")).strip().strip("<>")
        ordered.append((content_id, payload))
        if content_id:
            parts[content_id] = payload
    if not ordered:
        raise IheError("Message MTOM vide.")
    start = params.get("start", "").strip().strip("<>")
    if start:
        if start not in parts:
            raise IheError("Message MTOM : partie racine (start) introuvable.")
        root = parts.pop(start)
    else:
        root_id, root = ordered[0]
        parts.pop(root_id, None)
    return root, parts


def resolve_xop(element: etree._Element, parts: Mapping[str, bytes]) -> bytes:
    """The bytes of a base64Binary element: an xop:Include to a MIME part, or inline base64 text."""
    include = element.find(f"{{{NS_XOP}}}Include")
    if include is not None:
        href = include.get("href", "")
        if not href.startswith("cid:"):
            raise IheError(f"Référence XOP « {href} » invalide.")
        content_id = urllib.parse.unquote(href[4:])
        if content_id not in parts:
            raise IheError(f"Référence XOP « {href} » sans partie MIME correspondante.")
        return parts[content_id]
    try:
        return base64.b64decode("".join((element.text or "").split()), validate=True)
    except ValueError as exc:
        raise IheError("Contenu base64 du document invalide.") from exc


def _soap_body(body: bytes, content_type: str) -> tuple[etree._Element, dict[str, bytes]]:
    root_xml, parts = mtom_split(body, content_type)
    envelope = _parse(root_xml)
    namespace = etree.QName(envelope).namespace
    if etree.QName(envelope).localname != "Envelope" or namespace not in (NS_SOAP, NS_SOAP11):
        raise IheError("Réponse sans enveloppe SOAP.")
    soap_body = envelope.find(f"{{{namespace}}}Body")
    if soap_body is None or len(soap_body) == 0:
        raise IheError("Réponse SOAP sans corps.")
    return soap_body[0], parts


def _is_fault(payload: etree._Element) -> bool:
    return payload.tag in (f"{{{NS_SOAP}}}Fault", f"{{{NS_SOAP11}}}Fault")


def _fault_result(fault: etree._Element) -> RegistryResult:
    if fault.tag == f"{{{NS_SOAP11}}}Fault":  # SOAP 1.1 peers (or proxies) answering a 1.2 request
        code, subcode, reason = fault.findtext("faultcode") or "", "", fault.findtext("faultstring") or ""
    else:
        code = fault.findtext("soap:Code/soap:Value", namespaces=NS) or ""
        subcode = fault.findtext("soap:Code/soap:Subcode/soap:Value", namespaces=NS) or ""
        reason = fault.findtext("soap:Reason/soap:Text", namespaces=NS) or ""
    return RegistryResult(
        success=False,
        status=STATUS_FAILURE,
        fault=True,
        errors=[RegistryError(code=subcode or code or "SOAPFault", context=reason.strip())],
    )


def _registry_result(node: etree._Element) -> RegistryResult:
    """From any element carrying the ebRS status and RegistryErrorList (RegistryResponse,
    AdhocQueryResponse)."""
    status = node.get("status", "")
    if not status:
        raise IheError("Réponse du registre sans statut.")
    errors = [
        RegistryError(
            code=e.get("errorCode", ""),
            context=e.get("codeContext", "") or (e.text or "").strip(),
            location=e.get("location", ""),
            severity=e.get("severity", SEVERITY_ERROR),
        )
        for e in node.findall("rs:RegistryErrorList/rs:RegistryError", namespaces=NS)
    ]
    return RegistryResult(success=status == STATUS_SUCCESS, errors=errors, status=status)


def parse_registry_response(body: bytes, content_type: str) -> RegistryResult:
    """RegistryResponse of ITI-41/ITI-57 (plain SOAP or MTOM) or a SOAP Fault."""
    payload, _ = _soap_body(body, content_type)
    if _is_fault(payload):
        return _fault_result(payload)
    response = payload if payload.tag == f"{{{ebrim.NS_RS}}}RegistryResponse" else None
    if response is None:
        response = payload.find("rs:RegistryResponse", namespaces=NS)
    if response is None:
        raise IheError(f"RegistryResponse attendue, « {etree.QName(payload).localname} » reçue.")
    return _registry_result(response)


def parse_iti18_response(body: bytes, content_type: str) -> QueryResult:
    """AdhocQueryResponse → status, DocumentEntry list (LeafClass) and ObjectRef ids (ObjectRef)."""
    payload, _ = _soap_body(body, content_type)
    if _is_fault(payload):
        return QueryResult(_fault_result(payload), [], [])
    if payload.tag != f"{{{ebrim.NS_QUERY}}}AdhocQueryResponse":
        raise IheError(f"AdhocQueryResponse attendue, « {etree.QName(payload).localname} » reçue.")
    result = _registry_result(payload)
    objects = payload.find("rim:RegistryObjectList", namespaces=NS)
    if objects is None:
        return QueryResult(result, [], [])
    try:
        entries = ebrim.parse_document_entries(objects)
    except ebrim.EbrimError as exc:
        raise IheError(f"Fiche de document illisible dans la réponse : {exc}") from exc
    refs = [str(i) for i in objects.xpath("rim:ObjectRef/@id", namespaces=NS)]
    return QueryResult(result, entries, refs)


def parse_iti43_response(body: bytes, content_type: str) -> RetrieveResult:
    """RetrieveDocumentSetResponse (MTOM or inline base64) → status and documents."""
    payload, parts = _soap_body(body, content_type)
    if _is_fault(payload):
        return RetrieveResult(_fault_result(payload), [])
    if payload.tag != f"{{{NS_XDSB}}}RetrieveDocumentSetResponse":
        raise IheError(f"RetrieveDocumentSetResponse attendue, « {etree.QName(payload).localname} » reçue.")
    response = payload.find("rs:RegistryResponse", namespaces=NS)
    if response is None:
        raise IheError("RetrieveDocumentSetResponse sans RegistryResponse.")
    documents = []
    for node in payload.findall("xdsb:DocumentResponse", namespaces=NS):
        document = node.find("xdsb:Document", namespaces=NS)
        if document is None:
            raise IheError("DocumentResponse sans Document.")
        documents.append(
            RetrievedDocument(
                repository_unique_id=node.findtext("xdsb:RepositoryUniqueId", default="", namespaces=NS),
                document_unique_id=node.findtext("xdsb:DocumentUniqueId", default="", namespaces=NS),
                mime_type=node.findtext("xdsb:mimeType", default="", namespaces=NS),
                content=resolve_xop(document, parts),
                home_community_id=node.findtext("xdsb:HomeCommunityId", default="", namespaces=NS),
            )
        )
    return RetrieveResult(_registry_result(response), documents)


def parse_iti41_request(body: bytes, content_type: str) -> tuple[etree._Element, dict[str, bytes]]:
    """Receiver side of ITI-41 (for tests and local doubles): (SubmitObjectsRequest, {entry_uuid: bytes})."""
    payload, parts = _soap_body(body, content_type)
    if payload.tag != f"{{{NS_XDSB}}}ProvideAndRegisterDocumentSetRequest":
        raise IheError("ProvideAndRegisterDocumentSetRequest attendue.")
    request = payload.find("lcm:SubmitObjectsRequest", namespaces=NS)
    if request is None:
        raise IheError("ITI-41 sans SubmitObjectsRequest.")
    documents = {
        document.get("id", ""): resolve_xop(document, parts)
        for document in payload.findall("xdsb:Document", namespaces=NS)
    }
    return request, documents


def soap_assertion(body: bytes, content_type: str) -> bytes | None:
    """The VIHF assertion of a request's wsse:Security header, serialized (None if absent)."""
    root_xml, _ = mtom_split(body, content_type)
    envelope = _parse(root_xml)
    assertion = envelope.find("soap:Header/wsse:Security/saml2:Assertion", namespaces=NS)
    return etree.tostring(assertion) if assertion is not None else None
