"""dmp.services.submission_attempt with a scripted peer: outcomes, French messages, retries, storage."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from django.db import transaction
from django.utils import timezone

from dmp import services
from dmp.models import Document, DocumentStatus, Submission, SubmissionAttempt, SubmissionKind
from dmp.standards import iti, vihf
from dmp.transport import Answer, TransportError
from enrs.accounts import pki_testing
from enrs.audit.models import AuditEvent
from enrs.outbox.models import AttemptOutcome, OutboxStatus
from enrs.standards import ebrim
from enrs.usage.models import UsageEvent
from enrs.vault.services import blob_read
from tests.dmp.factories import make_clinic, make_document, make_patient

pytestmark = pytest.mark.django_db

SOAP = "http://www.w3.org/2003/05/soap-envelope"
RS = "urn:oasis:names:tc:ebxml-regrep:xsd:rs:3.0"
SOAP_TYPE = (
    'application/soap+xml; charset=UTF-8; action="urn:ihe:iti:2007:ProvideAndRegisterDocumentSet-bResponse"'
)
REPOSITORY = "https://dmp.example.test/repository"
REGISTRY = "https://dmp.example.test/registry"


def _soap(payload: str) -> bytes:
    return (
        f'<?xml version="1.0" encoding="UTF-8"?><soap:Envelope xmlns:soap="{SOAP}"><soap:Body>'
        f"{payload}</soap:Body></soap:Envelope>"
    ).encode()


def registry(status: str = "Success", *errors: tuple[str, str], warning: bool = False) -> Answer:
    severity = "Warning" if warning else "Error"
    items = "".join(
        f'<rs:RegistryError errorCode="{code}" codeContext="{context}" '
        f'severity="urn:oasis:names:tc:ebxml-regrep:ErrorSeverityType:{severity}"/>'
        for code, context in errors
    )
    listing = f"<rs:RegistryErrorList>{items}</rs:RegistryErrorList>" if items else ""
    body = _soap(
        f'<rs:RegistryResponse xmlns:rs="{RS}" '
        f'status="urn:oasis:names:tc:ebxml-regrep:ResponseStatusType:{status}">{listing}</rs:RegistryResponse>'
    )
    return Answer(200, SOAP_TYPE, body, 12)


def fault(code: str, subcode: str, reason: str, status: int) -> Answer:
    sub = f"<soap:Subcode><soap:Value>{subcode}</soap:Value></soap:Subcode>" if subcode else ""
    body = _soap(
        f"<soap:Fault><soap:Code><soap:Value>soap:{code}</soap:Value>{sub}</soap:Code>"
        f'<soap:Reason><soap:Text xml:lang="fr">{reason}</soap:Text></soap:Reason></soap:Fault>'
    )
    return Answer(status, SOAP_TYPE, body, 5)


class Peer:
    """The scripted DMP: answers (or exceptions) in order; records what it was sent."""

    def __init__(self) -> None:
        self.script: list[Answer | Exception] = []
        self.calls: list[tuple[str, bytes, str]] = []

    def __call__(self, url: str, body: bytes, content_type: str) -> Answer:
        self.calls.append((url, body, content_type))
        step = self.script.pop(0)
        if isinstance(step, Exception):
            raise step
        return step


@pytest.fixture(scope="module")
def pki() -> pki_testing.SamplePki:
    return pki_testing.build_test_pki()


@pytest.fixture
def peer(settings: Any, tmp_path: Path, pki: pki_testing.SamplePki, monkeypatch: pytest.MonkeyPatch) -> Peer:
    org = pki_testing.issue_organisation(
        issuer=pki.issuing,
        now=dt.datetime.now(dt.UTC),
        common_name="ENRS LPS",
        idnat_struct="1750712184",
        organisation="GCS",
    )
    (tmp_path / "org.crt").write_bytes(org.cert_pem)
    (tmp_path / "org.key").write_bytes(org.key_pem)
    settings.ENRS_DMP_REPOSITORY_URL = REPOSITORY
    settings.ENRS_DMP_REGISTRY_URL = REGISTRY
    settings.ENRS_DMP_SIGNING_CERT = str(tmp_path / "org.crt")
    settings.ENRS_DMP_SIGNING_KEY = str(tmp_path / "org.key")
    settings.ENRS_OUTBOX_BACKOFF_BASE = 1.0
    fake = Peer()
    monkeypatch.setattr(services, "post", fake)
    return fake


@pytest.fixture
def queued(peer: Peer) -> Callable[..., Submission]:
    def make(**document_fields: Any) -> Submission:
        clinic = make_clinic()
        document = make_document(clinic, make_patient(clinic), **document_fields)
        return services.document_submit(document=document, actor=clinic.user)

    return make


def _due(submission: Submission) -> None:
    Submission.objects.filter(pk=submission.pk).update(
        next_attempt_at=timezone.now() - dt.timedelta(seconds=1)
    )


def _document(submission: Submission) -> Document:
    return Document.objects.get(pk=submission.document_id)


def test_accepted_submission_stores_request_and_response(
    peer: Peer, queued: Callable[..., Submission], pki: pki_testing.SamplePki
) -> None:
    submission = queued()
    peer.script = [registry()]
    assert services.submission_attempt(submission_id=submission.pk, worker="w1") is None

    document = _document(submission)
    assert document.status == DocumentStatus.ACCEPTED
    assert document.accepted_at is not None
    assert document.registry_entry_uuid == document.entry_uuid
    assert document.registry_version == 1
    submission.refresh_from_db()
    assert submission.status == OutboxStatus.DONE
    assert submission.attempts == 1
    attempt = SubmissionAttempt.objects.get(submission=submission)
    assert attempt.outcome == AttemptOutcome.SUCCESS
    assert attempt.http_status == 200
    assert attempt.worker == "w1"
    request, response = services.attempt_exchange(attempt)
    url, body, content_type = peer.calls[0]
    assert url == REPOSITORY
    assert request == body
    assert response == registry().body

    # The request is a real ITI-41: MTOM with the CDA part, metadata matching the document, a VIHF.
    assert content_type.startswith("multipart/related")
    submit, documents = iti.parse_iti41_request(body, content_type)
    assert documents == {document.entry_uuid: blob_read(document.cda)}
    submission_set, entries, replaces = ebrim.parse_submit_objects_request(submit)
    assert [e.unique_id for e in entries] == [document.unique_id]
    assert replaces == {}
    assert entries[0].hash_sha1 == document.cda_sha1
    assert entries[0].size == document.cda_size
    assert submission_set.patient_id == f"{document.patient.ins}^^^&{document.patient.ins_oid}&ISO^NH"
    assertion = iti.soap_assertion(body, content_type)
    assert assertion is not None
    verified = vihf.verify_vihf(assertion, pki.ca_bundle_pem)
    assert verified.idnat_ps == document.author_professional.idnat_ps  # type: ignore[union-attr]
    assert verified.structure_id == document.structure.idnat_struct
    assert verified.patient_ins_cx == submission_set.patient_id

    assert list(document.events.values_list("action", flat=True)) == [
        "created",
        "queued",
        "sent",
        "accepted",
    ]
    assert (
        UsageEvent.objects.filter(kind="dmp.document_accepted", structure_id=document.structure_id).count()
        == 1
    )
    assert AuditEvent.objects.filter(action="dmp.document.accept", target_id=str(document.pk)).count() == 1


def test_unknown_patient_is_refused_with_an_actionable_french_message(
    peer: Peer, queued: Callable[..., Submission]
) -> None:
    submission = queued()
    peer.script = [registry("Failure", ("XDSUnknownPatientId", "Patient inconnu du DMP"))]
    assert services.submission_attempt(submission_id=submission.pk) is None

    document = _document(submission)
    assert document.status == DocumentStatus.REFUSED
    assert document.status_detail.startswith("Le DMP de ce patient n'existe pas ou est fermé")
    submission.refresh_from_db()
    assert submission.status == OutboxStatus.FAILED
    assert submission.last_error_code == "XDSUnknownPatientId"
    attempt = SubmissionAttempt.objects.get(submission=submission)
    assert attempt.outcome == AttemptOutcome.PERMANENT
    assert attempt.registry_errors == [
        {
            "code": "XDSUnknownPatientId",
            "context": "Patient inconnu du DMP",
            "location": "",
            "severity": "Error",
        }
    ]
    assert blob_read(attempt.response).startswith(b"<?xml")  # type: ignore[arg-type]
    assert UsageEvent.objects.filter(kind="dmp.document_refused").count() == 1
    refused = AuditEvent.objects.get(action="dmp.document.refuse", target_id=str(document.pk))
    assert refused.outcome == "failure"
    assert refused.detail["errors"] == ["XDSUnknownPatientId"]


@pytest.mark.parametrize(
    ("code", "context", "expected"),
    [
        (
            "XDSRegistryMetadataError",
            "practiceSettingCode absent",
            "métadonnées du document : practiceSettingCode",
        ),
        ("XDSNonIdenticalHash", "hash différent", "empreinte du document"),
        ("XDSPatientIdDoesNotMatch", "INS différent", "ne correspond pas au patient"),
        ("XDSSomethingNew", "inattendu", "(XDSSomethingNew) : inattendu"),
    ],
)
def test_registry_errors_map_to_french_messages(
    peer: Peer, queued: Callable[..., Submission], code: str, context: str, expected: str
) -> None:
    submission = queued()
    peer.script = [registry("Failure", (code, context))]
    services.submission_attempt(submission_id=submission.pk)
    assert expected in _document(submission).status_detail


def test_vihf_fault_is_permanent_and_explained(peer: Peer, queued: Callable[..., Submission]) -> None:
    submission = queued()
    peer.script = [fault("Sender", "wsse:FailedCheck", "Signature du VIHF invalide", 400)]
    assert services.submission_attempt(submission_id=submission.pk) is None
    document = _document(submission)
    assert document.status == DocumentStatus.REFUSED
    assert "jeton d'authentification (VIHF)" in document.status_detail
    assert "Signature du VIHF invalide" in document.status_detail


@pytest.mark.parametrize(
    "failure",
    [
        TransportError("timeout", "Le DMP n'a pas répondu à temps."),
        TransportError("connect", "Connexion au DMP impossible."),
        Answer(503, "text/plain", b"Service Unavailable", 3),
        fault("Receiver", "", "Erreur interne", 500),
        registry("Failure", ("XDSRegistryBusy", "occupé")),
    ],
)
def test_temporary_failures_are_retried_then_accepted(
    peer: Peer, queued: Callable[..., Submission], failure: Answer | Exception
) -> None:
    submission = queued()
    peer.script = [failure, registry()]
    delay = services.submission_attempt(submission_id=submission.pk)
    assert delay is not None
    assert 0 < delay < 5

    submission.refresh_from_db()
    assert submission.status == OutboxStatus.RETRY
    assert submission.next_attempt_at is not None
    document = _document(submission)
    assert document.status == DocumentStatus.QUEUED
    assert document.status_detail.startswith("Échec temporaire, nouvel essai automatique")
    # Not due yet: an early task waits for the row instead of calling the peer.
    early = services.submission_attempt(submission_id=submission.pk)
    assert early is not None
    assert 0 < early <= delay + 0.1
    assert len(peer.calls) == 1

    _due(submission)
    assert services.submission_attempt(submission_id=submission.pk) is None
    assert _document(submission).status == DocumentStatus.ACCEPTED
    outcomes = list(SubmissionAttempt.objects.filter(submission=submission).values_list("outcome", flat=True))
    assert outcomes == [AttemptOutcome.TEMPORARY, AttemptOutcome.SUCCESS]
    assert all(a.request_id for a in SubmissionAttempt.objects.filter(submission=submission))


def test_duplicate_on_a_retry_means_the_lost_answer_was_a_success(
    peer: Peer, queued: Callable[..., Submission]
) -> None:
    submission = queued()
    peer.script = [
        TransportError("timeout", "Le DMP n'a pas répondu à temps."),
        registry("Failure", ("XDSDuplicateUniqueIdInRegistry", "uniqueId déjà enregistré")),
    ]
    services.submission_attempt(submission_id=submission.pk)
    _due(submission)
    services.submission_attempt(submission_id=submission.pk)
    document = _document(submission)
    assert document.status == DocumentStatus.ACCEPTED
    assert "essai précédent" in document.status_detail


def test_temporary_failure_after_the_deadline_fails_and_can_be_retried(
    peer: Peer, queued: Callable[..., Submission]
) -> None:
    submission = queued()
    Submission.objects.filter(pk=submission.pk).update(
        deadline=timezone.now() + dt.timedelta(milliseconds=100)
    )
    peer.script = [TransportError("connect", "Connexion au DMP impossible : refusée.")]
    assert services.submission_attempt(submission_id=submission.pk) is None
    submission.refresh_from_db()
    document = _document(submission)
    assert submission.status == OutboxStatus.FAILED
    assert document.status == DocumentStatus.REFUSED
    assert "Connexion au DMP impossible" in document.status_detail

    user = submission.requested_by
    services.submission_retry(submission=submission, actor=user)
    submission.refresh_from_db()
    assert submission.status == OutboxStatus.PENDING
    assert _document(submission).status == DocumentStatus.QUEUED
    assert AuditEvent.objects.filter(action="dmp.submission.retry").count() == 1
    peer.script = [registry()]
    services.submission_attempt(submission_id=submission.pk)
    assert _document(submission).status == DocumentStatus.ACCEPTED


def test_retry_of_a_live_submission_is_refused(peer: Peer, queued: Callable[..., Submission]) -> None:
    submission = queued()
    with pytest.raises(Exception, match="refusé ou en échec"):
        services.submission_retry(submission=submission, actor=submission.requested_by)


def test_missing_endpoint_keeps_the_row_waiting(
    peer: Peer, queued: Callable[..., Submission], settings: Any
) -> None:
    submission = queued()
    settings.ENRS_DMP_REPOSITORY_URL = ""
    assert services.submission_attempt(submission_id=submission.pk) is not None
    submission.refresh_from_db()
    assert submission.status == OutboxStatus.RETRY
    assert submission.last_error_code == "not_configured"
    assert peer.calls == []


def _accepted(peer: Peer, queued: Callable[..., Submission], **fields: Any) -> Document:
    submission = queued(**fields)
    peer.script = [registry()]
    services.submission_attempt(submission_id=submission.pk)
    return _document(submission)


def test_visibility_update_is_sent_as_iti57_and_applied(
    peer: Peer, queued: Callable[..., Submission]
) -> None:
    document = _accepted(peer, queued)
    update = services.document_set_visibility(
        document=document,
        actor=document.author,
        masked_from_professionals=True,
        invisible_to_patient=True,
        invisible_to_legal_representatives=False,
    )
    peer.script = [registry()]
    services.submission_attempt(submission_id=update.pk)

    url, body, content_type = peer.calls[-1]
    assert url == REGISTRY
    assert 'action="urn:ihe:iti:2010:UpdateDocumentSet"' in content_type
    envelope = iti._parse(body)
    request = envelope.find(f"{{{SOAP}}}Body")[0]
    entries = ebrim.parse_document_entries(request)
    assert [e.entry_uuid for e in entries] == [update.entry_uuid]
    assert entries[0].logical_id == document.entry_uuid
    assert [c.code for c in entries[0].confidentiality] == ["N", "MASQUE_PS", "INVISIBLE_PATIENT"]
    previous = request.xpath(
        "//rim:Slot[@name='PreviousVersion']/rim:ValueList/rim:Value/text()", namespaces=iti.NS
    )
    assert previous == ["1"]

    document.refresh_from_db()
    assert document.status == DocumentStatus.UPDATED
    assert document.masked_from_professionals
    assert document.invisible_to_patient
    assert not document.invisible_to_legal_representatives
    assert document.registry_entry_uuid == update.entry_uuid
    assert document.registry_version == 2
    assert AuditEvent.objects.filter(
        action="dmp.document.visibility_accept", target_id=str(document.pk)
    ).exists()

    # A second update refers to the new registry version.
    again = services.document_set_visibility(
        document=document,
        actor=document.author,
        masked_from_professionals=False,
        invisible_to_patient=False,
        invisible_to_legal_representatives=False,
    )
    peer.script = [registry()]
    services.submission_attempt(submission_id=again.pk)
    request = iti._parse(peer.calls[-1][1]).find(f"{{{SOAP}}}Body")[0]
    assert request.xpath(
        "//rim:Slot[@name='PreviousVersion']/rim:ValueList/rim:Value/text()", namespaces=iti.NS
    ) == ["2"]
    document.refresh_from_db()
    assert document.visibility_codes == []
    assert document.registry_version == 3


def test_refused_visibility_update_keeps_the_document_accepted(
    peer: Peer, queued: Callable[..., Submission]
) -> None:
    document = _accepted(peer, queued)
    update = services.document_set_visibility(
        document=document,
        actor=document.author,
        masked_from_professionals=True,
        invisible_to_patient=False,
        invisible_to_legal_representatives=False,
    )
    peer.script = [registry("Failure", ("XDSMetadataVersionError", "PreviousVersion 1 ≠ version 2"))]
    services.submission_attempt(submission_id=update.pk)
    document.refresh_from_db()
    assert document.status == DocumentStatus.ACCEPTED
    assert not document.masked_from_professionals
    assert document.status_detail.startswith("Modification de visibilité refusée : La fiche du document")
    assert document.events.filter(action="visibility_refused").count() == 1


def test_replacement_is_sent_with_rplc_and_retires_the_previous_version(
    peer: Peer, queued: Callable[..., Submission]
) -> None:
    first = _accepted(peer, queued)
    second = services.document_replace(previous=first, pdf=b"%PDF-1.4\n% v2\n", actor=first.author)
    submission = services.document_submit(document=second, actor=first.author)
    peer.script = [registry()]
    services.submission_attempt(submission_id=submission.pk)
    submit, _ = iti.parse_iti41_request(peer.calls[-1][1], peer.calls[-1][2])
    _, _, replaces = ebrim.parse_submit_objects_request(submit)
    assert replaces == {second.entry_uuid: first.entry_uuid}
    first.refresh_from_db()
    second.refresh_from_db()
    assert second.status == DocumentStatus.ACCEPTED
    assert first.status == DocumentStatus.REPLACED


def test_requeue_sends_lost_rows_again(peer: Peer, queued: Callable[..., Submission]) -> None:
    submission = queued()
    Submission.objects.filter(pk=submission.pk).update(updated_at=timezone.now() - dt.timedelta(minutes=5))
    sent: list[int] = []

    class Task:
        @staticmethod
        def delay(pk: int) -> None:
            sent.append(pk)

    assert services.submissions_requeue(Task) == 1
    assert sent == [submission.pk]

    # Past its deadline, a waiting row is closed and its document marked refused.
    Submission.objects.filter(pk=submission.pk).update(deadline=timezone.now() - dt.timedelta(seconds=1))
    with transaction.atomic():
        services.submissions_requeue(Task)
    assert _document(submission).status == DocumentStatus.REFUSED
    assert Submission.objects.get(pk=submission.pk).status == OutboxStatus.FAILED


def test_kind_of_each_row(queued: Callable[..., Submission]) -> None:
    assert queued().kind == SubmissionKind.ITI41
