"""Reads of the dmp app: a user's structures (from the directory), documents of a patient and of a user
(documents masked from professionals only for their author), audited document reads, versions, and the
failed submissions of the user's structures."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from django.test import RequestFactory

from annuaire.selectors.structures import structures_of_user
from dmp import selectors, services
from dmp.models import Document, DocumentStatus, Submission
from enrs.audit.models import AuditEvent
from enrs.outbox.models import OutboxStatus
from enrs.patients.models import ConsentKind
from enrs.patients.services import consent_record
from tests.annuaire.factories import ExerciceFactory, StructureFactory
from tests.dmp.factories import PDF, make_document, make_patient
from tests.dmp.test_views import (
    Commit,
    Peer,
    accepted_document,
    install_peer,
    portal_clinic,
    refused_document,
)
from tests.patients.factories import make_user

pytestmark = pytest.mark.django_db


@pytest.fixture
def peer(settings: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Peer:
    return install_peer(settings, tmp_path, monkeypatch)


def test_structures_of_a_user_come_from_their_exercices() -> None:
    clinic = portal_clinic()
    closed = StructureFactory(is_active=False)
    ExerciceFactory(professional=clinic.professional, structure=closed)
    second = StructureFactory(name="AAA Clinique")
    ExerciceFactory(professional=clinic.professional, structure=second)
    ExerciceFactory(professional=clinic.professional, structure=second, role_code="FON-05")
    assert list(structures_of_user(clinic.user)) == [second, clinic.structure]
    assert not structures_of_user(make_user(clinician=True)).exists()  # no IdNat_PS


def test_documents_of_a_patient_hide_masked_documents_from_other_professionals() -> None:
    clinic = portal_clinic()
    patient = make_patient(clinic)
    visible = make_document(clinic, patient, title="Visible")
    masked = make_document(clinic, patient, masked_from_professionals=True)
    other = make_user(clinician=True)
    assert list(selectors.document_list_for_patient(patient=patient, user=clinic.user)) == [masked, visible]
    assert list(selectors.document_list_for_patient(patient=patient, user=other)) == [visible]
    with pytest.raises(Document.DoesNotExist):
        selectors.document_get(pk=masked.pk, user=other)
    assert selectors.document_get(pk=masked.pk, user=clinic.user) == masked


def test_recent_documents_are_the_users_own_newest_first() -> None:
    clinic = portal_clinic()
    patient = make_patient(clinic)
    older = make_document(clinic, patient, title="Ancien")
    newer = make_document(clinic, patient, title="Récent")
    other = portal_clinic()
    make_document(other, make_patient(other))
    assert selectors.document_list_recent_for_user(user=clinic.user) == [newer, older]
    assert selectors.document_list_recent_for_user(user=clinic.user, limit=1) == [newer]


def test_an_audited_document_read(rf: RequestFactory) -> None:
    clinic = portal_clinic()
    patient = make_patient(clinic)
    document = make_document(clinic, patient)
    request = rf.get("/dmp/documents/")
    request.user = clinic.user
    assert selectors.document_get_audited(pk=document.pk, request=request, purpose="dmp.document") == document
    [event] = AuditEvent.objects.filter(action="dmp.document.read")
    assert event.actor == clinic.user
    assert event.patient_ins == patient.ins
    assert event.target_id == str(document.pk)
    assert event.detail == {"purpose": "dmp.document"}


def test_versions_and_history_of_a_document(peer: Peer, django_capture_on_commit_callbacks: Commit) -> None:
    clinic = portal_clinic()
    patient = make_patient(clinic)
    first = accepted_document(clinic, patient, django_capture_on_commit_callbacks)
    second = services.document_replace(previous=first, pdf=PDF, actor=clinic.user)
    assert list(selectors.document_versions(document=second, user=clinic.user)) == [first, second]
    actions = [e.action for e in selectors.document_history(document=first)]
    assert actions == ["created", "queued", "sent", "accepted"]
    [submission] = selectors.document_submissions(document=first)
    assert [a.number for a in submission.attempt_rows.all()] == [1]


def test_failed_submissions_of_the_users_structures(
    peer: Peer, django_capture_on_commit_callbacks: Any
) -> None:
    clinic = portal_clinic()
    mine = refused_document(clinic, make_patient(clinic), peer, django_capture_on_commit_callbacks)
    other = portal_clinic()
    theirs = refused_document(other, make_patient(other), peer, django_capture_on_commit_callbacks)
    accepted_document(clinic, make_patient(clinic), django_capture_on_commit_callbacks)

    assert [s.document for s in selectors.submission_list_failed(user=clinic.user)] == [mine]
    assert not selectors.submission_list_failed(user=clinic.user, structure=other.structure).exists()
    admin = make_user(admin=True)
    assert {s.document for s in selectors.submission_list_failed(user=admin)} == {mine, theirs}
    failed = Submission.objects.get(document=theirs)
    assert failed.status == OutboxStatus.FAILED
    with pytest.raises(Submission.DoesNotExist):
        selectors.submission_get_failed(pk=failed.pk, user=clinic.user)
    assert selectors.submission_get_failed(pk=failed.pk, user=other.user) == failed
    assert mine.status == DocumentStatus.REFUSED


def test_who_may_act_on_a_document() -> None:
    clinic = portal_clinic()
    patient = make_patient(clinic)
    document = make_document(clinic, patient)
    colleague = portal_clinic()
    ExerciceFactory(professional=colleague.professional, structure=clinic.structure)
    outsider = portal_clinic()
    consent_record(
        patient=patient,
        kind=ConsentKind.DMP_ACCESS_AUTHORISATION,
        actor=outsider.user,
        professional=outsider.user,
    )
    assert selectors.document_may_write(document=document, user=clinic.user)
    assert selectors.document_may_write(document=document, user=colleague.user)
    assert not selectors.document_may_write(document=document, user=outsider.user)
