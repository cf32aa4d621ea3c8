"""IHE XDM (ITI-32 "Distribute Document Set on Media", zip by e-mail): build and safely read IHE_XDM.zip.

Layout (standards §3, IHE ITI TF-1/TF-3 XDM; the layout is the one every MSSanté implementation ships)::

    INDEX.HTM                          human-readable index of the content
    README.TXT                         who produced the archive (sender, product)
    IHE_XDM/SUBSET01/METADATA.XML      ebRIM SubmitObjectsRequest (XDS metadata + URI, size, SHA-1 hash)
    IHE_XDM/SUBSET01/DOC0001.XML       the documents (CDA), referenced by the ``URI`` slot of their entry

Reading treats the archive as hostile: every member name is checked (no absolute, ``..``, backslash or
drive paths, no symlink, no duplicate), member count, total uncompressed size and compression ratio are
bounded while the data is actually read (header sizes are only a first filter), the metadata is parsed
with an XML parser that refuses DTDs and never loads entities or network resources, and every document
must be present with the announced size and SHA-1 hash.

Pure code: no Django import.
"""

from __future__ import annotations

import dataclasses
import hashlib
import html
import io
import re
import stat
import zipfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from lxml import etree

from enrs.core.safezip import SafeZip, SafeZipError, ZipLimits
from enrs.standards import ebrim
from enrs.standards.cda import CdaError, ParsedCda, parse_cda
from enrs.standards.ebrim import Author, DocumentEntry, SubmissionSet
from enrs.standards.valuesets import Code, class_for_type, format_for_media_type
from messagerie.standards import CodedError

ZIP_FILENAME = "IHE_XDM.zip"
ZIP_CONTENT_TYPE = "application/zip"
SUBSET_DIR = "IHE_XDM/SUBSET01"
METADATA_NAME = "METADATA.XML"

DEFAULT_MAX_TOTAL_BYTES = 50 * 1024 * 1024
DEFAULT_MAX_MEMBERS = 200
DEFAULT_MAX_RATIO = 100
# Small members may legitimately compress very well (an XML skeleton, a blank page): the ratio check
# only applies once a member has produced this many bytes.
RATIO_GRACE_BYTES = 1024 * 1024

_URI = re.compile(r"^[A-Za-z0-9_.-]+$")


class XdmError(CodedError):
    """The archive is not an acceptable IHE XDM package. `code` is stable, `message` is French."""


@dataclass(frozen=True)
class XdmDocument:
    """One document to package: its bytes and its XDS entry (hash, size and URI are filled by the builder)."""

    content: bytes
    entry: DocumentEntry


@dataclass(frozen=True)
class XdmPackage:
    """A package read by `parse_xdm`: the submission set and each document entry with its verified bytes."""

    submission: SubmissionSet
    documents: list[tuple[DocumentEntry, bytes]]
    replaces: dict[str, str] = field(default_factory=dict)  # {new entry_uuid: replaced entry_uuid}
    subset: str = SUBSET_DIR


# --- Building -------------------------------------------------------------------------------------------


def document_uri(index: int) -> str:
    """The member name of the `index`-th document (1-based) inside its subset: ``DOC0001.XML``…"""
    if not 1 <= index <= 9999:
        raise ValueError("index de document hors limites (1 à 9999)")
    return f"DOC{index:04d}.XML"


def sha1_hex(data: bytes) -> str:
    # SHA-1 is what XDS metadata carries for integrity (not a security signature).
    return hashlib.sha1(data, usedforsecurity=False).hexdigest()


def build_xdm(
    documents: Sequence[XdmDocument],
    submission: SubmissionSet,
    *,
    sender: str,
    recipients: Iterable[str],
    replaces: Mapping[str, str] | None = None,
    product: str = "ENRS",
    created_at: datetime | None = None,
) -> bytes:
    """The bytes of ``IHE_XDM.zip`` holding `documents` (in order, ``DOC0001.XML``…) and their metadata.

    Each entry gets its ``hash`` (SHA-1 hex), ``size`` and ``URI`` from the document bytes; `replaces`
    maps a new entry_uuid to the entry_uuid it replaces (RPLC association). `sender`/`recipients` and
    `product` go in README.TXT and INDEX.HTM. `created_at` (aware) stamps the zip members.
    """
    if not documents:
        raise XdmError("empty", "Un paquet IHE XDM doit contenir au moins un document.")
    recipients = list(recipients)
    entries = [
        dataclasses.replace(
            document.entry,
            hash_sha1=sha1_hex(document.content),
            size=len(document.content),
            uri=document_uri(index),
        )
        for index, document in enumerate(documents, start=1)
    ]
    metadata = ebrim.to_bytes(
        ebrim.build_submit_objects_request(submission, entries, replaces=dict(replaces or {}))
    )
    when = (created_at or datetime.now(UTC)).astimezone(UTC)
    stamp = (max(when.year, 1980), when.month, when.day, when.hour, when.minute, when.second)

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:

        def add(name: str, data: bytes) -> None:
            info = zipfile.ZipInfo(name, date_time=stamp)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = (stat.S_IFREG | 0o644) << 16
            archive.writestr(info, data)

        add("INDEX.HTM", _index_htm(entries, submission, sender=sender, recipients=recipients, when=when))
        add("README.TXT", _readme_txt(sender=sender, recipients=recipients, product=product, when=when))
        add(f"{SUBSET_DIR}/{METADATA_NAME}", metadata)
        for entry, document in zip(entries, documents, strict=True):
            add(f"{SUBSET_DIR}/{entry.uri}", document.content)
    return buffer.getvalue()


def _readme_txt(*, sender: str, recipients: Sequence[str], product: str, when: datetime) -> bytes:
    lines = [
        "Archive IHE XDM (IHE ITI - Cross-Enterprise Document Media Interchange)",
        "",
        f"Logiciel emetteur : {product}",
        f"Expediteur : {sender}",
        f"Destinataire(s) : {', '.join(recipients)}",
        f"Date de creation (UTC) : {when:%Y-%m-%d %H:%M:%S}",
        "",
        "Contenu : INDEX.HTM (sommaire), IHE_XDM/SUBSET01/METADATA.XML (metadonnees XDS),",
        "IHE_XDM/SUBSET01/DOCnnnn.XML (documents CDA).",
        "",
    ]
    return "\r\n".join(lines).encode("utf-8")


def _index_htm(
    entries: Sequence[DocumentEntry],
    submission: SubmissionSet,
    *,
    sender: str,
    recipients: Sequence[str],
    when: datetime,
) -> bytes:
    e = html.escape
    rows = "\n".join(
        f'<li><a href="{e(SUBSET_DIR)}/{e(entry.uri)}">{e(entry.title or entry.uri)}</a>'
        f" ({e(entry.type_code.display or entry.type_code.code)})</li>"
        for entry in entries
    )
    title = e(submission.title or "Documents de santé")
    page = f"""<!DOCTYPE html>
<html lang="fr">
<head><meta charset="utf-8"><title>{title}</title></head>
<body>
<h1>{title}</h1>
<p>Expéditeur : {e(sender)}<br>Destinataire(s) : {e(", ".join(recipients))}<br>
Date : {when:%d/%m/%Y %H:%M} UTC</p>
<p>Voir aussi <a href="README.TXT">README.TXT</a>.
Métadonnées : <a href="{e(SUBSET_DIR)}/{METADATA_NAME}">{METADATA_NAME}</a>.</p>
<ul>
{rows}
</ul>
</body>
</html>
"""
    return page.encode("utf-8")


def xdm_time(moment: datetime) -> str:
    """An aware datetime as XDS writes times: ``YYYYMMDDHHMMSS`` in UTC."""
    if moment.tzinfo is None:
        raise ValueError("date sans fuseau horaire")
    return moment.astimezone(UTC).strftime("%Y%m%d%H%M%S")


def entry_from_cda(
    cda: bytes | ParsedCda,
    *,
    entry_uuid: str,
    healthcare_facility_type: Code | None = None,
    practice_setting: Code | None = None,
    authors: Sequence[Author] = (),
    legal_authenticator: str = "",
    source_patient_id: str = "",
    source_patient_info: Sequence[str] = (),
    service_start_time: str = "",
    service_stop_time: str = "",
    format_code: Code | None = None,
    comments: str = "",
) -> DocumentEntry:
    """A DocumentEntry filled from the CDA header (ids, codes, title, time, patient) and the given values.

    Facility type, practice setting and service times come from the CDA unless given; the classCode is
    derived from the typeCode, the formatCode from the body media type (CDA level 1) unless `format_code`
    is given (structured bodies). Authors and legal authenticator (XCN/XON strings) are passed in: the
    CDA reader does not expose their names. Raises `XdmError` (French message) when the CDA cannot be
    read or a code cannot be derived.
    """
    try:
        parsed = cda if isinstance(cda, ParsedCda) else parse_cda(cda)
    except CdaError as exc:
        raise XdmError("bad_cda", f"Document CDA illisible : {exc}") from exc
    if not parsed.ins or not parsed.ins_oid:
        raise XdmError("bad_cda", "Le document CDA ne porte pas l'INS du patient.")
    try:
        class_code = class_for_type(parsed.type_code.code)
    except KeyError as exc:
        raise XdmError(
            "bad_cda", f"Type de document « {parsed.type_code.code} » sans classe XDS connue."
        ) from exc
    if format_code is None:
        try:
            format_code = format_for_media_type(parsed.body_media_type)
        except KeyError as exc:
            raise XdmError(
                "bad_cda",
                "Format du document inconnu (corps structuré ou type de média "
                f"« {parsed.body_media_type} ») : précisez le formatCode.",
            ) from exc
    if parsed.effective_time is None:
        raise XdmError("bad_cda", "Le document CDA n'a pas de date de création (effectiveTime).")
    facility = healthcare_facility_type or parsed.facility_type
    setting = practice_setting or parsed.practice_setting
    if facility is None or setting is None:
        raise XdmError("bad_cda", "Type d'établissement ou cadre d'exercice absent du CDA : précisez-les.")
    if not service_start_time and parsed.service_start is not None:
        service_start_time = xdm_time(parsed.service_start)
    if not service_stop_time and parsed.service_end is not None:
        service_stop_time = xdm_time(parsed.service_end)
    patient_id = ebrim.ins_cx(parsed.ins, parsed.ins_oid)
    return DocumentEntry(
        entry_uuid=entry_uuid,
        unique_id=parsed.document_id,
        patient_id=patient_id,
        source_patient_id=source_patient_id or patient_id,
        source_patient_info=tuple(source_patient_info),
        class_code=class_code,
        type_code=parsed.type_code,
        confidentiality=(parsed.confidentiality,),
        format_code=format_code,
        healthcare_facility_type=facility,
        practice_setting=setting,
        creation_time=xdm_time(parsed.effective_time),
        service_start_time=service_start_time,
        service_stop_time=service_stop_time,
        title=parsed.title,
        comments=comments,
        authors=tuple(authors),
        legal_authenticator=legal_authenticator,
    )


# --- Reading --------------------------------------------------------------------------------------------


def _safe_xml_parser() -> etree.XMLParser:
    return etree.XMLParser(
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        dtd_validation=False,
        huge_tree=False,
        remove_comments=True,
        remove_pis=True,
    )


def parse_metadata_xml(xml: bytes) -> etree._Element:
    """The root of METADATA.XML parsed safely; XdmError ``bad_metadata`` for DTDs or malformed XML."""
    try:
        root = etree.fromstring(xml, parser=_safe_xml_parser())
    except etree.XMLSyntaxError as exc:
        raise XdmError("bad_metadata", f"METADATA.XML n'est pas un XML valide : {exc}") from exc
    tree = root.getroottree()
    if tree.docinfo.doctype or tree.docinfo.internalDTD is not None:
        raise XdmError("bad_metadata", "METADATA.XML contient une DTD : refusé par sécurité.")
    return root


def _find_metadata(names: Iterable[str]) -> tuple[str, str]:
    """(subset directory, metadata member name) of the first subset, matched case-insensitively."""
    candidates = []
    for name in names:
        parts = name.split("/")
        if len(parts) == 3 and parts[0].upper() == "IHE_XDM" and parts[2].upper() == METADATA_NAME:
            candidates.append(name)
    if not candidates:
        raise XdmError("missing_metadata", "L'archive IHE_XDM ne contient pas IHE_XDM/SUBSET01/METADATA.XML.")
    name = sorted(candidates, key=str.upper)[0]
    return name.rsplit("/", 1)[0], name


def parse_xdm(
    data: bytes,
    *,
    max_total_bytes: int = DEFAULT_MAX_TOTAL_BYTES,
    max_members: int = DEFAULT_MAX_MEMBERS,
    max_ratio: int = DEFAULT_MAX_RATIO,
) -> XdmPackage:
    """Read an untrusted ``IHE_XDM.zip``: checks layout and limits, then every document's size and SHA-1.

    Raises `XdmError` with a stable ``code``: not_zip, too_many_members, path_traversal, symlink,
    duplicate_member, encrypted, too_large, bomb, corrupt, missing_metadata, bad_metadata,
    missing_document, size_mismatch, hash_mismatch.
    """
    if not isinstance(data, bytes | bytearray) or bytes(data[:2]) != b"PK":
        raise XdmError("not_zip", "La pièce jointe IHE_XDM n'est pas une archive zip.")
    limits = ZipLimits(
        max_members=max_members,
        max_total_bytes=max_total_bytes,
        max_ratio=max_ratio,
        ratio_grace_bytes=RATIO_GRACE_BYTES,
    )
    try:
        with SafeZip(bytes(data), limits) as archive:
            subset, metadata_name = _find_metadata(info.filename for info in archive.members)
            contents = {info.filename.upper(): archive.read(info) for info in archive.members}
    except SafeZipError as exc:
        raise XdmError(exc.code, exc.message.replace("L'archive", "L'archive IHE_XDM", 1)) from exc

    root = parse_metadata_xml(contents[metadata_name.upper()])
    try:
        submission, entries, replaces = ebrim.parse_submit_objects_request(root)
    except XdmError:
        raise
    except Exception as exc:  # the ebRIM reader may fail in many ways on hostile input
        raise XdmError("bad_metadata", f"Métadonnées XDS illisibles : {exc}") from exc

    documents: list[tuple[DocumentEntry, bytes]] = []
    for entry in entries:
        documents.append((entry, _verified_document(entry, subset, contents)))
    if not documents:
        raise XdmError("bad_metadata", "METADATA.XML ne décrit aucun document.")
    return XdmPackage(submission=submission, documents=documents, replaces=dict(replaces), subset=subset)


def _verified_document(entry: DocumentEntry, subset: str, contents: Mapping[str, bytes]) -> bytes:
    uri = entry.uri.strip()
    if not uri:
        raise XdmError("bad_metadata", f"Le document {entry.unique_id} n'a pas d'URI dans METADATA.XML.")
    if not _URI.match(uri) or uri in (".", ".."):
        raise XdmError("path_traversal", f"URI de document interdite dans METADATA.XML : « {uri[:200]} ».")
    content = contents.get(f"{subset}/{uri}".upper())
    if content is None:
        raise XdmError("missing_document", f"Le document « {uri} » annoncé dans METADATA.XML est absent.")
    if entry.size is None or not entry.hash_sha1:
        raise XdmError("bad_metadata", f"Taille ou empreinte SHA-1 manquante pour « {uri} ».")
    if entry.size != len(content):
        raise XdmError(
            "size_mismatch",
            f"Taille du document « {uri} » incorrecte : {len(content)} octets, {entry.size} annoncés.",
        )
    if entry.hash_sha1.strip().lower() != sha1_hex(content):
        raise XdmError("hash_mismatch", f"Empreinte SHA-1 du document « {uri} » incorrecte.")
    return content


# --- What the MSSanté headers need ----------------------------------------------------------------------


def _parsed_cdas(package: XdmPackage) -> list[ParsedCda]:
    parsed = []
    for entry, content in package.documents:
        if entry.mime_type not in ("text/xml", "application/xml", "application/hl7-v3+xml"):
            continue
        try:
            parsed.append(parse_cda(content))
        except CdaError:
            continue
    return parsed


def cda_codes(package: XdmPackage) -> list[str]:
    """The ``ClinicalDocument/code/@code`` of each CDA in the package, in order, without repeats."""
    codes: list[str] = []
    for parsed in _parsed_cdas(package):
        if parsed.type_code.code and parsed.type_code.code not in codes:
            codes.append(parsed.type_code.code)
    return codes


def has_qualified_ins(package: XdmPackage) -> bool:
    """True when a CDA of the package carries a qualified INS (matricule + OID + the five traits)."""
    return any(parsed.qualified_ins for parsed in _parsed_cdas(package))
