"""Incoming mail: durable acceptance, filing copies, XDM checks and quarantine, patient linking,
idempotency by Message-ID, DSN/MDN → recipient status, the allow-list, and encryption at rest."""

from __future__ import annotations

import datetime as dt
import io
import zipfile
from collections.abc import Callable
from email.message import EmailMessage
from typing import Any, cast

import pytest
from django.core.exceptions import ValidationError
from django.core.management import CommandError, call_command
from django.db import connection
from django.utils import timezone

from enrs.accounts.models import User
from enrs.audit.models import AuditEvent
from enrs.outbox.models import OutboxStatus
from enrs.patients.models import EvidenceKind, IdentityStatus, Patient
from enrs.usage.models import UsageEvent
from enrs.vault.models import Blob
from enrs.vault.services import blob_read
from messagerie.models import (
    Attachment,
    Direction,
    Folder,
    InboundMessage,
    InboundStatus,
    Mailbox,
    MailboxKind,
    Message,
    MessageKind,
    Recipient,
    RecipientStatus,
    TrustedDomain,
)
from messagerie.services import incoming
from messagerie.standards import mime, reports
from tests.factories import UserFactory
from tests.messagerie.test_xdm import INS_TEST_OID, PDF, TEST_INS, make_xdm, members_of, rezip, small_cda

DOMAIN = "enrs-demo.mssante.fr"
FOREIGN = "ch-exemple.mssante.fr"
SENDER = f"paul.martin@{FOREIGN}"
ALICE = f"alice.durand@{DOMAIN}"
BOB = f"bob.petit@{DOMAIN}"
SECRET_BODY = "Compte rendu confidentiel : tumeur du lobe gauche, secret 7Q3X"
WHEN = dt.datetime(2026, 11, 24, 10, 15, tzinfo=dt.UTC)


# --- Helpers shared with test_smtpd / test_reports_flow ----------------------------------------------------


def make_box(address: str, *, active: bool = True) -> Mailbox:
    user = cast(User, UserFactory())
    return Mailbox.objects.create(
        address=address,
        kind=MailboxKind.PERSONAL,
        display_name=address.split("@")[0],
        owner=user,
        created_by=user,
        is_active=active,
    )


def build_mail(
    *,
    sender: str = SENDER,
    to: list[str] | None = None,
    message_id: str = "<m1@ch-exemple.mssante.fr>",
    subject: str = "Compte rendu de consultation",
    text: str = SECRET_BODY,
    attachments: list[mime.Attachment] | None = None,
    xdm_zip: bytes | None = None,
    dnt: str | None = None,
) -> bytes:
    msg = mime.build_message(
        sender=sender,
        to=to or [ALICE],
        subject=subject,
        message_id=message_id,
        date=WHEN,
        nil="ENRS-NIL-TEST",
        text=text,
        attachments=attachments or [],
        xdm_zip=xdm_zip,
        disposition_notification_to=dnt,
    )
    return bytes(msg)


def attach_raw_xdm(raw_zip: bytes, **kwargs: Any) -> bytes:
    """A message whose IHE_XDM.zip is attached as is (the builder refuses bad archives)."""
    message = mime.build_message(
        sender=SENDER,
        to=kwargs.pop("to", [ALICE]),
        subject="Envoi XDM",
        message_id=kwargs.pop("message_id", "<xdm@ch-exemple.mssante.fr>"),
        date=WHEN,
        nil="ENRS-NIL-TEST",
        text=SECRET_BODY,
        attachments=[mime.Attachment("cr.pdf", "application/pdf", PDF)],
    )
    assert isinstance(message, EmailMessage)
    message.add_attachment(raw_zip, maintype="application", subtype="zip", filename="IHE_XDM.zip")
    return bytes(message)


def accept(raw: bytes, rcpt: list[str] | None = None, *, mail_from: str = SENDER) -> InboundMessage:
    return incoming.inbound_accept(raw=raw, mail_from=mail_from, rcpt_to=rcpt or [ALICE], peer="192.0.2.7")


def receive(raw: bytes, rcpt: list[str] | None = None, *, mail_from: str = SENDER) -> InboundMessage:
    """Accept then process (as the task would)."""
    item = accept(raw, rcpt, mail_from=mail_from)
    assert incoming.inbound_process(inbound_id=item.pk, worker="test") is None
    item.refresh_from_db()
    return item


def copy_in(box: Mailbox) -> Message:
    return Message.objects.get(mailbox=box, direction=Direction.INCOMING)


def sent_message(box: Mailbox, *, message_id: str, recipients: list[str]) -> Message:
    """The sender's copy of an outgoing message, recipients in ``sent`` (as the relay leaves them)."""
    message = Message.objects.create(
        mailbox=box,
        direction=Direction.OUTGOING,
        folder=Folder.SENT,
        message_id=message_id,
        subject="Compte rendu",
        from_address=box.address,
        to_addresses=recipients,
        sent_at=timezone.now(),
    )
    for address in recipients:
        Recipient.objects.create(message=message, address=address, status=RecipientStatus.SENT)
    return message


def qualified_patient(**overrides: Any) -> Patient:
    values: dict[str, Any] = {
        "ins": TEST_INS,
        "ins_oid": INS_TEST_OID,
        "birth_family_name": "PAT-TROIS",
        "birth_given_names": "DOMINIQUE MARIE-LOUISE",
        "first_given_name": "DOMINIQUE",
        "sex": "F",
        "birth_date": dt.date(1979, 3, 28),
        "birth_place_insee": "51215",
        "identity_status": IdentityStatus.QUALIFIED,
        "evidence": EvidenceKind.ID_CARD,
        "created_by": cast(User, UserFactory()),
    }
    values.update(overrides)
    return Patient.objects.create(**values)


@pytest.fixture(autouse=True)
def _hosted(settings: Any) -> None:
    settings.MSSANTE_HOSTED_DOMAINS = [DOMAIN]


@pytest.fixture
def alice(db: None) -> Mailbox:
    return make_box(ALICE)


@pytest.fixture
def bob(db: None) -> Mailbox:
    return make_box(BOB)


@pytest.fixture
def fake_task() -> Any:
    class Task:
        def __init__(self) -> None:
            self.queued: list[int] = []

        def delay(self, pk: int) -> None:
            self.queued.append(pk)

    return Task()


# --- Accepting ----------------------------------------------------------------------------------------------


def test_accept_stores_encrypted_row_and_processes_on_commit(
    alice: Mailbox, django_capture_on_commit_callbacks: Callable[..., Any]
) -> None:
    raw = build_mail()
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        item = accept(raw)
    # Durable before anything else: the row and its blob exist, the blob decrypts to the exact bytes.
    assert InboundMessage.objects.filter(pk=item.pk).exists()
    assert blob_read(Blob.objects.get(pk=item.raw_id)) == raw
    assert item.message_id == "<m1@ch-exemple.mssante.fr>"
    assert item.rcpt_to == [ALICE]
    assert item.peer == "192.0.2.7"
    assert item.status == OutboxStatus.PENDING
    assert item.deadline is not None
    assert Message.objects.count() == 0  # processing waits for the commit
    assert len(callbacks) == 1
    callbacks[0]()  # the on-commit dispatch (tasks run eagerly in tests)
    item.refresh_from_db()
    assert item.status == OutboxStatus.DONE
    assert item.outcome == InboundStatus.PROCESSED
    assert copy_in(alice).raw_id == item.raw_id
    assert AuditEvent.objects.filter(action="messagerie.inbound.accept", target_id=str(item.pk)).exists()


@pytest.mark.parametrize(
    ("raw", "rcpt", "mail_from", "expected"),
    [
        (b"", [ALICE], SENDER, "vide"),
        (b"Subject: x\r\n\r\nx", [], SENDER, "aucun destinataire"),
        (b"Subject: x\r\n\r\nx", ["pas une adresse"], SENDER, "destinataire invalide"),
        (b"Subject: x\r\n\r\nx", [ALICE], "pas@une@adresse", "expéditeur invalide"),
    ],
)
def test_accept_refuses_bad_input_and_stores_nothing(
    db: None, raw: bytes, rcpt: list[str], mail_from: str, expected: str
) -> None:
    with pytest.raises(ValidationError) as excinfo:
        incoming.inbound_accept(raw=raw, mail_from=mail_from, rcpt_to=rcpt)
    assert expected in " ".join(excinfo.value.messages)
    assert InboundMessage.objects.count() == 0
    assert Blob.objects.count() == 0


def test_accept_refuses_oversized_message(db: None, settings: Any) -> None:
    settings.MSSANTE_MAX_MESSAGE_BYTES = 100
    with pytest.raises(ValidationError, match="taille maximale"):
        accept(build_mail())
    assert InboundMessage.objects.count() == 0


# --- Filing copies ------------------------------------------------------------------------------------------


def test_plain_message_is_filed_in_the_inbox(alice: Mailbox) -> None:
    raw = build_mail(attachments=[mime.Attachment("ordonnance.pdf", "application/pdf", PDF)], dnt=SENDER)
    item = receive(raw)
    message = copy_in(alice)
    assert message.folder == Folder.INBOX
    assert message.kind == MessageKind.MESSAGE
    assert message.message_id == "<m1@ch-exemple.mssante.fr>"
    assert message.subject == "Compte rendu de consultation"
    assert message.from_address == SENDER
    assert message.to_addresses == [ALICE]
    assert message.sent_at == WHEN
    assert message.is_read is False
    assert message.request_read_receipt is True  # Disposition-Notification-To: the MDN is sent on read
    assert message.read_receipt_sent_at is None
    assert message.no_reply is False
    assert message.size == len(raw)
    assert message.raw_id == item.raw_id
    assert message.body is not None
    assert blob_read(message.body).decode() == SECRET_BODY + "\n"
    (attachment,) = message.attachments.all()
    assert (attachment.filename, attachment.content_type, attachment.size) == (
        "ordonnance.pdf",
        "application/pdf",
        len(PDF),
    )
    assert blob_read(attachment.blob) == PDF
    assert attachment.is_xdm is False
    assert attachment.quarantined is False
    assert message.has_attachments is True
    assert item.outcome == InboundStatus.PROCESSED
    assert "Distribué dans 1 boîte(s)" in item.outcome_detail
    # No outgoing message (MDN) is sent by the processing itself.
    assert not Message.objects.filter(direction=Direction.OUTGOING).exists()
    event = UsageEvent.objects.get(kind="messagerie.message_received")
    assert event.dims == {
        "kind": "message",
        "attachments": 1,
        "xdm": False,
        "quarantined": False,
        "bytes": len(raw),
    }
    assert AuditEvent.objects.filter(action="messagerie.message.receive", target_id=str(message.pk)).exists()


def test_no_receipt_requested_without_header_and_no_reply_flag(alice: Mailbox) -> None:
    msg = mime.parse_message(build_mail())
    assert msg.disposition_notification_to == ""
    raw = build_mail().replace(b"X-MSS-NIL:", b"X-MSS-MES: FIN\r\nX-MSS-NIL:", 1)
    receive(raw)
    message = copy_in(alice)
    assert message.request_read_receipt is False
    assert message.no_reply is True


def test_one_copy_per_hosted_recipient_and_unknown_addresses_noted(alice: Mailbox, bob: Mailbox) -> None:
    make_box(f"ancien@{DOMAIN}", active=False)
    rcpt = [ALICE, BOB, f"ancien@{DOMAIN}", f"inconnu@{DOMAIN}"]
    item = receive(build_mail(to=[ALICE, BOB]), rcpt)
    assert copy_in(alice).message_id == copy_in(bob).message_id
    assert Message.objects.count() == 2
    assert item.outcome == InboundStatus.PROCESSED
    assert f"inconnue ou inactive : ancien@{DOMAIN}" in item.outcome_detail
    assert f"inconnue ou inactive : inconnu@{DOMAIN}" in item.outcome_detail
    assert UsageEvent.objects.filter(kind="messagerie.message_received").count() == 2


def test_mail_for_no_hosted_box_is_marked_failed(db: None) -> None:
    item = receive(build_mail(), [f"inconnu@{DOMAIN}"])
    assert item.status == OutboxStatus.DONE
    assert item.outcome == InboundStatus.FAILED
    assert "Aucune boîte hébergée active" in item.outcome_detail
    assert Message.objects.count() == 0


def test_same_message_id_twice_gives_one_copy(alice: Mailbox) -> None:
    raw = build_mail()
    first = receive(raw)
    second = receive(raw)
    assert first.pk != second.pk  # the sender retried: two rows…
    assert Message.objects.filter(mailbox=alice).count() == 1  # …one copy
    assert "Déjà présent dans" in second.outcome_detail
    assert UsageEvent.objects.filter(kind="messagerie.message_received").count() == 1


def test_processing_twice_the_same_row_is_a_no_op(alice: Mailbox) -> None:
    item = receive(build_mail())
    assert incoming.inbound_process(inbound_id=item.pk) is None
    assert Message.objects.filter(mailbox=alice).count() == 1


def test_message_without_message_id_gets_a_stable_one(alice: Mailbox) -> None:
    raw = (
        b"From: "
        + SENDER.encode()
        + b"\r\nTo: "
        + ALICE.encode()
        + b"\r\nSubject: sans id\r\n\r\nBonjour\r\n"
    )
    item = receive(raw)
    message = copy_in(alice)
    assert message.message_id == f"<inbound-{item.pk}@{DOMAIN}>"
    assert item.message_id == message.message_id
    assert message.body is not None
    assert blob_read(message.body) == b"Bonjour\n"


def test_html_only_body_is_kept_as_html(alice: Mailbox) -> None:
    raw = (
        b"From: " + SENDER.encode() + b"\r\nTo: " + ALICE.encode() + b"\r\nMessage-ID: <h@x.fr>\r\n"
        b"Content-Type: text/html; charset=utf-8\r\n\r\n<p>Bonjour</p>\r\n"
    )
    receive(raw)
    body = copy_in(alice).body
    assert body is not None
    assert body.content_type.startswith("text/html")
    assert blob_read(body) == b"<p>Bonjour</p>\n"


def test_storage_failure_is_retried_then_succeeds(alice: Mailbox, monkeypatch: pytest.MonkeyPatch) -> None:
    item = accept(build_mail())
    real_read = incoming.blob_read

    def broken(blob: Any) -> bytes:
        raise OSError("stockage indisponible")

    monkeypatch.setattr(incoming, "blob_read", broken)
    delay = incoming.inbound_process(inbound_id=item.pk)
    assert delay is not None
    assert delay > 0
    item.refresh_from_db()
    assert item.status == OutboxStatus.RETRY
    assert item.attempts == 1
    assert item.last_error == "Lecture du message stocké impossible."
    assert Message.objects.count() == 0
    monkeypatch.setattr(incoming, "blob_read", real_read)
    InboundMessage.objects.filter(pk=item.pk).update(next_attempt_at=timezone.now())
    assert incoming.inbound_process(inbound_id=item.pk) is None
    item.refresh_from_db()
    assert item.status == OutboxStatus.DONE
    assert item.attempts == 2
    assert copy_in(alice)


def test_filing_error_rolls_back_everything_and_retries(
    alice: Mailbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    item = accept(build_mail(attachments=[mime.Attachment("a.pdf", "application/pdf", PDF)]))
    blobs_before = Blob.objects.count()

    def boom(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("base indisponible")

    monkeypatch.setattr(incoming, "usage_emit", boom)
    delay = incoming.inbound_process(inbound_id=item.pk)
    assert delay is not None
    assert Message.objects.count() == 0
    assert Attachment.objects.count() == 0
    assert Blob.objects.count() == blobs_before  # body and attachment blobs rolled back too
    item.refresh_from_db()
    assert item.status == OutboxStatus.RETRY
    assert item.outcome == InboundStatus.RECEIVED


def test_requeue_picks_lost_rows(alice: Mailbox, fake_task: Any) -> None:
    stale = accept(build_mail())
    fresh = accept(build_mail(message_id="<m2@ch-exemple.mssante.fr>"))
    InboundMessage.objects.filter(pk=stale.pk).update(updated_at=timezone.now() - dt.timedelta(minutes=5))
    lost = accept(build_mail(message_id="<m3@ch-exemple.mssante.fr>"))
    InboundMessage.objects.filter(pk=lost.pk).update(
        status=OutboxStatus.IN_PROGRESS, lease_until=timezone.now() - dt.timedelta(seconds=1)
    )
    expired = accept(build_mail(message_id="<m4@ch-exemple.mssante.fr>"))
    InboundMessage.objects.filter(pk=expired.pk).update(deadline=timezone.now() - dt.timedelta(seconds=1))
    assert incoming.inbound_requeue(fake_task) == 2
    assert sorted(fake_task.queued) == sorted([stale.pk, lost.pk])
    assert fresh.pk not in fake_task.queued
    expired.refresh_from_db()
    assert expired.status == OutboxStatus.FAILED
    assert expired.outcome == InboundStatus.FAILED


# --- IHE_XDM ------------------------------------------------------------------------------------------------


def test_good_xdm_lists_documents_and_links_the_qualified_patient(alice: Mailbox) -> None:
    patient = qualified_patient()
    raw = build_mail(
        attachments=[mime.Attachment("cr.pdf", "application/pdf", PDF)],
        xdm_zip=make_xdm(small_cda(extension="A"), small_cda(type_code="11502-2", extension="B")),
    )
    item = receive(raw)
    message = copy_in(alice)
    assert message.cda_codes == "11488-4,11502-2"
    assert message.patient_ins == TEST_INS
    assert message.patient == patient
    pdf, archive = message.attachments.order_by("pk")
    assert pdf.is_xdm is False
    assert archive.is_xdm is True
    assert archive.quarantined is False
    assert archive.quarantine_reason == ""
    assert [d["code"] for d in archive.documents] == ["11488-4", "11502-2"]
    first = archive.documents[0]
    assert first["title"] == "Compte rendu de consultation"
    assert first["ins"] == TEST_INS
    assert first["ins_oid"] == INS_TEST_OID
    assert first["qualified_ins"] is True
    assert first["uri"] == "DOC0001.XML"
    assert "family" not in first
    assert "birth_date" not in first
    # The level-1 body (the PDF) is extracted, encrypted.
    assert first["body_media_type"] == "application/pdf"
    assert blob_read(Blob.objects.get(pk=first["body_blob"])) == PDF
    assert item.outcome == InboundStatus.PROCESSED
    audit = AuditEvent.objects.get(action="messagerie.message.receive", target_id=str(message.pk))
    assert audit.patient_ins == TEST_INS
    # Usage events never carry the patient.
    event = UsageEvent.objects.get(kind="messagerie.message_received")
    assert TEST_INS not in str(event.dims)
    assert event.dims["xdm"] is True


def test_ins_without_traits_is_not_qualified_and_not_linked(alice: Mailbox) -> None:
    qualified_patient()
    receive(build_mail(xdm_zip=make_xdm(small_cda(traits=False))))
    message = copy_in(alice)
    (archive,) = message.attachments.all()
    assert archive.documents[0]["qualified_ins"] is False
    assert message.patient_ins == TEST_INS
    assert message.patient is None


@pytest.mark.parametrize(
    "overrides",
    [
        {"identity_status": IdentityStatus.VALIDATED, "ins": TEST_INS},  # local identity not qualified
        {"birth_date": dt.date(1980, 1, 1)},  # traits disagree with the document
        {"birth_family_name": "AUTRE"},
    ],
)
def test_patient_not_linked_unless_qualified_and_matching(alice: Mailbox, overrides: dict[str, Any]) -> None:
    qualified_patient(**overrides)
    receive(build_mail(xdm_zip=make_xdm(small_cda())))
    message = copy_in(alice)
    assert message.patient is None
    assert message.patient_ins == TEST_INS


def _hash_mismatch_zip() -> bytes:
    members = members_of(make_xdm(small_cda()))
    members["IHE_XDM/SUBSET01/DOC0001.XML"] = members["IHE_XDM/SUBSET01/DOC0001.XML"].replace(
        b"Compte rendu", b"Compte-rendu"
    )
    return rezip(members)


def _traversal_zip() -> bytes:
    members = members_of(make_xdm(small_cda()))
    members["../../etc/evil"] = b"x"
    return rezip(members)


def _bomb_zip() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        archive.writestr("IHE_XDM/SUBSET01/DOC0001.XML", b"\0" * (4 * 1024 * 1024))
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("archive", "reason"),
    [
        (_hash_mismatch_zip, "Empreinte SHA-1"),
        (_traversal_zip, "../../etc/evil"),
        (_bomb_zip, "bombe zip"),
        (lambda: b"PK\x03\x04 pas un zip", "zip"),
    ],
    ids=["hash", "traversal", "bomb", "not-zip"],
)
def test_bad_xdm_is_quarantined_and_message_still_delivered(
    alice: Mailbox, archive: Callable[[], bytes], reason: str
) -> None:
    data = archive()
    item = receive(attach_raw_xdm(data))
    message = copy_in(alice)
    assert blob_read(message.body).decode().startswith(SECRET_BODY)  # type: ignore[arg-type]
    pdf, xdm_attachment = message.attachments.order_by("pk")
    assert pdf.quarantined is False
    assert xdm_attachment.is_xdm is True
    assert xdm_attachment.quarantined is True
    assert reason in xdm_attachment.quarantine_reason
    assert xdm_attachment.documents == []
    assert blob_read(xdm_attachment.blob) == data  # kept as received, for inspection
    assert message.cda_codes == ""
    assert message.patient_ins == ""
    assert item.status == OutboxStatus.DONE
    assert item.outcome == InboundStatus.QUARANTINED
    assert "en quarantaine" in item.outcome_detail


def test_xdm_expansion_limit_comes_from_settings(alice: Mailbox, settings: Any) -> None:
    settings.MSSANTE_XDM_MAX_EXPANDED_BYTES = 1000
    receive(attach_raw_xdm(make_xdm(small_cda())))
    (xdm_attachment,) = copy_in(alice).attachments.filter(is_xdm=True)
    assert xdm_attachment.quarantined is True
    assert "taille décompressée" in xdm_attachment.quarantine_reason


# --- DSN / MDN ----------------------------------------------------------------------------------------------

ORIGINAL_ID = "<orig-1@enrs-demo.mssante.fr>"
REMOTE = "jeanne.durand@ch-exemple.mssante.fr"
REMOTE2 = "marc.leroy@ch-exemple.mssante.fr"


def _original_raw() -> bytes:
    return build_mail(sender=ALICE, to=[REMOTE, REMOTE2], message_id=ORIGINAL_ID, dnt=ALICE)


def dsn_for(actions: list[tuple[str, str, str, str]], *, original: bytes | None = None) -> bytes:
    report = reports.build_dsn(
        original=original or _original_raw(),
        reporting_mta="mx.ch-exemple.mssante.fr",
        from_addr=f"mailer-daemon@{FOREIGN}",
        to=ALICE,
        message_id="<dsn-1@ch-exemple.mssante.fr>",
        date=WHEN,
        recipients=[
            reports.DsnRecipient(final_recipient=a, action=act, status=st, diagnostic=diag)
            for a, act, st, diag in actions
        ],
    )
    return bytes(report)


def mdn_for(
    recipient: str, disposition: str, *, error: tuple[str, str] | None = None, manual: bool = False
) -> bytes:
    report = reports.build_mdn(
        original=_original_raw(),
        reporting_ua="ch-exemple.mssante.fr; LPS",
        final_recipient=recipient,
        from_addr=recipient,
        message_id=f"<mdn-{recipient.split('@')[0]}-{disposition}@ch-exemple.mssante.fr>",
        date=WHEN,
        disposition_type=disposition,
        error=error,
        manual=manual,
    )
    return bytes(report)


def _status(message: Message, address: str) -> Recipient:
    return Recipient.objects.get(message=message, address=address)


def test_dsn_failed_and_delivered_update_recipients(alice: Mailbox) -> None:
    original = sent_message(alice, message_id=ORIGINAL_ID, recipients=[REMOTE, REMOTE2])
    raw = dsn_for(
        [
            (REMOTE, "failed", "5.1.1", "smtp; 550 5.1.1 user unknown"),
            (REMOTE2, "delivered", "2.0.0", ""),
        ]
    )
    item = receive(raw, [ALICE], mail_from="")
    failed = _status(original, REMOTE)
    assert failed.status == RecipientStatus.FAILED
    assert failed.smtp_code == "5.1.1"
    assert "550 5.1.1 user unknown" in failed.status_detail
    assert _status(original, REMOTE2).status == RecipientStatus.DELIVERED
    assert "2 destinataire(s) mis à jour" in item.outcome_detail
    report_copy = copy_in(alice)
    assert report_copy.kind == MessageKind.DSN
    assert report_copy.request_read_receipt is False


def test_mdn_displayed_processed_and_error(alice: Mailbox) -> None:
    original = sent_message(alice, message_id=ORIGINAL_ID, recipients=[REMOTE, REMOTE2])
    receive(mdn_for(REMOTE, "processed"), mail_from=REMOTE)
    assert _status(original, REMOTE).status == RecipientStatus.DELIVERED
    receive(mdn_for(REMOTE, "displayed", manual=True), mail_from=REMOTE)
    assert _status(original, REMOTE).status == RecipientStatus.READ
    # A later "processed" does not move a read message back.
    Message.objects.filter(kind=MessageKind.MDN).delete()
    receive(mdn_for(REMOTE, "processed"), mail_from=REMOTE)
    assert _status(original, REMOTE).status == RecipientStatus.READ
    receive(mdn_for(REMOTE2, "processed", error=("902", "Identifiant de patient inconnu")), mail_from=REMOTE2)
    failed = _status(original, REMOTE2)
    assert failed.status == RecipientStatus.FAILED
    assert failed.smtp_code == "902"
    assert "902 — Identifiant de patient inconnu" in failed.status_detail
    # The integration error stays visible when the recipient then displays the message.
    receive(mdn_for(REMOTE2, "displayed", manual=True), mail_from=REMOTE2)
    assert _status(original, REMOTE2).status == RecipientStatus.FAILED


def test_dsn_does_not_undo_a_read_receipt(alice: Mailbox) -> None:
    original = sent_message(alice, message_id=ORIGINAL_ID, recipients=[REMOTE])
    Recipient.objects.filter(message=original).update(status=RecipientStatus.READ)
    receive(dsn_for([(REMOTE, "failed", "5.0.0", "smtp; 550 late bounce")]), mail_from="")
    assert _status(original, REMOTE).status == RecipientStatus.READ


def test_reports_are_never_acknowledged(alice: Mailbox) -> None:
    sent_message(alice, message_id=ORIGINAL_ID, recipients=[REMOTE])
    # A report that (wrongly) asks for an acknowledgement.
    raw = mdn_for(REMOTE, "displayed").replace(
        b"MIME-Version:", f"Disposition-Notification-To: {REMOTE}\r\nMIME-Version:".encode(), 1
    )
    assert mime.parse_message(raw).disposition_notification_to == REMOTE
    receive(raw, mail_from=REMOTE)
    report_copy = copy_in(alice)
    assert report_copy.kind == MessageKind.MDN
    assert report_copy.request_read_receipt is False
    assert report_copy.is_read is True
    assert Message.objects.filter(direction=Direction.OUTGOING).count() == 1  # only the original


def test_report_for_unknown_or_foreign_message_changes_nothing(alice: Mailbox, bob: Mailbox) -> None:
    original = sent_message(bob, message_id=ORIGINAL_ID, recipients=[REMOTE])
    # Addressed to alice, about a message bob sent: not applied.
    item = receive(dsn_for([(REMOTE, "failed", "5.1.1", "")]), [ALICE], mail_from="")
    assert _status(original, REMOTE).status == RecipientStatus.SENT
    assert "introuvable" in item.outcome_detail
    assert item.outcome == InboundStatus.PROCESSED


def test_local_delivery_marks_recipient_delivered(alice: Mailbox, bob: Mailbox) -> None:
    original = sent_message(alice, message_id="<local-1@enrs-demo.mssante.fr>", recipients=[BOB])
    raw = build_mail(sender=ALICE, to=[BOB], message_id="<local-1@enrs-demo.mssante.fr>")
    receive(raw, [BOB], mail_from=ALICE)
    recipient = _status(original, BOB)
    assert recipient.status == RecipientStatus.DELIVERED
    assert copy_in(bob).message_id == "<local-1@enrs-demo.mssante.fr>"


# --- Encryption at rest -------------------------------------------------------------------------------------


def test_database_holds_no_plaintext_body(alice: Mailbox) -> None:
    receive(
        build_mail(
            attachments=[mime.Attachment("note.txt", "text/plain", SECRET_BODY.encode())],
            xdm_zip=make_xdm(small_cda()),
        )
    )
    assert copy_in(alice).body is not None
    needle = "secret 7Q3X"
    hex_needle = needle.encode().hex()
    with connection.cursor() as cursor:
        for table in (
            "messagerie_inboundmessage",
            "messagerie_message",
            "messagerie_attachment",
            "vault_blob",
        ):
            cursor.execute(f"SELECT row_to_json(t)::text FROM {table} t")  # noqa: S608 - fixed names
            rows = [row[0] for row in cursor.fetchall()]
            assert rows, table
            for text in rows:
                assert needle not in text, table
                assert hex_needle not in text.lower(), table
    for blob in Blob.objects.exclude(ciphertext=None):
        assert needle.encode() not in bytes(blob.ciphertext or b"")


# --- Trust space --------------------------------------------------------------------------------------------


def test_domain_is_trusted(db: None) -> None:
    TrustedDomain.objects.create(domain=FOREIGN)
    TrustedDomain.objects.create(domain="radie.mssante.fr", is_active=False)
    TrustedDomain.objects.create(domain=".medecin.mssante.fr")
    assert incoming.domain_is_trusted(DOMAIN)  # hosted
    assert incoming.domain_is_trusted(FOREIGN.upper())
    assert incoming.domain_is_trusted("cabinet.medecin.mssante.fr")
    assert not incoming.domain_is_trusted("medecin.mssante.fr")  # the dot entry covers sub-domains only
    assert not incoming.domain_is_trusted("radie.mssante.fr")
    assert not incoming.domain_is_trusted("gmail.com")
    assert not incoming.domain_is_trusted("")
    assert not incoming.domain_is_trusted("bad domain")


def test_address_is_hosted(alice: Mailbox) -> None:
    make_box(f"ferme@{DOMAIN}", active=False)
    assert incoming.address_is_hosted(ALICE.upper())
    assert not incoming.address_is_hosted(f"ferme@{DOMAIN}")
    assert not incoming.address_is_hosted(f"inconnu@{DOMAIN}")
    assert not incoming.address_is_hosted("pas une adresse")


def test_trusted_domains_command_load_and_export(db: None, tmp_path: Any) -> None:
    TrustedDomain.objects.create(domain="ancien.mssante.fr")
    TrustedDomain.objects.create(domain="revenu.mssante.fr", is_active=False)
    source = tmp_path / "domaines.txt"
    source.write_text(
        "# liste ANS\n"
        "ch-exemple.mssante.fr  CH Exemple  # opérateur régional\n"
        "\n"
        "Revenu.MSSante.fr\n"
        ".medecin.mssante.fr\n",
        encoding="utf-8",
    )
    out = io.StringIO()
    call_command("mssante_trusted_domains", "load", str(source), "--replace", stdout=out)
    assert "ajoutés : 2, réactivés : 1, inchangés : 0, désactivés : 1" in out.getvalue()
    active = dict(TrustedDomain.objects.filter(is_active=True).values_list("domain", "operator"))
    assert active == {
        "ch-exemple.mssante.fr": "CH Exemple",
        "revenu.mssante.fr": "",
        ".medecin.mssante.fr": "",
    }
    assert TrustedDomain.objects.get(domain="ancien.mssante.fr").is_active is False
    target = tmp_path / "export.txt"
    call_command("mssante_trusted_domains", "export", str(target), stdout=io.StringIO())
    exported = target.read_text(encoding="utf-8")
    assert exported.splitlines()[1:] == [
        ".medecin.mssante.fr",
        "ch-exemple.mssante.fr CH Exemple",
        "revenu.mssante.fr",
    ]
    # Round trip: loading the export changes nothing.
    out = io.StringIO()
    call_command("mssante_trusted_domains", "load", str(target), "--replace", stdout=out)
    assert "ajoutés : 0, réactivés : 0, inchangés : 3, désactivés : 0" in out.getvalue()
    assert AuditEvent.objects.filter(action="messagerie.trusted_domain.load").count() == 2


def test_trusted_domains_bad_file_loads_nothing(db: None, tmp_path: Any) -> None:
    source = tmp_path / "domaines.txt"
    source.write_text("bon.mssante.fr\npas un domaine\nexemple..fr\n", encoding="utf-8")
    with pytest.raises(CommandError) as excinfo:
        call_command("mssante_trusted_domains", "load", str(source))
    assert "ligne 2" in str(excinfo.value)
    assert "ligne 3" in str(excinfo.value)
    assert TrustedDomain.objects.count() == 0
