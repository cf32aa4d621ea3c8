"""Outgoing services: recipient checks, drafts, sending (rows, dispatch, encryption), CDA/XDM, retry,
permissions, audit. The relay itself is exercised against a real SMTP peer in test_relay_smtp.py."""

from __future__ import annotations

from email import policy
from email.parser import BytesParser
from typing import Any

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import connection

from enrs.audit.models import AuditEvent
from enrs.outbox.models import OutboxStatus
from enrs.usage.models import UsageEvent
from messagerie.models import (
    Attachment,
    Delivery,
    Direction,
    Folder,
    Message,
    Recipient,
    RecipientStatus,
    TrustedDomain,
)
from messagerie.services import outgoing
from tests.messagerie import _relay_support as support
from tests.messagerie._relay_support import PDF, REMOTE_DOMAIN, TEST_INS


def _plain(parsed: Any) -> str:
    body = parsed.get_body(preferencelist=("plain",))
    assert body is not None
    return str(body.get_content())


pytestmark = pytest.mark.django_db

SECRET_BODY = "Compte rendu : suspicion de pathologie rare, marqueur zq7-confidentiel-4821."


@pytest.fixture
def sender() -> tuple[Any, Any]:
    support.trust()
    return support.doctor()


def send(mailbox: Any, user: Any, **extra: Any) -> Message:
    fields: dict[str, Any] = {
        "mailbox": mailbox,
        "actor": user,
        "to": [f"confrere@{REMOTE_DOMAIN}"],
        "cc": [],
        "subject": "Compte rendu",
        "body": SECRET_BODY,
    }
    fields.update(extra)
    return outgoing.message_send(**fields)


# --- recipients_check -------------------------------------------------------------------------------------


def test_recipients_check_accepts_hosted_trusted_and_patient_addresses() -> None:
    support.trust()
    TrustedDomain.objects.create(domain=".ch-exemple.mssante.fr")
    TrustedDomain.objects.create(domain="ancien.mssante.fr", is_active=False)
    assert (
        outgoing.recipients_check(
            [
                "dr.x@enrs-demo.mssante.fr",
                f"a.b@{REMOTE_DOMAIN}",
                "cardio@site1.ch-exemple.mssante.fr",
                f"{TEST_INS}@patient.mssante.fr",
            ]
        )
        == []
    )
    errors = outgoing.recipients_check(
        [
            "quelquun@gmail.com",
            "x@ancien.mssante.fr",
            "279035121518988@patient.mssante.fr",
            "pas une adresse",
        ]
    )
    assert len(errors) == 4
    assert "espace de confiance" in errors[0]
    assert "espace de confiance" in errors[1]  # an inactive domain is no longer trusted
    assert "matricule INS" in errors[2]
    assert "n'est pas une adresse" in errors[3]


def test_send_refuses_recipients_outside_the_trust_space_and_writes_nothing(sender: Any) -> None:
    user, mailbox = sender
    with pytest.raises(ValidationError) as info:
        send(mailbox, user, to=["x@gmail.com"])
    assert "espace de confiance" in str(info.value)
    assert not Message.objects.exists()
    assert not Delivery.objects.exists()


# --- drafts -----------------------------------------------------------------------------------------------


def test_draft_is_saved_encrypted_then_sent_with_the_same_message_id(
    sender: Any, django_capture_on_commit_callbacks: Any
) -> None:
    user, mailbox = sender
    attachment = support.upload(mailbox, user, name="bilan.pdf", data=PDF, content_type="application/pdf")
    draft = outgoing.draft_save(
        mailbox=mailbox,
        actor=user,
        to=["incomplet"],
        cc=[],
        subject="Brouillon",
        body=SECRET_BODY,
        attachments=[attachment],
    )
    assert draft.folder == Folder.DRAFTS
    assert draft.to_addresses == ["incomplet"]
    assert draft.message_id.endswith("@enrs-demo.mssante.fr>")
    attachment.refresh_from_db()
    assert attachment.message_id == draft.pk
    draft = outgoing.draft_save(
        mailbox=mailbox,
        actor=user,
        to=[f"a@{REMOTE_DOMAIN}"],
        cc=[],
        subject="Brouillon v2",
        body=SECRET_BODY,
        draft=draft,
    )
    assert Message.objects.count() == 1
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        sent = send(mailbox, user, draft=draft, subject="Envoi final")
    assert sent.pk == draft.pk
    assert sent.folder == Folder.SENT
    assert sent.message_id == draft.message_id
    assert len(callbacks) == 1
    parsed = BytesParser(policy=policy.default).parsebytes(outgoing.message_mime(sent))
    assert parsed["Message-ID"] == draft.message_id
    assert [p.get_filename() for p in parsed.iter_attachments()] == ["bilan.pdf"]
    with pytest.raises(ValidationError, match="brouillon"):
        send(mailbox, user, draft=sent)


# --- sending ----------------------------------------------------------------------------------------------


def test_send_creates_copy_recipients_delivery_and_dispatches_on_commit(
    sender: Any, django_capture_on_commit_callbacks: Any
) -> None:
    user, mailbox = sender
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        message = send(
            mailbox,
            user,
            to=[f"a@{REMOTE_DOMAIN}", f"b@{REMOTE_DOMAIN}"],
            cc=[f"c@{REMOTE_DOMAIN}", f"a@{REMOTE_DOMAIN}"],  # duplicate dropped
            request_read_receipt=True,
        )
        # Nothing queued before the commit.
        assert Delivery.objects.get(message=message).attempts == 0
    assert len(callbacks) == 1
    assert message.direction == Direction.OUTGOING
    assert message.folder == Folder.SENT
    assert message.sent_at is not None
    assert message.author == user
    recipients = list(Recipient.objects.filter(message=message).values_list("address", "field", "status"))
    assert recipients == [
        (f"a@{REMOTE_DOMAIN}", "to", RecipientStatus.QUEUED),
        (f"b@{REMOTE_DOMAIN}", "to", RecipientStatus.QUEUED),
        (f"c@{REMOTE_DOMAIN}", "cc", RecipientStatus.QUEUED),
    ]
    delivery = Delivery.objects.get(message=message)
    assert delivery.status == OutboxStatus.PENDING
    assert delivery.deadline is not None
    parsed = BytesParser(policy=policy.default).parsebytes(outgoing.message_mime(message))
    assert parsed["Disposition-Notification-To"] == mailbox.address
    assert parsed["X-MSS-NIL"] == "ENRS-DEMO-NIL"
    event = AuditEvent.objects.get(action="messagerie.message.send")
    assert event.actor_id == user.pk
    assert event.target_id == str(message.pk)
    assert event.detail["message_id"] == message.message_id
    usage = UsageEvent.objects.get(kind="messagerie.message_sent")
    assert usage.dims["recipients"] == 3


def test_database_holds_no_plaintext_body_or_attachment(sender: Any) -> None:
    user, mailbox = sender
    secret_file = b"%PDF-1.4 resultat biologique tres-secret-9931 %%EOF"
    attachment = support.upload(
        mailbox, user, name="resultat.pdf", data=secret_file, content_type="application/pdf"
    )
    message = send(mailbox, user, attachments=[attachment])
    # The content round-trips through the vault…
    parsed = BytesParser(policy=policy.default).parsebytes(outgoing.message_mime(message))
    assert "zq7-confidentiel-4821" in _plain(parsed)
    assert [p.get_content() for p in parsed.iter_attachments()] == [secret_file]
    # …but no table holds it in clear: search every row of the messagerie and vault tables as text.
    markers = ["zq7-confidentiel-4821", "tres-secret-9931"]
    with connection.cursor() as cursor:
        for table in ("messagerie_message", "messagerie_attachment", "vault_blob", "audit_auditevent"):
            cursor.execute(f"SELECT row_to_json(t)::text FROM {table} t")  # noqa: S608 - fixed names
            dump = "\n".join(row[0] for row in cursor.fetchall())
            for marker in markers:
                assert marker not in dump, (table, marker)
        cursor.execute(
            "SELECT count(*) FROM vault_blob WHERE position(%s in ciphertext) > 0", [b"tres-secret-9931"]
        )
        assert cursor.fetchone()[0] == 0
        cursor.execute(
            "SELECT count(*) FROM vault_blob WHERE position(%s in ciphertext) > 0", [b"zq7-confidentiel"]
        )
        assert cursor.fetchone()[0] == 0
    assert message.body is not None
    assert message.raw is not None


def test_patient_recipient_with_no_reply_gets_mss_mes_fin(sender: Any) -> None:
    user, mailbox = sender
    message = send(mailbox, user, to=[f"{TEST_INS}@patient.mssante.fr"], no_reply=True)
    parsed = BytesParser(policy=policy.default).parsebytes(outgoing.message_mime(message))
    assert parsed["X-MSS-MES"] == "FIN"
    other = send(mailbox, user, to=[f"a@{REMOTE_DOMAIN}"], no_reply=True)
    assert BytesParser(policy=policy.default).parsebytes(outgoing.message_mime(other))["X-MSS-MES"] is None


def test_subject_with_a_newline_is_refused(sender: Any) -> None:
    user, mailbox = sender
    with pytest.raises(ValidationError, match="retour à la ligne"):
        send(mailbox, user, subject="a\r\nBcc: x@y.fr")


# --- CDA / XDM --------------------------------------------------------------------------------------------


def test_cda_with_a_qualified_identity_attaches_xdm_and_pdf(sender: Any) -> None:
    user, mailbox = sender
    person = support.patient(creator=user)
    pdf = support.upload(mailbox, user, name="compte-rendu.pdf", data=PDF, content_type="application/pdf")
    message = send(mailbox, user, patient=person, cda_from_pdf=pdf, subject="CR de consultation")
    assert message.patient_ins == TEST_INS
    assert message.cda_codes == "11488-4"
    names = list(Attachment.objects.filter(message=message).values_list("filename", "is_xdm"))
    assert sorted(names) == [("IHE_XDM.zip", True), ("compte-rendu.pdf", False)]
    xdm = Attachment.objects.get(message=message, is_xdm=True)
    assert xdm.documents[0]["type_code"] == "11488-4"
    parsed = BytesParser(policy=policy.default).parsebytes(outgoing.message_mime(message))
    assert parsed["X-MSS-CODECDA"] == "11488-4"
    assert parsed["X-MSS-INS"] == "O"
    audit = AuditEvent.objects.get(action="messagerie.message.send")
    assert audit.patient_ins == TEST_INS


def test_cda_is_refused_for_a_non_qualified_identity(sender: Any) -> None:
    user, mailbox = sender
    person = support.patient(creator=user, qualified=False)
    pdf = support.upload(mailbox, user, name="cr.pdf", data=PDF, content_type="application/pdf")
    with pytest.raises(ValidationError) as info:
        send(mailbox, user, patient=person, cda_from_pdf=pdf)
    assert "identité du patient n'est pas qualifiée" in str(info.value)
    assert not Message.objects.filter(folder=Folder.SENT).exists()
    assert not Delivery.objects.exists()


def test_cda_needs_a_patient(sender: Any) -> None:
    user, mailbox = sender
    pdf = support.upload(mailbox, user, name="cr.pdf", data=PDF, content_type="application/pdf")
    with pytest.raises(ValidationError, match="indiquez-le"):
        send(mailbox, user, cda_from_pdf=pdf)


# --- permissions ------------------------------------------------------------------------------------------


def test_only_the_owner_or_a_delegate_allowed_to_send_may_send(sender: Any) -> None:
    user, mailbox = sender
    intruder, _ = support.doctor()
    with pytest.raises(PermissionDenied):
        send(mailbox, intruder)
    assert AuditEvent.objects.filter(action="access.denied", actor_id=intruder.pk).count() == 1
    assert not Message.objects.exists()

    structure = mailbox.professional.exercices.get().structure
    shared = support.org_mailbox(structure, creator=user)
    reader, _ = support.doctor()
    support.delegate(shared, reader, can_send=False)
    with pytest.raises(PermissionDenied):
        send(shared, reader)
    writer, _ = support.doctor()
    support.delegate(shared, writer, can_send=True)
    message = send(shared, writer)
    assert message.mailbox == shared
    assert message.from_address == shared.address


def test_attachment_of_another_mailbox_is_refused(sender: Any) -> None:
    user, mailbox = sender
    other_user, other_box = support.doctor()
    foreign = support.upload(other_box, other_user, name="x.pdf", data=PDF, content_type="application/pdf")
    with pytest.raises(ValidationError, match="n'appartient pas"):
        send(mailbox, user, attachments=[foreign])


# --- retry button and reports -----------------------------------------------------------------------------


def test_retry_of_a_failed_recipient_reopens_the_delivery(
    sender: Any, django_capture_on_commit_callbacks: Any
) -> None:
    user, mailbox = sender
    message = send(mailbox, user, to=[f"a@{REMOTE_DOMAIN}", f"b@{REMOTE_DOMAIN}"])
    delivery = Delivery.objects.get(message=message)
    Recipient.objects.filter(message=message, address=f"a@{REMOTE_DOMAIN}").update(
        status=RecipientStatus.SENT
    )
    Recipient.objects.filter(message=message, address=f"b@{REMOTE_DOMAIN}").update(
        status=RecipientStatus.FAILED, smtp_code="550", status_detail="5.1.1 inconnu"
    )
    Delivery.objects.filter(pk=delivery.pk).update(status=OutboxStatus.DONE)
    failed = Recipient.objects.get(message=message, status=RecipientStatus.FAILED)
    queued_one = Recipient.objects.get(message=message, status=RecipientStatus.SENT)
    with pytest.raises(ValidationError, match="en échec"):
        outgoing.recipient_retry(recipient=queued_one, actor=user)
    intruder, _ = support.doctor()
    with pytest.raises(PermissionDenied):
        outgoing.recipient_retry(recipient=failed, actor=intruder)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        reopened = outgoing.recipient_retry(recipient=failed, actor=user)
    assert len(callbacks) == 1
    assert reopened.status == OutboxStatus.PENDING
    failed.refresh_from_db()
    assert failed.status == RecipientStatus.QUEUED
    assert failed.smtp_code == ""
    event = AuditEvent.objects.get(action="messagerie.recipient.retry")
    assert event.detail["recipient"] == f"b@{REMOTE_DOMAIN}"
    # A failed delivery (all recipients refused) reopens too.
    Recipient.objects.filter(pk=failed.pk).update(status=RecipientStatus.FAILED)
    Delivery.objects.filter(pk=delivery.pk).update(status=OutboxStatus.FAILED)
    assert outgoing.recipient_retry(recipient=failed, actor=user).status == OutboxStatus.PENDING


def test_mdn_is_sent_once_for_a_received_message_that_asks_for_it(sender: Any) -> None:
    user, mailbox = sender
    remote_user, remote_box = support.doctor()
    # A message "received" in `mailbox`: the MIME another operator would have sent.
    original = send(remote_box, remote_user, to=[mailbox.address], request_read_receipt=True)
    received = Message.objects.create(
        mailbox=mailbox,
        direction=Direction.INCOMING,
        folder=Folder.INBOX,
        message_id=original.message_id,
        subject=original.subject,
        from_address=remote_box.address,
        to_addresses=[mailbox.address],
        raw=original.raw,
    )
    report = outgoing.message_send_report(original=received, disposition="displayed", actor=user)
    assert report.kind == "mdn"
    assert report.to_addresses == [remote_box.address]
    assert Delivery.objects.filter(message=report).exists()
    parsed = BytesParser(policy=policy.default).parsebytes(outgoing.message_mime(report))
    assert parsed.get_content_type() == "multipart/report"
    assert parsed["In-Reply-To"] == original.message_id
    received.refresh_from_db()
    assert received.read_receipt_sent_at is not None
    with pytest.raises(ValidationError, match="déjà été envoyé"):
        outgoing.message_send_report(original=received, disposition="displayed", actor=user)
    # Never acknowledge an acknowledgement.
    report_copy = Message.objects.create(
        mailbox=mailbox,
        direction=Direction.INCOMING,
        kind="mdn",
        folder=Folder.INBOX,
        message_id=report.message_id,
        from_address=remote_box.address,
        raw=report.raw,
    )
    with pytest.raises(ValidationError):
        outgoing.message_send_report(original=report_copy, disposition="displayed", actor=user)


def test_an_applicative_box_sends_with_one_of_its_valid_tokens(sender: Any) -> None:
    from django.utils import timezone

    from annuaire.models import MailboxKind
    from messagerie.models import ApplicationToken, Mailbox

    user, mailbox = sender
    structure = mailbox.professional.exercices.get().structure
    lab = Mailbox.objects.create(
        address=f"labo.{structure.pk}@enrs-demo.mssante.fr",
        kind=MailboxKind.APPLICATION,
        display_name="Laboratoire",
        structure=structure,
        created_by=user,
    )
    token = ApplicationToken.objects.create(
        mailbox=lab, name="SIL", prefix="abc123", token_sha256="0" * 64, created_by=user
    )
    message = send(lab, None, application_token=token)
    assert message.author is None
    assert message.from_address == lab.address
    event = AuditEvent.objects.get(action="messagerie.message.send")
    assert event.actor_id is None
    assert event.detail["token"] == "abc123"
    # A token of another box, or a revoked one, may not send.
    with pytest.raises(PermissionDenied):
        send(mailbox, None, application_token=token)
    token.revoked_at = timezone.now()
    token.save()
    with pytest.raises(PermissionDenied):
        send(lab, None, application_token=token)
    assert AuditEvent.objects.filter(action="access.denied").count() == 2
