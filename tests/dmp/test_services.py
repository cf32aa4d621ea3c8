"""dmp.services: creating documents (rules, CDA, metadata), queuing, versions, visibility, audit, usage."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from django.core.exceptions import ValidationError

from dmp import services
from dmp.models import Document, DocumentEvent, DocumentStatus, Submission, SubmissionKind
from enrs.audit.models import AuditEvent
from enrs.outbox.models import OutboxStatus
from enrs.patients.models import ConsentKind, IdentityStatus
from enrs.patients.services import consent_record
from enrs.standards import cda, ebrim
from enrs.usage.models import UsageEvent
from enrs.vault.models import Blob
from enrs.vault.services import blob_read
from tests.dmp.factories import PDF, SERVICE_START, make_clinic, make_document, make_patient
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def clinic() -> Any:
    return make_clinic()


def _accept(document: Document) -> Document:
    """Mark a document accepted as the worker would after a successful ITI-41 (unit tests only)."""
    submission = services.document_submit(document=document, actor=document.author)
    from django.db import transaction

    with transaction.atomic():
        Submission.objects.filter(pk=submission.pk).update(status=OutboxStatus.DONE)
        services._close_accepted(Submission.objects.get(pk=submission.pk), "")
    document.refresh_from_db()
    return document


def _refusal(clinic: Any, patient: Any, **overrides: Any) -> str:
    documents, blobs = Document.objects.count(), Blob.objects.count()
    with pytest.raises(ValidationError) as caught:
        make_document(clinic, patient, **overrides)
    # Nothing half-written.
    assert Document.objects.count() == documents
    assert Blob.objects.count() == blobs
    return " ".join(caught.value.messages)


# --- refusals -----------------------------------------------------------------------------------


def test_provisional_identity_is_refused_with_an_explanation(clinic: Any) -> None:
    patient = make_patient(clinic, qualified=False)
    assert patient.identity_status == IdentityStatus.PROVISIONAL
    message = _refusal(clinic, patient)
    assert "pas de matricule INS" in message
    assert "INSi" in message


def test_retrieved_identity_is_refused_as_not_qualified(clinic: Any) -> None:
    patient = make_patient(clinic, qualified=False, retrieved=True)
    message = _refusal(clinic, patient)
    assert "n'est pas qualifiée" in message
    assert "pièce d'identité" in message


def test_opposition_to_feeding_is_refused(clinic: Any) -> None:
    patient = make_patient(clinic)
    consent_record(patient=patient, kind=ConsentKind.DMP_FEEDING_OPPOSITION, actor=clinic.user)
    assert "opposé à l'alimentation" in _refusal(clinic, patient)


def test_missing_access_authorisation_is_refused(clinic: Any) -> None:
    patient = make_patient(clinic, authorised=False)
    assert "autorisation d'accès" in _refusal(clinic, patient)


def test_authorisation_of_another_professional_does_not_count(clinic: Any) -> None:
    other = make_clinic()
    patient = make_patient(other)
    assert "autorisation d'accès" in _refusal(clinic, patient)


def test_non_clinician_is_refused(clinic: Any) -> None:
    patient = make_patient(clinic)
    analyst = UserFactory(ars_analyst=True)
    assert "professionnel de santé" in _refusal(clinic, patient, actor=analyst)


def test_clinician_outside_the_directory_is_refused(clinic: Any) -> None:
    patient = make_patient(clinic)
    stranger = UserFactory()
    consent_record(
        patient=patient, kind=ConsentKind.DMP_ACCESS_AUTHORISATION, actor=stranger, professional=stranger
    )
    assert "annuaire" in _refusal(clinic, patient, actor=stranger)


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"pdf": b""}, "vide"),
        ({"pdf": b"<html>not a pdf</html>"}, "n'est pas un PDF"),
        ({"type_code": "99999-9"}, "Type de document"),
        ({"type_code": "11506-3"}, "Aucune classe de document"),
        ({"facility_type": "SA99"}, "Type d'établissement"),
        ({"practice_setting": "NOWHERE"}, "Cadre d'exercice"),
        ({"title": "   "}, "titre"),
        ({"confidentiality": "X"}, "confidentialité"),
        ({"source": "fax"}, "Origine"),
        ({"service_start": dt.datetime(2030, 1, 1, tzinfo=dt.UTC), "service_end": None}, "futur"),
        ({"service_end": SERVICE_START - dt.timedelta(hours=1)}, "précède"),
        ({"service_start": dt.datetime(2026, 1, 1, 9, 0), "service_end": None}, "fuseau"),
    ],
)
def test_bad_input_is_refused_in_french(clinic: Any, overrides: dict[str, Any], expected: str) -> None:
    patient = make_patient(clinic)
    assert expected in _refusal(clinic, patient, **overrides)


# --- documents ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("type_code", "visibility"),
    [
        ("11488-4", {}),
        ("34133-9", {"masked_from_professionals": True}),
        ("60591-5", {"invisible_to_patient": True}),
        ("18748-4", {"invisible_to_patient": True, "invisible_to_legal_representatives": True}),
        ("11490-0", {"masked_from_professionals": True, "confidentiality": "R"}),
    ],
)
def test_document_carries_a_schema_valid_cda_and_valid_metadata(
    clinic: Any, type_code: str, visibility: dict[str, Any]
) -> None:
    patient = make_patient(clinic)
    document = make_document(clinic, patient, type_code=type_code, **visibility)

    assert document.status == DocumentStatus.DRAFT
    xml = blob_read(document.cda)
    assert cda.validate_cda(xml) == []
    parsed = cda.parse_cda(xml)
    assert parsed.ins == patient.ins
    assert parsed.ins_oid == patient.ins_oid
    assert parsed.qualified_ins
    assert parsed.type_code.code == type_code
    assert parsed.document_id == document.unique_id
    assert parsed.set_id == document.set_id
    assert parsed.version_number == 1
    assert parsed.confidentiality.code == visibility.get("confidentiality", "N")
    assert parsed.body_media_type == "application/pdf"
    assert parsed.body == PDF
    assert parsed.author_idnat == clinic.professional.idnat_ps
    assert parsed.facility_type is not None
    assert parsed.facility_type.code == "SA01"
    assert blob_read(document.pdf) == PDF
    assert document.cda_size == len(xml)
    import hashlib

    assert document.cda_sha1 == hashlib.sha1(xml).hexdigest()  # noqa: S324

    expected_codes = [
        code
        for flag, code in (
            ("masked_from_professionals", "MASQUE_PS"),
            ("invisible_to_patient", "INVISIBLE_PATIENT"),
            ("invisible_to_legal_representatives", "INVISIBLE_REPRESENTANTS_LEGAUX"),
        )
        if visibility.get(flag)
    ]
    assert document.visibility_codes == expected_codes
    entry = services._document_entry(services._entry_input(document))
    assert ebrim.validate_entry(entry) == []
    assert [c.code for c in entry.confidentiality] == [
        visibility.get("confidentiality", "N"),
        *expected_codes,
    ]
    assert entry.patient_id == f"{patient.ins}^^^&{patient.ins_oid}&ISO^NH"
    assert entry.class_code.code == {"11488-4": "10", "34133-9": "11", "60591-5": "11", "18748-4": "31"}.get(
        type_code, "10"
    )
    assert entry.hash_sha1 == document.cda_sha1
    assert entry.size == document.cda_size


def test_creation_is_audited_with_history(clinic: Any) -> None:
    patient = make_patient(clinic)
    document = make_document(clinic, patient, masked_from_professionals=True)
    event = AuditEvent.objects.get(action="dmp.document.create", target_id=str(document.pk))
    assert event.actor == clinic.user
    assert event.patient_ins == patient.ins
    assert event.detail["visibility"] == ["MASQUE_PS"]
    assert list(document.events.values_list("action", "status")) == [("created", "draft")]


def test_telemedicine_source_is_kept(clinic: Any) -> None:
    patient = make_patient(clinic)
    document = make_document(clinic, patient, source="telemedecine", type_code="85208-7")
    assert document.source == "telemedecine"
    assert cda.parse_cda(blob_read(document.cda)).type_code.code == "85208-7"


# --- submission ---------------------------------------------------------------------------------


def test_submit_queues_an_iti41_row_and_emits_usage_without_patient_data(
    clinic: Any, django_capture_on_commit_callbacks: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    patient = make_patient(clinic)
    document = make_document(clinic, patient)
    sent: list[int] = []
    from dmp import tasks

    monkeypatch.setattr(tasks.submit, "delay", lambda pk: sent.append(pk))
    with django_capture_on_commit_callbacks(execute=True):
        submission = services.document_submit(document=document, actor=clinic.user)

    document.refresh_from_db()
    assert document.status == DocumentStatus.QUEUED
    assert document.submitted_at is not None
    assert submission.kind == SubmissionKind.ITI41
    assert submission.status == OutboxStatus.PENDING
    assert submission.deadline is not None
    assert sent == [submission.pk]
    usage = UsageEvent.objects.get(kind="dmp.document_submitted")
    assert usage.structure_id == clinic.structure.pk
    assert usage.dims == {"type_code": "11488-4", "source": "upload"}
    flat = str(usage.dims) + usage.department
    assert patient.ins not in flat
    assert patient.birth_family_name not in flat
    assert AuditEvent.objects.filter(action="dmp.document.submit", target_id=str(document.pk)).count() == 1
    assert list(document.events.values_list("action", flat=True)) == ["created", "queued"]


def test_submit_twice_is_an_invalid_transition(clinic: Any) -> None:
    document = make_document(clinic, make_patient(clinic))
    services.document_submit(document=document, actor=clinic.user)
    with pytest.raises(ValidationError, match="ne peut pas être envoyé"):
        services.document_submit(document=document, actor=clinic.user)
    assert Submission.objects.filter(document=document).count() == 1


def test_submit_rechecks_opposition_recorded_after_the_draft(clinic: Any) -> None:
    patient = make_patient(clinic)
    document = make_document(clinic, patient)
    consent_record(patient=patient, kind=ConsentKind.DMP_FEEDING_OPPOSITION, actor=clinic.user)
    with pytest.raises(ValidationError, match="opposé"):
        services.document_submit(document=document, actor=clinic.user)
    document.refresh_from_db()
    assert document.status == DocumentStatus.DRAFT
    assert not Submission.objects.exists()


# --- versions -----------------------------------------------------------------------------------


def test_replace_makes_the_next_version_of_the_same_set(clinic: Any) -> None:
    patient = make_patient(clinic)
    first = _accept(make_document(clinic, patient))
    second = services.document_replace(previous=first, pdf=PDF + b"%v2\n", actor=clinic.user)

    assert second.set_id == first.set_id
    assert second.version_number == 2
    assert second.replaces == first
    assert second.unique_id != first.unique_id
    assert second.entry_uuid != first.entry_uuid
    parsed = cda.parse_cda(blob_read(second.cda))
    assert parsed.version_number == 2
    assert parsed.set_id == first.set_id
    assert parsed.replaces == first.unique_id
    assert cda.validate_cda(blob_read(second.cda)) == []
    assert AuditEvent.objects.filter(action="dmp.document.replace", target_id=str(second.pk)).exists()

    with pytest.raises(ValidationError, match="existe déjà"):
        services.document_replace(previous=first, pdf=PDF, actor=clinic.user)

    # Once the new version is accepted the previous one is marked replaced.
    second = _accept(second)
    first.refresh_from_db()
    assert first.status == DocumentStatus.REPLACED
    assert "version 2" in first.status_detail
    third = services.document_replace(previous=second, pdf=PDF, actor=clinic.user, title="CR v3")
    assert third.version_number == 3
    assert third.title == "CR v3"


def test_only_accepted_documents_can_be_replaced(clinic: Any) -> None:
    draft = make_document(clinic, make_patient(clinic))
    with pytest.raises(ValidationError, match="accepté"):
        services.document_replace(previous=draft, pdf=PDF, actor=clinic.user)


def test_rplc_targets_the_registered_entry(clinic: Any) -> None:
    first = _accept(make_document(clinic, make_patient(clinic)))
    second = services.document_replace(previous=first, pdf=PDF, actor=clinic.user)
    request = ebrim.build_submit_objects_request(
        services._submission_set(second),
        [services._document_entry(services._entry_input(second))],
        replaces={second.entry_uuid: first.registry_entry_uuid},
    )
    _, entries, replaces = ebrim.parse_submit_objects_request(request)
    assert replaces == {second.entry_uuid: first.entry_uuid}
    assert entries[0].unique_id == second.unique_id


# --- visibility ---------------------------------------------------------------------------------


def test_visibility_update_creates_an_iti57_submission(clinic: Any) -> None:
    patient = make_patient(clinic)
    document = _accept(make_document(clinic, patient))
    submission = services.document_set_visibility(
        document=document,
        actor=clinic.user,
        masked_from_professionals=True,
        invisible_to_patient=False,
        invisible_to_legal_representatives=False,
    )
    assert submission.kind == SubmissionKind.ITI57
    assert submission.target_masked_from_professionals is True
    assert submission.entry_uuid.startswith("urn:uuid:")
    assert submission.entry_uuid != document.entry_uuid
    document.refresh_from_db()
    # The document changes only when the DMP accepts the update.
    assert document.masked_from_professionals is False
    assert document.status == DocumentStatus.ACCEPTED
    event = AuditEvent.objects.get(action="dmp.document.visibility", target_id=str(document.pk))
    assert event.detail["target"] == ["MASQUE_PS"]
    with pytest.raises(ValidationError, match="déjà en cours"):
        services.document_set_visibility(
            document=document,
            actor=clinic.user,
            masked_from_professionals=False,
            invisible_to_patient=True,
            invisible_to_legal_representatives=False,
        )


def test_visibility_rules(clinic: Any) -> None:
    patient = make_patient(clinic)
    draft = make_document(clinic, patient)
    kwargs: dict[str, Any] = {
        "masked_from_professionals": True,
        "invisible_to_patient": False,
        "invisible_to_legal_representatives": False,
    }
    with pytest.raises(ValidationError, match="accepté"):
        services.document_set_visibility(document=draft, actor=clinic.user, **kwargs)
    accepted = _accept(make_document(clinic, patient))
    with pytest.raises(ValidationError, match="déjà celle"):
        services.document_set_visibility(
            document=accepted,
            actor=clinic.user,
            masked_from_professionals=False,
            invisible_to_patient=False,
            invisible_to_legal_representatives=False,
        )
    with pytest.raises(ValidationError, match="professionnel de santé"):
        services.document_set_visibility(document=accepted, actor=UserFactory(gcs_staff=True), **kwargs)
    assert not Submission.objects.filter(kind=SubmissionKind.ITI57).exists()


def test_history_is_kept_in_order(clinic: Any) -> None:
    document = _accept(make_document(clinic, make_patient(clinic)))
    actions = list(DocumentEvent.objects.filter(document=document).values_list("action", flat=True))
    assert actions == ["created", "queued", "accepted"]
    audit = AuditEvent.objects.filter(target_id=str(document.pk), target_type="dmp.document")
    assert set(audit.values_list("action", flat=True)) == {
        "dmp.document.create",
        "dmp.document.submit",
        "dmp.document.accept",
    }
    usage = UsageEvent.objects.filter(kind="dmp.document_accepted").get()
    assert "patient" not in str(usage.dims)
