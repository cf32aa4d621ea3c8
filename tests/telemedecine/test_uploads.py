"""Resumable browser uploads: services (start / chunk / complete) and their JSON endpoints and pages."""

import datetime as dt
import io
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pydicom
import pytest
from django.core.exceptions import ValidationError
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from enrs.accounts.authn import SESSION_METHOD_KEY, AuthMethod
from enrs.accounts.roles import Role
from enrs.audit.models import AuditEvent
from enrs.vault.models import Blob
from telemedecine.dicom.archive import build_bundle
from telemedecine.models import Instance, Series, Study, UploadSession, UploadStatus
from telemedecine.services import uploads
from tests.factories import UserFactory
from tests.patients.factories import PatientFactory
from tests.telemedecine.dicom_samples import (
    make_instance,
    make_study,
    new_uid,
    raw_bytes,
    sample_bytes,
    zip_of,
)
from tests.telemedecine.factories import ActFactory

pytestmark = pytest.mark.django_db

CHUNK = 16 * 1024


@pytest.fixture(autouse=True)
def upload_settings(settings: Any, tmp_path: Path) -> Any:
    settings.DICOM_UPLOAD_DIR = str(tmp_path / "uploads")
    settings.DICOM_UPLOAD_CHUNK_BYTES = CHUNK
    settings.DICOM_MAX_UPLOAD_BYTES = 5 * 1024 * 1024
    settings.DICOM_MAX_FILES = 50
    return settings


def _pieces(data: bytes, size: int = CHUNK) -> list[tuple[int, bytes]]:
    return [(offset, data[offset : offset + size]) for offset in range(0, len(data), size)]


def _upload(user: Any, data: bytes, filename: str = "examen.zip", act: Any = None) -> UploadSession:
    session = uploads.upload_start(user=user, filename=filename, total_size=len(data), act=act)
    for offset, piece in _pieces(data):
        session = uploads.upload_chunk(session=session, offset=offset, data=piece)
    return session


def _nothing_filed() -> None:
    assert not Study.objects.exists()
    assert not Series.objects.exists()
    assert not Instance.objects.exists()
    assert not Blob.objects.filter(purpose="telemedecine.dicom").exists()


# --- Services ---------------------------------------------------------------------------------------


def test_a_zip_sent_in_chunks_becomes_an_available_study() -> None:
    user: Any = UserFactory()
    files = make_study((3, 2))
    data = zip_of(files)
    session = _upload(user, data)
    assert session.received_size == len(data)
    assert len(_pieces(data)) > 3
    assert uploads.part_path(session).read_bytes() == data

    study = uploads.upload_complete(session=session)
    assert (study.series_count, study.instance_count, study.status) == (2, 5, "available")
    assert study.uploaded_by == user
    assert study.source == "upload"
    session.refresh_from_db()
    assert (session.status, session.study, session.error) == (UploadStatus.COMPLETE, study, "")
    assert not uploads.part_path(session).exists()
    event = AuditEvent.objects.get(action="telemedecine.study.upload")
    assert (event.actor_id, event.target_id, event.outcome) == (user.pk, str(study.pk), "success")
    assert event.detail["instances"] == 5
    assert event.detail["bytes"] == len(data)


def test_a_folder_bundle_is_accepted_like_a_zip() -> None:
    files = make_study((2, 2))
    session = _upload(UserFactory(), build_bundle(files), filename="CT_2026")
    study = uploads.upload_complete(session=session)
    assert (study.series_count, study.instance_count) == (2, 4)


def test_a_missing_chunk_is_refused_then_the_upload_resumes_from_the_server_offset() -> None:
    user: Any = UserFactory()
    data = zip_of(make_study((3,)))
    pieces = _pieces(data)
    session = uploads.upload_start(user=user, filename="examen.zip", total_size=len(data))
    session = uploads.upload_chunk(session=session, offset=pieces[0][0], data=pieces[0][1])
    # The second piece was lost on the network: the third arrives first and is refused.
    with pytest.raises(ValidationError) as caught:
        uploads.upload_chunk(session=session, offset=pieces[2][0], data=pieces[2][1])
    assert caught.value.code == "wrong_offset"
    assert caught.value.messages == [f"Position inattendue : le serveur a déjà reçu {CHUNK} octets."]
    session.refresh_from_db()
    assert session.received_size == CHUNK
    # The page asks where to resume, and sends the rest from there.
    for offset, piece in pieces[1:]:
        session = uploads.upload_chunk(session=session, offset=offset, data=piece)
    study = uploads.upload_complete(session=session)
    assert study.instance_count == 3


def test_a_repeated_chunk_is_refused_and_changes_nothing() -> None:
    data = zip_of(make_study((2,)))
    pieces = _pieces(data)
    session = uploads.upload_start(user=UserFactory(), filename="examen.zip", total_size=len(data))
    session = uploads.upload_chunk(session=session, offset=0, data=pieces[0][1])
    session = uploads.upload_chunk(session=session, offset=pieces[1][0], data=pieces[1][1])
    with pytest.raises(ValidationError):
        uploads.upload_chunk(session=session, offset=0, data=pieces[0][1])
    assert uploads.part_path(session).read_bytes() == data[: 2 * CHUNK]


def test_oversized_uploads_and_chunks_are_refused() -> None:
    user: Any = UserFactory()
    with pytest.raises(ValidationError) as caught:
        uploads.upload_start(user=user, filename="gros.zip", total_size=5 * 1024 * 1024 + 1)
    assert caught.value.code == "oversized"
    assert caught.value.messages == ["Dépôt trop volumineux : 5 Mo (maximum 5 Mo)."]
    assert not UploadSession.objects.exists()

    session = uploads.upload_start(user=user, filename="petit.zip", total_size=100)
    with pytest.raises(ValidationError) as caught:
        uploads.upload_chunk(session=session, offset=0, data=b"x" * 101)
    assert caught.value.code == "oversized"
    with pytest.raises(ValidationError) as caught:
        uploads.upload_chunk(session=session, offset=0, data=b"x" * (CHUNK + 1))
    assert caught.value.code == "chunk_too_large"
    session.refresh_from_db()
    assert session.received_size == 0


def test_an_incomplete_upload_cannot_be_completed() -> None:
    data = zip_of(make_study((2,)))
    session = uploads.upload_start(user=UserFactory(), filename="examen.zip", total_size=len(data))
    uploads.upload_chunk(session=session, offset=0, data=data[:CHUNK])
    with pytest.raises(ValidationError) as caught:
        uploads.upload_complete(session=session)
    assert caught.value.code == "incomplete"
    session.refresh_from_db()
    assert session.status == UploadStatus.OPEN  # the page may still resume


def test_a_bad_file_inside_the_zip_refuses_the_whole_upload_and_leaves_nothing() -> None:
    files = make_study((3, 2))
    files.insert(2, ("SE001/compte-rendu.txt", b"Compte rendu : RAS"))
    session = _upload(UserFactory(), zip_of(files))
    with pytest.raises(ValidationError) as caught:
        uploads.upload_complete(session=session)
    expected = "Fichier « SE001/compte-rendu.txt » refusé : Ce fichier n'est pas un fichier DICOM."
    assert caught.value.messages == [expected]
    _nothing_filed()
    session.refresh_from_db()
    assert (session.status, session.error, session.study) == (UploadStatus.FAILED, expected, None)
    assert not uploads.part_path(session).exists()
    event = AuditEvent.objects.get(action="telemedecine.study.upload")
    assert event.outcome == "failure"
    with pytest.raises(ValidationError):  # a refused upload stays refused
        uploads.upload_complete(session=session)


def test_a_truncated_file_inside_the_zip_refuses_everything() -> None:
    files = make_study((3,))
    name, data = files[1]
    files[1] = (name, data[:-500])
    session = _upload(UserFactory(), zip_of(files))
    with pytest.raises(ValidationError) as caught:
        uploads.upload_complete(session=session)
    assert "tronqué" in caught.value.messages[0]
    assert name in caught.value.messages[0]
    _nothing_filed()


def test_two_patients_in_the_upload_refuse_everything() -> None:
    study_uid, series_uid = new_uid(), new_uid()
    files = [
        ("IM1.dcm", make_instance(study_uid=study_uid, series_uid=series_uid, patient_id="A1")),
        (
            "IM2.dcm",
            make_instance(study_uid=study_uid, series_uid=series_uid, patient_id="B2", instance_number=2),
        ),
    ]
    session = _upload(UserFactory(), zip_of(files))
    with pytest.raises(ValidationError) as caught:
        uploads.upload_complete(session=session)
    assert caught.value.code == "two_patients"
    _nothing_filed()


def test_a_zip_bomb_or_a_traversal_name_refuses_the_upload() -> None:
    traversal = zip_of([*make_study((1,)), ("../../etc/passwd", b"root")])
    session = _upload(UserFactory(), traversal)
    with pytest.raises(ValidationError) as caught:
        uploads.upload_complete(session=session)
    assert caught.value.code == "path_traversal"
    _nothing_filed()

    bomb = zip_of([("IM1.dcm", b"\x00" * (4 * 1024 * 1024))])
    session = _upload(UserFactory(), bomb)
    with pytest.raises(ValidationError) as caught:
        uploads.upload_complete(session=session)
    assert caught.value.code == "bomb"
    _nothing_filed()


def test_too_many_files_are_refused(settings: Any) -> None:
    settings.DICOM_MAX_FILES = 3
    session = _upload(UserFactory(), zip_of(make_study((4,))))
    with pytest.raises(ValidationError) as caught:
        uploads.upload_complete(session=session)
    assert caught.value.code == "too_many_members"
    _nothing_filed()


def test_two_studies_in_one_upload_are_refused() -> None:
    session = _upload(UserFactory(), zip_of([*make_study((1,)), ("B/IM1.dcm", make_study((1,))[0][1])]))
    with pytest.raises(ValidationError) as caught:
        uploads.upload_complete(session=session)
    assert caught.value.code == "several_studies"
    _nothing_filed()


def test_images_of_another_patient_than_the_act_are_refused() -> None:
    act: Any = ActFactory(patient=PatientFactory(birth_date=dt.date(1950, 1, 1)))
    session = _upload(act.requester, zip_of(make_study((1,), birth_date="19790328")), act=act)
    with pytest.raises(ValidationError) as caught:
        uploads.upload_complete(session=session)
    assert caught.value.code == "other_patient"
    _nothing_filed()


def test_an_upload_for_an_act_is_linked_to_it() -> None:
    act: Any = ActFactory(patient=PatientFactory(birth_date=dt.date(1979, 3, 28)))
    session = _upload(act.requester, zip_of(make_study((2,), birth_date="19790328")), act=act)
    study = uploads.upload_complete(session=session)
    assert study.act == act
    assert study.patient == act.patient


def test_only_the_people_of_an_act_may_upload_for_it() -> None:
    act: Any = ActFactory()
    with pytest.raises(ValidationError) as caught:
        uploads.upload_start(user=UserFactory(), filename="x.zip", total_size=10, act=act)
    assert caught.value.code == "act"


# --- Endpoints and pages ----------------------------------------------------------------------------


@pytest.fixture
def strong_user_client(client: Client) -> Callable[..., tuple[Any, Client]]:
    def make(**fields: Any) -> tuple[Any, Client]:
        user: Any = UserFactory(role=Role.CLINICIAN, **fields)
        client.force_login(user)
        session = client.session
        session[SESSION_METHOD_KEY] = AuthMethod.CPS.value
        session.save()
        return user, client

    return make


def _post_chunk(client: Client, session_id: Any, offset: int, piece: bytes) -> Any:
    return client.post(
        reverse("telemedecine:upload_chunk", args=[session_id]),
        data=piece,
        content_type="application/octet-stream",
        headers={"X-Upload-Offset": str(offset)},
    )


def test_the_json_flow_uploads_a_study_and_the_summary_page_shows_it(strong_user_client: Any) -> None:
    user, client = strong_user_client()
    data = zip_of(make_study((3, 2)))
    start = client.post(
        reverse("telemedecine:upload_start"),
        data=json.dumps({"filename": "examen.zip", "total_size": len(data)}),
        content_type="application/json",
    )
    assert start.status_code == 201
    body = start.json()
    assert body["received_size"] == 0
    assert body["chunk_size"] == CHUNK
    for offset, piece in _pieces(data):
        answer = _post_chunk(client, body["id"], offset, piece)
        assert answer.status_code == 200
        assert answer.json()["received_size"] == offset + len(piece)
    status = client.get(body["status_url"]).json()
    assert status["received_size"] == len(data)
    assert status["status"] == "open"
    done = client.post(body["complete_url"])
    assert done.status_code == 200
    result = done.json()
    assert (result["series"], result["instances"]) == (2, 5)

    page = client.get(result["study_url"])
    assert page.status_code == 200
    html = page.content.decode()
    assert '<dd id="examen-series">2</dd>' in html
    assert '<dd id="examen-images">5</dd>' in html
    assert '<dd id="examen-modalites">CT,MR</dd>' in html
    assert 'id="examen-apercu"' in html
    thumbnail = client.get(reverse("telemedecine:study_thumbnail", args=[result["study_id"]]))
    assert thumbnail["Content-Type"] == "image/png"
    assert b"".join(thumbnail).startswith(b"\x89PNG")
    assert AuditEvent.objects.filter(action="telemedecine.study.read", actor=user).count() == 2


def test_a_wrong_offset_answers_409_with_where_to_resume(strong_user_client: Any) -> None:
    user, client = strong_user_client()
    data = zip_of(make_study((2,)))
    session = uploads.upload_start(user=user, filename="examen.zip", total_size=len(data))
    assert _post_chunk(client, session.pk, 0, data[:CHUNK]).status_code == 200
    wrong = _post_chunk(client, session.pk, 2 * CHUNK, data[2 * CHUNK : 3 * CHUNK])
    assert wrong.status_code == 409
    assert wrong.json()["received_size"] == CHUNK
    assert "Position inattendue" in wrong.json()["error"]
    missing = client.post(
        reverse("telemedecine:upload_chunk", args=[session.pk]),
        data=b"x",
        content_type="application/octet-stream",
    )
    assert missing.status_code == 400


def test_a_refused_upload_answers_422_with_the_reason(strong_user_client: Any) -> None:
    user, client = strong_user_client()
    session = _upload(user, zip_of([("notes.txt", b"pas une image")]))
    answer = client.post(reverse("telemedecine:upload_complete", args=[session.pk]))
    assert answer.status_code == 422
    assert answer.json()["error"] == "Fichier « notes.txt » refusé : Ce fichier n'est pas un fichier DICOM."


def test_an_oversized_start_is_refused_by_the_endpoint(strong_user_client: Any) -> None:
    _, client = strong_user_client()
    answer = client.post(
        reverse("telemedecine:upload_start"),
        data=json.dumps({"filename": "gros.zip", "total_size": 6 * 1024 * 1024}),
        content_type="application/json",
    )
    assert answer.status_code == 400
    assert answer.json()["error"].startswith("Dépôt trop volumineux")


def test_another_users_upload_and_study_are_not_found(strong_user_client: Any) -> None:
    owner = UserFactory()
    session = _upload(owner, zip_of(make_study((1,))))
    study = uploads.upload_complete(session=session)
    _, client = strong_user_client()
    assert client.get(reverse("telemedecine:upload_status", args=[session.pk])).status_code == 404
    assert _post_chunk(client, session.pk, 0, b"x").status_code == 404
    assert client.get(reverse("telemedecine:study_detail", args=[study.pk])).status_code == 404
    assert client.get(reverse("telemedecine:study_thumbnail", args=[study.pk])).status_code == 404


def test_the_upload_page_offers_a_folder_a_zip_and_a_progress_bar(strong_user_client: Any) -> None:
    _, client = strong_user_client()
    page = client.get(reverse("telemedecine:upload"))
    assert page.status_code == 200
    html = page.content.decode()
    assert 'type="file" id="depot-dossier" name="dossier" webkitdirectory multiple' in html
    assert 'id="depot-archive"' in html
    assert 'accept=".zip' in html
    assert '<progress id="depot-progression"' in html
    assert "/static/telemedecine/upload.js" in html
    assert "<script>" not in html  # CSP: no inline script
    assert f'data-chunk-size="{CHUNK}"' in html


def test_the_pages_need_a_strong_authentication(client: Client) -> None:
    user: Any = UserFactory(role=Role.CLINICIAN)
    client.force_login(user)  # password only
    answer = client.get(reverse("telemedecine:upload"))
    assert answer.status_code in (302, 403)
    assert not UploadSession.objects.exists()


def test_a_dicomdir_in_the_zip_is_left_out() -> None:
    ds = pydicom.dcmread(io.BytesIO(sample_bytes("CT_small.dcm")))
    ds.SOPClassUID = pydicom.uid.UID("1.2.840.10008.1.3.10")
    ds.file_meta.MediaStorageSOPClassUID = pydicom.uid.UID("1.2.840.10008.1.3.10")
    session = _upload(UserFactory(), zip_of([("DICOMDIR", raw_bytes(ds)), *make_study((2,))]))
    study = uploads.upload_complete(session=session)
    assert study.instance_count == 2


def test_uploads_left_open_for_a_day_are_ended_and_their_pieces_deleted() -> None:
    data = zip_of(make_study((1,)))
    stale = uploads.upload_start(user=UserFactory(), filename="vieux.zip", total_size=len(data))
    uploads.upload_chunk(session=stale, offset=0, data=data[:CHUNK])
    recent = uploads.upload_start(user=UserFactory(), filename="recent.zip", total_size=len(data))
    UploadSession.objects.filter(pk=stale.pk).update(updated_at=timezone.now() - dt.timedelta(hours=25))
    assert uploads.uploads_expire_stale() == 1
    stale.refresh_from_db()
    recent.refresh_from_db()
    assert (stale.status, recent.status) == (UploadStatus.FAILED, UploadStatus.OPEN)
    assert stale.error == "Dépôt abandonné : il n'a pas été terminé à temps."
    assert not uploads.part_path(stale).exists()
    assert uploads.part_path(recent).exists()


def test_a_second_upload_of_a_study_adds_nothing_twice_but_another_patient_is_refused() -> None:
    user: Any = UserFactory()
    study_uid = new_uid()
    files = make_study((2,), study_uid=study_uid)
    first = uploads.upload_complete(session=_upload(user, zip_of(files)))
    again = uploads.upload_complete(session=_upload(user, zip_of(files)))
    assert again.pk == first.pk
    assert again.instance_count == 2
    assert Instance.objects.count() == 2

    impostor = make_study((1,), study_uid=study_uid, patient_id="AUTRE-1", patient_name="AUTRE^PATIENT")
    blobs_before = Blob.objects.count()
    with pytest.raises(ValidationError) as caught:
        uploads.upload_complete(session=_upload(user, zip_of(impostor)))
    assert caught.value.code == "two_patients"
    assert Blob.objects.count() == blobs_before  # refused before anything was stored
    assert Study.objects.get().instance_count == 2


def test_the_upload_page_for_an_act_names_it_and_its_study_links_back(strong_user_client: Any) -> None:
    user, client = strong_user_client()
    act: Any = ActFactory(requester=user, patient=PatientFactory(birth_date=dt.date(1979, 3, 28)))
    page = client.get(reverse("telemedecine:upload") + f"?acte={act.pk}")
    assert page.status_code == 200
    assert f'data-act="{act.pk}"' in page.content.decode()
    assert reverse("telemedecine:act_detail", args=[act.pk]) in page.content.decode()
    other_act: Any = ActFactory()
    assert client.get(reverse("telemedecine:upload") + f"?acte={other_act.pk}").status_code == 404

    study = uploads.upload_complete(session=_upload(user, zip_of(make_study((1,))), act=act))
    html = client.get(reverse("telemedecine:study_detail", args=[study.pk])).content.decode()
    assert f'href="{reverse("telemedecine:act_detail", args=[act.pk])}"' in html
