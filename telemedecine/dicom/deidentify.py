"""De-identification for teaching and research exports: DICOM PS3.15 Annex E, Basic Application Level
Confidentiality Profile, with consistent UID remapping.

Actions (PS3.15 Table E.1-1): **Z** empty value (type 2 attributes that must stay present), **X** remove,
**D** replace with a dummy value of the same VR, **U** replace the UID by a new one, consistently within an
export (`UidMap`). Where the table gives a choice (``X/Z``, ``X/D``, ``Z/D``…) the stricter action that
keeps the object valid is taken. The tag list below follows Table E.1-1 as summarised in
``shared/domain/standards.md`` §8, plus further attributes of the table known to carry identity (dates of
procedure steps, free-text comments, people and places, device identifiers) — [unverified] against the
current edition of the table line by line. Every private attribute (odd group) is removed (no "Retain Safe
Private" option), curve data (50xx) and overlay data and comments (60xx,3000 / 60xx,4000) too.

The actions apply at every nesting level (sequences included). The result records the method:
(0012,0062) Patient Identity Removed = ``YES``, (0012,0063) De-identification Method, and
(0012,0064) De-identification Method Code Sequence = DCM 113100 "Basic Application Confidentiality
Profile". An image whose pixels carry burned-in text (0028,0301 = YES) is refused: this module does not
clean pixels (option 113101 not offered). Pixel data is never touched.

UIDs: the new UID is ``2.25.<integer>`` of a UUID (ITU-T X.667) built from HMAC-SHA-256(salt, old UID):
the same old UID gives the same new UID across all files of one export (same salt), and an export with
another salt gives other UIDs; without the salt the mapping cannot be reversed.

Pure code: no Django import.
"""

from __future__ import annotations

import hashlib
import hmac
import io
import uuid
from collections.abc import Callable

import pydicom
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.tag import BaseTag, Tag
from pydicom.uid import ExplicitVRBigEndian, ExplicitVRLittleEndian, ImplicitVRLittleEndian

from .parse import DicomError

METHOD_TEXT = "PS3.15 Annex E Basic Profile (ENRS)"
BASIC_PROFILE_CODE = ("113100", "DCM", "Basic Application Confidentiality Profile")

# --- Table E.1-1 (subset, see module docstring) --------------------------------------------------------
Z_TAGS: frozenset[int] = frozenset(
    {
        0x00100010,  # Patient's Name
        0x00100020,  # Patient ID
        0x00100030,  # Patient's Birth Date
        0x00100040,  # Patient's Sex
        0x00080050,  # Accession Number
        0x00080090,  # Referring Physician's Name
        0x00200010,  # Study ID
        0x00080020,  # Study Date
        0x00080030,  # Study Time
        0x00080023,  # Content Date (Z/D)
        0x00080033,  # Content Time (Z/D)
        0x00180010,  # Contrast/Bolus Agent (Z/D)
        0x00402016,  # Placer Order Number / Imaging Service Request
        0x00402017,  # Filler Order Number / Imaging Service Request
        0x0040A088,  # Verifying Observer Identification Code Sequence
        0x00700084,  # Content Creator's Name
        0x00401101,  # Person Identification Code Sequence (D: emptied here)
    }
)
D_TAGS: frozenset[int] = frozenset(
    {
        0x0040A075,  # Verifying Observer Name
        0x0040A073,  # Verifying Observer Sequence (its items are de-identified in turn)
        0x0040A027,  # Verifying Organization [unverified]
        0x0040A123,  # Person Name
    }
)
X_TAGS: frozenset[int] = frozenset(
    {
        # Patient
        0x00100021,  # Issuer of Patient ID
        0x00100032,  # Patient's Birth Time
        0x00100050,  # Patient's Insurance Plan Code Sequence
        0x00101000,  # Other Patient IDs
        0x00101001,  # Other Patient Names
        0x00101002,  # Other Patient IDs Sequence
        0x00101005,  # Patient's Birth Name
        0x00101010,  # Patient's Age
        0x00101020,  # Patient's Size
        0x00101030,  # Patient's Weight
        0x00101040,  # Patient's Address
        0x00101050,  # Insurance Plan Identification
        0x00101060,  # Patient's Mother's Birth Name
        0x00101080,  # Military Rank
        0x00101081,  # Branch of Service
        0x00101090,  # Medical Record Locator
        0x00102000,  # Medical Alerts
        0x00102110,  # Allergies
        0x00102150,  # Country of Residence
        0x00102152,  # Region of Residence
        0x00102154,  # Patient's Telephone Numbers
        0x00102160,  # Ethnic Group
        0x00102180,  # Occupation
        0x001021A0,  # Smoking Status
        0x001021B0,  # Additional Patient History
        0x001021C0,  # Pregnancy Status
        0x001021F0,  # Patient's Religious Preference
        0x00102203,  # Patient's Sex Neutered (X/Z)
        0x00102297,  # Responsible Person
        0x00102299,  # Responsible Organization
        0x00104000,  # Patient Comments
        # Dates and times other than the study's (X/D, X/Z)
        0x00080012,  # Instance Creation Date [unverified]
        0x00080013,  # Instance Creation Time [unverified]
        0x00080015,  # Instance Coercion DateTime
        0x00080021,  # Series Date
        0x00080022,  # Acquisition Date
        0x00080024,  # Overlay Date
        0x00080025,  # Curve Date
        0x0008002A,  # Acquisition DateTime
        0x00080031,  # Series Time
        0x00080032,  # Acquisition Time
        0x00080034,  # Overlay Time
        0x00080035,  # Curve Time
        0x00080201,  # Timezone Offset From UTC
        # Institution, people, devices
        0x00080080,  # Institution Name
        0x00080081,  # Institution Address
        0x00080082,  # Institution Code Sequence
        0x00080092,  # Referring Physician's Address
        0x00080094,  # Referring Physician's Telephone Numbers
        0x00080096,  # Referring Physician Identification Sequence
        0x00081010,  # Station Name
        0x00081040,  # Institutional Department Name
        0x00081048,  # Physician(s) of Record
        0x00081049,  # Physician(s) of Record Identification Sequence
        0x00081050,  # Performing Physician's Name
        0x00081052,  # Performing Physician Identification Sequence
        0x00081060,  # Name of Physician(s) Reading Study
        0x00081062,  # Physician(s) Reading Study Identification Sequence
        0x00081070,  # Operators' Name
        0x00081072,  # Operator Identification Sequence (X/D)
        0x00081080,  # Admitting Diagnoses Description
        0x00081084,  # Admitting Diagnoses Code Sequence
        0x00081111,  # Referenced Performed Procedure Step Sequence
        0x00081120,  # Referenced Patient Sequence
        0x00082111,  # Derivation Description
        0x00084000,  # Identifying Comments
        0x00181000,  # Device Serial Number
        0x00181004,  # Plate ID
        0x00181005,  # Generator ID
        0x00181007,  # Cassette ID
        0x00181008,  # Gantry ID
        0x00181030,  # Protocol Name (X/D)
        0x00181400,  # Acquisition Device Processing Description (X/D)
        0x00184000,  # Acquisition Comments
        0x0018700A,  # Detector ID
        0x00189424,  # Acquisition Protocol Description
        # Descriptions and comments (free text)
        0x00081030,  # Study Description
        0x0008103E,  # Series Description
        0x00204000,  # Image Comments
        0x00209158,  # Frame Comments
        0x00321020,  # Scheduled Study Location
        0x00321021,  # Scheduled Study Location AE Title
        0x00321030,  # Reason for Study
        0x00321032,  # Requesting Physician
        0x00321033,  # Requesting Service
        0x00321060,  # Requested Procedure Description (X/Z)
        0x00321070,  # Requested Contrast Agent
        0x00324000,  # Study Comments
        0x00380010,  # Admission ID
        0x00380060,  # Service Episode ID
        0x00380300,  # Current Patient Location
        0x00380400,  # Patient's Institution Residence
        0x00380500,  # Patient State
        0x00384000,  # Visit Comments
        # Procedure steps and requests
        0x00400001,  # Scheduled Station AE Title
        0x00400002,  # Scheduled Procedure Step Start Date
        0x00400003,  # Scheduled Procedure Step Start Time
        0x00400004,  # Scheduled Procedure Step End Date
        0x00400005,  # Scheduled Procedure Step End Time
        0x00400006,  # Scheduled Performing Physician's Name
        0x00400007,  # Scheduled Procedure Step Description
        0x00400009,  # Scheduled Procedure Step ID
        0x0040000B,  # Scheduled Performing Physician Identification Sequence
        0x00400010,  # Scheduled Station Name
        0x00400011,  # Scheduled Procedure Step Location
        0x00400241,  # Performed Station AE Title
        0x00400242,  # Performed Station Name
        0x00400243,  # Performed Location
        0x00400244,  # Performed Procedure Step Start Date
        0x00400245,  # Performed Procedure Step Start Time
        0x00400250,  # Performed Procedure Step End Date
        0x00400251,  # Performed Procedure Step End Time
        0x00400253,  # Performed Procedure Step ID
        0x00400254,  # Performed Procedure Step Description
        0x00400275,  # Request Attributes Sequence
        0x00400280,  # Comments on the Performed Procedure Step
        0x00401001,  # Requested Procedure ID
        0x00401002,  # Reason for the Requested Procedure
        0x00401004,  # Patient Transport Arrangements
        0x00401005,  # Requested Procedure Location
        0x00401010,  # Names of Intended Recipients of Results
        0x00401011,  # Intended Recipients of Results Identification Sequence
        0x00401102,  # Person's Address
        0x00401103,  # Person's Telephone Numbers
        0x00401400,  # Requested Procedure Comments
        0x00402001,  # Reason for the Imaging Service Request
        0x00402008,  # Order Entered By
        0x00402009,  # Order Enterer's Location
        0x00402010,  # Order Callback Phone Number
        0x00402400,  # Imaging Service Request Comments
        0x00403001,  # Confidentiality Constraint on Patient Data Description
        0x0040A078,  # Author Observer Sequence
        0x0040A07A,  # Participant Sequence
        0x0040A730,  # Content Sequence (structured reports: free text, names)
        # Interpretation and free text
        0x40000010,  # Arbitrary
        0x40004000,  # Text Comments
        0x4008010C,  # Interpretation Author
        0x40080114,  # Physician Approving Interpretation
        0x40080119,  # Distribution Name
        0x4008011A,  # Distribution Address
        0x40080300,  # Impressions
        0x40084000,  # Results Comments
        # Signatures and originals (they would keep the identity or no longer verify)
        0x04000100,  # Digital Signature UID
        0x04000561,  # Original Attributes Sequence
        0xFFFAFFFA,  # Digital Signatures Sequence
    }
)
U_TAGS: frozenset[int] = frozenset(
    {
        0x00080014,  # Instance Creator UID
        0x00080018,  # SOP Instance UID
        0x00081155,  # Referenced SOP Instance UID
        0x00083010,  # Irradiation Event UID
        0x00181002,  # Device UID
        0x0020000D,  # Study Instance UID
        0x0020000E,  # Series Instance UID
        0x00200052,  # Frame of Reference UID
        0x00200200,  # Synchronization Frame of Reference UID
        0x00281199,  # Palette Color Lookup Table UID
        0x00041511,  # Referenced SOP Instance UID in File
        0x0040A124,  # UID
        0x00880140,  # Storage Media File-set UID
        0x30060024,  # Referenced Frame of Reference UID
        0x300600C2,  # Related Frame of Reference UID
    }
)

_DUMMY_BY_VR = {
    "PN": "ANONYME",
    "LO": "ANONYME",
    "SH": "ANONYME",
    "LT": "ANONYME",
    "ST": "ANONYME",
    "UT": "ANONYME",
    "CS": "ANONYME",
    "DA": "19000101",
    "TM": "000000",
    "DT": "19000101000000",
    "AS": "000Y",
}


class DeidentificationError(DicomError):
    """An instance that cannot be exported de-identified (French message)."""


class UidMap:
    """Old UID → ``2.25.<uuid as integer>``, deterministic for one salt (one export)."""

    def __init__(self, salt: bytes) -> None:
        if len(salt) < 16:
            raise ValueError("the export salt must be at least 16 random bytes")
        self._salt = salt
        self.mapping: dict[str, str] = {}

    def __call__(self, uid: str) -> str:
        uid = str(uid).strip().rstrip("\x00")
        if not uid:
            return uid
        found = self.mapping.get(uid)
        if found is None:
            digest = bytearray(hmac.new(self._salt, uid.encode(), hashlib.sha256).digest()[:16])
            digest[6] = (digest[6] & 0x0F) | 0x80  # version 8 (custom, RFC 9562)
            digest[8] = (digest[8] & 0x3F) | 0x80  # RFC 4122 variant
            found = f"2.25.{uuid.UUID(bytes=bytes(digest)).int}"
            self.mapping[uid] = found
        return found


def export_salt(secret: bytes | str, export_id: str) -> bytes:
    """A salt that stays the same for one export (``export_id``, e.g. ``"transfer:42"``) when it is resumed
    later, and cannot be guessed without ``secret`` (the server's secret key)."""
    key = secret.encode() if isinstance(secret, str) else secret
    return hmac.new(key, b"enrs-deidentify:" + export_id.encode(), hashlib.sha256).digest()


def _is_removed_group(tag: BaseTag) -> bool:
    group, element = tag.group, tag.element
    if tag.is_private:
        return True
    if 0x5000 <= group <= 0x50FF and group % 2 == 0:  # curve data (retired)
        return True
    return 0x6000 <= group <= 0x60FF and group % 2 == 0 and element in (0x3000, 0x4000)


def _dummy(element: DataElement, uid_map: Callable[[str], str]) -> object:
    if element.VR == "UI":
        return uid_map(str(element.value))
    return _DUMMY_BY_VR.get(element.VR)


def _remap_uid_value(value: object, uid_map: Callable[[str], str]) -> object:
    if isinstance(value, list | tuple | pydicom.multival.MultiValue):
        return [uid_map(str(v)) for v in value]
    return uid_map(str(value)) if value not in (None, "") else value


def _apply(ds: Dataset, uid_map: Callable[[str], str]) -> None:
    for tag in list(ds.keys()):
        tag = Tag(tag)
        if _is_removed_group(tag) or int(tag) in X_TAGS:
            del ds[tag]
            continue
        element = ds[tag]
        key = int(tag)
        if key in Z_TAGS:
            element.value = Sequence([]) if element.VR == "SQ" else None
        elif key in D_TAGS and element.VR == "SQ":
            for item in element.value or []:
                _apply(item, uid_map)
        elif key in D_TAGS:
            element.value = _dummy(element, uid_map)
        elif key in U_TAGS:
            element.value = _remap_uid_value(element.value, uid_map)
        elif element.VR == "SQ":
            for item in element.value or []:
                _apply(item, uid_map)


def deidentify_dataset(ds: Dataset, *, uid_map: UidMap) -> Dataset:
    """Apply the profile to ``ds`` in place (and to its File Meta) and return it."""
    burned_in = str(ds.get("BurnedInAnnotation", "") or "").strip().upper()
    if burned_in == "YES":
        raise DeidentificationError(
            "burned_in",
            "Image avec texte incrusté dans les pixels (Burned In Annotation = YES) : elle ne peut pas être "
            "anonymisée automatiquement.",
        )
    _apply(ds, uid_map)
    ds.PatientIdentityRemoved = "YES"
    ds.DeidentificationMethod = METHOD_TEXT
    code = Dataset()
    code.CodeValue, code.CodingSchemeDesignator, code.CodeMeaning = BASIC_PROFILE_CODE
    ds.DeidentificationMethodCodeSequence = Sequence([code])
    meta = getattr(ds, "file_meta", None)
    if meta is not None and "SOPInstanceUID" in ds:
        meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    return ds


def deidentify_bytes(data: bytes, *, uid_map: UidMap) -> bytes:
    """One DICOM file de-identified, written back as a Part 10 file in its own transfer syntax (pixel
    data bytes unchanged)."""
    try:
        ds = pydicom.dcmread(io.BytesIO(data), force=False)
    except Exception:
        ds = pydicom.dcmread(io.BytesIO(data), force=True)
    deidentify_dataset(ds, uid_map=uid_map)
    meta = getattr(ds, "file_meta", None)
    if meta is None or "TransferSyntaxUID" not in meta:
        implicit, little = ds.original_encoding
        new_meta = FileMetaDataset(meta or Dataset())
        if implicit:
            new_meta.TransferSyntaxUID = ImplicitVRLittleEndian
        else:
            new_meta.TransferSyntaxUID = (
                ExplicitVRLittleEndian if little is not False else ExplicitVRBigEndian
            )
        new_meta.MediaStorageSOPClassUID = ds.SOPClassUID
        new_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        ds.file_meta = new_meta
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    return out.getvalue()
