"""Filing DICOM files into studies, finishing them, who sees them, de-identified exports."""

import datetime as dt
import io
import zipfile
from typing import Any

import pydicom
import pytest
from django.core.exceptions import ValidationError
from django.http import Http404
from django.test import RequestFactory

from enrs.audit.models import AuditEvent
from enrs.usage.models import UsageEvent
from enrs.vault.services import blob_read
from telemedecine.dicom.thumbnail import thumbnail_png
from telemedecine.models import Instance, Series, Study, StudySource, StudyStatus
from telemedecine.services import studies
from tests.annuaire.factories import StructureFactory
from tests.factories import UserFactory
from tests.patients.factories import PatientFactory
from tests.telemedecine.dicom_samples import (
    make_instance,
    make_study,
    new_uid,
    sample_bytes,
    study_uid_of,
    to_bytes,
)
from tests.telemedecine.factories import ActFactory, ParticipantFactory

pytestmark = pytest.mark.django_db


def _ingest_all(files: list[tuple[str, bytes]], **kwargs: Any) -> list[Instance]:
    kwargs.setdefault("source", StudySource.UPLOAD)
    return [studies.study_ingest_file(data_or_path=data, **kwargs) for _, data in files]


def test_files_are_grouped_into_one_study_and_its_series_with_counters() -> None:
    user: Any = UserFactory()
    files = make_study((3, 2))
    instances = _ingest_all(files, uploaded_by=user)
    study = Study.objects.get()
    assert study.study_instance_uid == study_uid_of(files[0][1])
    assert (study.series_count, study.instance_count) == (2, 5)
    assert study.total_bytes == sum(len(data) for _, data in files)
    assert study.modalities == "CT,MR"
    assert study.status == StudyStatus.RECEIVING
    assert study.uploaded_by == user
    assert (study.dicom_patient_id, study.dicom_patient_name) == ("DCM-TEST-1", "TEST^PATIENT")
    assert [(s.number, s.modality, s.instance_count) for s in Series.objects.order_by("number")] == [
        (1, "CT", 3),
        (2, "MR", 2),
    ]
    assert [i.instance_number for i in instances] == [1, 2, 3, 1, 2]


def test_each_file_is_kept_bit_identical_encrypted_with_its_hash() -> None:
    files = make_study((2,))
    instances = _ingest_all(files)
    for instance, (_, data) in zip(instances, files, strict=True):
        instance.refresh_from_db()
        assert blob_read(instance.blob) == data
        assert instance.size == len(data)
        assert instance.sha256 == instance.blob.sha256
        assert instance.blob.ciphertext is None or data not in bytes(instance.blob.ciphertext)
        assert instance.transfer_syntax_uid == "1.2.840.10008.1.2.1"
        assert instance.sop_class_uid == "1.2.840.10008.5.1.4.1.1.2"


def test_ingesting_the_same_file_again_is_idempotent(tmp_path: Any) -> None:
    files = make_study((2,))
    first = _ingest_all(files)
    path = tmp_path / "IM0001.dcm"
    path.write_bytes(files[0][1])
    again = studies.study_ingest_file(data_or_path=path, source=StudySource.UPLOAD)
    assert again.pk == first[0].pk
    study = Study.objects.get()
    assert (study.instance_count, Instance.objects.count()) == (2, 2)
    assert study.total_bytes == sum(len(data) for _, data in files)


def test_a_second_patient_in_a_study_is_refused_and_nothing_is_added() -> None:
    study_uid, series_uid = new_uid(), new_uid()
    studies.study_ingest_file(
        data_or_path=make_instance(study_uid=study_uid, series_uid=series_uid, patient_id="A1"),
        source=StudySource.UPLOAD,
    )
    intruder = make_instance(study_uid=study_uid, series_uid=series_uid, patient_id="B2", instance_number=2)
    with pytest.raises(ValidationError) as caught:
        studies.study_ingest_file(data_or_path=intruder, source=StudySource.UPLOAD)
    assert caught.value.code == "two_patients"
    assert "deux patients différents" in caught.value.messages[0]
    assert Instance.objects.count() == 1
    assert Study.objects.get().instance_count == 1


def test_a_non_dicom_file_is_refused_with_a_french_message() -> None:
    with pytest.raises(ValidationError) as caught:
        studies.study_ingest_file(data_or_path=b"%PDF-1.7 compte rendu", source=StudySource.UPLOAD)
    assert caught.value.messages == ["Ce fichier n'est pas un fichier DICOM."]
    assert not Study.objects.exists()


def test_studies_are_filed_under_their_sending_site() -> None:
    site_a: Any = StructureFactory()
    site_b: Any = StructureFactory()
    data = make_study((1,))[0][1]
    studies.study_ingest_file(data_or_path=data, source=StudySource.SCP, site=site_a, sending_ae="CT_VITRY")
    studies.study_ingest_file(data_or_path=data, source=StudySource.SCP, site=site_b, sending_ae="CT_REIMS")
    assert sorted(Study.objects.values_list("site_id", "sending_ae_title")) == sorted(
        [(site_a.pk, "CT_VITRY"), (site_b.pk, "CT_REIMS")]
    )


def test_finalize_makes_the_study_available_with_a_preview_of_the_middle_image() -> None:
    user: Any = UserFactory()
    files = make_study((2, 5))  # the MR series (5 images) is the largest: its 3rd image is the middle one
    instances = _ingest_all(files, uploaded_by=user)
    study = studies.study_finalize(study=instances[0].series.study)
    assert study.status == StudyStatus.AVAILABLE
    assert study.thumbnail is not None
    assert study.thumbnail.content_type == "image/png"
    middle = studies.middle_instance(study)
    assert middle is not None
    assert (middle.series.modality, middle.instance_number) == ("MR", 3)
    png = blob_read(study.thumbnail)
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    assert png == thumbnail_png(files[2 + 2][1])
    usage = UsageEvent.objects.get(kind="telemedecine.study_received")
    assert usage.value == 7
    assert usage.dims == {"source": "upload", "modality": "CT", "images": 7, "bytes": study.total_bytes}
    event = AuditEvent.objects.get(action="telemedecine.study.receive")
    assert (event.target_type, event.target_id, event.actor_id) == (
        "telemedecine.study",
        str(study.pk),
        user.pk,
    )


def test_no_preview_when_the_pixels_do_not_decode() -> None:
    ds = pydicom.dcmread(io.BytesIO(sample_bytes("CT_small.dcm")))
    ds.StudyInstanceUID, ds.SOPInstanceUID = new_uid(), new_uid()
    del ds.PixelData
    instance = studies.study_ingest_file(data_or_path=to_bytes(ds), source=StudySource.UPLOAD)
    study = studies.study_finalize(study=instance.series.study)
    assert study.status == StudyStatus.AVAILABLE
    assert study.thumbnail is None


def test_a_qualified_ins_in_the_patient_id_reconciles_the_study() -> None:
    patient: Any = PatientFactory(qualified=True, birth_date=dt.date(1979, 3, 28))
    files = make_study((1,), patient_id=patient.ins, birth_date="19790328")
    study = studies.study_finalize(study=_ingest_all(files)[0].series.study)
    assert study.patient == patient
    assert AuditEvent.objects.get(action="telemedecine.study.receive").patient_ins == patient.ins


@pytest.mark.parametrize("case", ["other-birth-date", "not-qualified", "no-ins"])
def test_no_reconciliation_when_the_identity_is_not_certain(case: str) -> None:
    patient: Any = PatientFactory(
        qualified=case != "not-qualified", with_ins=True, birth_date=dt.date(1979, 3, 28)
    )
    birth = "19800101" if case == "other-birth-date" else "19790328"
    files = make_study((1,), patient_id="IPP-777" if case == "no-ins" else patient.ins, birth_date=birth)
    study = studies.study_finalize(study=_ingest_all(files)[0].series.study)
    assert study.patient is None


def test_a_study_of_an_act_takes_the_act_patient() -> None:
    act: Any = ActFactory()
    files = make_study((1,))
    study = studies.study_finalize(study=_ingest_all(files, act=act)[0].series.study)
    assert study.act == act
    assert study.patient == act.patient


def test_finalize_of_an_empty_study_is_refused() -> None:
    study = Study.objects.create(study_instance_uid=new_uid(), source=StudySource.SCP)
    with pytest.raises(ValidationError):
        studies.study_finalize(study=study)


def test_the_uploader_reads_the_study_and_the_read_is_audited() -> None:
    user: Any = UserFactory()
    study = studies.study_finalize(study=_ingest_all(make_study((1,)), uploaded_by=user)[0].series.study)
    request = RequestFactory().get("/")
    request.user = user
    assert studies.study_get_for(user=user, pk=study.pk, request=request) == study
    event = AuditEvent.objects.get(action="telemedecine.study.read")
    assert (event.actor_id, event.target_id, event.outcome) == (user.pk, str(study.pk), "success")


def test_a_stranger_gets_not_found_and_the_refusal_is_audited() -> None:
    study = studies.study_finalize(
        study=_ingest_all(make_study((1,)), uploaded_by=UserFactory())[0].series.study
    )
    stranger: Any = UserFactory()
    with pytest.raises(Http404):
        studies.study_get_for(user=stranger, pk=study.pk)
    with pytest.raises(Http404):
        studies.study_get_for(user=stranger, pk=999_999)
    denied = AuditEvent.objects.filter(action="access.denied", actor=stranger).order_by("pk")
    assert [(e.target_type, e.target_id) for e in denied] == [
        ("telemedecine.study", str(study.pk)),
        ("telemedecine.study", "999999"),
    ]
    assert not AuditEvent.objects.filter(action="telemedecine.study.read").exists()


def test_the_people_of_the_act_read_its_study() -> None:
    act: Any = ActFactory()
    colleague: Any = UserFactory()
    ParticipantFactory(act=act, user=colleague, name="")
    study = studies.study_finalize(study=_ingest_all(make_study((1,)), act=act)[0].series.study)
    for user in (act.requester, act.requested_professional, colleague):
        assert studies.study_get_for(user=user, pk=study.pk) == study
    with pytest.raises(Http404):
        studies.study_get_for(user=UserFactory(), pk=study.pk)


def test_a_deidentified_export_is_refused_for_care_and_remaps_uids_for_teaching() -> None:
    files = make_study((2, 1))
    study = studies.study_finalize(study=_ingest_all(files)[0].series.study)
    with pytest.raises(ValidationError):
        studies.study_export_deidentified(study=study, purpose="care")
    exported = studies.study_export_deidentified(study=study, purpose="teaching")
    with zipfile.ZipFile(io.BytesIO(exported)) as archive:
        datasets = [pydicom.dcmread(io.BytesIO(archive.read(name))) for name in archive.namelist()]
    assert len(datasets) == 3
    assert len({ds.StudyInstanceUID for ds in datasets}) == 1
    assert datasets[0].StudyInstanceUID != study.study_instance_uid
    assert {str(ds.PatientName) for ds in datasets} == {""}
    assert AuditEvent.objects.filter(action="telemedecine.study.export_deidentified").count() == 1
