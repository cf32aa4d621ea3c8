"""The DMP JSON API: a patient's documents and their status (refusal reason, visibility), strong
authentication, never ARS analysts, audited reads, pagination, query count, OpenAPI description."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse

from enrs.accounts.authn import AuthMethod
from enrs.audit.models import AuditEvent
from enrs.patients.models import ConsentKind
from enrs.patients.services import consent_record
from tests.dmp.factories import make_document, make_patient
from tests.dmp.test_views import (
    UNKNOWN_PATIENT,
    Commit,
    Peer,
    accepted_document,
    install_peer,
    portal_clinic,
    refused_document,
    sign_in,
)
from tests.patients.factories import make_user

pytestmark = pytest.mark.django_db


@pytest.fixture
def peer(settings: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Peer:
    return install_peer(settings, tmp_path, monkeypatch)


def api_url(pk: int) -> str:
    return reverse("dmp_api:patient-documents", args=[pk])


def test_documents_of_a_patient_with_their_status(
    client: Client, peer: Peer, django_capture_on_commit_callbacks: Commit
) -> None:
    clinic = portal_clinic()
    patient = make_patient(clinic)
    accepted = accepted_document(
        clinic, patient, django_capture_on_commit_callbacks, masked_from_professionals=True
    )
    refused = refused_document(clinic, patient, peer, django_capture_on_commit_callbacks)
    response = sign_in(client, clinic.user).get(api_url(patient.pk))
    assert response.status_code == 200
    body = response.json()
    assert body["patient"] == patient.pk
    assert body["next"] is None
    assert body["previous"] is None
    by_id = {row["id"]: row for row in body["results"]}
    assert [row["id"] for row in body["results"]] == [refused.pk, accepted.pk]
    assert by_id[accepted.pk]["status"] == "accepted"
    assert by_id[accepted.pk]["status_label"] == "Accepté par le DMP"
    assert by_id[accepted.pk]["visibility"] == ["MASQUE_PS"]
    assert by_id[accepted.pk]["type"] == {
        "code": "11488-4",
        "display": "CR ou fiche de consultation ou de visite",
    }
    assert by_id[accepted.pk]["version_number"] == 1
    assert by_id[accepted.pk]["replaces"] is None
    assert by_id[accepted.pk]["set_id"] == accepted.set_id
    assert by_id[refused.pk]["status"] == "refused"
    assert UNKNOWN_PATIENT in by_id[refused.pk]["status_detail"]
    [event] = AuditEvent.objects.filter(action="patient.read")
    assert event.detail == {"purpose": "dmp.api"}
    assert event.actor == clinic.user


def test_masked_documents_are_listed_for_their_author_only(client: Client) -> None:
    clinic = portal_clinic()
    patient = make_patient(clinic)
    make_document(clinic, patient, masked_from_professionals=True)
    visible = make_document(clinic, patient)
    colleague = make_user(clinician=True)
    body = sign_in(client, colleague).get(api_url(patient.pk)).json()
    assert [row["id"] for row in body["results"]] == [visible.pk]


def test_ars_analysts_and_weak_sessions_are_refused(client: Client) -> None:
    clinic = portal_clinic()
    patient = make_patient(clinic)
    make_document(clinic, patient)
    analyst = make_user(ars_analyst=True)
    response = sign_in(client, analyst).get(api_url(patient.pk))
    assert response.status_code == 403
    assert "Votre rôle ne donne pas accès" in response.json()["detail"]
    weak = sign_in(client, clinic.user, AuthMethod.PASSWORD).get(api_url(patient.pk))
    assert weak.status_code == 403
    assert "authentification forte" in weak.json()["detail"]
    assert [e.detail["reason"] for e in AuditEvent.objects.filter(action="access.denied")] == [
        "role",
        "weak_authentication",
    ]
    assert not AuditEvent.objects.filter(action="patient.read").exists()
    client.logout()
    assert client.get(api_url(patient.pk)).status_code == 403


def test_an_unknown_patient_is_a_404(client: Client) -> None:
    response = sign_in(client, make_user(clinician=True)).get(api_url(999_999))
    assert response.status_code == 404
    assert response.json()["detail"] == "Ce patient n'existe pas."


def test_pages_and_a_fixed_query_count(
    client: Client, django_assert_num_queries: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("dmp.api.views.PAGE_SIZE", 2)
    clinic = portal_clinic()
    patient = make_patient(clinic)
    make_document(clinic, patient)
    sign_in(client, clinic.user)
    client.get(api_url(patient.pk))
    with django_assert_num_queries(10) as few:
        client.get(api_url(patient.pk))
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
        first = client.get(api_url(patient.pk)).json()
    assert len(first["results"]) == 2
    assert first["previous"] is None
    assert first["next"].endswith(f"{api_url(patient.pk)}?page=2")
    third = client.get(api_url(patient.pk), {"page": "3"}).json()
    assert len(third["results"]) == 1
    assert third["next"] is None
    assert third["previous"].endswith("?page=2")


def test_the_openapi_schema_describes_the_endpoint(client: Client) -> None:
    sign_in(client, make_user(clinician=True))
    response = client.get(reverse("api-schema"), {"format": "json"})
    assert response.status_code == 200
    schema = response.json()
    operation = schema["paths"]["/api/dmp/patients/{id}/documents/"]["get"]
    assert operation["operationId"] == "dmp_patient_documents_list"
    assert operation["tags"] == ["dmp"]
    page = operation["responses"]["200"]["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[-1]
    document = schema["components"]["schemas"][page]["properties"]["results"]["items"]["$ref"].rsplit("/", 1)[
        -1
    ]
    properties = schema["components"]["schemas"][document]["properties"]
    assert {"status", "status_detail", "visibility", "type", "version_number"} <= set(properties)
