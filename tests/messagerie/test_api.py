"""Messagerie API: applicative boxes send with their token (Bearer), clinicians with their strong
session; nobody reaches another's box; the OpenAPI schema documents the endpoints."""

import base64
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse

from enrs.accounts.authn import SESSION_METHOD_KEY, AuthMethod
from enrs.accounts.roles import Role
from enrs.audit.models import AuditEvent
from messagerie.models import Folder, Message, Recipient, TrustedDomain
from tests.messagerie.factories import (
    PDF_BYTES,
    make_mailbox,
    make_message,
    make_token,
    make_user,
    owner_of,
)

pytestmark = pytest.mark.django_db

REMOTE = "chu-exemple.mssante.fr"


def sign_in(client: Client, user: Any) -> Client:
    client.force_login(user)
    session = client.session
    session[SESSION_METHOD_KEY] = AuthMethod.CPS.value
    session.save()
    return client


@pytest.fixture(autouse=True)
def remote() -> TrustedDomain:
    return TrustedDomain.objects.create(domain=REMOTE)


def messages_url(box: Any) -> str:
    return reverse("messagerie-api:messages", args=[box.pk])


def test_a_clinician_lists_reads_and_sends_from_his_box(client: Client) -> None:
    box = make_mailbox()
    received = make_message(mailbox=box, subject="Résultat", body_text="Normal.")
    sign_in(client, owner_of(box))

    boxes = client.get(reverse("messagerie-api:mailboxes")).json()
    assert [(b["address"], b["unread"]) for b in boxes] == [(box.address, 1)]
    page = client.get(messages_url(box)).json()
    assert [m["subject"] for m in page["results"]] == ["Résultat"]
    detail = client.get(reverse("messagerie-api:message", args=[box.pk, received.pk])).json()
    assert detail["body"] == "Normal."
    assert Message.objects.get(pk=received.pk).is_read

    response = client.post(
        messages_url(box),
        {"to": [f"dr.b@{REMOTE}"], "subject": "Avis", "body": "Merci"},
        content_type="application/json",
    )
    assert response.status_code == 201, response.content
    assert response.json()["recipients"][0]["address"] == f"dr.b@{REMOTE}"
    assert Message.objects.filter(mailbox=box, folder=Folder.SENT).count() == 1


def test_recipients_outside_the_trust_space_are_a_400(client: Client) -> None:
    box = make_mailbox()
    sign_in(client, owner_of(box))
    response = client.post(
        messages_url(box), {"to": ["x@gmail.com"], "subject": "s"}, content_type="application/json"
    )
    assert response.status_code == 400
    assert "espace de confiance" in response.content.decode()
    assert not Message.objects.filter(mailbox=box).exists()


def test_an_applicative_box_sends_with_its_token(client: Client) -> None:
    token, clear = make_token()
    box = token.mailbox
    payload = {
        "to": [f"dr.b@{REMOTE}"],
        "subject": "Résultats de biologie",
        "body": "Voir le compte rendu.",
        "attachments": [{"filename": "cr.pdf", "content": base64.b64encode(PDF_BYTES).decode()}],
    }
    response = client.post(
        messages_url(box), payload, content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {clear}"
    )
    assert response.status_code == 201, response.content
    sent = Message.objects.get(mailbox=box, folder=Folder.SENT)
    assert sent.author is None
    assert list(sent.attachments.values_list("filename", flat=True)) == ["cr.pdf"]
    assert Recipient.objects.get(message=sent).address == f"dr.b@{REMOTE}"


def test_a_token_reaches_its_own_box_only(client: Client) -> None:
    token, clear = make_token()
    other = make_mailbox()
    bearer = f"Bearer {clear}"
    assert client.get(messages_url(token.mailbox), HTTP_AUTHORIZATION=bearer).status_code == 200
    assert client.get(messages_url(other), HTTP_AUTHORIZATION=bearer).status_code == 404
    assert AuditEvent.objects.filter(action="access.denied", target_id=str(other.pk)).count() == 1
    assert client.get(messages_url(token.mailbox), HTTP_AUTHORIZATION="Bearer mss_faux").status_code == 401


def test_nobody_reads_another_clinicians_box_through_the_api(client: Client) -> None:
    box = make_mailbox()
    message = make_message(mailbox=box)
    intruder = make_user(clinician=True)
    sign_in(client, intruder)
    assert client.get(messages_url(box)).status_code == 404
    assert client.get(reverse("messagerie-api:message", args=[box.pk, message.pk])).status_code == 404
    assert AuditEvent.objects.filter(action="access.denied", actor=intruder).count() == 2


def test_ars_analysts_and_anonymous_callers_are_refused(client: Client) -> None:
    box = make_mailbox()
    assert client.get(messages_url(box)).status_code in {401, 403}
    analyst = make_user(role=Role.ARS_ANALYST)
    sign_in(client, analyst)
    assert client.get(messages_url(box)).status_code == 403
    assert AuditEvent.objects.filter(action="access.denied", actor=analyst).exists()


def test_the_schema_documents_the_messagerie_endpoints(client: Client) -> None:
    sign_in(client, make_user(clinician=True))
    schema = client.get(reverse("api-schema"), HTTP_ACCEPT="application/json").json()
    operations = {op["operationId"] for path in schema["paths"].values() for op in path.values()}
    assert {
        "messagerie_mailboxes_list",
        "messagerie_messages_list",
        "messagerie_messages_send",
        "messagerie_messages_read",
        "messagerie_attachments_download",
    } <= operations
    assert schema["components"]["securitySchemes"]["jetonApplicatif"]["scheme"] == "bearer"


def test_the_message_list_runs_a_fixed_number_of_queries(
    client: Client, django_assert_num_queries: Any
) -> None:
    box = make_mailbox()
    sign_in(client, owner_of(box))
    for _ in range(2):
        make_message(mailbox=box)
    client.get(messages_url(box))  # warm the session
    # session + user, the box, the page of messages; then the session's activity stamp (3 queries)
    with django_assert_num_queries(7):
        assert len(client.get(messages_url(box)).json()["results"]) == 2
    for _ in range(30):
        make_message(mailbox=box)
    with django_assert_num_queries(7):
        page = client.get(messages_url(box)).json()
    assert len(page["results"]) == 32
    assert page["has_next"] is False
