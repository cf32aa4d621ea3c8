"""End to end: services → outbox → a real Celery worker → HTTPS (client certificate) → the DMP double.

The double (`devtools/dmp_double`, started on loopback) checks the VIHF signature against the test PKI,
the metadata against the value sets and the CDA against the schema, as the real DMP would.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from django.db import connection

from dmp import services, transport
from dmp.models import Document, DocumentStatus, Submission, SubmissionAttempt, SubmissionKind
from dmp.standards import iti
from enrs.celery import app as celery_app
from enrs.outbox.models import AttemptOutcome, OutboxStatus
from enrs.standards import ebrim
from enrs.vault.services import blob_read
from tests.celery_worker import running_worker
from tests.dmp.dmp_double_fixture import TEST_INS, TEST_INS_OID, DmpDoubleHandle, running_dmp_double
from tests.dmp.factories import make_clinic, make_document, make_patient
from tests.helpers import wait_until
from tests.patients.factories import matricule

pytestmark = [pytest.mark.integration]

TIMEOUT = 2.0  # ENRS_DMP_TIMEOUT of the worker: the double's "hang" fault lasts longer


def dmp_environment(double: DmpDoubleHandle) -> dict[str, str]:
    return {
        "ENRS_DMP_REPOSITORY_URL": double.repository_url,
        "ENRS_DMP_REGISTRY_URL": double.registry_url,
        "ENRS_DMP_CA_BUNDLE": str(double.ca_bundle),
        "ENRS_DMP_CLIENT_CERT": str(double.client_cert),
        "ENRS_DMP_CLIENT_KEY": str(double.client_key),
        "ENRS_DMP_SIGNING_CERT": str(double.signing_cert),
        "ENRS_DMP_SIGNING_KEY": str(double.signing_key),
        "ENRS_DMP_TIMEOUT": str(TIMEOUT),
        "ENRS_OUTBOX_BACKOFF_BASE": "0.5",
        "ENRS_OUTBOX_BACKOFF_CAP": "2",
    }


@pytest.fixture(scope="module")
def double(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DmpDoubleHandle]:
    with running_dmp_double(tmp_path_factory.mktemp("dmp-e2e")) as dmp:
        yield dmp


@pytest.fixture(scope="module")
def worker(double: DmpDoubleHandle, django_db_setup: Any, django_db_blocker: Any) -> Iterator[str]:
    """One worker for the module (queue dmp), configured for the double through its environment."""
    with django_db_blocker.unblock():
        database_name = connection.settings_dict["NAME"]
    previous_eager = celery_app.conf.task_always_eager
    celery_app.conf.task_always_eager = False
    with pytest.MonkeyPatch.context() as patch:
        for key, value in dmp_environment(double).items():
            patch.setenv(key, value)
        try:
            with running_worker(queues="dmp", database_name=database_name) as name:
                yield name
        finally:
            celery_app.conf.task_always_eager = previous_eager
            transport.reset_clients()


@pytest.fixture
def dmp(double: DmpDoubleHandle, worker: str, transactional_db: None, settings: Any) -> DmpDoubleHandle:
    double.reset()
    double.add_patient(TEST_INS, oid=TEST_INS_OID)
    # This process talks to the double too (ITI-18 checks), with the same settings as the worker.
    for key, value in dmp_environment(double).items():
        setattr(settings, key, float(value) if key in ("ENRS_DMP_TIMEOUT",) else value)
    return double


def _settled(document: Document, timeout: float = 30) -> Document:
    def done() -> bool:
        document.refresh_from_db()
        return document.status in (DocumentStatus.ACCEPTED, DocumentStatus.REFUSED, DocumentStatus.UPDATED)

    wait_until(done, timeout=timeout, what=f"document {document.pk} settled")
    return document


def _submit(**fields: Any) -> Document:
    clinic = make_clinic(finess="750712184")  # IdNat_Struct 1750712184, the double's test structure
    patient = make_patient(clinic, **({"ins": TEST_INS} | fields.pop("patient", {})))
    document = make_document(clinic, patient, **fields)
    services.document_submit(document=document, actor=clinic.user)
    return document


def _registry_entries(document: Document) -> list[ebrim.DocumentEntry]:
    """What the double answers to an ITI-18 FindDocuments for the document's patient and structure."""
    patient_id = ebrim.ins_cx(document.patient.ins, document.patient.ins_oid)
    body, content_type = iti.build_iti18_find_documents(
        patient_id, services._assertion(document), to_url=services.settings.ENRS_DMP_REGISTRY_URL
    )
    answer = transport.post(services.settings.ENRS_DMP_REGISTRY_URL, body, content_type)
    result = iti.parse_iti18_response(answer.body, answer.content_type)
    assert result.result.success, result.result.summary()
    return result.entries


def test_document_is_accepted_and_exchanges_are_stored(dmp: DmpDoubleHandle) -> None:
    document = _settled(_submit())
    assert document.status == DocumentStatus.ACCEPTED, document.status_detail

    stored = dmp.documents(TEST_INS)
    assert [d["unique_id"] for d in stored] == [document.unique_id]
    assert stored[0]["hash"] == document.cda_sha1
    assert stored[0]["size"] == document.cda_size

    submission = Submission.objects.get(document=document)
    assert submission.status == OutboxStatus.DONE
    assert submission.kind == SubmissionKind.ITI41
    attempt = SubmissionAttempt.objects.get(submission=submission)
    assert attempt.outcome == AttemptOutcome.SUCCESS
    assert attempt.http_status == 200
    assert attempt.worker.startswith("enrs-test-")  # it ran in the worker process
    request, response = services.attempt_exchange(attempt)
    assert blob_read(document.cda) in request
    assert iti.parse_registry_response(response, attempt.response_content_type).success
    assert list(document.events.values_list("action", flat=True)) == ["created", "queued", "sent", "accepted"]


def test_masked_document_is_accepted_and_flagged(dmp: DmpDoubleHandle) -> None:
    document = _settled(_submit(masked_from_professionals=True, invisible_to_patient=True))
    assert document.status == DocumentStatus.ACCEPTED, document.status_detail
    assert document.visibility_codes == ["MASQUE_PS", "INVISIBLE_PATIENT"]
    stored = dmp.documents(TEST_INS)
    assert [c["code"] for c in stored[0]["confidentialityCode"]] == ["N", "MASQUE_PS", "INVISIBLE_PATIENT"]


def test_unknown_patient_is_refused_with_the_french_reason(dmp: DmpDoubleHandle) -> None:
    document = _settled(_submit(patient={"ins": matricule(4242)}))
    assert document.status == DocumentStatus.REFUSED
    assert document.status_detail.startswith("Le DMP de ce patient n'existe pas ou est fermé")
    attempt = SubmissionAttempt.objects.get(submission__document=document)
    assert attempt.outcome == AttemptOutcome.PERMANENT
    assert [e["code"] for e in attempt.registry_errors] == ["XDSUnknownPatientId"]
    assert dmp.documents() == []


def test_timeout_is_retried_then_accepted(dmp: DmpDoubleHandle) -> None:
    dmp.add_fault("hang", seconds=TIMEOUT + 2, then="drop", count=1)
    document = _settled(_submit(), timeout=60)
    assert document.status == DocumentStatus.ACCEPTED, document.status_detail
    attempts = list(
        SubmissionAttempt.objects.filter(submission__document=document).values_list("outcome", "code")
    )
    assert attempts == [(AttemptOutcome.TEMPORARY, "timeout"), (AttemptOutcome.SUCCESS, "200")]
    assert len(dmp.documents(TEST_INS)) == 1


def test_visibility_update_is_reflected_by_iti18(dmp: DmpDoubleHandle) -> None:
    document = _settled(_submit())
    assert document.status == DocumentStatus.ACCEPTED, document.status_detail
    before = _registry_entries(document)
    assert [[c.code for c in e.confidentiality] for e in before] == [["N"]]

    services.document_set_visibility(
        document=document,
        actor=document.author,
        masked_from_professionals=True,
        invisible_to_patient=False,
        invisible_to_legal_representatives=True,
    )
    wait_until(
        lambda: Document.objects.get(pk=document.pk).status == DocumentStatus.UPDATED,
        timeout=30,
        what="update",
    )
    document.refresh_from_db()
    assert document.visibility_codes == ["MASQUE_PS", "INVISIBLE_REPRESENTANTS_LEGAUX"]

    after = _registry_entries(document)
    assert len(after) == 1
    assert after[0].unique_id == document.unique_id
    assert after[0].entry_uuid == document.registry_entry_uuid
    assert [c.code for c in after[0].confidentiality] == ["N", "MASQUE_PS", "INVISIBLE_REPRESENTANTS_LEGAUX"]
    update = Submission.objects.get(document=document, kind=SubmissionKind.ITI57)
    attempt = SubmissionAttempt.objects.get(submission=update)
    request, response = services.attempt_exchange(attempt)
    assert b"UpdateDocumentSet" in request
    assert iti.parse_registry_response(response, attempt.response_content_type).success
