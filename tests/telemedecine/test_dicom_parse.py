"""Reading and validating one DICOM file (telemedecine.dicom.parse): pure, no database."""

import hashlib
import io
import struct
import warnings

import pydicom
import pytest
from pydicom.uid import UID

from telemedecine.dicom.parse import (
    DicomError,
    check_one_patient,
    group_by_study,
    is_valid_uid,
    normalize_person_name,
    read_dicom,
)
from tests.telemedecine.dicom_samples import (
    make_instance,
    make_series,
    new_uid,
    raw_bytes,
    sample_bytes,
    to_bytes,
)


def _without_preamble(data: bytes) -> bytes:
    (meta_length,) = struct.unpack_from("<I", data, 140)
    return data[144 + meta_length :]


def test_a_bundled_ct_file_is_read_with_its_identity_and_uids() -> None:
    data = sample_bytes("CT_small.dcm")
    info = read_dicom(data)
    assert info.has_preamble is True
    assert info.sop_class_uid == "1.2.840.10008.5.1.4.1.1.2"  # CT Image Storage
    assert info.study_instance_uid == "1.3.6.1.4.1.5962.1.2.1.20040119072730.12322"
    assert info.sop_instance_uid == "1.3.6.1.4.1.5962.1.1.1.1.1.20040119072730.12322"
    assert info.transfer_syntax_uid == "1.2.840.10008.1.2.1"
    assert info.modality == "CT"
    assert info.patient_id == "1CT1"
    assert info.patient_name == "CompressedSamples^CT1"
    assert info.has_pixel_data
    assert (info.rows, info.columns) == (128, 128)
    assert info.size == len(data)
    assert info.sha256 == hashlib.sha256(data).hexdigest()


def test_a_dataset_without_preamble_is_accepted_after_the_strict_reading_fails() -> None:
    bare = _without_preamble(sample_bytes("MR_small.dcm"))
    with pytest.raises(pydicom.errors.InvalidDicomError):
        pydicom.dcmread(io.BytesIO(bare), force=False)
    info = read_dicom(bare)
    assert info.has_preamble is False
    assert info.modality == "MR"
    assert info.sop_instance_uid == read_dicom(sample_bytes("MR_small.dcm")).sop_instance_uid


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\x89PNG\r\n\x1a\n" + b"\x00" * 300,
        "Compte rendu : scanner cérébral normal.\n".encode() * 20,
        b"PK\x03\x04" + b"\x00" * 200,
        b"\x00" * 128 + b"DICX" + b"\x00" * 100,
    ],
    ids=["empty", "png", "text", "zip", "bad-prefix"],
)
def test_a_file_that_is_not_dicom_is_refused_clearly(data: bytes) -> None:
    with pytest.raises(DicomError) as caught:
        read_dicom(data)
    assert caught.value.code == "not_dicom"
    assert "DICOM" in caught.value.message or "vide" in caught.value.message


@pytest.mark.parametrize("keep", [1, 100, 40_000, 39_000, 1_000, 200, 140])
def test_a_truncated_file_is_refused(keep: int) -> None:
    data = sample_bytes("CT_small.dcm")
    cut = data[: len(data) - keep] if keep < 1000 else data[:keep]
    if keep >= len(data):
        cut = data[: len(data) // 2]
    with pytest.raises(DicomError) as caught:
        read_dicom(cut)
    assert caught.value.code == "truncated"
    assert caught.value.message == "Le fichier DICOM est tronqué (incomplet)."


def test_a_truncated_file_without_preamble_is_refused_too() -> None:
    bare = _without_preamble(sample_bytes("CT_small.dcm"))
    with pytest.raises(DicomError) as caught:
        read_dicom(bare[:-10])
    assert caught.value.code == "truncated"


@pytest.mark.parametrize(
    ("keyword", "label"),
    [
        ("SOPClassUID", "SOP Class UID"),
        ("SOPInstanceUID", "SOP Instance UID"),
        ("StudyInstanceUID", "Study Instance UID"),
        ("SeriesInstanceUID", "Series Instance UID"),
    ],
)
def test_a_missing_required_uid_is_named_in_the_refusal(keyword: str, label: str) -> None:
    ds = pydicom.dcmread(io.BytesIO(sample_bytes("CT_small.dcm")))
    delattr(ds, keyword)
    if keyword == "SOPClassUID":
        del ds.file_meta.MediaStorageSOPClassUID
    if keyword == "SOPInstanceUID":
        del ds.file_meta.MediaStorageSOPInstanceUID
    with pytest.raises(DicomError) as caught:
        read_dicom(raw_bytes(ds))
    assert caught.value.code == "missing_uid"
    assert caught.value.message == f"Attribut obligatoire absent : {label}."


@pytest.mark.parametrize("bad_uid", ["1.02.3", "1.2.abc", "1..2", "1", "1." + "2" * 70])
def test_a_malformed_uid_is_refused(bad_uid: str) -> None:
    ds = pydicom.dcmread(io.BytesIO(sample_bytes("CT_small.dcm")))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pydicom warns about the invalid value we set on purpose
        ds.StudyInstanceUID = bad_uid
    with pytest.raises(DicomError) as caught:
        read_dicom(raw_bytes(ds))
    assert caught.value.code == "invalid_uid"
    assert caught.value.message.startswith("Study Instance UID mal formé")


def test_uid_syntax() -> None:
    assert is_valid_uid("1.2.840.10008.5.1.4.1.1.2")
    assert is_valid_uid("2.25.0")
    assert not is_valid_uid("")
    assert not is_valid_uid("1.2.3.")
    assert not is_valid_uid("1.2.03")


def test_a_header_announcing_another_instance_is_refused() -> None:
    ds = pydicom.dcmread(io.BytesIO(sample_bytes("CT_small.dcm")))
    ds.file_meta.MediaStorageSOPInstanceUID = UID(new_uid())
    with pytest.raises(DicomError) as caught:
        read_dicom(raw_bytes(ds))
    assert caught.value.code == "uid_mismatch"


def test_a_dicomdir_is_recognised_as_not_an_image() -> None:
    ds = pydicom.dcmread(io.BytesIO(sample_bytes("CT_small.dcm")))
    ds.SOPClassUID = UID("1.2.840.10008.1.3.10")
    ds.file_meta.MediaStorageSOPClassUID = UID("1.2.840.10008.1.3.10")
    with pytest.raises(DicomError) as caught:
        read_dicom(to_bytes(ds))
    assert caught.value.code == "dicomdir"


def test_two_patients_in_one_study_are_refused() -> None:
    study, series = new_uid(), new_uid()
    first = read_dicom(
        make_instance(study_uid=study, series_uid=series, patient_id="A1", patient_name="DUPONT^JEAN")
    )
    other = read_dicom(
        make_instance(study_uid=study, series_uid=series, patient_id="B2", patient_name="MARTIN^LEA")
    )
    with pytest.raises(DicomError) as caught:
        check_one_patient([first, other])
    assert caught.value.code == "two_patients"
    assert "« A1 »" in caught.value.message
    assert "« B2 »" in caught.value.message


def test_same_id_with_another_name_is_another_patient() -> None:
    study, series = new_uid(), new_uid()
    first = read_dicom(
        make_instance(study_uid=study, series_uid=series, patient_id="A1", patient_name="DUPONT^JEAN")
    )
    renamed = read_dicom(
        make_instance(study_uid=study, series_uid=series, patient_id="A1", patient_name="DURAND^JEAN")
    )
    with pytest.raises(DicomError):
        check_one_patient([first, renamed])


def test_name_spelling_variants_are_the_same_patient_and_studies_are_independent() -> None:
    study, series = new_uid(), new_uid()
    a = read_dicom(
        make_instance(study_uid=study, series_uid=series, patient_id="A1", patient_name="Dupont^Jean^^")
    )
    b = read_dicom(
        make_instance(study_uid=study, series_uid=series, patient_id="A1", patient_name="DUPONT^JEAN")
    )
    elsewhere = read_dicom(make_instance(study_uid=new_uid(), series_uid=new_uid(), patient_id="Z9"))
    check_one_patient([a, b, elsewhere])  # does not raise
    assert normalize_person_name("Dupont^Jean^^") == normalize_person_name("DUPONT^ JEAN") == "DUPONT^JEAN"


def test_files_are_grouped_by_study_then_series_in_arrival_order() -> None:
    study = new_uid()
    first = [read_dicom(d) for d in make_series(3, study_uid=study, series_number=1)]
    second = [read_dicom(d) for d in make_series(2, study_uid=study, series_number=2, base="MR_small.dcm")]
    other = read_dicom(make_series(1)[0])
    grouped = group_by_study([first[0], second[0], first[1], other, first[2], second[1]])
    assert list(grouped) == [study, other.study_instance_uid]
    assert [len(files) for files in grouped[study].values()] == [3, 2]
    assert [f.instance_number for f in grouped[study][first[0].series_instance_uid]] == [1, 2, 3]
    assert {f.modality for f in grouped[study][second[0].series_instance_uid]} == {"MR"}


def _implicit_vr_file() -> bytes:
    ds = pydicom.dcmread(io.BytesIO(sample_bytes("CT_small.dcm")))
    ds.file_meta.TransferSyntaxUID = UID("1.2.840.10008.1.2")  # implicit VR little endian
    out = io.BytesIO()
    ds.save_as(out, implicit_vr=True, little_endian=True, enforce_file_format=True)
    return out.getvalue()


@pytest.mark.parametrize("layout", ["explicit", "implicit"])
def test_a_file_starting_with_dicm_but_without_preamble_is_accepted_and_checked(layout: str) -> None:
    full = sample_bytes("CT_small.dcm") if layout == "explicit" else _implicit_vr_file()
    info = read_dicom(full[128:])
    assert info.has_preamble is False
    assert info.transfer_syntax_uid == (
        "1.2.840.10008.1.2.1" if layout == "explicit" else "1.2.840.10008.1.2"
    )
    assert info.sop_instance_uid == read_dicom(full).sop_instance_uid
    with pytest.raises(DicomError) as caught:
        read_dicom(full[128:-7])
    assert caught.value.code == "truncated"


def test_an_implicit_vr_file_is_walked_to_its_end() -> None:
    data = _implicit_vr_file()
    assert read_dicom(data).transfer_syntax_uid == "1.2.840.10008.1.2"
    with pytest.raises(DicomError) as caught:
        read_dicom(data[: len(data) - 2000])
    assert caught.value.code == "truncated"
