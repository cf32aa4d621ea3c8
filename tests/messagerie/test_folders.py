"""What a box user does with messages: reading (audited patient-data access, read receipt sent once),
mark, move, delete (trash, then for good), uploads (type and size checks, encrypted) and downloads
(audited, never a quarantined file), IHE_XDM documents and their PDF."""

import datetime as dt
from email.message import EmailMessage
from email.utils import format_datetime
from typing import Any

import pytest
from django.core.exceptions import ValidationError
from django.core.files.uploadedfile import SimpleUploadedFile

from enrs.audit.models import AuditEvent
from enrs.outbox.models import OutboxStatus
from enrs.vault.models import Blob
from enrs.vault.services import blob_put
from messagerie.models import (
    Attachment,
    Delivery,
    Direction,
    Folder,
    Message,
    MessageKind,
    Recipient,
)
from messagerie.services import folders
from tests.messagerie.factories import (
    PDF_BYTES,
    make_attachment,
    make_mailbox,
    make_message,
    message_of,
    owner_of,
)
from tests.patients.factories import make_patient

pytestmark = pytest.mark.django_db

SENDER = "dr.martin@chu-exemple.mssante.fr"


def events(action: str) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(action=action).order_by("pk"))


def received_with_receipt_request(mailbox: Any, *, report: bool = False) -> Message:
    """A received message as the listener files it: raw MIME (asking for an MDN) in the vault."""
    mime = EmailMessage()
    mime["From"] = SENDER
    mime["To"] = mailbox.address
    mime["Subject"] = "Résultats"
    mime["Date"] = format_datetime(dt.datetime(2026, 3, 2, 9, 0, tzinfo=dt.UTC))
    mime["Message-ID"] = "<resultats-1@chu-exemple.mssante.fr>"
    mime["Disposition-Notification-To"] = SENDER
    mime.set_content("Voici les résultats.")
    raw = mime.as_bytes()
    return make_message(
        mailbox=mailbox,
        from_address=SENDER,
        message_id="<resultats-1@chu-exemple.mssante.fr>",
        request_read_receipt=True,
        kind=MessageKind.MDN if report else MessageKind.MESSAGE,
        raw=blob_put(raw, purpose="messagerie.raw", content_type="message/rfc822"),
    )


# --- Reading ----------------------------------------------------------------------------------------------


def test_reading_a_message_about_a_patient_is_an_audited_access_with_the_ins() -> None:
    box = make_mailbox()
    patient = make_patient(qualified=True)
    message = make_message(mailbox=box, patient=patient, patient_ins=patient.ins)

    folders.message_read(message=message, actor=owner_of(box))

    message.refresh_from_db()
    assert message.is_read
    assert message.read_at is not None
    [event] = events("messagerie.message.read")
    assert (event.actor_id, event.patient_ins, event.target_id) == (
        owner_of(box).pk,
        patient.ins,
        str(message.pk),
    )


def test_reading_a_message_without_patient_is_not_a_patient_access() -> None:
    box = make_mailbox()
    message = make_message(mailbox=box)
    folders.message_read(message=message, actor=owner_of(box))
    assert Message.objects.get(pk=message.pk).is_read
    assert not events("messagerie.message.read")


def test_the_body_is_decrypted_from_the_vault_and_not_stored_in_clear() -> None:
    message = make_message(body_text="Tension artérielle 12/8, à revoir dans un mois.")
    assert folders.message_body(message) == "Tension artérielle 12/8, à revoir dans un mois."
    stored = bytes(Blob.objects.get(pk=str(message.body_id)).ciphertext or b"")
    assert b"Tension" not in stored


def test_reading_sends_the_requested_read_receipt_once() -> None:
    box = make_mailbox()
    message = received_with_receipt_request(box)

    folders.message_read(message=message, actor=owner_of(box))
    folders.message_mark(message=message, read=False, actor=owner_of(box))
    folders.message_read(message=message, actor=owner_of(box))

    [mdn] = Message.objects.filter(kind=MessageKind.MDN)
    assert (mdn.mailbox, mdn.direction, mdn.folder) == (box, Direction.OUTGOING, Folder.SENT)
    assert mdn.in_reply_to == message.message_id
    assert mdn.to_addresses == [SENDER]
    assert Recipient.objects.get(message=mdn).address == SENDER
    assert Delivery.objects.filter(message=mdn).exists()
    assert Message.objects.get(pk=message.pk).read_receipt_sent_at is not None


def test_no_read_receipt_for_a_report_nor_for_a_sent_copy() -> None:
    box = make_mailbox()
    report = received_with_receipt_request(box, report=True)
    sent = make_message(mailbox=box, sent=True, request_read_receipt=True)
    folders.message_read(message=report, actor=owner_of(box))
    folders.message_read(message=sent, actor=owner_of(box))
    assert not Message.objects.filter(kind=MessageKind.MDN, direction=Direction.OUTGOING).exists()
    assert Message.objects.get(pk=report.pk).read_receipt_sent_at is None


# --- Mark, move, delete -----------------------------------------------------------------------------------


def test_mark_read_and_unread() -> None:
    message = make_message()
    folders.message_mark(message=message, read=True)
    assert Message.objects.get(pk=message.pk).is_read
    folders.message_mark(message=message, read=False)
    assert Message.objects.values_list("is_read", "read_at").get(pk=message.pk) == (False, None)


def test_move_between_allowed_folders_only() -> None:
    received = make_message()
    sent = make_message(sent=True, mailbox=received.mailbox)
    draft = make_message(draft=True, mailbox=received.mailbox)

    assert folders.message_move(message=received, folder=Folder.ARCHIVE).folder == Folder.ARCHIVE
    assert folders.message_move(message=received, folder=Folder.INBOX).folder == Folder.INBOX
    with pytest.raises(ValidationError, match="Envoyés"):
        folders.message_move(message=received, folder=Folder.SENT)
    with pytest.raises(ValidationError, match="Réception"):
        folders.message_move(message=sent, folder=Folder.INBOX)
    with pytest.raises(ValidationError, match="Archives"):
        folders.message_move(message=draft, folder=Folder.ARCHIVE)
    assert Message.objects.get(pk=sent.pk).folder == Folder.SENT


def test_delete_goes_to_trash_then_for_good_with_its_files_and_blobs() -> None:
    attachment = make_attachment()
    message = message_of(attachment)
    box = message.mailbox
    blob_ids = {str(message.body_id), str(attachment.blob_id)}

    assert folders.message_delete(message=message, actor=owner_of(box)) is False
    assert Message.objects.get(pk=message.pk).folder == Folder.TRASH
    assert folders.message_delete(message=message, actor=owner_of(box)) is True

    assert not Message.objects.filter(pk=message.pk).exists()
    assert not Attachment.objects.filter(pk=attachment.pk).exists()
    assert not Blob.objects.filter(pk__in=blob_ids).exists()
    assert [e.action for e in AuditEvent.objects.filter(actor=owner_of(box)).order_by("pk")] == [
        "messagerie.message.trash",
        "messagerie.message.delete",
    ]


def test_a_message_still_being_sent_cannot_be_deleted_for_good() -> None:
    message = make_message(sent=True, folder=Folder.TRASH)
    Delivery.objects.create(message=message, status=OutboxStatus.RETRY)
    with pytest.raises(ValidationError, match="en cours d'envoi"):
        folders.message_delete(message=message, actor=owner_of(message.mailbox))
    assert Message.objects.filter(pk=message.pk).exists()


def test_a_finished_delivery_goes_with_the_message() -> None:
    message = make_message(sent=True, folder=Folder.TRASH)
    Delivery.objects.create(message=message, status=OutboxStatus.DONE)
    assert folders.message_delete(message=message, actor=owner_of(message.mailbox)) is True
    assert not Delivery.objects.exists()


# --- Uploads and downloads --------------------------------------------------------------------------------


def test_upload_stores_an_encrypted_unattached_file() -> None:
    box = make_mailbox()
    upload = SimpleUploadedFile("../../etc/Compte rendu.PDF", PDF_BYTES, content_type="text/html")

    attachment = folders.attachment_upload(mailbox=box, actor=owner_of(box), upload=upload)

    assert (attachment.filename, attachment.content_type, attachment.size) == (
        "Compte rendu.PDF",
        "application/pdf",
        len(PDF_BYTES),
    )
    assert attachment.message_id is None
    assert attachment.uploaded_by == owner_of(box)
    assert b"".join(folders.attachment_download(attachment=attachment, actor=owner_of(box))) == PDF_BYTES
    assert b"%PDF" not in bytes(Blob.objects.get(pk=attachment.blob_id).ciphertext or b"")


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("virus.exe", b"MZ\x90\x00", "Type de fichier non accepté"),
        ("script.js", b"alert(1)", "Type de fichier non accepté"),
        ("vide.pdf", b"", "vide"),
        ("faux.pdf", b"<html>", "ne correspond pas"),
        ("image.png", b"GIF89a", "ne correspond pas"),
    ],
)
def test_upload_refusals(name: str, content: bytes, message: str) -> None:
    box = make_mailbox()
    with pytest.raises(ValidationError, match=message):
        folders.attachment_upload(mailbox=box, actor=owner_of(box), upload=SimpleUploadedFile(name, content))
    assert not Attachment.objects.exists()


def test_upload_size_limit(settings: Any) -> None:
    settings.MSSANTE_MAX_ATTACHMENT_BYTES = 1024
    box = make_mailbox()
    with pytest.raises(ValidationError, match="taille maximale"):
        folders.attachment_upload(
            mailbox=box, actor=owner_of(box), upload=SimpleUploadedFile("gros.txt", b"x" * 1025)
        )
    small = folders.attachment_upload(
        mailbox=box, actor=owner_of(box), upload=SimpleUploadedFile("ok.txt", b"x" * 1024)
    )
    assert small.size == 1024


def test_download_is_audited_with_the_patient_and_quarantine_is_refused() -> None:
    patient = make_patient(qualified=True)
    attachment = make_attachment(message=make_message(patient=patient, patient_ins=patient.ins))
    owner = owner_of(message_of(attachment).mailbox)

    list(folders.attachment_download(attachment=attachment, actor=owner))
    [event] = events("messagerie.attachment.download")
    assert (event.patient_ins, event.actor_id) == (patient.ins, owner.pk)

    attachment.quarantined, attachment.quarantine_reason = True, "empreinte SHA-1 incorrecte"
    attachment.save()
    with pytest.raises(ValidationError, match=r"quarantaine.*SHA-1"):
        folders.attachment_download(attachment=attachment, actor=owner)
    assert len(events("messagerie.attachment.download")) == 1


# --- IHE_XDM ----------------------------------------------------------------------------------------------


def test_xdm_documents_come_from_the_stored_metadata() -> None:
    attachment = make_attachment(
        filename="IHE_XDM.zip",
        content_type="application/zip",
        is_xdm=True,
        content=b"PK",
        documents=[{"title": "CR d'hospitalisation", "type_code": "34133-9", "type_display": "Synthèse"}],
    )
    [doc] = folders.xdm_documents(attachment)
    assert (doc.index, doc.title, doc.type_code, doc.type_display) == (
        0,
        "CR d'hospitalisation",
        "34133-9",
        "Synthèse",
    )
    attachment.quarantined = True
    assert folders.xdm_documents(attachment) == []


def test_a_non_xdm_or_broken_archive_has_no_pdf() -> None:
    attachment = make_attachment(
        filename="IHE_XDM.zip", content_type="application/zip", is_xdm=True, content=b"x"
    )
    assert folders.xdm_documents(attachment) == []
    with pytest.raises(ValidationError, match="IHE_XDM"):
        folders.xdm_document_pdf(
            attachment=attachment, index=0, actor=owner_of(message_of(attachment).mailbox)
        )
