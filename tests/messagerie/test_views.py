"""Messagerie pages: permissions (own box, delegated org boxes, nobody else's; ARS analysts never), folders
with unread counts and locked query counts, reading (audited), attachments and XDM documents, compose
(trust space, uploads, CDA), per-recipient status and "Relancer", search, mark / move / delete, and the
GCS staff pages."""

import datetime as dt
import json
import re
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from enrs.accounts.authn import SESSION_METHOD_KEY, AuthMethod
from enrs.accounts.roles import Role
from enrs.audit.models import AuditEvent
from messagerie.models import (
    ApplicationToken,
    Attachment,
    Delegation,
    Folder,
    Mailbox,
    Message,
    Recipient,
    RecipientStatus,
    TrustedDomain,
)
from messagerie.services import outgoing
from tests.annuaire.factories import ExerciceFactory
from tests.messagerie.factories import (
    PDF_BYTES,
    make_address,
    make_attachment,
    make_delegation,
    make_mailbox,
    make_message,
    make_professional,
    make_recipient,
    make_token,
    make_user,
    owner_of,
)
from tests.patients.factories import make_patient

pytestmark = pytest.mark.django_db

REMOTE = "chu-exemple.mssante.fr"


def sign_in(client: Client, user: Any, method: AuthMethod = AuthMethod.CPS) -> Client:
    client.force_login(user)
    session = client.session
    session[SESSION_METHOD_KEY] = method.value
    session.save()
    return client


def folder_url(box: Mailbox, slug: str = "reception") -> str:
    return reverse("messagerie:folder", args=[box.pk, slug])


def denied(user: Any) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(action="access.denied", actor=user))


@pytest.fixture
def box() -> Mailbox:
    return make_mailbox()


@pytest.fixture
def owner_client(client: Client, box: Mailbox) -> Client:
    return sign_in(client, owner_of(box))


# --- Permissions ------------------------------------------------------------------------------------------


def test_the_index_opens_the_users_inbox(owner_client: Client, box: Mailbox) -> None:
    response = owner_client.get(reverse("messagerie:index"))
    assert response.status_code == 302
    assert response["Location"] == folder_url(box)


def test_without_a_box_the_index_says_so(client: Client) -> None:
    response = sign_in(client, make_user(clinician=True)).get(reverse("messagerie:index"))
    assert response.status_code == 200
    assert "Aucune boîte aux lettres" in response.content.decode()


def test_nobody_reads_another_clinicians_box(client: Client, box: Mailbox) -> None:
    message = make_message(mailbox=box)
    attachment = make_attachment(message=message)
    intruder = make_user(clinician=True)
    sign_in(client, intruder)
    urls = [
        folder_url(box),
        reverse("messagerie:message", args=[box.pk, message.pk]),
        reverse("messagerie:attachment", args=[box.pk, attachment.pk]),
        reverse("messagerie:compose", args=[box.pk]),
        reverse("messagerie:search", args=[box.pk]) + "?q=Compte",
    ]
    for url in urls:
        assert client.get(url).status_code == 404, url
    assert client.post(reverse("messagerie:message_delete", args=[box.pk, message.pk])).status_code == 404
    events = denied(intruder)
    assert len(events) == len(urls) + 1
    assert {e.target_id for e in events} == {str(box.pk)}
    assert all(e.outcome == "denied" for e in events)
    assert Message.objects.get(pk=message.pk).folder == Folder.INBOX
    assert not Message.objects.get(pk=message.pk).is_read


def test_a_message_of_another_box_is_not_reachable_through_ones_own(
    owner_client: Client, box: Mailbox
) -> None:
    other = make_message()
    assert owner_client.get(reverse("messagerie:message", args=[box.pk, other.pk])).status_code == 404
    assert not Message.objects.get(pk=other.pk).is_read


def test_an_organisational_box_is_only_for_its_delegates(client: Client) -> None:
    delegation = make_delegation()
    org = delegation.mailbox
    make_message(mailbox=org, subject="Demande avis cardio")
    sign_in(client, delegation.user)
    response = client.get(folder_url(org))
    assert response.status_code == 200
    assert "Demande avis cardio" in response.content.decode()

    outsider = make_user(clinician=True)
    sign_in(client, outsider)
    assert client.get(folder_url(org)).status_code == 404
    assert denied(outsider)

    Delegation.objects.filter(pk=delegation.pk).update(revoked_at=timezone.now())
    sign_in(client, delegation.user)
    assert client.get(folder_url(org)).status_code == 404


def test_a_read_only_delegate_cannot_compose(client: Client) -> None:
    delegation = make_delegation(can_send=False)
    sign_in(client, delegation.user)
    assert client.get(reverse("messagerie:compose", args=[delegation.mailbox.pk])).status_code == 403


def test_ars_analysts_get_a_403_audited(client: Client, box: Mailbox) -> None:
    analyst = make_user(role=Role.ARS_ANALYST)
    sign_in(client, analyst)
    for url in (reverse("messagerie:index"), folder_url(box), reverse("messagerie:recipient_search")):
        assert client.get(url).status_code == 403
    assert len(denied(analyst)) == 3


def test_a_password_only_session_is_sent_to_the_second_factor(client: Client, box: Mailbox) -> None:
    client.force_login(owner_of(box))
    response = client.get(folder_url(box))
    assert response.status_code == 302
    assert "code-a-usage-unique" in response["Location"]


def test_staff_pages_are_for_gcs_staff_only(client: Client) -> None:
    sign_in(client, make_user(clinician=True))
    assert client.get(reverse("messagerie:staff_mailboxes")).status_code == 403
    sign_in(client, make_user(gcs_staff=True))
    assert client.get(reverse("messagerie:staff_mailboxes")).status_code == 200
    assert client.get(reverse("messagerie:staff_domains")).status_code == 200


# --- Folders, counts, query counts ------------------------------------------------------------------------


def test_folders_show_unread_counts_and_newest_first(owner_client: Client, box: Mailbox) -> None:
    now = timezone.now()
    make_message(mailbox=box, subject="Ancien", sent_at=now - dt.timedelta(days=2), is_read=True)
    make_message(mailbox=box, subject="Récent", sent_at=now)
    make_message(mailbox=box, subject="SujetArchive", folder=Folder.ARCHIVE)
    make_message(mailbox=box, sent=True, subject="SujetEnvoye")

    response = owner_client.get(folder_url(box))

    html = response.content.decode()
    assert html.index("Récent") < html.index("Ancien")
    assert "SujetArchive" not in html
    assert "SujetEnvoye" not in html
    counts = {f["info"].key: f["info"].unread for f in response.context["folders"]}
    assert counts == {"inbox": 1, "sent": 0, "drafts": 0, "archive": 1, "trash": 0}
    assert [b.unread for b in response.context["mailboxes"]] == [1]  # inbox only


@pytest.mark.parametrize("slug", ["reception", "envoyes"])
def test_list_pages_run_a_fixed_number_of_queries(
    owner_client: Client, box: Mailbox, django_assert_num_queries: Any, slug: str
) -> None:
    def fill(n: int) -> None:
        for _ in range(n):
            make_message(mailbox=box, patient_ins="279035121518989")
            make_message(mailbox=box, sent=True, has_attachments=True)

    fill(2)
    owner_client.get(folder_url(box, slug))  # warm the session and caches
    # session + user, the box, the page of messages, the user's boxes with unread counts (switcher),
    # folder counts; then the session's activity stamp (savepoint, update, release)
    with django_assert_num_queries(9):
        first = owner_client.get(folder_url(box, slug))
    fill(30)
    with django_assert_num_queries(9):
        second = owner_client.get(folder_url(box, slug))
    assert len(first.context["rows"]) == 2
    assert len(second.context["rows"]) == 25
    assert second.context["has_next"]


def test_unknown_folder_is_a_404(owner_client: Client, box: Mailbox) -> None:
    assert owner_client.get(folder_url(box, "spam")).status_code == 404


# --- Reading ----------------------------------------------------------------------------------------------


def test_reading_shows_the_decrypted_body_marks_read_and_audits_the_patient(
    owner_client: Client, box: Mailbox
) -> None:
    patient = make_patient(qualified=True, birth_family_name="KERGUELEN")
    message = make_message(
        mailbox=box, patient=patient, patient_ins=patient.ins, body_text="Bilan : tout est normal."
    )

    response = owner_client.get(reverse("messagerie:message", args=[box.pk, message.pk]))

    html = response.content.decode()
    assert "Bilan : tout est normal." in html
    assert "KERGUELEN" in html
    assert Message.objects.get(pk=message.pk).is_read
    [event] = AuditEvent.objects.filter(action="messagerie.message.read")
    assert (event.patient_ins, event.actor_id) == (patient.ins, owner_of(box).pk)


def test_attachments_download_and_quarantine_is_shown_with_its_reason(
    owner_client: Client, box: Mailbox
) -> None:
    message = make_message(mailbox=box, has_attachments=True)
    good = make_attachment(message=message, filename="cr.pdf")
    bad = make_attachment(
        message=message, filename="IHE_XDM.zip", is_xdm=True, quarantined=True, quarantine_reason="bombe zip"
    )

    html = owner_client.get(reverse("messagerie:message", args=[box.pk, message.pk])).content.decode()

    assert reverse("messagerie:attachment", args=[box.pk, good.pk]) in html
    assert reverse("messagerie:attachment", args=[box.pk, bad.pk]) not in html
    assert "En quarantaine" in html
    assert "bombe zip" in html
    download = owner_client.get(reverse("messagerie:attachment", args=[box.pk, good.pk]))
    assert download.status_code == 200
    assert b"".join(download.getvalue().splitlines(keepends=True)) == PDF_BYTES
    assert 'filename="cr.pdf"' in download["Content-Disposition"]
    assert owner_client.get(reverse("messagerie:attachment", args=[box.pk, bad.pk])).status_code == 403


# --- Mark, move, delete -----------------------------------------------------------------------------------


def test_mark_unread_archive_trash_and_delete(owner_client: Client, box: Mailbox) -> None:
    message = make_message(mailbox=box, is_read=True)
    url = lambda name: reverse(f"messagerie:{name}", args=[box.pk, message.pk])  # noqa: E731

    owner_client.post(url("message_mark"), {"read": "0"})
    assert not Message.objects.get(pk=message.pk).is_read
    owner_client.post(url("message_move"), {"folder": "archive"})
    assert Message.objects.get(pk=message.pk).folder == Folder.ARCHIVE
    response = owner_client.post(url("message_move"), {"folder": "sent"})
    assert response.status_code == 302
    assert Message.objects.get(pk=message.pk).folder == Folder.ARCHIVE
    owner_client.post(url("message_delete"))
    assert Message.objects.get(pk=message.pk).folder == Folder.TRASH
    owner_client.post(url("message_delete"))
    assert not Message.objects.filter(pk=message.pk).exists()


# --- Search -----------------------------------------------------------------------------------------------


def test_search_by_subject_correspondent_date_and_patient(owner_client: Client, box: Mailbox) -> None:
    patient = make_patient(qualified=True, birth_family_name="LE BRAS")
    now = timezone.now()
    make_message(mailbox=box, subject="Radio thorax", from_address="radio@chu.mssante.fr", sent_at=now)
    make_message(
        mailbox=box, subject="Biologie", patient=patient, patient_ins=patient.ins, folder=Folder.ARCHIVE
    )
    make_message(mailbox=box, subject="Vieux", sent_at=now - dt.timedelta(days=40))
    make_message(subject="Radio d'un autre")  # another box

    def found(**params: str) -> set[str]:
        response = owner_client.get(reverse("messagerie:search", args=[box.pk]), params)
        return {m.subject for m in response.context["rows"]}

    assert found(q="radio") == {"Radio thorax"}
    assert found(correspondent="radio@chu") == {"Radio thorax"}
    assert found(patient=patient.ins) == {"Biologie"}
    assert found(patient="le bras") == {"Biologie"}
    assert found(date_to=(now - dt.timedelta(days=30)).date().isoformat()) == {"Vieux"}
    response = owner_client.get(
        reverse("messagerie:search", args=[box.pk]), {"date_from": "2026-02-01", "date_to": "2026-01-01"}
    )
    assert response.status_code == 400
    assert "précède" in response.content.decode()


# --- Compose ----------------------------------------------------------------------------------------------


@pytest.fixture
def remote() -> TrustedDomain:
    return TrustedDomain.objects.create(domain=REMOTE, operator="CHU")


def test_autocomplete_offers_trust_space_addresses_only(owner_client: Client, remote: Any) -> None:
    inside = make_professional(last_name="KERVELLA", first_name="Yann")
    make_address(professional=inside, address=f"yann.kervella@{REMOTE}")
    make_address(professional=make_professional(last_name="KERVELLA"), address="k@ailleurs.mssante.fr")

    answer = owner_client.get(reverse("messagerie:recipient_search"), {"q": "kervella"}).json()

    assert [r["value"] for r in answer["results"]] == [f"yann.kervella@{REMOTE}"]
    assert "Yann KERVELLA" in answer["results"][0]["label"]
    assert owner_client.get(reverse("messagerie:recipient_search"), {"q": "k"}).json() == {"results": []}


def test_sending_to_the_trust_space_creates_the_sent_copy_and_recipients(
    owner_client: Client, box: Mailbox, remote: Any
) -> None:
    response = owner_client.post(
        reverse("messagerie:compose", args=[box.pk]),
        {"to": f"dr.b@{REMOTE}; dr.c@{REMOTE}", "subject": "Avis", "body": "Merci.", "action": "send"},
    )
    sent = Message.objects.get(mailbox=box, folder=Folder.SENT)
    assert response.status_code == 302
    assert response["Location"] == reverse("messagerie:message", args=[box.pk, sent.pk])
    assert sorted(Recipient.objects.filter(message=sent).values_list("address", flat=True)) == [
        f"dr.b@{REMOTE}",
        f"dr.c@{REMOTE}",
    ]


def test_recipients_outside_the_trust_space_are_refused_with_a_message(
    owner_client: Client, box: Mailbox
) -> None:
    response = owner_client.post(
        reverse("messagerie:compose", args=[box.pk]),
        {"to": "quelquun@gmail.com", "subject": "Avis", "body": "x", "action": "send"},
    )
    assert response.status_code == 400
    errors = response.context["form"].errors["to"]
    assert any("espace de confiance" in e for e in errors)
    assert not Message.objects.filter(mailbox=box).exists()


def test_upload_endpoint_answers_json(owner_client: Client, box: Mailbox) -> None:
    from django.core.files.uploadedfile import SimpleUploadedFile

    url = reverse("messagerie:upload", args=[box.pk])
    ok = owner_client.post(url, {"file": SimpleUploadedFile("cr.pdf", PDF_BYTES)})
    assert ok.status_code == 201
    data = ok.json()
    attachment = Attachment.objects.get(pk=data["id"])
    assert (data["filename"], data["is_pdf"], attachment.message_id) == ("cr.pdf", True, None)
    bad = owner_client.post(url, {"file": SimpleUploadedFile("x.exe", b"MZ")})
    assert bad.status_code == 400
    assert "non accepté" in bad.json()["error"]


def test_uploaded_files_travel_with_the_message_by_id(
    owner_client: Client, box: Mailbox, remote: Any
) -> None:
    from django.core.files.uploadedfile import SimpleUploadedFile

    uploaded = owner_client.post(
        reverse("messagerie:upload", args=[box.pk]), {"file": SimpleUploadedFile("cr.pdf", PDF_BYTES)}
    ).json()
    someone_elses = make_attachment(message=None, mailbox=make_mailbox())
    owner_client.post(
        reverse("messagerie:compose", args=[box.pk]),
        {
            "to": f"dr.b@{REMOTE}",
            "subject": "CR",
            "body": "",
            "attachments": [uploaded["id"], someone_elses.pk],
            "action": "send",
        },
    )
    sent = Message.objects.get(mailbox=box, folder=Folder.SENT)
    assert list(sent.attachments.values_list("filename", flat=True)) == ["cr.pdf"]
    assert Attachment.objects.get(pk=someone_elses.pk).message_id is None


def test_drafts_are_saved_and_reopened(owner_client: Client, box: Mailbox) -> None:
    response = owner_client.post(
        reverse("messagerie:compose", args=[box.pk]),
        {"to": "", "subject": "À finir", "body": "Début", "action": "draft"},
    )
    draft = Message.objects.get(mailbox=box, folder=Folder.DRAFTS)
    assert response.status_code == 302
    assert f"brouillon={draft.pk}" in response["Location"]
    page = owner_client.get(response["Location"])
    assert page.context["form"].initial["subject"] == "À finir"
    assert page.context["form"].initial["body"] == "Début"


def test_a_pdf_sent_as_cda_is_listed_as_an_xdm_document_with_its_pdf(
    owner_client: Client, box: Mailbox, remote: Any
) -> None:
    from django.core.files.uploadedfile import SimpleUploadedFile

    ExerciceFactory(professional=box.professional)
    patient = make_patient(qualified=True)
    uploaded = owner_client.post(
        reverse("messagerie:upload", args=[box.pk]), {"file": SimpleUploadedFile("cr.pdf", PDF_BYTES)}
    ).json()
    response = owner_client.post(
        reverse("messagerie:compose", args=[box.pk]),
        {
            "to": f"dr.b@{REMOTE}",
            "subject": "Compte rendu de consultation",
            "body": "Ci-joint.",
            "attachments": [uploaded["id"]],
            "cda_attachment": uploaded["id"],
            "patient": patient.pk,
            "patient_query": patient.display_name,
            "document_type": "11488-4",
            "action": "send",
        },
    )
    assert response.status_code == 302, response.context["form"].errors if response.context else ""
    sent = Message.objects.get(mailbox=box, folder=Folder.SENT)
    assert (sent.patient_ins, sent.cda_codes) == (patient.ins, "11488-4")

    page = owner_client.get(reverse("messagerie:message", args=[box.pk, sent.pk]))
    xdm = next(item for item in page.context["attachments"] if item["attachment"].is_xdm)
    [document] = xdm["documents"]
    assert document.type_code == "11488-4"
    assert document.has_pdf
    pdf = owner_client.get(reverse("messagerie:document_pdf", args=[box.pk, xdm["attachment"].pk, 0]))
    assert pdf.status_code == 200
    assert pdf["Content-Type"] == "application/pdf"
    assert pdf.content == PDF_BYTES


def test_reply_prefills_and_no_reply_messages_refuse_it(owner_client: Client, box: Mailbox) -> None:
    original = make_message(mailbox=box, subject="Question", from_address=f"dr.q@{REMOTE}")
    page = owner_client.get(reverse("messagerie:compose", args=[box.pk]), {"repondre": original.pk})
    assert page.context["form"].initial["to"] == f"dr.q@{REMOTE}"
    assert page.context["form"].initial["subject"] == "RE: Question"
    final = make_message(mailbox=box, no_reply=True)
    assert (
        owner_client.get(reverse("messagerie:compose", args=[box.pk]), {"repondre": final.pk}).status_code
        == 403
    )


# --- Per-recipient status and retry -----------------------------------------------------------------------


def test_sent_messages_show_each_recipients_status_and_failed_ones_can_be_retried(
    owner_client: Client, box: Mailbox, remote: Any
) -> None:
    sent = outgoing.message_send(
        mailbox=box, actor=owner_of(box), to=[f"a@{REMOTE}", f"b@{REMOTE}"], cc=[], subject="S", body="B"
    )
    failed = Recipient.objects.get(message=sent, address=f"b@{REMOTE}")
    Recipient.objects.filter(pk=failed.pk).update(
        status=RecipientStatus.FAILED, status_detail="Boîte inconnue", smtp_code="550"
    )
    Recipient.objects.filter(message=sent, address=f"a@{REMOTE}").update(status=RecipientStatus.DELIVERED)

    html = owner_client.get(reverse("messagerie:message", args=[box.pk, sent.pk])).content.decode()
    assert "Remis" in html
    assert "Échec" in html
    assert "Boîte inconnue" in html
    retry_url = reverse("messagerie:recipient_retry", args=[box.pk, failed.pk])
    assert retry_url in html
    assert html.count("Relancer<span") == 1

    owner_client.post(retry_url)
    assert Recipient.objects.get(pk=failed.pk).status in {RecipientStatus.QUEUED, RecipientStatus.FAILED}
    assert AuditEvent.objects.filter(action="messagerie.recipient.retry").count() == 1


def test_an_intruder_cannot_retry_another_boxs_recipient(client: Client) -> None:
    recipient = make_recipient(status=RecipientStatus.FAILED)
    intruder_box = make_mailbox()
    sign_in(client, intruder_box.owner)
    url = reverse("messagerie:recipient_retry", args=[intruder_box.pk, recipient.pk])
    assert client.post(url).status_code == 404
    assert Recipient.objects.get(pk=recipient.pk).status == RecipientStatus.FAILED


# --- GCS staff --------------------------------------------------------------------------------------------


def test_staff_create_a_box_delegate_and_issue_a_token_shown_once(client: Client, settings: Any) -> None:
    settings.MSSANTE_HOSTED_DOMAINS = ["enrs-demo.mssante.fr"]
    staff = make_user(gcs_staff=True)
    sign_in(client, staff, AuthMethod.PASSWORD)
    org_entry = make_address(organizational=True, address="accueil@enrs-demo.mssante.fr")
    app_entry = make_address(organizational=True, address="sil@enrs-demo.mssante.fr", kind="APP")

    response = client.post(reverse("messagerie:staff_mailboxes"), {"address": org_entry.address})
    org = Mailbox.objects.get(address=org_entry.address)
    assert response["Location"] == reverse("messagerie:staff_mailbox", args=[org.pk])
    member = make_user(clinician=True, username="dr-member")
    client.post(
        reverse("messagerie:staff_delegation_grant", args=[org.pk]),
        {"username": "dr-member", "can_send": "on"},
    )
    assert Delegation.objects.get(mailbox=org).user == member

    client.post(reverse("messagerie:staff_mailboxes"), {"address": app_entry.address})
    app = Mailbox.objects.get(address=app_entry.address)
    page = client.post(reverse("messagerie:staff_token_create", args=[app.pk]), {"name": "SIL"})
    clear = re.search(r"<code>(mss_[^<]+)</code>", page.content.decode())
    assert clear is not None
    token = ApplicationToken.objects.get(mailbox=app)
    assert token.token_sha256 != clear.group(1)
    assert clear.group(1) not in token.token_sha256
    assert (
        clear.group(1) not in client.get(reverse("messagerie:staff_mailbox", args=[app.pk])).content.decode()
    )


def test_staff_refusals_come_back_next_to_the_field(client: Client) -> None:
    sign_in(client, make_user(gcs_staff=True), AuthMethod.PASSWORD)
    response = client.post(
        reverse("messagerie:staff_mailboxes"), {"address": "inconnue@enrs-demo.mssante.fr"}
    )
    assert response.status_code == 400
    assert "pas inscrite dans l'annuaire" in response.context["form"].errors["address"][0]
    response = client.post(reverse("messagerie:staff_domains"), {"domain": "pas un domaine"})
    assert response.status_code == 400
    assert "nom de domaine valide" in response.content.decode()
    client.post(reverse("messagerie:staff_domains"), {"domain": "CH-Lorient.mssante.fr"})
    assert TrustedDomain.objects.filter(domain="ch-lorient.mssante.fr", is_active=True).exists()


def test_patient_lookup_for_compose(owner_client: Client) -> None:
    patient = make_patient(qualified=True, birth_family_name="QUEMENEUR")
    answer = owner_client.get(reverse("messagerie:patient_lookup"), {"q": "quem"}).json()
    assert [r["value"] for r in answer["results"]] == [str(patient.pk)]
    assert json.dumps(answer).count("QUEMENEUR") == 1


def test_staff_close_a_box_revoke_a_delegation_and_a_token(client: Client) -> None:
    staff = make_user(gcs_staff=True)
    sign_in(client, staff, AuthMethod.PASSWORD)
    delegation = make_delegation()
    token, _clear = make_token()

    client.post(reverse("messagerie:staff_delegation_revoke", args=[delegation.pk]))
    client.post(reverse("messagerie:staff_token_revoke", args=[token.pk]))
    client.post(reverse("messagerie:staff_mailbox_state", args=[delegation.mailbox.pk]), {"active": "0"})

    assert Delegation.objects.get(pk=delegation.pk).revoked_at is not None
    assert ApplicationToken.objects.get(pk=token.pk).revoked_at is not None
    assert not Mailbox.objects.get(pk=delegation.mailbox.pk).is_active
    assert set(AuditEvent.objects.filter(actor=staff).values_list("action", flat=True)) == {
        "messagerie.delegation.revoke",
        "messagerie.token.revoke",
        "messagerie.mailbox.close",
    }
    page = client.get(reverse("messagerie:staff_mailbox", args=[token.mailbox.pk])).content.decode()
    assert "révoqué" in page
