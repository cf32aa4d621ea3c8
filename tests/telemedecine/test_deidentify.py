"""De-identification, PS3.15 Annex E basic profile (telemedecine.dicom.deidentify): pure, tag by tag."""

import io
import re

import pydicom
import pytest
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from telemedecine.dicom.deidentify import (
    X_TAGS,
    Z_TAGS,
    DeidentificationError,
    UidMap,
    deidentify_bytes,
    deidentify_dataset,
    export_salt,
)
from telemedecine.dicom.parse import read_dicom
from tests.telemedecine.dicom_samples import make_series, new_uid, sample_bytes, to_bytes

SALT = b"0123456789abcdef0123456789abcdef"
UID_2_25 = re.compile(r"^2\.25\.(0|[1-9][0-9]{0,38})$")

# Standards §8, Table E.1-1 (the attributes the issue names): action Z (emptied, kept present).
Z_ATTRIBUTES = {
    "PatientName": "DUPONT^JEAN",
    "PatientID": "279035121518989",
    "PatientBirthDate": "19790328",
    "PatientSex": "M",
    "AccessionNumber": "ACC-2026-001",
    "ReferringPhysicianName": "MARTIN^PAUL",
    "StudyID": "ST-42",
    "StudyDate": "20261124",
    "StudyTime": "031500",
}
# ... action X (removed).
X_ATTRIBUTES = {
    "OtherPatientIDs": "IPP-123",
    "OtherPatientNames": "DUPONT^J",
    "PatientAge": "047Y",
    "PatientSize": "1.80",
    "PatientWeight": "80",
    "PatientAddress": "3 rue de la Paix, 51100 Reims",
    "PatientTelephoneNumbers": "0326000000",
    "AdditionalPatientHistory": "AVC en 2020",
    "PatientComments": "Patient anxieux",
    "InstitutionName": "CH de Vitry-le-François",
    "InstitutionAddress": "Rue de l'Hôpital",
    "StationName": "CT01",
    "InstitutionalDepartmentName": "Urgences",
    "PhysiciansOfRecord": "LEROY^ANNE",
    "PerformingPhysicianName": "BERNARD^LUC",
    "OperatorsName": "PETIT^EVA",
    "RequestingPhysician": "MOREAU^ALAIN",
    "StudyDescription": "Scanner cérébral DUPONT",
    "SeriesDescription": "Sans injection",
    "ImageComments": "M. Dupont, chambre 12",
    "DeviceSerialNumber": "SN-998877",
}


def _identified(**extra: object) -> Dataset:
    ds = pydicom.dcmread(io.BytesIO(sample_bytes("CT_small.dcm")))
    for keyword, value in {**Z_ATTRIBUTES, **X_ATTRIBUTES, **extra}.items():
        setattr(ds, keyword, value)
    return ds


@pytest.mark.parametrize("keyword", sorted(Z_ATTRIBUTES))
def test_action_z_attributes_are_kept_but_emptied(keyword: str) -> None:
    ds = deidentify_dataset(_identified(), uid_map=UidMap(SALT))
    assert keyword in ds
    assert ds[keyword].value in (None, "", b"")


@pytest.mark.parametrize("keyword", sorted(X_ATTRIBUTES))
def test_action_x_attributes_are_removed(keyword: str) -> None:
    ds = deidentify_dataset(_identified(), uid_map=UidMap(SALT))
    assert keyword not in ds


def test_the_tables_cover_every_attribute_named_in_the_standards_notes() -> None:
    tags = {int(pydicom.datadict.tag_for_keyword(k) or 0) for k in Z_ATTRIBUTES}
    assert tags <= Z_TAGS
    tags = {int(pydicom.datadict.tag_for_keyword(k) or 0) for k in X_ATTRIBUTES}
    assert tags <= X_TAGS


def test_private_attributes_are_all_removed_at_every_level() -> None:
    ds = _identified()
    assert any(element.tag.is_private for element in ds)  # CT_small has private groups 0009, 0019…
    item = Dataset()
    item.add_new(0x00291010, "LO", "NOM PRIVE")
    item.ReferencedSOPInstanceUID = ds.SOPInstanceUID
    item.ReferencedSOPClassUID = ds.SOPClassUID
    ds.ReferencedImageSequence = Sequence([item])
    deidentify_dataset(ds, uid_map=UidMap(SALT))
    assert not any(element.tag.is_private for element in ds.iterall())


def test_person_names_inside_sequences_are_handled_too() -> None:
    ds = _identified()
    observer = Dataset()
    observer.VerifyingObserverName = "LEROY^ANNE"
    observer.VerifyingOrganization = "CHU de Reims"
    ds.VerifyingObserverSequence = Sequence([observer])
    step = Dataset()
    step.PerformedProcedureStepStartDate = "20261124"
    ds.RequestAttributesSequence = Sequence([step])
    deidentify_dataset(ds, uid_map=UidMap(SALT))
    assert ds.VerifyingObserverSequence[0].VerifyingObserverName == "ANONYME"
    assert ds.VerifyingObserverSequence[0].VerifyingOrganization == "ANONYME"
    assert "RequestAttributesSequence" not in ds


def test_the_method_is_recorded() -> None:
    ds = deidentify_dataset(_identified(), uid_map=UidMap(SALT))
    assert ds[0x00120062].value == "YES"  # Patient Identity Removed
    assert ds[0x00120063].value  # De-identification Method
    (code,) = ds[0x00120064].value  # De-identification Method Code Sequence
    assert (code.CodeValue, code.CodingSchemeDesignator) == ("113100", "DCM")
    assert code.CodeMeaning == "Basic Application Confidentiality Profile"


def test_uids_are_remapped_consistently_across_the_files_of_one_export() -> None:
    originals = make_series(3, base="CT_small.dcm")
    # The third image refers to the first (e.g. a derived image): the reference must follow.
    third = pydicom.dcmread(io.BytesIO(originals[2]))
    first = pydicom.dcmread(io.BytesIO(originals[0]))
    reference = Dataset()
    reference.ReferencedSOPClassUID = first.SOPClassUID
    reference.ReferencedSOPInstanceUID = first.SOPInstanceUID
    third.SourceImageSequence = Sequence([reference])
    originals[2] = to_bytes(third)

    uid_map = UidMap(SALT)
    exported = [pydicom.dcmread(io.BytesIO(deidentify_bytes(data, uid_map=uid_map))) for data in originals]
    sources = [pydicom.dcmread(io.BytesIO(data)) for data in originals]

    assert len({ds.StudyInstanceUID for ds in exported}) == 1
    assert len({ds.SeriesInstanceUID for ds in exported}) == 1
    assert len({ds.SOPInstanceUID for ds in exported}) == 3
    for source, ds in zip(sources, exported, strict=True):
        for keyword in ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID", "FrameOfReferenceUID"):
            new, old = str(ds.get(keyword)), str(source.get(keyword))
            assert UID_2_25.match(new), new
            assert new != old
            assert uid_map(old) == new
        assert ds.file_meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID
        assert ds.SOPClassUID == source.SOPClassUID  # the kind of object is kept
        assert ds.PixelData == source.PixelData  # pixel data untouched
    assert exported[2].SourceImageSequence[0].ReferencedSOPInstanceUID == exported[0].SOPInstanceUID


def test_another_export_gives_other_uids_and_the_same_salt_the_same() -> None:
    uid = new_uid()
    assert UidMap(SALT)(uid) == UidMap(SALT)(uid)
    assert UidMap(SALT)(uid) != UidMap(b"another-salt-of-32-bytes-long!!!")(uid)
    assert UidMap(SALT)(uid) != UidMap(SALT)(new_uid())
    with pytest.raises(ValueError, match="at least 16"):
        UidMap(b"short")


def test_the_exported_file_is_still_acceptable_dicom_with_the_same_pixels() -> None:
    original = sample_bytes("MR_small.dcm")
    exported = deidentify_bytes(original, uid_map=UidMap(SALT))
    info = read_dicom(exported)
    assert info.patient_id == ""
    assert info.patient_name == ""
    assert info.transfer_syntax_uid == read_dicom(original).transfer_syntax_uid
    assert pydicom.dcmread(io.BytesIO(exported)).PixelData == pydicom.dcmread(io.BytesIO(original)).PixelData


def test_overlays_and_curves_are_removed_but_the_image_attributes_kept() -> None:
    ds = _identified()
    ds.add_new(0x60003000, "OW", b"\x00\x01" * 8)  # Overlay Data
    ds.add_new(0x60004000, "LT", "Dr Martin")  # Overlay Comments
    ds.add_new(0x50000010, "US", 2)  # Curve data (retired)
    deidentify_dataset(ds, uid_map=UidMap(SALT))
    assert 0x60003000 not in ds
    assert 0x60004000 not in ds
    assert 0x50000010 not in ds
    assert (ds.Rows, ds.Columns, ds.Modality) == (128, 128, "CT")


def test_an_image_with_burned_in_text_is_refused() -> None:
    ds = _identified(BurnedInAnnotation="YES")
    with pytest.raises(DeidentificationError) as caught:
        deidentify_dataset(ds, uid_map=UidMap(SALT))
    assert caught.value.code == "burned_in"


def test_an_export_salt_is_stable_for_one_export_and_secret() -> None:
    salt = export_salt("clé-secrète", "transfer:42")
    assert len(salt) == 32
    assert salt == export_salt(b"cl\xc3\xa9-secr\xc3\xa8te", "transfer:42")
    assert salt != export_salt("clé-secrète", "transfer:43")
    assert salt != export_salt("autre-clé", "transfer:42")
    uid = new_uid()
    assert UidMap(salt)(uid) == UidMap(export_salt("clé-secrète", "transfer:42"))(uid)
