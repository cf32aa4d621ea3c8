"""Reading one DICOM file with pydicom and deciding whether ENRS accepts it.

A file is accepted when:

* it is DICOM: a Part 10 file (128-byte preamble + ``DICM``), or — read only after the strict reading
  failed — a bare dataset without preamble whose first element is a group 0002 or 0008 tag (what some
  older modalities write); anything else is refused as "not DICOM";
* it is complete: the element structure is walked to the end of the file (pydicom silently accepts a
  truncated file), every defined length fits and every undefined-length sequence is closed;
* the four UIDs needed to file and forward it are present and well-formed (PS3.5 §9.1: digits and dots,
  no leading zero in a component, at most 64 characters): SOP Class, SOP Instance, Study Instance and
  Series Instance UIDs; the File Meta's Media Storage SOP Instance UID, when present, is the same.

The bytes are never rewritten: the caller stores them as received (bit-identical forwarding).
`check_one_patient` refuses a set of files where one study carries two patients.

Pure code: no Django import.
"""

from __future__ import annotations

import hashlib
import io
import re
import struct
import warnings
import zlib
from collections.abc import Iterable
from dataclasses import dataclass

import pydicom
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError

UID_RE = re.compile(r"^(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))+$")
MEDIA_STORAGE_DIRECTORY = "1.2.840.10008.1.3.10"  # DICOMDIR
IMPLICIT_VR_LITTLE_ENDIAN = "1.2.840.10008.1.2"
EXPLICIT_VR_BIG_ENDIAN = "1.2.840.10008.1.2.2"
DEFLATED = ("1.2.840.10008.1.2.1.99", "1.2.840.10008.1.2.8.1")

# Explicit VR: these VRs have a 2-byte reserved field and a 4-byte length.
_LONG_VRS = frozenset(
    {b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"SV", b"UC", b"UN", b"UR", b"UT", b"UV"}
)
_UNDEFINED = 0xFFFFFFFF
_ITEM, _ITEM_END, _SEQ_END = 0xE000, 0xE00D, 0xE0DD


class DicomError(ValueError):
    """A file ENRS does not accept. `code` is stable, `message` is French, for the user."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    def __str__(self) -> str:
        return self.message


@dataclass(frozen=True)
class DicomFileInfo:
    """What ENRS keeps from one accepted file (the bytes themselves stay as received)."""

    sop_class_uid: str
    sop_instance_uid: str
    study_instance_uid: str
    series_instance_uid: str
    transfer_syntax_uid: str
    has_preamble: bool
    size: int
    sha256: str
    patient_id: str = ""
    patient_name: str = ""
    patient_birth_date: str = ""
    patient_sex: str = ""
    issuer_of_patient_id: str = ""
    other_patient_ids: tuple[str, ...] = ()
    study_date: str = ""
    study_time: str = ""
    study_description: str = ""
    accession_number: str = ""
    modality: str = ""
    series_number: int | None = None
    series_description: str = ""
    instance_number: int | None = None
    has_pixel_data: bool = False
    rows: int | None = None
    columns: int | None = None
    number_of_frames: int = 1

    @property
    def patient_key(self) -> tuple[str, str]:
        """Who the file is about, compared between files of one study."""
        return (self.patient_id.strip(), normalize_person_name(self.patient_name))


def normalize_person_name(value: str) -> str:
    """``DUPONT^Jean^^^`` and ``dupont^jean`` are the same name: case, spaces and empty trailing
    components are ignored."""
    groups = []
    for group in value.split("="):
        parts = [" ".join(part.split()).upper() for part in group.split("^")]
        while parts and not parts[-1]:
            parts.pop()
        groups.append("^".join(parts))
    while groups and not groups[-1]:
        groups.pop()
    return "=".join(groups)


def is_valid_uid(value: str) -> bool:
    return bool(value) and len(value) <= 64 and UID_RE.match(value) is not None


def _text(ds: Dataset, keyword: str) -> str:
    try:
        value = ds.get(keyword)
    except Exception:  # a malformed value of a field ENRS only displays
        return ""
    if value is None:
        return ""
    if isinstance(value, list | tuple | pydicom.multival.MultiValue):
        value = "\\".join(str(v) for v in value)
    return str(value).strip().replace("\x00", "")


def _int(ds: Dataset, keyword: str) -> int | None:
    try:
        value = ds.get(keyword)
        return None if value is None or value == "" else int(value)
    except (TypeError, ValueError, OverflowError):
        return None


def _looks_like_bare_dataset(data: bytes) -> bool:
    """A dataset without preamble starts with a group 0002 or 0008 element (little endian), or 'DICM'."""
    if data[:4] == b"DICM":
        return True
    if len(data) < 8:
        return False
    for order in ("<HH", ">HH"):
        group, element = struct.unpack(order, data[:4])
        if group in (0x0002, 0x0008) and element <= 0x0100:
            return True
    return False


def _read(data: bytes) -> tuple[Dataset, bool]:
    """(dataset, has_preamble): strict reading first, then the bare-dataset fallback."""
    try:
        return pydicom.dcmread(io.BytesIO(data), force=False), True
    except InvalidDicomError:
        pass
    except Exception as exc:
        raise DicomError("malformed", f"Fichier DICOM illisible : {_short(exc)}.") from exc
    if not _looks_like_bare_dataset(data):
        raise DicomError("not_dicom", "Ce fichier n'est pas un fichier DICOM.")
    try:
        payload = data[4:] if data[:4] == b"DICM" else data
        return pydicom.dcmread(io.BytesIO(payload), force=True), False
    except Exception as exc:
        raise DicomError("malformed", f"Fichier DICOM illisible : {_short(exc)}.") from exc


def _short(exc: BaseException) -> str:
    return (str(exc) or type(exc).__name__)[:200]


def read_dicom(data: bytes) -> DicomFileInfo:
    """Parse and validate one file; `DicomError` (French message) when it is refused.

    Codes: not_dicom, malformed, truncated, dicomdir, missing_uid, invalid_uid, uid_mismatch."""
    if not data:
        raise DicomError("not_dicom", "Le fichier est vide.")
    with warnings.catch_warnings():
        # pydicom warns (instead of failing) on odd files and values, e.g. a truncated file or an invalid
        # UID: the checks below decide, the warnings are not shown.
        warnings.simplefilter("ignore")
        return _read_dicom(data)


def _read_dicom(data: bytes) -> DicomFileInfo:
    ds, has_preamble = _read(data)
    meta = getattr(ds, "file_meta", None) or Dataset()
    implicit, little = ds.original_encoding
    transfer_syntax = str(meta.get("TransferSyntaxUID", "") or "")
    if not transfer_syntax:
        transfer_syntax = (
            IMPLICIT_VR_LITTLE_ENDIAN
            if implicit
            else ("1.2.840.10008.1.2.1" if little is not False else EXPLICIT_VR_BIG_ENDIAN)
        )
    _check_structure(
        data,
        has_preamble=has_preamble,
        deflated=transfer_syntax in DEFLATED,
        explicit=not implicit,
        little=little is not False,
    )

    sop_class = _text(ds, "SOPClassUID") or str(meta.get("MediaStorageSOPClassUID", "") or "")
    if sop_class == MEDIA_STORAGE_DIRECTORY:
        raise DicomError("dicomdir", "Fichier DICOMDIR (index de support) : ce n'est pas une image.")
    uids = {
        "SOP Class UID": sop_class,
        "SOP Instance UID": _text(ds, "SOPInstanceUID"),
        "Study Instance UID": _text(ds, "StudyInstanceUID"),
        "Series Instance UID": _text(ds, "SeriesInstanceUID"),
    }
    for label, value in uids.items():
        if not value:
            raise DicomError("missing_uid", f"Attribut obligatoire absent : {label}.")
        if not is_valid_uid(value):
            raise DicomError("invalid_uid", f"{label} mal formé : « {value[:80]} ».")
    media_sop = str(meta.get("MediaStorageSOPInstanceUID", "") or "").strip("\x00 ")
    if media_sop and media_sop != uids["SOP Instance UID"]:
        raise DicomError(
            "uid_mismatch",
            "Fichier incohérent : l'en-tête (Media Storage SOP Instance UID) ne correspond pas au SOP "
            "Instance UID de l'image.",
        )

    other_ids: list[str] = []
    try:
        for item in ds.get("OtherPatientIDsSequence", None) or []:
            if item.get("PatientID"):
                other_ids.append(str(item.PatientID).strip())
    except Exception:
        other_ids = []
    return DicomFileInfo(
        sop_class_uid=sop_class,
        sop_instance_uid=uids["SOP Instance UID"],
        study_instance_uid=uids["Study Instance UID"],
        series_instance_uid=uids["Series Instance UID"],
        transfer_syntax_uid=transfer_syntax,
        has_preamble=has_preamble,
        size=len(data),
        sha256=hashlib.sha256(data).hexdigest(),
        patient_id=_text(ds, "PatientID")[:64],
        patient_name=_text(ds, "PatientName")[:200],
        patient_birth_date=_text(ds, "PatientBirthDate")[:8],
        patient_sex=_text(ds, "PatientSex")[:16],
        issuer_of_patient_id=_text(ds, "IssuerOfPatientID")[:64],
        other_patient_ids=tuple(other_ids),
        study_date=_text(ds, "StudyDate")[:8],
        study_time=_text(ds, "StudyTime")[:16],
        study_description=_text(ds, "StudyDescription")[:200],
        accession_number=_text(ds, "AccessionNumber")[:64],
        modality=_text(ds, "Modality")[:16],
        series_number=_int(ds, "SeriesNumber"),
        series_description=_text(ds, "SeriesDescription")[:200],
        instance_number=_int(ds, "InstanceNumber"),
        has_pixel_data="PixelData" in ds or "FloatPixelData" in ds or "DoubleFloatPixelData" in ds,
        rows=_int(ds, "Rows"),
        columns=_int(ds, "Columns"),
        number_of_frames=_int(ds, "NumberOfFrames") or 1,
    )


def check_one_patient(infos: Iterable[DicomFileInfo]) -> None:
    """`DicomError` ``two_patients`` when files of one study name two different patients."""
    by_study: dict[str, tuple[str, str]] = {}
    for info in infos:
        key = info.patient_key
        known = by_study.setdefault(info.study_instance_uid, key)
        if known != key:
            raise DicomError(
                "two_patients",
                "Un même examen contient des images de deux patients différents "
                f"(identifiants « {known[0] or '—'} » et « {key[0] or '—'} ») : dépôt refusé.",
            )


def group_by_study(infos: Iterable[DicomFileInfo]) -> dict[str, dict[str, list[DicomFileInfo]]]:
    """{study UID: {series UID: [files]}} in the order the files came."""
    grouped: dict[str, dict[str, list[DicomFileInfo]]] = {}
    for info in infos:
        grouped.setdefault(info.study_instance_uid, {}).setdefault(info.series_instance_uid, []).append(info)
    return grouped


# --- Structure walk (truncation) ----------------------------------------------------------------------


class _Truncated(Exception):
    pass


class _Walker:
    """Walks the element structure of the dataset: every length must fit, every sequence must end."""

    def __init__(self, data: bytes, *, explicit: bool, little: bool) -> None:
        self.data = data
        self.explicit = explicit
        self.end = "<" if little else ">"
        self.tag = struct.Struct(self.end + "HH")
        self.u16 = struct.Struct(self.end + "H")
        self.u32 = struct.Struct(self.end + "I")
        self.depth = 0

    def _need(self, pos: int, size: int) -> None:
        if pos + size > len(self.data):
            raise _Truncated

    def elements(self, pos: int, stop: int | None, *, explicit: bool) -> int:
        """Walk elements from ``pos`` up to ``stop`` (defined length) or up to an item delimiter."""
        self.depth += 1
        if self.depth > 64:
            raise DicomError("malformed", "Fichier DICOM mal formé (séquences trop imbriquées).")
        limit = len(self.data) if stop is None else stop
        while pos < limit:
            self._need(pos, 8)
            group, element = self.tag.unpack_from(self.data, pos)
            if group == 0xFFFE:
                (length,) = self.u32.unpack_from(self.data, pos + 4)
                if element == _ITEM_END and stop is None and self.depth > 1:
                    self.depth -= 1
                    return pos + 8
                raise DicomError("malformed", "Fichier DICOM mal formé (délimiteur inattendu).")
            vr = b""
            if explicit:
                vr = self.data[pos + 4 : pos + 6]
                if vr in _LONG_VRS:
                    self._need(pos, 12)
                    (length,) = self.u32.unpack_from(self.data, pos + 8)
                    pos += 12
                else:
                    (length,) = self.u16.unpack_from(self.data, pos + 6)
                    pos += 8
            else:
                (length,) = self.u32.unpack_from(self.data, pos + 4)
                pos += 8
            if length == _UNDEFINED:
                if (group, element) == (0x7FE0, 0x0010):
                    pos = self._fragments(pos)
                else:
                    # SQ, or UN holding an implicit-VR little-endian sequence (PS3.5 §6.2.2).
                    pos = self._sequence(pos, explicit=explicit and vr != b"UN")
            else:
                self._need(pos, length)
                pos += length
        if stop is not None and pos != stop:
            raise _Truncated
        if stop is None and self.depth > 1:
            raise _Truncated  # an undefined-length item never closed
        self.depth -= 1
        return pos

    def _sequence(self, pos: int, *, explicit: bool) -> int:
        while True:
            self._need(pos, 8)
            group, element = self.tag.unpack_from(self.data, pos)
            (length,) = self.u32.unpack_from(self.data, pos + 4)
            pos += 8
            if (group, element) == (0xFFFE, _SEQ_END):
                return pos
            if (group, element) != (0xFFFE, _ITEM):
                raise DicomError("malformed", "Fichier DICOM mal formé (élément de séquence attendu).")
            if length == _UNDEFINED:
                pos = self.elements(pos, None, explicit=explicit)
            else:
                self._need(pos, length)
                pos += length

    def _fragments(self, pos: int) -> int:
        while True:
            self._need(pos, 8)
            group, element = self.tag.unpack_from(self.data, pos)
            (length,) = self.u32.unpack_from(self.data, pos + 4)
            pos += 8
            if (group, element) == (0xFFFE, _SEQ_END):
                return pos
            if (group, element) != (0xFFFE, _ITEM) or length == _UNDEFINED:
                raise DicomError("malformed", "Fichier DICOM mal formé (fragment de pixels attendu).")
            self._need(pos, length)
            pos += length


def _check_structure(
    data: bytes, *, has_preamble: bool, deflated: bool, explicit: bool, little: bool
) -> None:
    start = 0
    # Where the File Meta starts: after the preamble and 'DICM', or after a bare 'DICM' prefix.
    meta_at = 132 if has_preamble else (4 if data[:4] == b"DICM" else None)
    if meta_at is not None:
        # Group length of the File Meta (0002,0000) UL, always explicit VR little endian.
        if len(data) < meta_at + 12 or data[meta_at : meta_at + 6] != b"\x02\x00\x00\x00UL":
            start = _skip_meta_without_length(data, meta_at)
        else:
            (meta_length,) = struct.unpack_from("<I", data, meta_at + 8)
            start = meta_at + 12 + meta_length
        try:
            _Walker(data, explicit=True, little=True).elements(meta_at, start, explicit=True)
        except (_Truncated, struct.error) as exc:
            raise DicomError("truncated", "Le fichier DICOM est tronqué (incomplet).") from exc
    if deflated:
        _check_deflated(data[start:])
        return
    # Some writers announce explicit VR and write implicit VR (pydicom reads both): the structure is
    # sound when one of the two encodings walks to the end of the file.
    failure: BaseException | None = None
    for is_explicit in (explicit, not explicit):
        try:
            _Walker(data, explicit=is_explicit, little=little).elements(start, None, explicit=is_explicit)
            return
        except (_Truncated, struct.error, DicomError) as exc:
            failure = failure or exc
    if isinstance(failure, DicomError):
        raise failure
    raise DicomError("truncated", "Le fichier DICOM est tronqué (incomplet).") from failure


def _check_deflated(stream: bytes) -> None:
    """A deflated dataset must be a complete raw deflate stream (inflated in bounded pieces)."""
    inflater = zlib.decompressobj(-zlib.MAX_WBITS)
    pending = stream
    try:
        while pending and not inflater.eof:
            inflater.decompress(pending, 1024 * 1024)
            pending = inflater.unconsumed_tail
    except zlib.error as exc:
        raise DicomError("malformed", "Fichier DICOM compressé (deflate) illisible.") from exc
    if not inflater.eof:
        raise DicomError("truncated", "Le fichier DICOM est tronqué (incomplet).")


def _skip_meta_without_length(data: bytes, pos: int) -> int:
    """Start of the dataset when the File Meta has no group length: after the last 0002 element."""
    while pos + 8 <= len(data):
        group = struct.unpack_from("<H", data, pos)[0]
        if group != 0x0002:
            return pos
        vr = data[pos + 4 : pos + 6]
        if vr in _LONG_VRS:
            if pos + 12 > len(data):
                break
            pos += 12 + struct.unpack_from("<I", data, pos + 8)[0]
        else:
            pos += 8 + struct.unpack_from("<H", data, pos + 6)[0]
    raise DicomError("truncated", "Le fichier DICOM est tronqué (incomplet).")
