"""DICOMweb client pieces (PS3.18) for forwarding to a STOW-RS peer and checking it with QIDO-RS.

* STOW-RS: ``POST {base}/studies`` with ``Content-Type: multipart/related; type="application/dicom"``,
  one part per Part 10 file (sent as stored); the response (DICOM JSON or XML) lists the stored
  instances in Referenced SOP Sequence (0008,1199) and the refused ones in Failed SOP Sequence
  (0008,1198) with a Failure Reason (0008,1197).
* QIDO-RS: ``GET {base}/studies/{study}/instances`` (paged with ``limit``/``offset``) lists the SOP
  Instance UIDs the peer holds.

Network problems, 5xx and 429 answers raise `DicomWebError` with ``temporary=True``; other refusals of the
whole request are permanent. Pure code: no Django import.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

import httpx
from lxml import etree

REFERENCED_SOP_SEQUENCE = "00081199"
FAILED_SOP_SEQUENCE = "00081198"
REFERENCED_SOP_INSTANCE_UID = "00081155"
FAILURE_REASON = "00081197"
SOP_INSTANCE_UID = "00080018"
QIDO_PAGE = 1000


class DicomWebError(Exception):
    def __init__(self, code: str, message: str, *, temporary: bool) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.temporary = temporary


@dataclass
class StowOutcome:
    stored: set[str] = field(default_factory=set)
    failed: dict[str, str] = field(default_factory=dict)  # SOP Instance UID -> failure reason (hex)


# --- STOW-RS ------------------------------------------------------------------------------------------


def new_boundary() -> str:
    return f"enrs-{secrets.token_hex(16)}"


def stow_content_type(boundary: str) -> str:
    return f'multipart/related; type="application/dicom"; boundary={boundary}'


def stow_body(files: Iterable[bytes], boundary: str) -> Iterator[bytes]:
    """The multipart/related body, one ``application/dicom`` part per file (streamed)."""
    for data in files:
        yield f"--{boundary}\r\nContent-Type: application/dicom\r\n\r\n".encode("ascii")
        yield data
        yield b"\r\n"
    yield f"--{boundary}--\r\n".encode("ascii")


def _json_values(item: dict, tag: str) -> list:
    element = item.get(tag) or {}
    return list(element.get("Value") or [])


def parse_stow_json(body: bytes) -> StowOutcome:
    document = json.loads(body.decode("utf-8") or "{}")
    if isinstance(document, list):  # some servers wrap the single response dataset in a list
        document = document[0] if document else {}
    if not isinstance(document, dict):
        raise ValueError("réponse STOW-RS inattendue")
    outcome = StowOutcome()
    for item in _json_values(document, REFERENCED_SOP_SEQUENCE):
        uids = _json_values(item, REFERENCED_SOP_INSTANCE_UID)
        if uids:
            outcome.stored.add(str(uids[0]))
    for item in _json_values(document, FAILED_SOP_SEQUENCE):
        uids = _json_values(item, REFERENCED_SOP_INSTANCE_UID)
        reasons = _json_values(item, FAILURE_REASON)
        if uids:
            reason = int(reasons[0]) if reasons else 0xC000
            outcome.failed[str(uids[0])] = f"0x{reason:04X}"
    return outcome


def parse_stow_xml(body: bytes) -> StowOutcome:
    """PS3.19 Native DICOM Model: ``<NativeDicomModel><DicomAttribute tag="00081199" vr="SQ"><Item>…``."""
    parser = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=False)
    root = etree.fromstring(body, parser=parser)
    outcome = StowOutcome()

    def first_value(item: etree._Element, tag: str) -> str:
        for attribute in item.iterfind(f"{{*}}DicomAttribute[@tag='{tag}']"):
            for value in attribute.iterfind("{*}Value"):
                return (value.text or "").strip()
        for attribute in item.iterfind(f"DicomAttribute[@tag='{tag}']"):
            for value in attribute.iterfind("Value"):
                return (value.text or "").strip()
        return ""

    def items(tag: str) -> list[etree._Element]:
        found = root.findall(f"DicomAttribute[@tag='{tag}']/Item") + root.findall(
            f"{{*}}DicomAttribute[@tag='{tag}']/{{*}}Item"
        )
        return list(dict.fromkeys(found))

    for item in items(REFERENCED_SOP_SEQUENCE):
        uid = first_value(item, REFERENCED_SOP_INSTANCE_UID)
        if uid:
            outcome.stored.add(uid)
    for item in items(FAILED_SOP_SEQUENCE):
        uid = first_value(item, REFERENCED_SOP_INSTANCE_UID)
        reason = first_value(item, FAILURE_REASON)
        if uid:
            outcome.failed[uid] = f"0x{int(reason or 0xC000):04X}"
    return outcome


def parse_stow_response(content_type: str, body: bytes) -> StowOutcome:
    if not body.strip():
        return StowOutcome()
    kind = content_type.split(";")[0].strip().lower()
    try:
        if "xml" in kind:
            return parse_stow_xml(body)
        return parse_stow_json(body)
    except (ValueError, etree.XMLSyntaxError, TypeError, KeyError, IndexError) as exc:
        raise DicomWebError("bad_response", f"Réponse STOW-RS illisible : {exc}", temporary=True) from exc


def _http_error(response: httpx.Response, what: str) -> DicomWebError:
    temporary = response.status_code >= 500 or response.status_code in (408, 429)
    return DicomWebError(
        f"http_{response.status_code}",
        f"{what} : réponse HTTP {response.status_code} du serveur DICOMweb.",
        temporary=temporary,
    )


def stow(client: httpx.Client, base_url: str, files: list[tuple[str, bytes]]) -> StowOutcome:
    """Store ``files`` (SOP Instance UID, Part 10 bytes) in one STOW-RS request. Instances the response
    neither references nor lists as failed are reported failed (``0xC000``) when the answer is an error,
    stored when it is a plain 200 without a body."""
    boundary = new_boundary()
    url = base_url.rstrip("/") + "/studies"
    try:
        response = client.post(
            url,
            content=b"".join(stow_body((data for _, data in files), boundary)),
            headers={"Content-Type": stow_content_type(boundary), "Accept": "application/dicom+json"},
        )
    except httpx.HTTPError as exc:
        raise DicomWebError("connection", f"Serveur DICOMweb injoignable : {exc}", temporary=True) from exc
    if response.status_code not in (200, 202, 409):
        raise _http_error(response, "Envoi STOW-RS refusé")
    outcome = parse_stow_response(response.headers.get("content-type", ""), response.content)
    for uid, _ in files:
        if uid in outcome.stored or uid in outcome.failed:
            continue
        if response.status_code == 200 and not outcome.stored and not outcome.failed:
            outcome.stored.add(uid)
        else:
            outcome.failed[uid] = "0xC000"
    return outcome


# --- QIDO-RS ------------------------------------------------------------------------------------------


def qido_instance_uids(client: httpx.Client, base_url: str, study_instance_uid: str) -> set[str]:
    """Every SOP Instance UID the peer holds for the study (QIDO-RS, paged)."""
    url = f"{base_url.rstrip('/')}/studies/{study_instance_uid}/instances"
    found: set[str] = set()
    offset = 0
    while True:
        try:
            response = client.get(
                url,
                params={"includefield": SOP_INSTANCE_UID, "limit": QIDO_PAGE, "offset": offset},
                headers={"Accept": "application/dicom+json"},
            )
        except httpx.HTTPError as exc:
            raise DicomWebError(
                "connection", f"Serveur DICOMweb injoignable : {exc}", temporary=True
            ) from exc
        if response.status_code in (204, 404):
            return found
        if response.status_code != 200:
            raise _http_error(response, "Recherche QIDO-RS refusée")
        try:
            rows = json.loads(response.content.decode("utf-8") or "[]")
        except ValueError as exc:
            raise DicomWebError("bad_response", "Réponse QIDO-RS illisible.", temporary=True) from exc
        if not isinstance(rows, list):
            raise DicomWebError("bad_response", "Réponse QIDO-RS inattendue.", temporary=True)
        for row in rows:
            values = _json_values(row, SOP_INSTANCE_UID) if isinstance(row, dict) else []
            if values:
                found.add(str(values[0]))
        if len(rows) < QIDO_PAGE:
            return found
        offset += len(rows)
