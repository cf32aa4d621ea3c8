"""The XDS.b transactions of the DMP double: ITI-41, ITI-18, ITI-43, ITI-57 (SOAP body in, body out).

Access rule chosen for the double (documented in devtools/README.md):
* every transaction is about ONE patient: the INS in the VIHF `resource-id`;
* an entry whose confidentialityCode list holds `MASQUE_PS` is hidden (ITI-18 and ITI-43) from every
  professional except those of the structure that submitted it (VIHF `Identifiant_Structure` equal to
  the submitter's); `INVISIBLE_PATIENT` and `INVISIBLE_REPRESENTANTS_LEGAUX` only concern the patient
  and legal representatives, who do not use this interface, so they hide nothing here.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import importlib
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from lxml import etree

from . import codes
from .constants import (
    APPROVED,
    ASSOC_HAS_MEMBER,
    ASSOC_RPLC,
    ASSOC_UPDATE_AVAILABILITY,
    AVAILABILITY_STATUSES,
    CONFIDENTIALITY_DMP_SYSTEM,
    DE_CLASS_CODE,
    DE_CODED,
    DE_CONFIDENTIALITY,
    DE_TYPE_CODE,
    DEPRECATED,
    DOCUMENT_ENTRY_STABLE,
    FIND_DOCUMENTS,
    GET_DOCUMENTS,
    HL7,
    INS_OIDS,
    LCM,
    QUERY,
    RIM,
    RS,
    SEVERITY_ERROR,
    SEVERITY_WARNING,
    STATUS_FAILURE,
    STATUS_PARTIAL,
    STATUS_SUCCESS,
    XDSB,
    XOP,
)
from .metadata import Coded, Entry, Submission, query_values, read_submission, slots_of
from .mime import MimeError, cid_from_href
from .store import Store, utcnow_iso
from .vihf import VihfClaims, split_patient_id
from .xmlsafe import UnsafeXmlError, parse

R = f"{{{RIM}}}"


@dataclass(frozen=True)
class RegistryError:
    code: str
    context: str
    location: str = ""
    severity: str = SEVERITY_ERROR


@dataclass
class Context:
    store: Store
    repository_id: str
    home_community_id: str = ""
    cda_xsd: bool = True


class RequestError(ValueError):
    """The body is not the expected XDS request at all (answered with a SOAP Sender fault)."""


# --- responses ---------------------------------------------------------------------------------------


def registry_response(
    errors: list[RegistryError], *, tag: str = f"{{{RS}}}RegistryResponse"
) -> etree._Element:
    has_error = any(e.severity == SEVERITY_ERROR for e in errors)
    response = etree.Element(tag, nsmap={"rs": RS}, status=STATUS_FAILURE if has_error else STATUS_SUCCESS)
    append_errors(response, errors)
    return response


def append_errors(parent: etree._Element, errors: list[RegistryError]) -> None:
    if not errors:
        return
    has_error = any(e.severity == SEVERITY_ERROR for e in errors)
    error_list = etree.SubElement(
        parent,
        f"{{{RS}}}RegistryErrorList",
        highestSeverity=SEVERITY_ERROR if has_error else SEVERITY_WARNING,
    )
    for error in errors:
        item = etree.SubElement(
            error_list,
            f"{{{RS}}}RegistryError",
            errorCode=error.code,
            codeContext=error.context,
            severity=error.severity,
        )
        if error.location:
            item.set("location", error.location)


# --- metadata checks ---------------------------------------------------------------------------------


def _ins_of(patient_id: str) -> tuple[str, str]:
    return split_patient_id(patient_id)


def check_patient(ctx: Context, patient_id: str, claims: VihfClaims, location: str) -> list[RegistryError]:
    ins, oid = _ins_of(patient_id)
    if not ins:
        return [RegistryError("XDSRegistryMetadataError", "patientId absent", location)]
    if oid and oid not in INS_OIDS:
        return [
            RegistryError(
                "XDSRegistryMetadataError", f"patientId : autorité {oid} n'est pas un OID INS", location
            )
        ]
    if ins != claims.ins or (oid and claims.ins_oid and oid != claims.ins_oid):
        return [
            RegistryError(
                "XDSPatientIdDoesNotMatch",
                f"patientId {patient_id} différent du resource-id du VIHF ({claims.resource_id})",
                location,
            )
        ]
    patient = ctx.store.patient(ins)
    if patient is None:
        return [RegistryError("XDSUnknownPatientId", f"Patient {ins} inconnu du DMP", location)]
    if patient["status"] == "closed":
        return [RegistryError("XDSUnknownPatientId", f"Le DMP du patient {ins} est fermé", location)]
    if patient["status"] == "opposed":
        return [
            RegistryError(
                "XDSUnknownPatientId", f"Le patient {ins} s'est opposé à l'alimentation de son DMP", location
            )
        ]
    return []


def check_entry_metadata(entry: Entry) -> list[RegistryError]:
    """Required attributes and coded values of a document entry (XDSRegistryMetadataError)."""
    errors: list[RegistryError] = []
    loc = entry.entry_id

    def fail(context: str) -> None:
        errors.append(RegistryError("XDSRegistryMetadataError", context, loc))

    if entry.object_type != DOCUMENT_ENTRY_STABLE:
        fail(f"objectType {entry.object_type or '(absent)'} : fiche de document stable attendue")
    if not entry.mime_type:
        fail("mimeType absent")
    if not entry.unique_id:
        fail("uniqueId (XDSDocumentEntry.uniqueId) absent")
    if not entry.patient_id:
        fail("patientId (XDSDocumentEntry.patientId) absent")
    creation = entry.slot("creationTime")
    if not creation:
        fail("Slot creationTime absent")
    elif not (creation.isdigit() and len(creation) in (8, 10, 12, 14)):
        fail(f"Slot creationTime : format DTM invalide ({creation})")
    if not entry.slot("languageCode"):
        fail("Slot languageCode absent")
    if not entry.slots.get("legalAuthenticator"):
        fail("Slot legalAuthenticator absent")
    for scheme, (label, valueset, required) in DE_CODED.items():
        values = entry.codes.get(scheme, [])
        if not values:
            if required:
                fail(f"{label} absent")
            continue
        if scheme != DE_CONFIDENTIALITY and len(values) > 1:
            fail(f"{label} : une seule valeur attendue")
        for value in values:
            if not value.code or not value.system:
                fail(f"{label} : code ou codingScheme vide")
            elif not codes.is_known(valueset, value.code, value.system):
                fail(f"{label} : code {value.code} (codingScheme {value.system}) hors jeu de valeurs")
    type_values = entry.codes.get(DE_TYPE_CODE, [])
    class_values = entry.codes.get(DE_CLASS_CODE, [])
    if type_values and class_values:
        expected = codes.expected_class_for_type(type_values[0].code)
        if expected is not None and expected != class_values[0].code:
            got, type_code = class_values[0].code, type_values[0].code
            fail(f"classCode : {got} incohérent avec le typeCode {type_code} ({expected} attendu)")
    return errors


def _validate_cda_module() -> Callable[[bytes], list[str]] | None:
    try:
        module = importlib.import_module("enrs.standards.cda")
        validate: Callable[[bytes], list[str]] = module.validate_cda
        return validate
    except Exception:
        return None


def check_cda(ctx: Context, entry: Entry, content: bytes) -> list[RegistryError]:
    """Checks on a CDA document (mimeType text/xml): well-formed, same patient and typeCode, XSD."""
    loc = entry.entry_id
    try:
        root = parse(content)
    except UnsafeXmlError as exc:
        return [RegistryError("XDSRepositoryMetadataError", f"Document CDA illisible : {exc}", loc)]
    if root.tag != f"{{{HL7}}}ClinicalDocument":
        return [
            RegistryError(
                "XDSRepositoryMetadataError", "Le document n'est pas un CDA R2 (ClinicalDocument)", loc
            )
        ]
    errors: list[RegistryError] = []
    ins, _oid = _ins_of(entry.patient_id)
    cda_ins = [
        i.get("extension", "")
        for i in root.iterfind(f"{{{HL7}}}recordTarget/{{{HL7}}}patientRole/{{{HL7}}}id")
        if i.get("root") in INS_OIDS
    ]
    if not cda_ins:
        errors.append(RegistryError("XDSRepositoryMetadataError", "CDA sans INS dans recordTarget", loc))
    elif ins and ins not in cda_ins:
        errors.append(
            RegistryError(
                "XDSPatientIdDoesNotMatch", f"INS du CDA ({cda_ins[0]}) différent du patientId ({ins})", loc
            )
        )
    code = root.find(f"{{{HL7}}}code")
    type_values = entry.codes.get(DE_TYPE_CODE, [])
    if code is not None and type_values and code.get("code") != type_values[0].code:
        errors.append(
            RegistryError(
                "XDSRegistryMetadataError",
                f"typeCode {type_values[0].code} différent du code du CDA ({code.get('code')})",
                loc,
            )
        )
    doc_id = root.find(f"{{{HL7}}}id")
    if doc_id is not None:
        expected = doc_id.get("root", "")
        if doc_id.get("extension"):
            expected += "^" + doc_id.get("extension", "")
        if entry.unique_id and entry.unique_id != expected:
            errors.append(
                RegistryError(
                    "XDSRegistryMetadataError",
                    f"uniqueId {entry.unique_id} différent de l'identifiant du CDA ({expected})",
                    loc,
                    SEVERITY_WARNING,
                )
            )
    validate = _validate_cda_module() if ctx.cda_xsd else None
    if validate is not None:
        try:
            problems = validate(content)
        except Exception as exc:
            problems = [f"validation impossible : {exc}"]
        for problem in problems[:5]:
            errors.append(
                RegistryError("XDSRepositoryMetadataError", f"CDA non conforme au schéma : {problem}", loc)
            )
    return errors


# --- ITI-41 ------------------------------------------------------------------------------------------


def _documents(request: etree._Element, attachments: dict[str, bytes]) -> tuple[dict[str, bytes], list[str]]:
    documents: dict[str, bytes] = {}
    problems: list[str] = []
    for document in request.iterfind(f"{{{XDSB}}}Document"):
        doc_id = document.get("id", "")
        include = document.find(f"{{{XOP}}}Include")
        if include is not None:
            try:
                cid = cid_from_href(include.get("href", ""))
            except MimeError as exc:
                problems.append(str(exc))
                continue
            if cid not in attachments:
                problems.append(f"pièce jointe MTOM {cid} absente")
                continue
            documents[doc_id] = attachments[cid]
        else:
            try:
                documents[doc_id] = base64.b64decode("".join((document.text or "").split()), validate=True)
            except (binascii.Error, ValueError):
                problems.append(f"document {doc_id} : base64 invalide")
    return documents, problems


def _codes_json(entry: Entry) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for scheme, (label, _vs, _req) in DE_CODED.items():
        values = [c.as_json() for c in entry.codes.get(scheme, [])]
        out[label] = values if scheme == DE_CONFIDENTIALITY else (values[0] if values else None)
    return out


def _new_uuid(candidate: str) -> str:
    return candidate if candidate.startswith("urn:uuid:") else f"urn:uuid:{uuid.uuid4()}"


def provide_and_register(
    ctx: Context, request: etree._Element, attachments: dict[str, bytes], claims: VihfClaims
) -> etree._Element:
    submit = request.find(f"{{{LCM}}}SubmitObjectsRequest")
    if submit is None:
        raise RequestError("ProvideAndRegisterDocumentSetRequest sans SubmitObjectsRequest.")
    submission = read_submission(submit)
    documents, doc_problems = _documents(request, attachments)
    errors = _check_submission(ctx, submission, claims)
    errors += [RegistryError("XDSRepositoryError", p) for p in doc_problems]
    entry_ids = {e.entry_id for e in submission.entries}
    for doc_id in documents:
        if doc_id not in entry_ids:
            errors.append(
                RegistryError("XDSMissingDocumentMetadata", f"Document {doc_id} sans fiche", doc_id)
            )
    seen_unique: set[str] = set()
    for entry in submission.entries:
        content = documents.get(entry.entry_id)
        if content is None:
            errors.append(
                RegistryError(
                    "XDSMissingDocument", f"Pas de document pour la fiche {entry.entry_id}", entry.entry_id
                )
            )
            continue
        declared_hash = entry.slot("hash").lower()
        if declared_hash and declared_hash != hashlib.sha1(content).hexdigest():  # noqa: S324 - XDS uses SHA-1
            errors.append(
                RegistryError(
                    "XDSNonIdenticalHash",
                    f"hash {declared_hash} différent du SHA-1 du document",
                    entry.entry_id,
                )
            )
        declared_size = entry.slot("size")
        if declared_size and declared_size != str(len(content)):
            errors.append(
                RegistryError(
                    "XDSNonIdenticalSize", f"size {declared_size} différent de {len(content)}", entry.entry_id
                )
            )
        if entry.unique_id:
            if entry.unique_id in seen_unique or ctx.store.entries_by_unique_id(entry.unique_id):
                errors.append(
                    RegistryError(
                        "XDSDuplicateUniqueIdInRegistry",
                        f"uniqueId {entry.unique_id} déjà enregistré",
                        entry.entry_id,
                    )
                )
            seen_unique.add(entry.unique_id)
        if entry.mime_type in ("text/xml", "application/xml"):
            errors += check_cda(ctx, entry, content)
    replaced = _check_replacements(ctx, submission, claims)
    errors += replaced[1]
    if any(e.severity == SEVERITY_ERROR for e in errors):
        return registry_response(errors)
    # Accepted: files first, then the registry state.
    now = utcnow_iso()
    ids = {e.entry_id: _new_uuid(e.entry_id) for e in submission.entries}
    ss_uuid = _new_uuid(submission.package_id)
    new_records: list[dict[str, Any]] = []
    for entry in submission.entries:
        content = documents[entry.entry_id]
        entry_uuid = ids[entry.entry_id]
        replaces = replaced[0].get(entry.entry_id)
        new_records.append(
            {
                "entry_uuid": entry_uuid,
                "lid": entry_uuid,
                "version": 1,
                "unique_id": entry.unique_id,
                "patient_id": entry.patient_id,
                "ins": _ins_of(entry.patient_id)[0],
                "status": APPROVED,
                "mime_type": entry.mime_type,
                "hash": hashlib.sha1(content).hexdigest(),  # noqa: S324
                "size": len(content),
                "repository_unique_id": ctx.repository_id,
                "title": entry.title,
                "creation_time": entry.slot("creationTime"),
                **_codes_json(entry),
                "submitter": {"structure_id": claims.structure_id, "subject_id": claims.subject_id},
                "submission_set": ss_uuid,
                "submitted_at": now,
                "replaces": replaces or "",
                "replaced_by": "",
                "superseded_by": "",
                "file": ctx.store.write_document(entry.unique_id, content),
                "extrinsic_xml": etree.tostring(entry.element).decode(),
                "id_map": {entry.entry_id: entry_uuid},
            }
        )
    updates = {old: {"status": DEPRECATED, "replaced_by": ids[new]} for new, old in replaced[0].items()}
    ctx.store.commit(
        new_entries=new_records,
        updates=updates,
        submission_set={
            "entry_uuid": ss_uuid,
            "unique_id": submission.unique_id,
            "source_id": submission.source_id,
            "patient_id": submission.patient_id,
            "submitted_at": now,
            "entries": [r["entry_uuid"] for r in new_records],
            "transaction": "ITI-41",
        },
    )
    return registry_response(errors)


def _check_submission(ctx: Context, submission: Submission, claims: VihfClaims) -> list[RegistryError]:
    errors = [RegistryError("XDSRegistryMetadataError", p) for p in submission.problems]
    if submission.package_id:
        if not submission.unique_id:
            errors.append(
                RegistryError(
                    "XDSRegistryMetadataError", "SubmissionSet.uniqueId absent", submission.package_id
                )
            )
        if not submission.source_id:
            errors.append(
                RegistryError(
                    "XDSRegistryMetadataError", "SubmissionSet.sourceId absent", submission.package_id
                )
            )
        if submission.content_type is None:
            errors.append(
                RegistryError(
                    "XDSRegistryMetadataError", "SubmissionSet.contentTypeCode absent", submission.package_id
                )
            )
        errors += check_patient(ctx, submission.patient_id, claims, submission.package_id)
    if not submission.entries:
        errors.append(RegistryError("XDSRegistryMetadataError", "Aucune fiche de document (ExtrinsicObject)"))
    for entry in submission.entries:
        errors += check_entry_metadata(entry)
        if entry.patient_id and submission.patient_id and entry.patient_id != submission.patient_id:
            errors.append(
                RegistryError(
                    "XDSPatientIdDoesNotMatch",
                    f"patientId de la fiche ({entry.patient_id}) ≠ celui du lot ({submission.patient_id})",
                    entry.entry_id,
                )
            )
    return errors


def _check_replacements(
    ctx: Context, submission: Submission, claims: VihfClaims
) -> tuple[dict[str, str], list[RegistryError]]:
    """RPLC associations: {new entry id (as submitted): old entry uuid} and the errors."""
    replaced: dict[str, str] = {}
    errors: list[RegistryError] = []
    entry_ids = {e.entry_id: e for e in submission.entries}
    for assoc in submission.associations:
        if assoc.kind == ASSOC_HAS_MEMBER:
            continue
        if assoc.kind != ASSOC_RPLC:
            errors.append(
                RegistryError(
                    "XDSRegistryMetadataError",
                    f"Type d'association non pris en charge : {assoc.kind}",
                    assoc.association_id,
                )
            )
            continue
        if assoc.source not in entry_ids:
            errors.append(
                RegistryError(
                    "XDSRegistryMetadataError",
                    "RPLC : sourceObject n'est pas une fiche du lot",
                    assoc.association_id,
                )
            )
            continue
        old = ctx.store.entry(assoc.target)
        if old is None:
            errors.append(
                RegistryError(
                    "XDSUnresolvedReferenceException",
                    f"RPLC : fiche {assoc.target} inconnue",
                    assoc.association_id,
                )
            )
            continue
        if old["status"] != APPROVED:
            errors.append(
                RegistryError(
                    "XDSRegistryMetadataError",
                    f"RPLC : la fiche {assoc.target} n'est plus active",
                    assoc.association_id,
                )
            )
            continue
        if old["ins"] != claims.ins or old["patient_id"] != entry_ids[assoc.source].patient_id:
            errors.append(
                RegistryError(
                    "XDSPatientIdDoesNotMatch",
                    "RPLC : la fiche remplacée concerne un autre patient",
                    assoc.association_id,
                )
            )
            continue
        replaced[assoc.source] = assoc.target
    return replaced, errors


# --- visibility --------------------------------------------------------------------------------------


def visible_to(record: dict[str, Any], claims: VihfClaims, everything: list[dict[str, Any]]) -> bool:
    """Whether the VIHF's user may see `record`. Masking follows the CURRENT version of the logical
    document (same lid, not superseded by an ITI-57 update), so older versions are hidden as well."""
    if record["ins"] != claims.ins:
        return False
    current = next(
        (r for r in everything if r["lid"] == record["lid"] and not r.get("superseded_by")),
        record,
    )
    masked = any(
        c["code"] == "MASQUE_PS" and c["system"] == CONFIDENTIALITY_DMP_SYSTEM
        for c in current["confidentialityCode"]
    )
    return not masked or record["submitter"]["structure_id"] == claims.structure_id


# --- ITI-18 ------------------------------------------------------------------------------------------


def extrinsic_for(record: dict[str, Any]) -> etree._Element:
    """The stored ExtrinsicObject as the registry now sees it (ids, status, version, size/hash, codes)."""
    element = parse(record["extrinsic_xml"].encode())
    entry_uuid = record["entry_uuid"]
    submitted_ids = set(record.get("id_map", {}))
    element.set("id", entry_uuid)
    element.set("lid", record["lid"])
    element.set("status", record["status"])
    for child in element.iter(R + "Classification", R + "ExternalIdentifier"):
        if child.get("classifiedObject") in submitted_ids or child.get("registryObject") in submitted_ids:
            if child.get("classifiedObject") is not None:
                child.set("classifiedObject", entry_uuid)
            if child.get("registryObject") is not None:
                child.set("registryObject", entry_uuid)
    for slot in list(element.iterfind(R + "Slot")):
        if slot.get("name") in ("size", "hash", "repositoryUniqueId"):
            element.remove(slot)
    for position, (name, value) in enumerate(
        (
            ("hash", record["hash"]),
            ("size", str(record["size"])),
            ("repositoryUniqueId", record["repository_unique_id"]),
        )
    ):
        slot = etree.Element(R + "Slot", name=name)
        etree.SubElement(etree.SubElement(slot, R + "ValueList"), R + "Value").text = value
        element.insert(position, slot)
    # Confidentiality as currently recorded (ITI-57 may have changed it).
    for old in [
        c
        for c in element.iterfind(R + "Classification")
        if c.get("classificationScheme") == DE_CONFIDENTIALITY
    ]:
        element.remove(old)
    anchor = element.find(R + "Classification")
    index = list(element).index(anchor) if anchor is not None else len(element)
    for value in record["confidentialityCode"]:
        element.insert(
            index,
            confidentiality_classification(
                entry_uuid, Coded(value["code"], value["system"], value.get("display", ""))
            ),
        )
        index += 1
    version = element.find(R + "VersionInfo")
    if version is None:
        version = etree.SubElement(element, R + "VersionInfo")
    version.set("versionName", str(record["version"]))
    return element


def confidentiality_classification(entry_uuid: str, value: Coded) -> etree._Element:
    element = etree.Element(
        R + "Classification",
        id=f"urn:uuid:{uuid.uuid4()}",
        classificationScheme=DE_CONFIDENTIALITY,
        classifiedObject=entry_uuid,
        nodeRepresentation=value.code,
    )
    slot = etree.SubElement(element, R + "Slot", name="codingScheme")
    etree.SubElement(etree.SubElement(slot, R + "ValueList"), R + "Value").text = value.system
    name = etree.SubElement(element, R + "Name")
    etree.SubElement(name, R + "LocalizedString", value=value.display or value.code)
    return element


def stored_query(ctx: Context, request: etree._Element, claims: VihfClaims) -> etree._Element:
    response = etree.Element(f"{{{QUERY}}}AdhocQueryResponse", nsmap={"query": QUERY, "rim": RIM, "rs": RS})
    object_list = etree.Element(R + "RegistryObjectList")

    def fail(error: RegistryError) -> etree._Element:
        response.set("status", STATUS_FAILURE)
        append_errors(response, [error])
        response.append(object_list)
        return response

    option = request.find(f"{{{QUERY}}}ResponseOption")
    return_type = option.get("returnType", "ObjectRef") if option is not None else "ObjectRef"
    if return_type not in ("LeafClass", "ObjectRef"):
        return fail(RegistryError("XDSRegistryError", f"returnType {return_type} non pris en charge"))
    query = request.find(R + "AdhocQuery")
    if query is None:
        raise RequestError("AdhocQueryRequest sans AdhocQuery.")
    query_id = query.get("id", "")
    params = {name: query_values(values) for name, values in slots_of(query).items()}
    records = ctx.store.entries()
    if query_id == FIND_DOCUMENTS:
        patient = params.get("$XDSDocumentEntryPatientId", [])
        if len(patient) != 1:
            return fail(
                RegistryError("XDSStoredQueryMissingParam", "$XDSDocumentEntryPatientId requis (une valeur)")
            )
        ins, oid = _ins_of(patient[0])
        if ins != claims.ins or (oid and claims.ins_oid and oid != claims.ins_oid):
            return fail(
                RegistryError("XDSPatientIdDoesNotMatch", "Le patient demandé n'est pas celui du VIHF")
            )
        if ctx.store.patient(ins) is None:
            return fail(RegistryError("XDSUnknownPatientId", f"Patient {ins} inconnu du DMP"))
        statuses = set(params.get("$XDSDocumentEntryStatus") or [APPROVED])
        records = [r for r in records if r["patient_id"] == patient[0] and r["status"] in statuses]
        for name, label in (
            ("$XDSDocumentEntryTypeCode", "typeCode"),
            ("$XDSDocumentEntryClassCode", "classCode"),
        ):
            wanted = params.get(name)
            if wanted:
                records = [
                    r
                    for r in records
                    if r[label] and any(w.split("^")[0] == r[label]["code"] for w in wanted)
                ]
    elif query_id == GET_DOCUMENTS:
        uuids = set(params.get("$XDSDocumentEntryEntryUUID", []))
        unique_ids = set(params.get("$XDSDocumentEntryUniqueId", []))
        if not uuids and not unique_ids:
            return fail(
                RegistryError(
                    "XDSStoredQueryMissingParam",
                    "$XDSDocumentEntryEntryUUID ou $XDSDocumentEntryUniqueId requis",
                )
            )
        records = [r for r in records if r["entry_uuid"] in uuids or r["unique_id"] in unique_ids]
    else:
        return fail(RegistryError("XDSUnknownStoredQuery", f"Requête stockée inconnue : {query_id}"))
    everything = ctx.store.entries()
    records = [r for r in records if visible_to(r, claims, everything)]
    records.sort(key=lambda r: (r["submitted_at"], r["entry_uuid"]))
    for record in records:
        if return_type == "LeafClass":
            object_list.append(extrinsic_for(record))
        else:
            etree.SubElement(object_list, R + "ObjectRef", id=record["entry_uuid"])
    response.set("status", STATUS_SUCCESS)
    response.append(object_list)
    return response


# --- ITI-43 ------------------------------------------------------------------------------------------


def retrieve(
    ctx: Context, request: etree._Element, claims: VihfClaims
) -> tuple[etree._Element, list[tuple[str, str, bytes]]]:
    """RetrieveDocumentSetResponse and its attachments (content-id, media type, bytes)."""
    x = f"{{{XDSB}}}"
    wanted = [
        (
            (r.findtext(x + "RepositoryUniqueId") or "").strip(),
            (r.findtext(x + "DocumentUniqueId") or "").strip(),
        )
        for r in request.iterfind(x + "DocumentRequest")
    ]
    if not wanted:
        raise RequestError("RetrieveDocumentSetRequest sans DocumentRequest.")
    response = etree.Element(x + "RetrieveDocumentSetResponse", nsmap={"xdsb": XDSB, "rs": RS})
    errors: list[RegistryError] = []
    found: list[tuple[dict[str, Any], str]] = []
    for repository_id, unique_id in wanted:
        if repository_id != ctx.repository_id:
            errors.append(
                RegistryError("XDSUnknownRepositoryId", f"Dépôt inconnu : {repository_id}", unique_id)
            )
            continue
        everything = ctx.store.entries()
        candidates = [
            r for r in everything if r["unique_id"] == unique_id and visible_to(r, claims, everything)
        ]
        if not candidates:
            errors.append(
                RegistryError("XDSDocumentUniqueIdError", f"Document {unique_id} introuvable", unique_id)
            )
            continue
        found.append((candidates[0], unique_id))
    if errors and found:
        status = STATUS_PARTIAL
    elif errors:
        status = STATUS_FAILURE
    else:
        status = STATUS_SUCCESS
    rr = etree.SubElement(response, f"{{{RS}}}RegistryResponse", status=status)
    append_errors(rr, errors)
    attachments: list[tuple[str, str, bytes]] = []
    for index, (record, unique_id) in enumerate(found):
        item = etree.SubElement(response, x + "DocumentResponse")
        etree.SubElement(item, x + "RepositoryUniqueId").text = record["repository_unique_id"]
        etree.SubElement(item, x + "DocumentUniqueId").text = unique_id
        etree.SubElement(item, x + "mimeType").text = record["mime_type"]
        document = etree.SubElement(item, x + "Document")
        cid = f"doc{index}.{uuid.uuid4().hex}@dmp-double"
        etree.SubElement(document, f"{{{XOP}}}Include", nsmap={"xop": XOP}, href=f"cid:{cid}")
        attachments.append((cid, record["mime_type"], ctx.store.read_document(record["file"])))
    return response, attachments


# --- ITI-57 ------------------------------------------------------------------------------------------


def update_document_set(ctx: Context, request: etree._Element, claims: VihfClaims) -> etree._Element:
    """Metadata update: a new version of an approved entry (same lid/uniqueId/patient), the previous
    version becomes Deprecated. The double applies confidentialityCode, title and comments changes."""
    submission = read_submission(request)
    errors = [RegistryError("XDSRegistryMetadataError", p) for p in submission.problems]
    if submission.package_id:
        errors += check_patient(ctx, submission.patient_id, claims, submission.package_id)
    status_changes, status_errors = _availability_changes(ctx, submission, claims)
    errors += status_errors
    if not submission.entries and not status_changes and not status_errors:
        errors.append(RegistryError("XDSMetadataUpdateError", "Aucune fiche à mettre à jour"))
    members = {a.target: a for a in submission.associations if a.kind == ASSOC_HAS_MEMBER}
    plans: list[tuple[Entry, dict[str, Any]]] = []
    for entry in submission.entries:
        loc = entry.entry_id
        errors += check_entry_metadata(entry)
        current = [
            r
            for r in ctx.store.entries()
            if r["lid"] == entry.lid and r["status"] == APPROVED and not r["superseded_by"]
        ]
        if not current:
            errors.append(
                RegistryError("XDSMetadataUpdateError", f"Aucune fiche active de lid {entry.lid}", loc)
            )
            continue
        record = current[0]
        if not visible_to(record, claims, ctx.store.entries()):
            errors.append(RegistryError("XDSMetadataUpdateError", f"Fiche {entry.lid} non accessible", loc))
            continue
        if entry.entry_id == record["entry_uuid"]:
            errors.append(
                RegistryError("XDSMetadataUpdateError", "La nouvelle version doit avoir un nouvel id", loc)
            )
        if entry.unique_id != record["unique_id"]:
            errors.append(RegistryError("XDSMetadataUpdateError", "uniqueId ne peut pas changer", loc))
        if entry.patient_id != record["patient_id"]:
            errors.append(RegistryError("XDSPatientIdDoesNotMatch", "patientId ne peut pas changer", loc))
        association = members.get(entry.entry_id)
        if association is None:
            errors.append(RegistryError("XDSMetadataUpdateError", "Association HasMember absente", loc))
            continue
        status = (association.slots.get("SubmissionSetStatus") or [""])[0]
        previous = (association.slots.get("PreviousVersion") or [""])[0]
        if status != "Original":
            errors.append(
                RegistryError("XDSMetadataUpdateError", "SubmissionSetStatus=Original attendu", loc)
            )
        if previous != str(record["version"]):
            errors.append(
                RegistryError(
                    "XDSMetadataVersionError",
                    f"PreviousVersion {previous or '(absent)'} ≠ version {record['version']}",
                    loc,
                )
            )
        plans.append((entry, record))
    if any(e.severity == SEVERITY_ERROR for e in errors):
        return registry_response(errors)
    now = utcnow_iso()
    ss_uuid = _new_uuid(submission.package_id)
    new_records: list[dict[str, Any]] = []
    updates: dict[str, dict[str, Any]] = {
        uuid_: {"status": status, "status_changed_at": now} for uuid_, status in status_changes.items()
    }
    for entry, record in plans:
        entry_uuid = _new_uuid(entry.entry_id)
        new = dict(record)
        new.update(
            {
                "entry_uuid": entry_uuid,
                "version": record["version"] + 1,
                "status": APPROVED,
                "title": entry.title,
                "confidentialityCode": [c.as_json() for c in entry.codes.get(DE_CONFIDENTIALITY, [])],
                "submission_set": ss_uuid,
                "updated_at": now,
                "updated_by": {"structure_id": claims.structure_id, "subject_id": claims.subject_id},
                "extrinsic_xml": etree.tostring(entry.element).decode(),
                "id_map": {entry.entry_id: entry_uuid},
                "superseded_by": "",
            }
        )
        new_records.append(new)
        updates[record["entry_uuid"]] = {"status": DEPRECATED, "superseded_by": entry_uuid}
    ctx.store.commit(
        new_entries=new_records,
        updates=updates,
        submission_set={
            "entry_uuid": ss_uuid,
            "unique_id": submission.unique_id,
            "source_id": submission.source_id,
            "patient_id": submission.patient_id,
            "submitted_at": now,
            "entries": [r["entry_uuid"] for r in new_records] + list(status_changes),
            "transaction": "ITI-57",
        },
    )
    return registry_response(errors)


def _availability_changes(
    ctx: Context, submission: Submission, claims: VihfClaims
) -> tuple[dict[str, str], list[RegistryError]]:
    """ITI-57 UpdateAvailabilityStatus associations: {entry uuid: new status} and the errors."""
    changes: dict[str, str] = {}
    errors: list[RegistryError] = []
    everything = ctx.store.entries()
    for assoc in submission.associations:
        if assoc.kind == ASSOC_HAS_MEMBER:
            continue
        loc = assoc.association_id
        if assoc.kind != ASSOC_UPDATE_AVAILABILITY:
            errors.append(
                RegistryError(
                    "XDSMetadataUpdateError", f"Association non prise en charge : {assoc.kind}", loc
                )
            )
            continue
        if assoc.source != submission.package_id:
            errors.append(
                RegistryError("XDSMetadataUpdateError", "sourceObject doit être le lot de soumission", loc)
            )
            continue
        record = ctx.store.entry(assoc.target)
        if record is None or not visible_to(record, claims, everything):
            errors.append(RegistryError("XDSMetadataUpdateError", f"Fiche {assoc.target} introuvable", loc))
            continue
        original = (assoc.slots.get("OriginalStatus") or [""])[0]
        new_status = (assoc.slots.get("NewStatus") or [""])[0]
        if original != record["status"]:
            errors.append(
                RegistryError(
                    "XDSMetadataUpdateError",
                    f"OriginalStatus {original} ≠ statut actuel {record['status']}",
                    loc,
                )
            )
            continue
        if new_status not in AVAILABILITY_STATUSES or new_status == original:
            errors.append(
                RegistryError("XDSMetadataUpdateError", f"NewStatus {new_status or '(absent)'} refusé", loc)
            )
            continue
        changes[record["entry_uuid"]] = new_status
    return changes, errors
