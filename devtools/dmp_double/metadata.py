"""Reading ebRIM 3.0 XDS metadata (SubmitObjectsRequest, ExtrinsicObject) as the double needs it.

Deliberately lenient in what it reads (so that it can report precise registry errors instead of
failing on the first problem) and independent from the ENRS builder it is meant to check.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from lxml import etree

from .constants import (
    DE_PATIENT_ID,
    DE_UNIQUE_ID,
    RIM,
    SS_CONTENT_TYPE,
    SS_PATIENT_ID,
    SS_SOURCE_ID,
    SS_UNIQUE_ID,
    SUBMISSION_SET_NODE,
)

R = f"{{{RIM}}}"


@dataclass(frozen=True)
class Coded:
    code: str
    system: str
    display: str = ""

    def as_json(self) -> dict[str, str]:
        return {"code": self.code, "system": self.system, "display": self.display}


@dataclass
class Entry:
    element: etree._Element
    entry_id: str
    lid: str
    object_type: str
    mime_type: str
    unique_id: str
    patient_id: str
    slots: dict[str, list[str]]
    codes: dict[str, list[Coded]]  # classification scheme → values
    title: str

    def slot(self, name: str) -> str:
        values = self.slots.get(name) or [""]
        return values[0]


@dataclass
class Association:
    element: etree._Element
    association_id: str
    kind: str
    source: str
    target: str
    slots: dict[str, list[str]]


@dataclass
class Submission:
    package_id: str = ""
    unique_id: str = ""
    source_id: str = ""
    patient_id: str = ""
    content_type: Coded | None = None
    entries: list[Entry] = field(default_factory=list)
    associations: list[Association] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def slots_of(element: etree._Element) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for slot in element.iterfind(R + "Slot"):
        found.setdefault(slot.get("name", ""), []).extend(
            (v.text or "").strip() for v in slot.iterfind(f"{R}ValueList/{R}Value")
        )
    return found


def name_of(element: etree._Element) -> str:
    value = element.find(f"{R}Name/{R}LocalizedString")
    return value.get("value", "") if value is not None else ""


def external_ids(element: etree._Element) -> dict[str, str]:
    return {
        e.get("identificationScheme", ""): e.get("value", "").strip()
        for e in element.iterfind(R + "ExternalIdentifier")
    }


def coded_of(classification: etree._Element) -> Coded:
    systems = slots_of(classification).get("codingScheme") or [""]
    return Coded(classification.get("nodeRepresentation", "").strip(), systems[0], name_of(classification))


def classifications(element: etree._Element, extra: Sequence[etree._Element] = ()) -> dict[str, list[Coded]]:
    found: dict[str, list[Coded]] = {}
    for c in [*element.iterfind(R + "Classification"), *extra]:
        scheme = c.get("classificationScheme")
        if scheme:
            found.setdefault(scheme, []).append(coded_of(c))
    return found


def read_entry(element: etree._Element) -> Entry:
    ids = external_ids(element)
    entry_id = element.get("id", "")
    return Entry(
        element=element,
        entry_id=entry_id,
        lid=element.get("lid", "") or entry_id,
        object_type=element.get("objectType", ""),
        mime_type=element.get("mimeType", ""),
        unique_id=ids.get(DE_UNIQUE_ID, ""),
        patient_id=ids.get(DE_PATIENT_ID, ""),
        slots=slots_of(element),
        codes=classifications(element),
        title=name_of(element),
    )


def read_submission(request: etree._Element) -> Submission:
    """Read an `lcm:SubmitObjectsRequest`."""
    submission = Submission()
    object_list = request.find(R + "RegistryObjectList")
    if object_list is None:
        submission.problems.append("RegistryObjectList absent")
        return submission
    top_classifications = list(object_list.iterfind(R + "Classification"))
    packages = list(object_list.iterfind(R + "RegistryPackage"))
    for package in packages:
        pid = package.get("id", "")
        nodes = [c.get("classificationNode") for c in package.iterfind(R + "Classification")]
        nodes += [
            c.get("classificationNode") for c in top_classifications if c.get("classifiedObject") == pid
        ]
        if SUBMISSION_SET_NODE not in nodes:
            continue
        if submission.package_id:
            submission.problems.append("plusieurs lots de soumission (SubmissionSet)")
            continue
        ids = external_ids(package)
        submission.package_id = pid
        submission.unique_id = ids.get(SS_UNIQUE_ID, "")
        submission.source_id = ids.get(SS_SOURCE_ID, "")
        submission.patient_id = ids.get(SS_PATIENT_ID, "")
        content = classifications(package).get(SS_CONTENT_TYPE)
        submission.content_type = content[0] if content else None
    if not submission.package_id:
        submission.problems.append("lot de soumission (SubmissionSet) absent")
    for element in object_list.iterfind(R + "ExtrinsicObject"):
        entry = read_entry(element)
        extra = [c for c in top_classifications if c.get("classifiedObject") == entry.entry_id]
        if extra:
            entry.codes = classifications(element, extra)
        submission.entries.append(entry)
    for element in object_list.iterfind(R + "Association"):
        submission.associations.append(
            Association(
                element=element,
                association_id=element.get("id", ""),
                kind=element.get("associationType", ""),
                source=element.get("sourceObject", ""),
                target=element.get("targetObject", ""),
                slots=slots_of(element),
            )
        )
    return submission


def query_values(raw: list[str]) -> list[str]:
    """Stored-query parameter values: `'a'`, `('a','b')`, several Value elements → ['a', 'b']."""
    values: list[str] = []
    for item in raw:
        item = item.strip()
        if item.startswith("(") and item.endswith(")"):
            item = item[1:-1]
        for part in item.split(","):
            part = part.strip()
            if len(part) >= 2 and part[0] == part[-1] == "'":
                part = part[1:-1]
            if part:
                values.append(part)
    return values
