"""The DMP portal pages: access (strong authentication, never ARS analysts), a patient's documents and
their status, the "feed the DMP" form (PDF checks, value sets, defaults from the structure), refusals by
the services and by the DMP shown in French, visibility changes, new versions, the failed submissions of
the user's structures with "Relancer", audited reads and locked query counts.

The DMP endpoint is a scripted peer (`dmp.services.post` replaced); the Celery task runs eagerly when the
test runs the transaction's on-commit callbacks."""

from __future__ import annotations

import datetime as dt
import functools
import html
import io
import re
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse
from pypdf import PdfWriter

from annuaire.models import Structure
from dmp import services
from dmp.models import Document, DocumentStatus, Submission, SubmissionKind
from dmp.transport import Answer
from enrs.accounts import pki_testing
from enrs.accounts.authn import SESSION_METHOD_KEY, AuthMethod
from enrs.accounts.models import User
from enrs.audit.models import AuditEvent
from enrs.outbox.models import OutboxStatus
from enrs.patients.models import ConsentKind, Patient
from enrs.patients.services import consent_record
from tests.annuaire.factories import ExerciceFactory, StructureFactory
from tests.dmp.factories import PDF, Clinic, make_clinic, make_document, make_patient
from tests.patients.factories import make_user

pytestmark = pytest.mark.django_db

SOAP = "http://www.w3.org/2003/05/soap-envelope"
RS = "urn:oasis:names:tc:ebxml-regrep:xsd:rs:3.0"
SOAP_TYPE = (
    'application/soap+xml; charset=UTF-8; action="urn:ihe:iti:2007:ProvideAndRegisterDocumentSet-bResponse"'
)
UNKNOWN_PATIENT = "Le DMP de ce patient n'existe pas ou est fermé"


# --- A scripted DMP endpoint ------------------------------------------------------------------------------


def registry_answer(*errors: tuple[str, str]) -> Answer:
    """A RegistryResponse: success without errors, failure with the given (code, context) errors."""
    status = "Failure" if errors else "Success"
    items = "".join(
        f'<rs:RegistryError errorCode="{code}" codeContext="{context}" '
        'severity="urn:oasis:names:tc:ebxml-regrep:ErrorSeverityType:Error"/>'
        for code, context in errors
    )
    listing = f"<rs:RegistryErrorList>{items}</rs:RegistryErrorList>" if items else ""
    body = (
        f'<?xml version="1.0" encoding="UTF-8"?><soap:Envelope xmlns:soap="{SOAP}"><soap:Body>'
        f'<rs:RegistryResponse xmlns:rs="{RS}" '
        f'status="urn:oasis:names:tc:ebxml-regrep:ResponseStatusType:{status}">{listing}</rs:RegistryResponse>'
        "</soap:Body></soap:Envelope>"
    ).encode()
    return Answer(200, SOAP_TYPE, body, 3)


@dataclass
class Peer:
    """Answers in order (success when the script is empty); records the calls."""

    script: list[Answer] = field(default_factory=list)
    calls: list[str] = field(default_factory=list)

    def __call__(self, url: str, body: bytes, content_type: str) -> Answer:
        self.calls.append(content_type)
        return self.script.pop(0) if self.script else registry_answer()


@functools.cache
def sample_pki() -> pki_testing.SamplePki:
    return pki_testing.build_test_pki()


def install_peer(settings: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Peer:
    """Configure the DMP endpoint and the VIHF signing material, and script the endpoint."""
    org = pki_testing.issue_organisation(
        issuer=sample_pki().issuing,
        now=dt.datetime.now(dt.UTC),
        common_name="ENRS LPS",
        idnat_struct="1750712184",
        organisation="GCS",
    )
    (tmp_path / "org.crt").write_bytes(org.cert_pem)
    (tmp_path / "org.key").write_bytes(org.key_pem)
    settings.ENRS_DMP_REPOSITORY_URL = "https://dmp.example.test/repository"
    settings.ENRS_DMP_REGISTRY_URL = "https://dmp.example.test/registry"
    settings.ENRS_DMP_SIGNING_CERT = str(tmp_path / "org.crt")
    settings.ENRS_DMP_SIGNING_KEY = str(tmp_path / "org.key")
    fake = Peer()
    monkeypatch.setattr(services, "post", fake)
    return fake


@pytest.fixture
def peer(settings: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Peer:
    return install_peer(settings, tmp_path, monkeypatch)


# --- People and helpers -----------------------------------------------------------------------------------


def sign_in(client: Client, user: User, method: AuthMethod = AuthMethod.CPS) -> Client:
    client.force_login(user)
    session = client.session
    session[SESSION_METHOD_KEY] = method.value
    session.save()
    return client


def portal_clinic(**user_fields: Any) -> Clinic:
    """A physician of the directory who works (exercice) in the structure they feed the DMP for."""
    clinic = make_clinic(**user_fields)
    ExerciceFactory(professional=clinic.professional, structure=clinic.structure)
    return clinic


@pytest.fixture
def clinic() -> Clinic:
    return portal_clinic(first_name="Hélène", last_name="Durand")


@pytest.fixture
def doctor(client: Client, clinic: Clinic) -> Client:
    return sign_in(client, clinic.user)


@pytest.fixture
def patient(clinic: Clinic) -> Patient:
    return make_patient(clinic)


def text(response: Any) -> str:
    return html.unescape(re.sub(r"\s+", " ", response.content.decode()))


def field_errors(response: Any, name: str) -> str:
    match = re.search(rf'id="id_{name}_error"[^>]*>(.*?)</div>', response.content.decode(), re.S)
    return html.unescape(re.sub(r"\s+", " ", match.group(1))) if match else ""


def form_summary(response: Any) -> str:
    page = response.content.decode()
    start = page.find('id="erreurs-formulaire"')
    return html.unescape(re.sub(r"\s+", " ", page[start : page.find("</div>", start)])) if start >= 0 else ""


def url(name: str, *args: int) -> str:
    return reverse(f"dmp:{name}", args=args)


def real_pdf() -> bytes:
    """A well-formed one-page PDF (cross-reference table and trailer), as a PDF writer makes it."""
    writer = PdfWriter()
    writer.add_blank_page(width=595, height=842)
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


REAL_PDF = real_pdf()


def pdf_upload(data: bytes = REAL_PDF, name: str = "compte-rendu.pdf") -> SimpleUploadedFile:
    return SimpleUploadedFile(name, data, content_type="application/pdf")


def feed_data(clinic: Clinic, **overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "pdf": pdf_upload(),
        "type_code": "11488-4",
        "title": "Compte rendu de consultation",
        "service_start": "2026-11-20T09:30",
        "service_end": "2026-11-20T10:00",
        "structure": str(clinic.structure.pk),
        "facility_type": "",
        "practice_setting": "",
        "confidentiality": "N",
    }
    data.update(overrides)
    return data


Commit = Callable[..., AbstractContextManager[Any]]


def accepted_document(clinic: Clinic, patient: Patient, commit: Commit, **fields: Any) -> Document:
    """A document sent and accepted by the (scripted) DMP, through the services."""
    document = make_document(clinic, patient, **fields)
    with commit(execute=True):
        services.document_submit(document=document, actor=clinic.user)
    document.refresh_from_db()
    assert document.status == DocumentStatus.ACCEPTED
    return document


def refused_document(clinic: Clinic, patient: Patient, peer: Peer, commit: Commit) -> Document:
    peer.script.append(registry_answer(("XDSUnknownPatientId", "patient inconnu")))
    document = make_document(clinic, patient)
    with commit(execute=True):
        services.document_submit(document=document, actor=clinic.user)
    document.refresh_from_db()
    assert document.status == DocumentStatus.REFUSED
    return document


# --- Access ----------------------------------------------------------------------------------------------


def _pages(patient: Patient, document: Document) -> Iterator[tuple[str, str]]:
    yield "get", url("index")
    yield "get", url("patient_documents", patient.pk)
    yield "get", url("document_feed", patient.pk)
    yield "get", url("document_detail", document.pk)
    yield "get", url("document_visibility", document.pk)
    yield "get", url("document_replace", document.pk)
    yield "get", url("failed_list")
    yield "get", url("document_pdf", document.pk)
    yield "post", url("document_send", document.pk)
    yield "post", url("submission_retry", 1)


def test_ars_analysts_never_reach_the_dmp(client: Client, clinic: Clinic, patient: Patient) -> None:
    document = make_document(clinic, patient)
    analyst = make_user(ars_analyst=True)
    sign_in(client, analyst)
    for method, page in _pages(patient, document):
        response = getattr(client, method)(page)
        assert response.status_code == 403, page
        assert "Votre rôle ne donne pas accès" in text(response)
    assert AuditEvent.objects.filter(action="access.denied", actor=analyst).count() == 10
    assert not AuditEvent.objects.filter(action__in=["patient.read", "dmp.document.read"]).exists()
    document.refresh_from_db()
    assert document.status == DocumentStatus.DRAFT


def test_a_password_only_session_must_step_up_first(client: Client, clinic: Clinic, patient: Patient) -> None:
    document = make_document(clinic, patient)
    sign_in(client, clinic.user, AuthMethod.PASSWORD)
    for method, page in _pages(patient, document):
        response = getattr(client, method)(page)
        assert response.status_code == 302, page
        assert response["Location"].startswith(reverse("accounts:otp_enrol"))
    document.refresh_from_db()
    assert document.status == DocumentStatus.DRAFT
    assert not Submission.objects.exists()


# --- Home and a patient's documents ----------------------------------------------------------------------


def test_the_home_page_lists_my_recent_documents(doctor: Client, clinic: Clinic, patient: Patient) -> None:
    mine = make_document(clinic, patient, title="Lettre de sortie")
    other = portal_clinic()
    theirs = make_document(other, make_patient(other), title="Document d'un confrère")
    page = text(doctor.get(url("index")))
    assert url("document_detail", mine.pk) in page
    assert url("document_detail", theirs.pk) not in page
    assert patient.display_name in page
    [event] = AuditEvent.objects.filter(action="dmp.document.list")
    assert event.detail == {"list": "recent", "shown": 1}
    assert event.actor == clinic.user


def test_a_patients_documents_with_their_status_and_refusal_reason(
    doctor: Client, clinic: Clinic, patient: Patient, peer: Peer, django_capture_on_commit_callbacks: Commit
) -> None:
    accepted = accepted_document(
        clinic, patient, django_capture_on_commit_callbacks, invisible_to_patient=True
    )
    refused = refused_document(clinic, patient, peer, django_capture_on_commit_callbacks)
    draft = make_document(clinic, patient, title="Brouillon")
    response = doctor.get(url("patient_documents", patient.pk))
    page = text(response)
    rows = {int(pk): row for pk, row in re.findall(r'<tr id="document-(\d+)">(.*?)</tr>', page)}
    assert set(rows) == {accepted.pk, refused.pk, draft.pk}
    assert 'data-statut="accepted"' in rows[accepted.pk]
    assert "Invisible au patient" in rows[accepted.pk]
    assert 'data-statut="refused"' in rows[refused.pk]
    assert UNKNOWN_PATIENT in rows[refused.pk]
    assert 'data-statut="draft"' in rows[draft.pk]
    assert 'id="alimenter"' in page
    assert 'id="bandeau-dmp"' not in page
    [read] = AuditEvent.objects.filter(action="patient.read", target_id=str(patient.pk))
    assert read.detail == {"purpose": "dmp.documents"}
    assert read.actor == clinic.user


def test_a_document_masked_from_professionals_is_shown_to_its_author_only(
    client: Client, clinic: Clinic, patient: Patient
) -> None:
    masked = make_document(clinic, patient, masked_from_professionals=True)
    colleague = portal_clinic()
    consent_record(
        patient=patient,
        kind=ConsentKind.DMP_ACCESS_AUTHORISATION,
        actor=colleague.user,
        professional=colleague.user,
    )
    assert url("document_detail", masked.pk) in text(
        sign_in(client, clinic.user).get(url("patient_documents", patient.pk))
    )
    sign_in(client, colleague.user)
    assert url("document_detail", masked.pk) not in text(client.get(url("patient_documents", patient.pk)))
    assert client.get(url("document_detail", masked.pk)).status_code == 404


@pytest.mark.parametrize(
    ("situation", "message"),
    [
        ("provisional", "L'identité du patient n'est pas qualifiée (« Identité provisoire »)"),
        ("opposed", "Le patient s'est opposé à l'alimentation de son DMP."),
        ("not_authorised", "Vous n'avez pas d'autorisation d'accès au DMP de ce patient"),
    ],
)
def test_the_page_says_why_the_dmp_cannot_be_fed(
    doctor: Client, clinic: Clinic, situation: str, message: str
) -> None:
    if situation == "provisional":
        patient = make_patient(clinic, qualified=False)
    elif situation == "opposed":
        patient = make_patient(clinic)
        consent_record(patient=patient, kind=ConsentKind.DMP_FEEDING_OPPOSITION, actor=clinic.user)
    else:
        patient = make_patient(clinic, authorised=False)
    for page in (url("patient_documents", patient.pk), url("document_feed", patient.pk)):
        content = text(doctor.get(page))
        banner = content[content.index('id="bandeau-dmp"') :]
        assert message in banner[: banner.index("</div>")]
        assert 'id="alimenter"' not in content
    assert 'disabled aria-describedby="bandeau-dmp"' in text(doctor.get(url("document_feed", patient.pk)))


def test_patient_documents_query_count_does_not_grow(
    doctor: Client, clinic: Clinic, patient: Patient, django_assert_num_queries: Any
) -> None:
    make_document(clinic, patient)
    doctor.get(url("patient_documents", patient.pk))
    with django_assert_num_queries(12) as few:
        doctor.get(url("patient_documents", patient.pk))
    for n in range(4):
        other = portal_clinic()
        consent_record(
            patient=patient,
            kind=ConsentKind.DMP_ACCESS_AUTHORISATION,
            actor=other.user,
            professional=other.user,
        )
        make_document(other, patient, title=f"Document {n}")
    with django_assert_num_queries(len(few.captured_queries)):
        response = doctor.get(url("patient_documents", patient.pk))
    assert len(re.findall(r'<tr id="document-', text(response))) == 5


def test_home_page_query_count_does_not_grow(
    doctor: Client, clinic: Clinic, patient: Patient, django_assert_num_queries: Any
) -> None:
    make_document(clinic, patient)
    doctor.get(url("index"))
    with django_assert_num_queries(9) as few:
        doctor.get(url("index"))
    for n in range(4):
        make_document(clinic, make_patient(clinic), title=f"Document {n}")
    with django_assert_num_queries(len(few.captured_queries)):
        doctor.get(url("index"))


# --- Feeding ---------------------------------------------------------------------------------------------


def test_the_feed_form_offers_national_codes_and_the_structures_defaults(
    doctor: Client, clinic: Clinic, patient: Patient
) -> None:
    page = text(doctor.get(url("document_feed", patient.pk)))
    assert '<option value="11488-4">CR ou fiche de consultation ou de visite (11488-4)</option>' in page
    assert f'<option value="{clinic.structure.pk}" selected>{clinic.structure}</option>' in page
    assert "D'après la structure (SA01)" in page
    assert 'name="masked_from_professionals"' in page
    assert 'name="invisible_to_patient"' in page
    assert 'name="invisible_to_legal_representatives"' in page
    assert 'accept="application/pdf,.pdf"' in page
    assert 'id="sans-structure"' not in page


def test_feeding_a_pdf_sends_it_and_the_dmp_accepts_it(
    doctor: Client,
    clinic: Clinic,
    patient: Patient,
    peer: Peer,
    django_capture_on_commit_callbacks: Commit,
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        response = doctor.post(
            url("document_feed", patient.pk), feed_data(clinic, masked_from_professionals="on")
        )
    document = Document.objects.get()
    assert response.status_code == 302
    assert response["Location"] == url("document_detail", document.pk)
    assert document.status == DocumentStatus.ACCEPTED
    assert document.author == clinic.user
    assert document.structure == clinic.structure
    assert (document.facility_type, document.practice_setting) == ("SA01", "ETABLISSEMENT")
    assert document.visibility_codes == ["MASQUE_PS"]
    assert document.service_start == dt.datetime(2026, 11, 20, 8, 30, tzinfo=dt.UTC)  # Paris local time
    assert len(peer.calls) == 1
    page = text(doctor.get(url("document_detail", document.pk)))
    assert "Accepté par le DMP" in page
    assert "Masqué aux professionnels" in page
    assert AuditEvent.objects.filter(action="dmp.document.create", actor=clinic.user).count() == 1
    assert AuditEvent.objects.filter(action="dmp.document.submit", actor=clinic.user).count() == 1


def test_feeding_queues_the_document_until_the_transaction_commits(
    doctor: Client, clinic: Clinic, patient: Patient
) -> None:
    response = doctor.post(url("document_feed", patient.pk), feed_data(clinic), follow=True)
    document = Document.objects.get()
    assert document.status == DocumentStatus.QUEUED
    assert Submission.objects.get().kind == SubmissionKind.ITI41
    page = text(response)
    assert "Document créé et mis en file d'envoi vers le DMP." in page
    assert 'id="envoi-en-cours"' in page


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"Bonjour, ceci n'est pas un PDF", "Le fichier n'est pas un PDF"),
        (b"%PDF-1.4\nceci n'est pas un vrai document\n", "Le PDF est illisible ou endommagé"),
        (PDF, "Le PDF est illisible ou endommagé"),  # no cross-reference table nor startxref
        (b"", "Le fichier soumis est vide."),
    ],
)
def test_a_file_that_is_not_a_real_pdf_is_refused_next_to_the_field(
    doctor: Client, clinic: Clinic, patient: Patient, data: bytes, message: str
) -> None:
    response = doctor.post(url("document_feed", patient.pk), feed_data(clinic, pdf=pdf_upload(data)))
    assert response.status_code == 400
    assert message in field_errors(response, "pdf")
    assert not Document.objects.exists()


def test_a_pdf_over_the_size_limit_is_refused(
    doctor: Client, clinic: Clinic, patient: Patient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("dmp.forms.MAX_PDF_BYTES", len(REAL_PDF) - 1)
    response = doctor.post(url("document_feed", patient.pk), feed_data(clinic))
    assert response.status_code == 400
    assert "dépasse la taille maximale" in field_errors(response, "pdf")
    assert not Document.objects.exists()


def test_form_errors_are_shown_next_to_their_fields(doctor: Client, clinic: Clinic, patient: Patient) -> None:
    response = doctor.post(
        url("document_feed", patient.pk),
        feed_data(clinic, type_code="99999-9", title="", service_end="2026-11-20T08:00", facility_type="XX"),
    )
    assert response.status_code == 400
    assert "Sélectionnez un choix valide" in field_errors(response, "type_code")
    assert "Ce champ est obligatoire." in field_errors(response, "title")
    assert "La fin de l'acte précède son début." in field_errors(response, "service_end")
    assert "Sélectionnez un choix valide" in field_errors(response, "facility_type")
    assert "Le document n'a pas été envoyé" in form_summary(response)
    assert not Document.objects.exists()


def test_a_structure_of_someone_else_cannot_be_chosen(
    doctor: Client, clinic: Clinic, patient: Patient
) -> None:
    elsewhere = cast(Structure, StructureFactory())
    response = doctor.post(url("document_feed", patient.pk), feed_data(clinic, structure=str(elsewhere.pk)))
    assert response.status_code == 400
    assert "Sélectionnez un choix valide" in field_errors(response, "structure")


def test_a_structure_without_a_known_facility_type_asks_for_it(
    doctor: Client, clinic: Clinic, patient: Patient
) -> None:
    clinic.structure.sector_code = ""
    clinic.structure.save()
    response = doctor.post(url("document_feed", patient.pk), feed_data(clinic))
    assert response.status_code == 400
    assert "choisissez-le" in field_errors(response, "facility_type")
    ok = doctor.post(
        url("document_feed", patient.pk), feed_data(clinic, facility_type="SA07", practice_setting="")
    )
    assert ok.status_code == 302
    assert Document.objects.get().practice_setting == "AMBULATOIRE"


def test_the_services_refusal_is_shown_above_the_form(
    doctor: Client, clinic: Clinic, patient: Patient
) -> None:
    # The opposition arrives between the display of the form and its sending.
    consent_record(patient=patient, kind=ConsentKind.DMP_FEEDING_OPPOSITION, actor=clinic.user)
    response = doctor.post(url("document_feed", patient.pk), feed_data(clinic))
    assert response.status_code == 400
    assert "Le patient s'est opposé à l'alimentation de son DMP : aucun document" in form_summary(response)
    assert not Document.objects.exists()


def test_an_account_outside_the_directory_is_told_why(
    client: Client, clinic: Clinic, patient: Patient
) -> None:
    stranger = make_user(clinician=True)
    consent_record(
        patient=patient, kind=ConsentKind.DMP_ACCESS_AUTHORISATION, actor=stranger, professional=stranger
    )
    sign_in(client, stranger)
    assert 'id="sans-structure"' in text(client.get(url("document_feed", patient.pk)))
    response = client.post(url("document_feed", patient.pk), feed_data(clinic))
    assert response.status_code == 400
    assert "Sélectionnez un choix valide" in field_errors(response, "structure")
    assert not Document.objects.exists()


# --- One document, refusals, visibility, versions ---------------------------------------------------------


def test_the_document_page_is_an_audited_read_with_its_history(
    doctor: Client, clinic: Clinic, patient: Patient, peer: Peer, django_capture_on_commit_callbacks: Commit
) -> None:
    document = accepted_document(clinic, patient, django_capture_on_commit_callbacks)
    response = doctor.get(url("document_detail", document.pk))
    page = text(response)
    assert "Document créé à partir du PDF déposé." in page
    assert "Document accepté par le DMP." in page
    assert "CR ou fiche de consultation ou de visite (11488-4)" in page
    assert document.unique_id in page
    assert f"Envoi n° {Submission.objects.get().pk}" in page
    [event] = AuditEvent.objects.filter(action="dmp.document.read")
    assert event.detail == {"purpose": "dmp.document"}
    assert event.patient_ins == patient.ins
    assert event.actor == clinic.user


def test_the_pdf_and_the_cda_can_be_downloaded_as_audited_reads(
    doctor: Client, clinic: Clinic, patient: Patient, client: Client
) -> None:
    document = make_document(clinic, patient, masked_from_professionals=True)
    pdf = doctor.get(url("document_pdf", document.pk))
    assert pdf.status_code == 200
    assert pdf["Content-Type"] == "application/pdf"
    assert pdf["Content-Disposition"] == f'attachment; filename="document-{document.pk}.pdf"'
    assert pdf.content == PDF
    cda = doctor.get(url("document_cda", document.pk))
    assert cda["Content-Type"].startswith("text/xml")
    assert b"<ClinicalDocument" in cda.content
    assert patient.ins.encode() in cda.content
    purposes = [
        e.detail["purpose"] for e in AuditEvent.objects.filter(action="dmp.document.read").order_by("id")
    ]
    assert purposes == ["dmp.download.pdf", "dmp.download.cda"]
    # Masked from professionals: another clinician cannot download it.
    sign_in(client, portal_clinic().user)
    assert client.get(url("document_pdf", document.pk)).status_code == 404


def test_a_refusal_by_the_dmp_is_explained_and_can_be_retried(
    doctor: Client,
    clinic: Clinic,
    patient: Patient,
    peer: Peer,
    django_capture_on_commit_callbacks: Commit,
) -> None:
    document = refused_document(clinic, patient, peer, django_capture_on_commit_callbacks)
    page = text(doctor.get(url("document_detail", document.pk)))
    reason = page[page.index('id="motif-refus"') :]
    assert UNKNOWN_PATIENT in reason[: reason.index("</div>")]
    submission = Submission.objects.get()
    assert url("submission_retry", submission.pk) in page

    with django_capture_on_commit_callbacks(execute=True):
        response = doctor.post(url("submission_retry", submission.pk), {"retour": "document"})
    assert response["Location"] == url("document_detail", document.pk)
    document.refresh_from_db()
    assert document.status == DocumentStatus.ACCEPTED
    assert AuditEvent.objects.filter(action="dmp.submission.retry", actor=clinic.user).count() == 1


def test_sending_a_draft(doctor: Client, clinic: Clinic, patient: Patient) -> None:
    draft = make_document(clinic, patient)
    assert "Envoyer au DMP" in text(doctor.get(url("document_detail", draft.pk)))
    response = doctor.post(url("document_send", draft.pk), follow=True)
    draft.refresh_from_db()
    assert draft.status == DocumentStatus.QUEUED
    assert "Document mis en file d'envoi vers le DMP." in text(response)
    again = doctor.post(url("document_send", draft.pk), follow=True)
    assert "Ce document ne peut pas être envoyé : il est « En file d'envoi »." in text(again)


def test_someone_outside_the_documents_structure_cannot_act_on_it(
    client: Client, clinic: Clinic, patient: Patient
) -> None:
    draft = make_document(clinic, patient)
    outsider = portal_clinic()
    consent_record(
        patient=patient,
        kind=ConsentKind.DMP_ACCESS_AUTHORISATION,
        actor=outsider.user,
        professional=outsider.user,
    )
    sign_in(client, outsider.user)
    assert "Envoyer au DMP" not in text(client.get(url("document_detail", draft.pk)))
    response = client.post(url("document_send", draft.pk))
    assert response.status_code == 403
    assert "Seuls l'auteur du document" in text(response)
    draft.refresh_from_db()
    assert draft.status == DocumentStatus.DRAFT


def test_changing_the_visibility_after_the_announcement(
    doctor: Client,
    clinic: Clinic,
    patient: Patient,
    peer: Peer,
    django_capture_on_commit_callbacks: Commit,
) -> None:
    document = accepted_document(
        clinic, patient, django_capture_on_commit_callbacks, invisible_to_patient=True
    )
    form = text(doctor.get(url("document_visibility", document.pk)))
    assert re.search(r'name="invisible_to_patient"[^>]*checked', form)

    same = doctor.post(url("document_visibility", document.pk), {"invisible_to_patient": "on"})
    assert same.status_code == 400
    assert "La visibilité demandée est déjà celle du document." in form_summary(same)

    with django_capture_on_commit_callbacks(execute=True):
        response = doctor.post(url("document_visibility", document.pk), {})
    assert response.status_code == 302
    document.refresh_from_db()
    assert document.status == DocumentStatus.UPDATED
    assert document.visibility_codes == []
    assert Submission.objects.filter(kind=SubmissionKind.ITI57, status=OutboxStatus.DONE).count() == 1
    page = text(doctor.get(url("document_detail", document.pk)))
    assert "Visibilité mise à jour : visibilité normale." in page


def test_the_visibility_of_a_draft_cannot_change(doctor: Client, clinic: Clinic, patient: Patient) -> None:
    draft = make_document(clinic, patient)
    response = doctor.post(url("document_visibility", draft.pk), {"masked_from_professionals": "on"})
    assert response.status_code == 400
    assert "document accepté par le DMP" in form_summary(response)
    assert not Submission.objects.exists()


def test_replacing_a_document_by_a_new_version(
    doctor: Client,
    clinic: Clinic,
    patient: Patient,
    peer: Peer,
    django_capture_on_commit_callbacks: Commit,
) -> None:
    first = accepted_document(clinic, patient, django_capture_on_commit_callbacks)
    form = text(doctor.get(url("document_replace", first.pk)))
    assert f'value="{first.title}"' in form
    data = {
        "pdf": pdf_upload(),
        "type_code": first.type_code,
        "title": "Compte rendu corrigé",
        "service_start": "2026-11-20T09:30",
        "service_end": "",
    }
    with django_capture_on_commit_callbacks(execute=True):
        response = doctor.post(url("document_replace", first.pk), data)
    second = Document.objects.exclude(pk=first.pk).get()
    assert response["Location"] == url("document_detail", second.pk)
    first.refresh_from_db()
    assert (second.version_number, second.set_id, second.replaces_id) == (2, first.set_id, first.pk)
    assert second.status == DocumentStatus.ACCEPTED
    assert first.status == DocumentStatus.REPLACED
    page = text(doctor.get(url("document_detail", second.pk)))
    assert url("document_detail", first.pk) in page
    assert "Version 2 (cette page)" in page


def test_a_draft_cannot_be_replaced(doctor: Client, clinic: Clinic, patient: Patient) -> None:
    draft = make_document(clinic, patient)
    data = {
        "pdf": pdf_upload(),
        "type_code": draft.type_code,
        "title": "v2",
        "service_start": "2026-11-20T09:30",
    }
    response = doctor.post(url("document_replace", draft.pk), data)
    assert response.status_code == 400
    assert "Seul un document accepté par le DMP peut être remplacé" in form_summary(response)


# --- Failed submissions ----------------------------------------------------------------------------------


def test_the_failed_list_shows_my_structures_failures_with_a_retry_button(
    doctor: Client,
    clinic: Clinic,
    patient: Patient,
    peer: Peer,
    django_capture_on_commit_callbacks: Commit,
) -> None:
    mine = refused_document(clinic, patient, peer, django_capture_on_commit_callbacks)
    other = portal_clinic()
    theirs = refused_document(other, make_patient(other), peer, django_capture_on_commit_callbacks)
    response = doctor.get(url("failed_list"))
    page = text(response)
    mine_submission = Submission.objects.get(document=mine)
    their_submission = Submission.objects.get(document=theirs)
    row = re.search(rf'<tr id="envoi-{mine_submission.pk}">(.*?)</tr>', page)
    assert row is not None
    assert UNKNOWN_PATIENT in row.group(1)
    assert url("submission_retry", mine_submission.pk) in row.group(1)
    assert clinic.structure.name in page
    assert f'id="envoi-{their_submission.pk}"' not in page
    [event] = AuditEvent.objects.filter(action="dmp.document.list")
    assert event.detail == {"list": "failed", "shown": 1}

    assert doctor.post(url("submission_retry", their_submission.pk)).status_code == 404
    response = doctor.post(url("submission_retry", mine_submission.pk), follow=True)
    assert response.redirect_chain[-1][0] == url("failed_list")
    assert "Envoi relancé" in text(response)
    assert 'id="aucun-echec"' in text(response)
    mine.refresh_from_db()
    assert mine.status == DocumentStatus.QUEUED
    assert Submission.objects.get(document=mine).status == OutboxStatus.PENDING


def test_a_retry_still_refused_by_the_rules_says_why(
    doctor: Client,
    clinic: Clinic,
    patient: Patient,
    peer: Peer,
    django_capture_on_commit_callbacks: Commit,
) -> None:
    document = refused_document(clinic, patient, peer, django_capture_on_commit_callbacks)
    consent_record(patient=patient, kind=ConsentKind.DMP_FEEDING_OPPOSITION, actor=clinic.user)
    submission = Submission.objects.get()
    response = doctor.post(url("submission_retry", submission.pk), follow=True)
    assert "L'envoi n'a pas été relancé : Le patient s'est opposé" in text(response)
    document.refresh_from_db()
    assert document.status == DocumentStatus.REFUSED


def test_failed_list_query_count_does_not_grow(
    doctor: Client,
    clinic: Clinic,
    peer: Peer,
    django_capture_on_commit_callbacks: Commit,
    django_assert_num_queries: Any,
) -> None:
    refused_document(clinic, make_patient(clinic), peer, django_capture_on_commit_callbacks)
    doctor.get(url("failed_list"))
    with django_assert_num_queries(9) as few:
        doctor.get(url("failed_list"))
    for _ in range(3):
        refused_document(clinic, make_patient(clinic), peer, django_capture_on_commit_callbacks)
    with django_assert_num_queries(len(few.captured_queries)):
        response = doctor.get(url("failed_list"))
    assert len(re.findall(r'<tr id="envoi-', text(response))) == 4
