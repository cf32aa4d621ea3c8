"""ebRIM 3.0 SubmitObjectsRequest for IHE XDS.b metadata (ITI-41 / ITI-57 body, XDM METADATA.XML).

Pure code (lxml, no Django import). Builds and parses a RegistryObjectList with:

* one `ExtrinsicObject` per XDS DocumentEntry (slots, name, classifications, external identifiers);
* one `RegistryPackage` for the SubmissionSet, classified as a submission set;
* `HasMember` associations (SubmissionSet → DocumentEntry, SubmissionSetStatus=Original) and
  `RPLC` associations (new DocumentEntry → replaced DocumentEntry).

UUIDs of the classification and identification schemes are those of IHE ITI TF-3 §4.2.5.
`validate_entry` checks a DocumentEntry against the French value sets of `enrs.standards.valuesets`.
"""

from __future__ import annotations

import datetime as dt
import re
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from lxml import etree

from enrs.standards.valuesets import Code

# ---------------------------------------------------------------------------------------------------
# Namespaces and IHE constants
NS_LCM = "urn:oasis:names:tc:ebxml-regrep:xsd:lcm:3.0"
NS_RIM = "urn:oasis:names:tc:ebxml-regrep:xsd:rim:3.0"
NS_RS = "urn:oasis:names:tc:ebxml-regrep:xsd:rs:3.0"
NS_QUERY = "urn:oasis:names:tc:ebxml-regrep:xsd:query:3.0"
NSMAP = {"lcm": NS_LCM, "rim": NS_RIM}
XPATH_NS = {"lcm": NS_LCM, "rim": NS_RIM, "rs": NS_RS, "query": NS_QUERY}

OBJECT_TYPE_CLASSIFICATION = "urn:oasis:names:tc:ebxml-regrep:ObjectType:RegistryObject:Classification"
OBJECT_TYPE_EXTERNAL_IDENTIFIER = (
    "urn:oasis:names:tc:ebxml-regrep:ObjectType:RegistryObject:ExternalIdentifier"
)
OBJECT_TYPE_REGISTRY_PACKAGE = "urn:oasis:names:tc:ebxml-regrep:ObjectType:RegistryObject:RegistryPackage"
OBJECT_TYPE_ASSOCIATION = "urn:oasis:names:tc:ebxml-regrep:ObjectType:RegistryObject:Association"

STATUS_APPROVED = "urn:oasis:names:tc:ebxml-regrep:StatusType:Approved"
STATUS_DEPRECATED = "urn:oasis:names:tc:ebxml-regrep:StatusType:Deprecated"

# DocumentEntry
DOCUMENT_ENTRY_STABLE = "urn:uuid:7edca82f-054d-47f2-a032-9b2a5b5186c1"
DOCUMENT_ENTRY_ON_DEMAND = "urn:uuid:34268e47-fdf5-41a6-ba33-82133c465248"
DE_AUTHOR = "urn:uuid:93606bcf-9494-43ec-9b4e-a7748d1a838d"
DE_CLASS_CODE = "urn:uuid:41a5887f-8865-4c09-adf7-e362475b143a"
DE_CONFIDENTIALITY_CODE = "urn:uuid:f4f85eac-e6cb-4883-b524-f2705394840f"
DE_EVENT_CODE = "urn:uuid:2c6b8cb7-8b2a-4051-b291-b1ae6a575ef4"
DE_FORMAT_CODE = "urn:uuid:a09d5840-386c-46f2-b5ad-9c3699a4309d"
DE_FACILITY_TYPE_CODE = "urn:uuid:f33fb8ac-18af-42cc-ae0e-ed0b0bdb91e1"
DE_PRACTICE_SETTING_CODE = "urn:uuid:cccf5598-8b07-4b77-a05e-ae952c785ead"
DE_TYPE_CODE = "urn:uuid:f0306f51-975f-434e-a61c-c59651d33983"
DE_PATIENT_ID = "urn:uuid:58a6f841-87b3-4a3e-92fd-a8ffeff98427"
DE_UNIQUE_ID = "urn:uuid:2e82c1f6-a085-4c72-9da3-8640a32e42ab"

# SubmissionSet
SUBMISSION_SET_NODE = "urn:uuid:a54d6aa5-d40d-43f9-88c5-b4633d873bdd"
SS_AUTHOR = "urn:uuid:a7058bb9-b4e4-4307-ba5b-e3f0ab85e12d"
SS_CONTENT_TYPE_CODE = "urn:uuid:aa543740-bdda-424e-8c96-df4873be8500"
SS_PATIENT_ID = "urn:uuid:6b5aea1a-874d-4603-a4bc-96a0a7b38446"
SS_SOURCE_ID = "urn:uuid:554ac39e-e3fe-47fe-b233-965d2a147832"
SS_UNIQUE_ID = "urn:uuid:96fdda7c-d067-4183-912e-bf5ee74998a8"

# Associations
ASSOCIATION_HAS_MEMBER = "urn:oasis:names:tc:ebxml-regrep:AssociationType:HasMember"
ASSOCIATION_RPLC = "urn:ihe:iti:2007:AssociationType:RPLC"
ASSOCIATION_UPDATE_AVAILABILITY = "urn:ihe:iti:2010:AssociationType:UpdateAvailabilityStatus"

SLOT_REFERENCE_ID_LIST = "urn:ihe:iti:xds:2013:referenceIdList"

# INS OIDs (standards.md §1.3): NIR, NIA, NIR test, NIR démo.
INS_OIDS = {
    "1.2.250.1.213.1.4.8": "INS-NIR",
    "1.2.250.1.213.1.4.9": "INS-NIA",
    "1.2.250.1.213.1.4.10": "INS-NIR-TEST",
    "1.2.250.1.213.1.4.11": "INS-NIR-DEMO",
}

_ID_NAMESPACE = uuid.UUID("0b6f6f8e-4c33-5d7e-9a62-1f3b7f0f6a11")


class EbrimError(ValueError):
    """Unreadable or incomplete ebRIM metadata (French message)."""


# ---------------------------------------------------------------------------------------------------
# Data


@dataclass(frozen=True)
class Author:
    person: str  # XCN "IdNat^FAMILY^Given^^^^^^&1.2.250.1.71.4.2.1&ISO^D^^^IDNPS"
    institution: str = ""  # XON "Name^^^^^&1.2.250.1.71.4.2.2&ISO^IDNST^^^IdNatStruct"
    role: str = ""
    specialty: Code | None = None


@dataclass(frozen=True)
class DocumentEntry:
    entry_uuid: str  # "urn:uuid:..."
    unique_id: str
    patient_id: str  # CX "INS^^^&OID&ISO^NH"
    source_patient_id: str
    source_patient_info: tuple[str, ...]
    class_code: Code
    type_code: Code
    confidentiality: tuple[Code, ...]
    format_code: Code
    healthcare_facility_type: Code
    practice_setting: Code
    creation_time: str  # YYYYMMDDHHMMSS (UTC)
    event_codes: tuple[Code, ...] = ()
    mime_type: str = "text/xml"
    language_code: str = "fr-FR"
    service_start_time: str = ""
    service_stop_time: str = ""
    title: str = ""
    comments: str = ""
    hash_sha1: str = ""
    size: int | None = None
    uri: str = ""  # XDM only, e.g. "DOC0001.XML"
    authors: tuple[Author, ...] = ()
    legal_authenticator: str = ""
    repository_unique_id: str = ""
    availability_status: str = STATUS_APPROVED
    reference_ids: tuple[str, ...] = ()
    # Metadata update (ITI-57): the logical id (lid) shared by every version of the entry. "" = same as
    # entry_uuid (a first version).
    logical_id: str = ""


@dataclass(frozen=True)
class SubmissionSet:
    entry_uuid: str
    unique_id: str
    source_id: str
    patient_id: str
    submission_time: str
    content_type: Code
    authors: tuple[Author, ...] = ()
    title: str = ""
    comments: str = ""


@dataclass(frozen=True)
class Association:
    """Any association found while parsing (HasMember, RPLC, UpdateAvailabilityStatus…)."""

    id: str
    association_type: str
    source: str
    target: str
    slots: dict[str, tuple[str, ...]] = field(default_factory=dict)


# ---------------------------------------------------------------------------------------------------
# Small helpers


def ins_cx(ins: str, oid: str) -> str:
    """The XDS patientId (HL7v2 CX) of an INS: `279035121518989^^^&1.2.250.1.213.1.4.10&ISO^NH`."""
    return f"{ins}^^^&{oid}&ISO^NH"


def new_uuid() -> str:
    return f"urn:uuid:{uuid.uuid4()}"


def uuid_oid() -> str:
    """A fresh unique OID under 2.25 (ITU-T X.667), usable as an XDS uniqueId (at most 44 characters)."""
    return f"2.25.{uuid.uuid4().int}"


def _derived_id(*parts: str) -> str:
    """A stable urn:uuid for a sub-object (classification, identifier, association), so that building
    the same metadata twice gives the same XML."""
    return f"urn:uuid:{uuid.uuid5(_ID_NAMESPACE, '|'.join(parts))}"


def _rim(tag: str) -> str:
    return f"{{{NS_RIM}}}{tag}"


def _slot(parent: etree._Element, name: str, values: Sequence[str]) -> None:
    slot = etree.SubElement(parent, _rim("Slot"), name=name)
    value_list = etree.SubElement(slot, _rim("ValueList"))
    for value in values:
        etree.SubElement(value_list, _rim("Value")).text = value


def _localized(parent: etree._Element, tag: str, text: str) -> None:
    holder = etree.SubElement(parent, _rim(tag))
    etree.SubElement(holder, _rim("LocalizedString"), value=text)


def _code_classification(
    parent: etree._Element, *, scheme: str, owner: str, code: Code, index: int = 0
) -> None:
    node = etree.SubElement(
        parent,
        _rim("Classification"),
        id=_derived_id(owner, scheme, str(index)),
        objectType=OBJECT_TYPE_CLASSIFICATION,
        classificationScheme=scheme,
        classifiedObject=owner,
        nodeRepresentation=code.code,
    )
    _slot(node, "codingScheme", [code.system])
    _localized(node, "Name", code.display or code.code)


def _specialty_value(code: Code) -> str:
    # French DMP usage: code^display^OID (e.g. "G15_10/SM26^Médecine générale^1.2.250.1.213.1.1.4.5").
    return f"{code.code}^{code.display}^{code.system}"


def _author_classification(
    parent: etree._Element, *, scheme: str, owner: str, author: Author, index: int
) -> None:
    node = etree.SubElement(
        parent,
        _rim("Classification"),
        id=_derived_id(owner, scheme, str(index)),
        objectType=OBJECT_TYPE_CLASSIFICATION,
        classificationScheme=scheme,
        classifiedObject=owner,
        nodeRepresentation="",
    )
    _slot(node, "authorPerson", [author.person])
    if author.institution:
        _slot(node, "authorInstitution", [author.institution])
    if author.role:
        _slot(node, "authorRole", [author.role])
    if author.specialty is not None:
        _slot(node, "authorSpecialty", [_specialty_value(author.specialty)])


def _external_identifier(parent: etree._Element, *, scheme: str, owner: str, value: str, name: str) -> None:
    node = etree.SubElement(
        parent,
        _rim("ExternalIdentifier"),
        id=_derived_id(owner, scheme),
        objectType=OBJECT_TYPE_EXTERNAL_IDENTIFIER,
        registryObject=owner,
        identificationScheme=scheme,
        value=value,
    )
    _localized(node, "Name", name)


def _association(
    parent: etree._Element, *, kind: str, source: str, target: str, slots: Mapping[str, Sequence[str]]
) -> None:
    node = etree.SubElement(
        parent,
        _rim("Association"),
        id=_derived_id(kind, source, target),
        objectType=OBJECT_TYPE_ASSOCIATION,
        associationType=kind,
        sourceObject=source,
        targetObject=target,
    )
    for name, values in slots.items():
        _slot(node, name, values)


# ---------------------------------------------------------------------------------------------------
# Build


def _document_entry_element(parent: etree._Element, entry: DocumentEntry) -> etree._Element:
    attrs = {
        "id": entry.entry_uuid,
        "mimeType": entry.mime_type,
        "objectType": DOCUMENT_ENTRY_STABLE,
        "status": entry.availability_status,
    }
    if entry.logical_id and entry.logical_id != entry.entry_uuid:
        attrs["lid"] = entry.logical_id
    node = etree.SubElement(parent, _rim("ExtrinsicObject"), attrs)
    _slot(node, "creationTime", [entry.creation_time])
    _slot(node, "languageCode", [entry.language_code])
    if entry.service_start_time:
        _slot(node, "serviceStartTime", [entry.service_start_time])
    if entry.service_stop_time:
        _slot(node, "serviceStopTime", [entry.service_stop_time])
    _slot(node, "sourcePatientId", [entry.source_patient_id])
    if entry.source_patient_info:
        _slot(node, "sourcePatientInfo", list(entry.source_patient_info))
    if entry.hash_sha1:
        _slot(node, "hash", [entry.hash_sha1])
    if entry.size is not None:
        _slot(node, "size", [str(entry.size)])
    if entry.uri:
        _slot(node, "URI", [entry.uri])
    if entry.legal_authenticator:
        _slot(node, "legalAuthenticator", [entry.legal_authenticator])
    if entry.repository_unique_id:
        _slot(node, "repositoryUniqueId", [entry.repository_unique_id])
    if entry.reference_ids:
        _slot(node, SLOT_REFERENCE_ID_LIST, list(entry.reference_ids))
    if entry.title:
        _localized(node, "Name", entry.title)
    if entry.comments:
        _localized(node, "Description", entry.comments)
    owner = entry.entry_uuid
    for index, author in enumerate(entry.authors):
        _author_classification(node, scheme=DE_AUTHOR, owner=owner, author=author, index=index)
    _code_classification(node, scheme=DE_CLASS_CODE, owner=owner, code=entry.class_code)
    for index, code in enumerate(entry.confidentiality):
        _code_classification(node, scheme=DE_CONFIDENTIALITY_CODE, owner=owner, code=code, index=index)
    for index, code in enumerate(entry.event_codes):
        _code_classification(node, scheme=DE_EVENT_CODE, owner=owner, code=code, index=index)
    _code_classification(node, scheme=DE_FORMAT_CODE, owner=owner, code=entry.format_code)
    _code_classification(node, scheme=DE_FACILITY_TYPE_CODE, owner=owner, code=entry.healthcare_facility_type)
    _code_classification(node, scheme=DE_PRACTICE_SETTING_CODE, owner=owner, code=entry.practice_setting)
    _code_classification(node, scheme=DE_TYPE_CODE, owner=owner, code=entry.type_code)
    _external_identifier(
        node, scheme=DE_PATIENT_ID, owner=owner, value=entry.patient_id, name="XDSDocumentEntry.patientId"
    )
    _external_identifier(
        node, scheme=DE_UNIQUE_ID, owner=owner, value=entry.unique_id, name="XDSDocumentEntry.uniqueId"
    )
    return node


def _submission_set_element(parent: etree._Element, submission: SubmissionSet) -> None:
    owner = submission.entry_uuid
    node = etree.SubElement(
        parent, _rim("RegistryPackage"), id=owner, objectType=OBJECT_TYPE_REGISTRY_PACKAGE
    )
    _slot(node, "submissionTime", [submission.submission_time])
    if submission.title:
        _localized(node, "Name", submission.title)
    if submission.comments:
        _localized(node, "Description", submission.comments)
    for index, author in enumerate(submission.authors):
        _author_classification(node, scheme=SS_AUTHOR, owner=owner, author=author, index=index)
    _code_classification(node, scheme=SS_CONTENT_TYPE_CODE, owner=owner, code=submission.content_type)
    _external_identifier(
        node, scheme=SS_UNIQUE_ID, owner=owner, value=submission.unique_id, name="XDSSubmissionSet.uniqueId"
    )
    _external_identifier(
        node, scheme=SS_SOURCE_ID, owner=owner, value=submission.source_id, name="XDSSubmissionSet.sourceId"
    )
    _external_identifier(
        node,
        scheme=SS_PATIENT_ID,
        owner=owner,
        value=submission.patient_id,
        name="XDSSubmissionSet.patientId",
    )
    etree.SubElement(
        parent,
        _rim("Classification"),
        id=_derived_id(owner, SUBMISSION_SET_NODE),
        objectType=OBJECT_TYPE_CLASSIFICATION,
        classifiedObject=owner,
        classificationNode=SUBMISSION_SET_NODE,
    )


def build_submit_objects_request(
    submission: SubmissionSet,
    entries: Sequence[DocumentEntry],
    *,
    replaces: Mapping[str, str] | None = None,
    previous_versions: Mapping[str, str] | None = None,
) -> etree._Element:
    """`lcm:SubmitObjectsRequest` for a submission set and its document entries.

    `replaces` maps a new entry_uuid to the entry_uuid it replaces (RPLC association).
    `previous_versions` (ITI-57 metadata update) maps an entry_uuid to the version number of the entry
    it updates: the HasMember association then carries the `PreviousVersion` slot.
    """
    replaces = replaces or {}
    previous_versions = previous_versions or {}
    known = {entry.entry_uuid for entry in entries}
    unknown = (set(replaces) | set(previous_versions)) - known
    if unknown:
        raise EbrimError(f"Fiche(s) inconnue(s) dans la soumission : {', '.join(sorted(unknown))}.")
    root = etree.Element(f"{{{NS_LCM}}}SubmitObjectsRequest", nsmap=NSMAP)
    objects = etree.SubElement(root, _rim("RegistryObjectList"))
    for entry in entries:
        _document_entry_element(objects, entry)
    _submission_set_element(objects, submission)
    for entry in entries:
        slots: dict[str, list[str]] = {"SubmissionSetStatus": ["Original"]}
        if entry.entry_uuid in previous_versions:
            slots["PreviousVersion"] = [previous_versions[entry.entry_uuid]]
        _association(
            objects,
            kind=ASSOCIATION_HAS_MEMBER,
            source=submission.entry_uuid,
            target=entry.entry_uuid,
            slots=slots,
        )
    for new, old in replaces.items():
        _association(objects, kind=ASSOCIATION_RPLC, source=new, target=old, slots={})
    return root


def add_availability_update(
    request: etree._Element, *, submission_uuid: str, entry_uuid: str, original_status: str, new_status: str
) -> None:
    """Add an ITI-57 UpdateAvailabilityStatus association (submission set → entry) and its HasMember
    association to an existing SubmitObjectsRequest (e.g. archiving or deleting an entry)."""
    objects = request.find(_rim("RegistryObjectList"))
    if objects is None:
        raise EbrimError("RegistryObjectList absent de la requête.")
    update_id = _derived_id(ASSOCIATION_UPDATE_AVAILABILITY, submission_uuid, entry_uuid)
    _association(
        objects,
        kind=ASSOCIATION_UPDATE_AVAILABILITY,
        source=submission_uuid,
        target=entry_uuid,
        slots={"OriginalStatus": [original_status], "NewStatus": [new_status]},
    )
    _association(
        objects,
        kind=ASSOCIATION_HAS_MEMBER,
        source=submission_uuid,
        target=update_id,
        slots={"SubmissionSetStatus": ["Original"]},
    )


def to_bytes(element: etree._Element) -> bytes:
    return etree.tostring(element, xml_declaration=True, encoding="UTF-8")


# ---------------------------------------------------------------------------------------------------
# Parse

_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=False, remove_blank_text=False)


def parse_xml(xml: bytes | etree._Element) -> etree._Element:
    """Parse untrusted XML safely (no entity expansion, no network, no DTD loading)."""
    if isinstance(xml, etree._Element):
        return xml
    if b"<!DOCTYPE" in xml[:4096] or b"<!ENTITY" in xml:
        raise EbrimError("XML refusé : les déclarations DOCTYPE/ENTITY ne sont pas acceptées.")
    try:
        return etree.fromstring(xml, parser=_PARSER)
    except etree.XMLSyntaxError as exc:
        raise EbrimError(f"XML illisible : {exc}") from exc


def _slots(node: etree._Element) -> dict[str, tuple[str, ...]]:
    out: dict[str, tuple[str, ...]] = {}
    for slot in node.findall(_rim("Slot")):
        values = tuple((v.text or "") for v in slot.iterfind(f"{_rim('ValueList')}/{_rim('Value')}"))
        out[slot.get("name", "")] = values
    return out


def _first(slots: Mapping[str, tuple[str, ...]], name: str) -> str:
    values = slots.get(name, ())
    return values[0] if values else ""


def _localized_text(node: etree._Element, tag: str) -> str:
    string = node.find(f"{_rim(tag)}/{_rim('LocalizedString')}")
    return string.get("value", "") if string is not None else ""


def _parse_specialty(value: str) -> Code | None:
    if not value:
        return None
    parts = value.split("^")
    code = parts[0]
    display = parts[1] if len(parts) > 1 else ""
    system = parts[2] if len(parts) > 2 else ""
    # Also accept the HL7 CE/CWE layout (code^display^^^^^^^^&system&ISO) that some senders use.
    if not system and len(parts) > 9:
        system = parts[9].strip("&").split("&")[0]
    return Code(code=code, system=system, display=display)


def _classifications(node: etree._Element, scheme: str) -> list[etree._Element]:
    return [c for c in node.findall(_rim("Classification")) if c.get("classificationScheme") == scheme]


def _code_of(classification: etree._Element) -> Code:
    return Code(
        code=classification.get("nodeRepresentation", ""),
        system=_first(_slots(classification), "codingScheme"),
        display=_localized_text(classification, "Name"),
    )


def _one_code(node: etree._Element, scheme: str, label: str) -> Code:
    found = _classifications(node, scheme)
    if not found:
        raise EbrimError(f"Fiche {node.get('id', '?')} : {label} absent.")
    return _code_of(found[0])


def _authors(node: etree._Element, scheme: str) -> tuple[Author, ...]:
    authors = []
    for classification in _classifications(node, scheme):
        slots = _slots(classification)
        authors.append(
            Author(
                person=_first(slots, "authorPerson"),
                institution=_first(slots, "authorInstitution"),
                role=_first(slots, "authorRole"),
                specialty=_parse_specialty(_first(slots, "authorSpecialty")),
            )
        )
    return tuple(authors)


def _identifier(node: etree._Element, scheme: str, label: str) -> str:
    for identifier in node.findall(_rim("ExternalIdentifier")):
        if identifier.get("identificationScheme") == scheme:
            return identifier.get("value", "")
    raise EbrimError(f"Objet {node.get('id', '?')} : identifiant « {label} » absent.")


def parse_document_entry(node: etree._Element) -> DocumentEntry:
    """One `rim:ExtrinsicObject` → DocumentEntry. Raises EbrimError when a required part is missing."""
    slots = _slots(node)
    size_text = _first(slots, "size")
    try:
        size = int(size_text) if size_text else None
    except ValueError as exc:
        raise EbrimError(f"Fiche {node.get('id', '?')} : taille « {size_text} » non numérique.") from exc
    entry_uuid = node.get("id", "")
    if not entry_uuid:
        raise EbrimError("Fiche de document sans identifiant (attribut id).")
    logical_id = node.get("lid", "")
    return DocumentEntry(
        entry_uuid=entry_uuid,
        unique_id=_identifier(node, DE_UNIQUE_ID, "XDSDocumentEntry.uniqueId"),
        patient_id=_identifier(node, DE_PATIENT_ID, "XDSDocumentEntry.patientId"),
        source_patient_id=_first(slots, "sourcePatientId"),
        source_patient_info=slots.get("sourcePatientInfo", ()),
        class_code=_one_code(node, DE_CLASS_CODE, "classCode"),
        type_code=_one_code(node, DE_TYPE_CODE, "typeCode"),
        confidentiality=tuple(_code_of(c) for c in _classifications(node, DE_CONFIDENTIALITY_CODE)),
        format_code=_one_code(node, DE_FORMAT_CODE, "formatCode"),
        healthcare_facility_type=_one_code(node, DE_FACILITY_TYPE_CODE, "healthcareFacilityTypeCode"),
        practice_setting=_one_code(node, DE_PRACTICE_SETTING_CODE, "practiceSettingCode"),
        event_codes=tuple(_code_of(c) for c in _classifications(node, DE_EVENT_CODE)),
        mime_type=node.get("mimeType", ""),
        language_code=_first(slots, "languageCode"),
        creation_time=_first(slots, "creationTime"),
        service_start_time=_first(slots, "serviceStartTime"),
        service_stop_time=_first(slots, "serviceStopTime"),
        title=_localized_text(node, "Name"),
        comments=_localized_text(node, "Description"),
        hash_sha1=_first(slots, "hash"),
        size=size,
        uri=_first(slots, "URI"),
        authors=_authors(node, DE_AUTHOR),
        legal_authenticator=_first(slots, "legalAuthenticator"),
        repository_unique_id=_first(slots, "repositoryUniqueId"),
        availability_status=node.get("status", ""),
        reference_ids=slots.get(SLOT_REFERENCE_ID_LIST, ()),
        logical_id="" if logical_id == entry_uuid else logical_id,
    )


def parse_submission_set(node: etree._Element) -> SubmissionSet:
    slots = _slots(node)
    return SubmissionSet(
        entry_uuid=node.get("id", ""),
        unique_id=_identifier(node, SS_UNIQUE_ID, "XDSSubmissionSet.uniqueId"),
        source_id=_identifier(node, SS_SOURCE_ID, "XDSSubmissionSet.sourceId"),
        patient_id=_identifier(node, SS_PATIENT_ID, "XDSSubmissionSet.patientId"),
        submission_time=_first(slots, "submissionTime"),
        content_type=_one_code(node, SS_CONTENT_TYPE_CODE, "contentTypeCode"),
        authors=_authors(node, SS_AUTHOR),
        title=_localized_text(node, "Name"),
        comments=_localized_text(node, "Description"),
    )


def parse_document_entries(xml: bytes | etree._Element) -> list[DocumentEntry]:
    """Every DocumentEntry (ExtrinsicObject) anywhere under the element: SubmitObjectsRequest,
    AdhocQueryResponse (ITI-18), METADATA.XML."""
    root = parse_xml(xml)
    return [parse_document_entry(node) for node in root.iter(_rim("ExtrinsicObject"))]


def parse_associations(xml: bytes | etree._Element) -> list[Association]:
    root = parse_xml(xml)
    return [
        Association(
            id=node.get("id", ""),
            association_type=node.get("associationType", ""),
            source=node.get("sourceObject", ""),
            target=node.get("targetObject", ""),
            slots=_slots(node),
        )
        for node in root.iter(_rim("Association"))
    ]


def _is_submission_set(package: etree._Element, root: etree._Element) -> bool:
    package_id = package.get("id")
    for classification in root.iter(_rim("Classification")):
        if (
            classification.get("classificationNode") == SUBMISSION_SET_NODE
            and classification.get("classifiedObject") == package_id
        ):
            return True
    return False


def parse_submit_objects_request(
    xml: bytes | etree._Element,
) -> tuple[SubmissionSet, list[DocumentEntry], dict[str, str]]:
    """SubmitObjectsRequest → (submission set, document entries, {new entry_uuid: replaced entry_uuid})."""
    root = parse_xml(xml)
    packages = [p for p in root.iter(_rim("RegistryPackage")) if _is_submission_set(p, root)]
    if len(packages) != 1:
        raise EbrimError(f"Un lot de soumission (SubmissionSet) attendu, {len(packages)} trouvé(s).")
    submission = parse_submission_set(packages[0])
    entries = parse_document_entries(root)
    replaces = {
        a.source: a.target for a in parse_associations(root) if a.association_type == ASSOCIATION_RPLC
    }
    return submission, entries, replaces


# ---------------------------------------------------------------------------------------------------
# Validation

_UUID_RE = re.compile(
    r"^urn:uuid:[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
)
_OID_RE = re.compile(r"^[0-2](\.(0|[1-9][0-9]*))+$")
_UNIQUE_ID_RE = re.compile(r"^[0-2](\.(0|[1-9][0-9]*))+(\^[A-Za-z0-9._-]{1,16})?$")
_CX_RE = re.compile(r"^(?P<id>[^^&]+)\^\^\^&(?P<oid>[0-9.]+)&ISO\^NH$")
_SHA1_RE = re.compile(r"^[0-9a-f]{40}$")
_DTM_RE = re.compile(r"^\d{4}(\d{2}){0,5}$")
_INS_RE = re.compile(r"^[12378](\d{4})(\d{2}|2A|2B)\d{6}\d{2}$")


def ins_key_valid(ins: str) -> bool:
    """The matricule INS key: 97 - (first 13 digits mod 97); Corsica 2A→19, 2B→18 (standards.md §1.3)."""
    if not _INS_RE.match(ins):
        return False
    body = ins[:13].replace("2A", "19", 1) if ins[5:7] == "2A" else ins[:13]
    body = body.replace("2B", "18", 1) if ins[5:7] == "2B" else body
    return 97 - int(body) % 97 == int(ins[13:])


def _dtm_valid(value: str) -> bool:
    if not _DTM_RE.match(value):
        return False
    padded = value + "0101000000"[len(value) - 4 :] if len(value) < 14 else value
    try:
        dt.datetime.strptime(padded, "%Y%m%d%H%M%S")
    except ValueError:
        return False
    return True


def _same(a: Code, b: Code) -> bool:
    return a.code == b.code and a.system == b.system


def _check_code(errors: list[str], valueset: str, code: Code, label: str) -> None:
    from enrs.standards import valuesets

    known = valuesets.lookup(valueset, code.code)
    if known is None or (code.system and known.system != code.system):
        errors.append(f"{label} « {code.code} » ({code.system or 'sans système'}) inconnu du jeu de valeurs.")


def validate_patient_id(patient_id: str, label: str = "patientId") -> list[str]:
    match = _CX_RE.match(patient_id)
    if not match:
        return [f"{label} « {patient_id} » mal formé : attendu « INS^^^&OID&ISO^NH »."]
    errors = []
    if match["oid"] not in INS_OIDS:
        errors.append(f"{label} : l'OID « {match['oid']} » n'est pas un OID d'INS.")
    if not ins_key_valid(match["id"]):
        errors.append(f"{label} : le matricule INS « {match['id']} » est invalide (format ou clé).")
    return errors


def validate_entry(entry: DocumentEntry) -> list[str]:
    """Every problem of a DocumentEntry, as French messages ([] = valid for the DMP)."""
    from enrs.standards import valuesets

    errors: list[str] = []
    if not _UUID_RE.match(entry.entry_uuid):
        errors.append(f"entryUUID « {entry.entry_uuid} » invalide : attendu « urn:uuid:… ».")
    root_part, _, extension = entry.unique_id.partition("^")
    if extension and len(extension) > 16:
        errors.append(f"uniqueId « {entry.unique_id} » invalide : l'extension dépasse 16 caractères (IHE).")
    elif not _UNIQUE_ID_RE.match(entry.unique_id) or len(root_part) > 64:
        errors.append(
            f"uniqueId « {entry.unique_id} » invalide : attendu un OID (éventuellement ^extension)."
        )
    errors += validate_patient_id(entry.patient_id)
    if not entry.source_patient_id:
        errors.append("sourcePatientId obligatoire.")
    if not entry.mime_type:
        errors.append("mimeType obligatoire.")
    if not entry.language_code:
        errors.append("languageCode obligatoire.")
    _check_code(errors, "type_code", entry.type_code, "typeCode")
    try:
        expected_class = valuesets.class_for_type(entry.type_code.code)
    except KeyError:
        expected_class = None
    if expected_class is not None and not _same(expected_class, entry.class_code):
        errors.append(
            f"classCode « {entry.class_code.code} » incohérent avec le typeCode « {entry.type_code.code} » "
            f"(attendu « {expected_class.code} »)."
        )
    if not entry.confidentiality:
        errors.append("confidentialityCode obligatoire (au moins un).")
    for code in entry.confidentiality:
        _check_code(errors, "confidentiality", code, "confidentialityCode")
    _check_code(errors, "format_code", entry.format_code, "formatCode")
    _check_code(errors, "facility_type", entry.healthcare_facility_type, "healthcareFacilityTypeCode")
    _check_code(errors, "practice_setting", entry.practice_setting, "practiceSettingCode")
    if not _dtm_valid(entry.creation_time):
        errors.append(f"creationTime « {entry.creation_time} » invalide : attendu AAAAMMJJhhmmss (UTC).")
    for label, value in (
        ("serviceStartTime", entry.service_start_time),
        ("serviceStopTime", entry.service_stop_time),
    ):
        if value and not _dtm_valid(value):
            errors.append(f"{label} « {value} » invalide : attendu AAAAMMJJhhmmss (UTC).")
    if entry.hash_sha1 and not _SHA1_RE.match(entry.hash_sha1):
        errors.append("hash invalide : attendu 40 caractères hexadécimaux (SHA-1, minuscules).")
    if entry.size is not None and entry.size <= 0:
        errors.append("size doit être strictement positive.")
    if not entry.authors:
        errors.append("Au moins un auteur (author) est obligatoire.")
    for index, author in enumerate(entry.authors, start=1):
        if not author.person and not author.institution:
            errors.append(f"Auteur {index} : authorPerson ou authorInstitution obligatoire.")
        if author.specialty is not None:
            _check_code(errors, "author_specialty", author.specialty, f"Auteur {index} : authorSpecialty")
    if not entry.legal_authenticator:
        errors.append("legalAuthenticator obligatoire.")
    return errors


def validate_submission_set(submission: SubmissionSet) -> list[str]:
    errors: list[str] = []
    if not _UUID_RE.match(submission.entry_uuid):
        errors.append(f"entryUUID du lot « {submission.entry_uuid} » invalide.")
    if not _UNIQUE_ID_RE.match(submission.unique_id):
        errors.append(f"uniqueId du lot « {submission.unique_id} » invalide : attendu un OID.")
    if not _OID_RE.match(submission.source_id):
        errors.append(f"sourceId « {submission.source_id} » invalide : attendu un OID.")
    errors += validate_patient_id(submission.patient_id, "patientId du lot")
    if not _dtm_valid(submission.submission_time):
        errors.append(f"submissionTime « {submission.submission_time} » invalide.")
    _check_code(errors, "content_type", submission.content_type, "contentTypeCode")
    return errors
