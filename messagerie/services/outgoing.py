"""Outgoing mail: drafts, sending (sender's copy, recipients, outbox row), the relay attempt, MDNs.

Writing a message creates, in one transaction, the sender's copy in "sent" (body and attachments
encrypted in the vault, the exact MIME sent kept encrypted in ``Message.raw``), one ``Recipient`` row per
address and the ``Delivery`` outbox row; the ``deliver`` task is queued once the transaction commits.

The ``deliver`` task (``deliveries_attempt_batch``) claims its row and the other due rows in one
statement and sends them one after the other over the worker's SMTP connection; ``delivery_attempt`` is
the same attempt for one row. Either claims the row, sends the stored MIME to the recipients still queued —
locally (``incoming.inbound_accept``) for hosted domains when local delivery is on, over SMTP/TLS to the
relay otherwise — and records the attempt with every recipient's answer. The accepted recipients are
marked sent by one autocommitted UPDATE right after the relay's 250, before any other bookkeeping, so that
the window in which a worker killed after the 250 would send the message again is as short as possible
(the next attempt finds no queued recipient and closes the row without sending); in the batch path a
message every recipient of which was accepted is recorded by a single statement (recipients sent, attempt
row, row done) issued right after its 250. The Message-ID
is generated once, when the message is written, and is the same on every retry (receivers deduplicate by
Message-ID).
"""

from __future__ import annotations

import json
import logging
import socket
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, NamedTuple

import psycopg
from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import connection, transaction
from django.db.models import F, Q
from django.http import HttpRequest
from django.utils import timezone

from annuaire.models import MailboxKind, Professional
from enrs.audit.services import audit_record
from enrs.outbox.models import AttemptOutcome, OutboxStatus
from enrs.outbox.services import (
    backoff_delay,
    lease_seconds,
    outbox_claim,
    outbox_deadline,
    outbox_dispatch_on_commit,
    outbox_fail,
    outbox_requeue,
    outbox_retry,
    outbox_succeed,
)
from enrs.patients.ins import mod97_is_valid
from enrs.patients.models import Patient
from enrs.usage.services import usage_emit
from enrs.vault.models import Blob
from enrs.vault.services import blob_put, blob_read
from messagerie import smtp_client
from messagerie.models import (
    ApplicationToken,
    Attachment,
    Delegation,
    Delivery,
    DeliveryAttempt,
    Direction,
    Folder,
    Mailbox,
    Message,
    MessageKind,
    Recipient,
    RecipientStatus,
    TrustedDomain,
)
from messagerie.standards import mime, reports

logger = logging.getLogger(__name__)

PRODUCT = "ENRS"
# OID arc under which ENRS numbers the CDA documents and XDM submission sets it produces.
DEFAULT_DOCUMENT_OID_ROOT = "1.2.250.1.999.1"
MAX_SUBJECT = 998
MAX_RECIPIENTS = 100


# --- Helpers --------------------------------------------------------------------------------------------


def _domain() -> str:
    return str(getattr(settings, "ENRS_MSSANTE_DOMAIN", "enrs-demo.mssante.fr"))


def _hosted_domains() -> list[str]:
    return [d.strip().lower() for d in getattr(settings, "MSSANTE_HOSTED_DOMAINS", [_domain()]) if d.strip()]


def _document_oid_root() -> str:
    return str(getattr(settings, "MSSANTE_DOCUMENT_OID_ROOT", DEFAULT_DOCUMENT_OID_ROOT))


def new_message_id() -> str:
    """A fresh ``<uuid@domain>`` Message-ID (the operator's MSSanté domain)."""
    return f"<{uuid.uuid4().hex}@{_domain()}>"


def _domain_of(address: str) -> str:
    return address.rpartition("@")[2].lower()


def address_is_hosted(address: str) -> bool:
    return _domain_of(address) in _hosted_domains()


def _normalize(addresses: Sequence[str]) -> list[str]:
    seen: list[str] = []
    for raw in addresses:
        address = (raw or "").strip()
        if address and address.lower() not in [s.lower() for s in seen]:
            seen.append(address)
    return seen


def recipients_check(addresses: list[str]) -> list[str]:
    """French errors for the addresses that may not receive a message (empty list: all acceptable).

    Acceptable: an address whose domain is hosted here (``MSSANTE_HOSTED_DOMAINS``) or is an active
    domain of the trust space (``TrustedDomain``; an entry ``.example.fr`` covers its sub-domains), or a
    patient address ``<INS>@patient.mssante.fr`` whose matricule has a valid key."""
    errors: list[str] = []
    trusted = [
        *_hosted_domains(),
        *TrustedDomain.objects.filter(is_active=True).values_list("domain", flat=True),
    ]
    for address in addresses:
        shown = address[:200]
        parts = mime.split_address(address)
        if parts is None:
            errors.append(f"« {shown} » n'est pas une adresse de messagerie valide.")
            continue
        local, domain = parts
        if domain == mime.PATIENT_DOMAIN:
            if not mod97_is_valid(local):
                errors.append(
                    f"« {shown} » : une adresse patient doit être le matricule INS (15 caractères, clé "
                    "valide) suivi de @patient.mssante.fr."
                )
            continue
        if not mime.is_mssante_address(address, trusted):
            errors.append(
                f"« {shown} » n'appartient pas à l'espace de confiance MSSanté : le message ne peut pas "
                "lui être envoyé."
            )
    return errors


def _may_send(mailbox: Mailbox, actor: Any) -> bool:
    if actor is None or not getattr(actor, "is_authenticated", False):
        return False
    if mailbox.kind == MailboxKind.PERSONAL:
        return bool(mailbox.owner_id == actor.pk)
    return Delegation.objects.filter(
        mailbox=mailbox, user=actor, revoked_at__isnull=True, can_send=True
    ).exists()


def _token_may_send(mailbox: Mailbox, token: ApplicationToken) -> bool:
    return (
        token.mailbox_id == mailbox.pk
        and token.revoked_at is None
        and mailbox.kind == MailboxKind.APPLICATION
    )


def _check_sender(
    mailbox: Mailbox,
    actor: Any,
    request: HttpRequest | None,
    application_token: ApplicationToken | None = None,
) -> None:
    """A person sends from his personal box or an organisational box he is a delegate of (with
    ``can_send``); a software sends from its applicative box with one of its valid API tokens."""
    if not mailbox.is_active:
        raise ValidationError(
            "Cette boîte aux lettres est désactivée : elle ne peut plus envoyer de message."
        )
    allowed = (
        _token_may_send(mailbox, application_token)
        if application_token is not None
        else _may_send(mailbox, actor)
    )
    if not allowed:
        detail: dict[str, Any] = {"reason": "messagerie.send"}
        if application_token is not None:
            detail["token"] = application_token.prefix
        audit_record(
            action="access.denied",
            request=request,
            actor=actor if getattr(actor, "is_authenticated", False) else None,
            target=mailbox,
            outcome="denied",
            detail=detail,
        )
        raise PermissionDenied("Vous n'êtes pas autorisé à envoyer des messages depuis cette boîte.")


def _check_subject(subject: str) -> str:
    subject = (subject or "").strip()
    if "\r" in subject or "\n" in subject or "\x00" in subject:
        raise ValidationError({"subject": "L'objet ne doit pas contenir de retour à la ligne."})
    if len(subject) > MAX_SUBJECT:
        raise ValidationError({"subject": f"L'objet ne doit pas dépasser {MAX_SUBJECT} caractères."})
    return subject


def _check_attachments(mailbox: Mailbox, attachments: Sequence[Attachment], draft: Message | None) -> None:
    for attachment in attachments:
        attached_elsewhere = attachment.message_id is not None and (
            draft is None or attachment.message_id != draft.pk
        )
        if attachment.mailbox_id != mailbox.pk or attached_elsewhere:
            raise ValidationError(f"La pièce jointe « {attachment.filename} » n'appartient pas à ce message.")
        if attachment.quarantined:
            raise ValidationError(f"La pièce jointe « {attachment.filename} » est en quarantaine.")


def _check_draft(mailbox: Mailbox, draft: Message | None) -> None:
    if draft is not None and (
        draft.mailbox_id != mailbox.pk
        or draft.folder != Folder.DRAFTS
        or draft.direction != Direction.OUTGOING
    ):
        raise ValidationError("Ce brouillon n'existe pas dans cette boîte.")


# --- Drafts ---------------------------------------------------------------------------------------------


def draft_save(
    *,
    mailbox: Mailbox,
    actor: Any,
    to: list[str],
    cc: list[str],
    subject: str,
    body: str,
    patient: Patient | None = None,
    attachments: Sequence[Attachment] = (),
    request_read_receipt: bool = False,
    no_reply: bool = False,
    draft: Message | None = None,
    request: HttpRequest | None = None,
    application_token: ApplicationToken | None = None,
) -> Message:
    """Create or update a draft (addresses are kept as typed: they are checked when sending)."""
    _check_sender(mailbox, actor, request, application_token)
    if application_token is not None:
        actor = None
    _check_draft(mailbox, draft)
    subject = _check_subject(subject)
    to_list, cc_list = _normalize(to)[:MAX_RECIPIENTS], _normalize(cc)[:MAX_RECIPIENTS]
    if any(len(a) > 255 for a in [*to_list, *cc_list]):
        raise ValidationError("Adresse trop longue (255 caractères au plus).")
    _check_attachments(mailbox, attachments, draft)
    with transaction.atomic():
        message = draft or Message(
            mailbox=mailbox,
            direction=Direction.OUTGOING,
            folder=Folder.DRAFTS,
            message_id=new_message_id(),
            from_address=mailbox.address,
        )
        message.subject = subject
        message.to_addresses = to_list
        message.cc_addresses = cc_list
        message.patient = patient
        message.request_read_receipt = request_read_receipt
        message.no_reply = no_reply
        message.author = actor
        message.body = blob_put(body.encode("utf-8"), purpose="messagerie.body", content_type="text/plain")
        message.save()
        for attachment in attachments:
            attachment.message = message
            attachment.save(update_fields=["message"])
        message.has_attachments = message.attachments.exists()
        message.size = len(body.encode("utf-8")) + sum(a.size for a in message.attachments.all())
        message.save(update_fields=["has_attachments", "size", "updated_at"])
        audit_record(
            action="messagerie.draft.save",
            request=request,
            actor=actor,
            target=message,
            detail={"recipients": len(to_list) + len(cc_list)}
            | ({"token": application_token.prefix} if application_token is not None else {}),
        )
    return message


# --- CDA + XDM ------------------------------------------------------------------------------------------


def _build_cda_xdm(
    *,
    mailbox: Mailbox,
    actor: Any,
    patient: Patient,
    pdf: bytes,
    document_type_code: str,
    title: str,
    recipients: list[str],
) -> tuple[bytes, dict[str, str]]:
    """A CDA level 1 embedding `pdf`, packaged as IHE_XDM.zip. Returns (zip, description of the doc)."""
    from enrs.standards import cda, ebrim
    from enrs.standards.valuesets import author_specialty, lookup
    from messagerie.standards import xdm

    if not patient.may_carry_ins:
        raise ValidationError(
            "Le document CDA ne peut pas être produit : l'identité du patient n'est pas qualifiée. "
            "Seule une identité qualifiée (INS vérifié par le téléservice INSi et pièce d'identité à haut "
            "niveau de confiance) peut porter le matricule INS. Qualifiez l'identité puis renvoyez le "
            "message."
        )
    if not patient.birth_place_insee:
        raise ValidationError("Le lieu de naissance du patient est nécessaire pour produire le document CDA.")
    type_code = lookup("type_code", document_type_code)
    if type_code is None:
        raise ValidationError(f"Type de document « {document_type_code} » inconnu (jeu de valeurs J07).")
    idnat = getattr(actor, "idnat_ps", "") or ""
    professional = Professional.objects.filter(idnat_ps=idnat).first() if idnat else None
    if professional is None and actor is None:
        professional = mailbox.professional  # a software sender signs for the box's professional, if any
    if professional is None:
        raise ValidationError(
            "Votre compte n'est relié à aucun professionnel de l'annuaire : le document CDA ne peut pas "
            "être signé à votre nom."
        )
    structure = mailbox.structure
    if structure is None:
        exercice = professional.exercices.select_related("structure").order_by("pk").first()
        structure = exercice.structure if exercice is not None else None
    if structure is None or not structure.idnat_struct:
        raise ValidationError(
            "Aucune structure d'exercice identifiée pour l'auteur : le document CDA ne peut pas être produit."
        )
    facility = lookup("facility_type", structure.sector_code) or lookup("facility_type", "SA01")
    setting = lookup("practice_setting", "ETABLISSEMENT" if structure.finess_et else "AMBULATOIRE")
    confidentiality = lookup("confidentiality", "N")
    content_type = lookup("content_type", "07")
    if facility is None or setting is None or confidentiality is None or content_type is None:
        raise ValidationError("Jeux de valeurs incomplets : le document CDA ne peut pas être produit.")
    now = timezone.now()
    root = _document_oid_root()
    doc_ext = uuid.uuid4().hex
    specialty = author_specialty(professional.profession_code, professional.specialty_code)
    author = cda.Person(
        idnat_ps=professional.idnat_ps,
        family=professional.last_name,
        given=professional.first_name,
        profession_code=f"G15_{professional.profession_code}",
        specialty_code=specialty,
    )
    organization = cda.Organization(idnat_struct=structure.idnat_struct, name=structure.name)
    identity = patient.cda_identity()
    spec = cda.CdaLevel1Spec(
        document_id_root=root,
        document_id_extension=doc_ext,
        set_id_root=root,
        set_id_extension=uuid.uuid4().hex,
        version_number=1,
        type_code=type_code,
        title=title or type_code.display,
        effective_time=now,
        confidentiality=confidentiality,
        patient=identity,
        author=author,
        author_organization=organization,
        custodian=organization,
        legal_authenticator=author,
        legal_authentication_time=now,
        service_start=now,
        service_end=None,
        encounter_start=now,
        encounter_end=None,
        facility_type=facility,
        practice_setting=setting,
        body=pdf,
    )
    try:
        document = cda.build_cda_level1(spec)
    except (ValueError, cda.CdaError) as exc:
        raise ValidationError(f"Le document CDA n'a pas pu être produit : {exc}") from exc
    person = (
        f"{professional.idnat_ps}^{professional.last_name.upper()}^{professional.first_name}"
        "^^^^^^&1.2.250.1.71.4.2.1&ISO^D^^^IDNPS"
    )
    institution = f"{structure.name}^^^^^&1.2.250.1.71.4.2.2&ISO^IDNST^^^{structure.idnat_struct}"
    xdm_author = ebrim.Author(person=person, institution=institution)
    try:
        entry = xdm.entry_from_cda(
            document, entry_uuid=ebrim.new_uuid(), authors=(xdm_author,), legal_authenticator=person
        )
        submission = ebrim.SubmissionSet(
            entry_uuid=ebrim.new_uuid(),
            unique_id=f"{root}.{uuid.uuid4().int}",
            source_id=root,
            patient_id=entry.patient_id,
            submission_time=xdm.xdm_time(now),
            content_type=content_type,
            authors=(xdm_author,),
            title=title or type_code.display,
        )
        archive = xdm.build_xdm(
            [xdm.XdmDocument(content=document, entry=entry)],
            submission,
            sender=mailbox.address,
            recipients=recipients,
            product=PRODUCT,
            created_at=now,
        )
    except xdm.XdmError as exc:
        raise ValidationError(f"L'archive IHE_XDM n'a pas pu être produite : {exc.message}") from exc
    description = {
        "document_id": entry.unique_id,
        "type_code": type_code.code,
        "type_display": type_code.display,
        "title": entry.title,
    }
    return archive, description


# --- Sending --------------------------------------------------------------------------------------------


def _build_mime(
    *,
    message: Message,
    body: str,
    files: list[mime.Attachment],
    xdm_zip: bytes | None,
) -> bytes:
    try:
        built = mime.build_message(
            sender=message.from_address,
            to=list(message.to_addresses),
            cc=list(message.cc_addresses),
            subject=message.subject,
            message_id=message.message_id,
            date=message.sent_at or timezone.now(),
            nil=str(getattr(settings, "MSSANTE_NIL", "")),
            text=body,
            attachments=files,
            xdm_zip=xdm_zip,
            disposition_notification_to=message.from_address if message.request_read_receipt else None,
            patient_may_reply=not message.no_reply,
        )
    except mime.MimeError as exc:
        raise ValidationError(exc.message) from exc
    return bytes(built)


def _usage_structure(mailbox: Mailbox) -> int | None:
    return mailbox.structure_id


def message_send(
    *,
    mailbox: Mailbox,
    actor: Any,
    to: list[str],
    cc: list[str],
    subject: str,
    body: str,
    patient: Patient | None = None,
    attachments: Sequence[Attachment] = (),
    cda_from_pdf: Attachment | None = None,
    document_type_code: str = "11488-4",
    request_read_receipt: bool = False,
    no_reply: bool = False,
    draft: Message | None = None,
    request: HttpRequest | None = None,
    in_reply_to: str = "",
    application_token: ApplicationToken | None = None,
) -> Message:
    """Send a message: the sender's copy in "sent", its recipients, the outbox row; the relay task is
    queued when the transaction commits. With `cda_from_pdf` (an uploaded PDF) a CDA level 1 is built
    and sent as IHE_XDM.zip next to the PDF (the patient's identity must be qualified)."""
    _check_sender(mailbox, actor, request, application_token)
    if application_token is not None:
        actor = None  # a software sender: no person is the author
    _check_draft(mailbox, draft)
    subject = _check_subject(subject)
    to_list, cc_list = _normalize(to), _normalize(cc)
    cc_list = [a for a in cc_list if a.lower() not in {t.lower() for t in to_list}]
    if not to_list:
        raise ValidationError({"to": "Indiquez au moins un destinataire."})
    if len(to_list) + len(cc_list) > MAX_RECIPIENTS:
        raise ValidationError({"to": f"{MAX_RECIPIENTS} destinataires au plus."})
    errors = recipients_check([*to_list, *cc_list])
    if errors:
        raise ValidationError({"to": errors})
    if in_reply_to and ("\n" in in_reply_to or "\r" in in_reply_to or len(in_reply_to) > 255):
        raise ValidationError("Référence du message d'origine invalide.")
    all_attachments = list(attachments)
    if draft is not None:
        all_attachments += [a for a in draft.attachments.all() if a.pk not in {b.pk for b in all_attachments}]
    if cda_from_pdf is not None:
        if patient is None:
            raise ValidationError({"patient": "Un document CDA concerne un patient : indiquez-le."})
        if cda_from_pdf.content_type != "application/pdf":
            raise ValidationError("Le document à transmettre en CDA doit être un PDF.")
        if cda_from_pdf.pk not in {a.pk for a in all_attachments}:
            all_attachments.append(cda_from_pdf)
    _check_attachments(mailbox, all_attachments, draft)

    files = [
        mime.Attachment(filename=a.filename, content_type=a.content_type, data=blob_read(a.blob))
        for a in all_attachments
    ]
    xdm_zip: bytes | None = None
    xdm_description: dict[str, str] | None = None
    if cda_from_pdf is not None:
        assert patient is not None
        pdf = next(f.data for f, a in zip(files, all_attachments, strict=True) if a.pk == cda_from_pdf.pk)
        if not pdf.startswith(b"%PDF"):
            raise ValidationError("Le fichier fourni n'est pas un PDF valide.")
        xdm_zip, xdm_description = _build_cda_xdm(
            mailbox=mailbox,
            actor=actor,
            patient=patient,
            pdf=pdf,
            document_type_code=document_type_code,
            title=subject,
            recipients=[*to_list, *cc_list],
        )

    now = timezone.now()
    with transaction.atomic():
        if draft is not None:
            message = Message.objects.select_for_update().get(pk=draft.pk)
            if message.folder != Folder.DRAFTS:
                raise ValidationError("Ce brouillon a déjà été envoyé.")
        else:
            message = Message(mailbox=mailbox, direction=Direction.OUTGOING, message_id=new_message_id())
        message.folder = Folder.SENT
        message.kind = MessageKind.MESSAGE
        message.from_address = mailbox.address
        message.to_addresses = to_list
        message.cc_addresses = cc_list
        message.subject = subject
        message.in_reply_to = in_reply_to
        message.sent_at = now
        message.patient = patient
        message.patient_ins = patient.ins if patient is not None and patient.may_carry_ins else ""
        message.request_read_receipt = request_read_receipt
        message.no_reply = no_reply
        message.author = actor
        message.is_read = True
        raw = _build_mime(message=message, body=body, files=files, xdm_zip=xdm_zip)
        max_bytes = int(getattr(settings, "MSSANTE_MAX_MESSAGE_BYTES", 25 * 1024 * 1024))
        if len(raw) > max_bytes:
            raise ValidationError(
                f"Le message dépasse la taille maximale autorisée ({max_bytes // (1024 * 1024)} Mo)."
            )
        if xdm_description is not None:
            message.cda_codes = xdm_description["type_code"]
        message.body = blob_put(body.encode("utf-8"), purpose="messagerie.body", content_type="text/plain")
        message.raw = blob_put(raw, purpose="messagerie.raw", content_type="message/rfc822")
        message.size = len(raw)
        message.has_attachments = bool(all_attachments) or xdm_zip is not None
        message.save()
        for attachment in all_attachments:
            attachment.message = message
            attachment.save(update_fields=["message"])
        if xdm_zip is not None and xdm_description is not None:
            Attachment.objects.create(
                message=message,
                mailbox=mailbox,
                uploaded_by=actor,
                filename="IHE_XDM.zip",
                content_type="application/zip",
                size=len(xdm_zip),
                blob=blob_put(xdm_zip, purpose="messagerie.attachment", content_type="application/zip"),
                is_xdm=True,
                documents=[xdm_description],
            )
        Recipient.objects.bulk_create(
            [Recipient(message=message, address=a, field="to", status_at=now) for a in to_list]
            + [Recipient(message=message, address=a, field="cc", status_at=now) for a in cc_list]
        )
        _delivery_create(message)
        usage_emit(
            "messagerie.message_sent",
            structure_id=_usage_structure(mailbox),
            dims={
                "recipients": len(to_list) + len(cc_list),
                "attachments": len(all_attachments),
                "cda": xdm_zip is not None,
                "box_kind": mailbox.kind,
            },
            actor=actor,
        )
        audit_record(
            action="messagerie.message.send",
            request=request,
            actor=actor,
            target=message,
            patient_ins=message.patient_ins,
            detail={
                "message_id": message.message_id,
                "recipients": [*to_list, *cc_list],
                "attachments": len(all_attachments),
                "cda": xdm_description["type_code"] if xdm_description else "",
            }
            | ({"token": application_token.prefix} if application_token is not None else {}),
        )
    return message


def _delivery_create(message: Message) -> Delivery:
    from messagerie import tasks

    seconds = float(getattr(settings, "MSSANTE_DELIVERY_DEADLINE_SECONDS", 24 * 3600.0))
    delivery = Delivery.objects.create(message=message, deadline=outbox_deadline(seconds=seconds))
    outbox_dispatch_on_commit(delivery, tasks.deliver)
    return delivery


def message_send_report(*, original: Message, disposition: str, actor: Any = None) -> Message:
    """Send an MDN (RFC 8098) for the received message `original` to its Disposition-Notification-To.

    `disposition` is ``displayed`` (read by a person: `actor` given, manual mode) or ``processed``… Never
    for a report, never twice, never when the message did not ask for one."""
    if original.direction != Direction.INCOMING or original.raw is None:
        raise ValidationError("Un accusé de lecture ne s'envoie que pour un message reçu.")
    if original.kind != MessageKind.MESSAGE:
        raise ValidationError("On n'accuse pas réception d'un accusé de réception.")
    raw = blob_read(original.raw)
    try:
        parsed = mime.parse_message(raw)
    except mime.MimeError as exc:
        raise ValidationError(exc.message) from exc
    if not reports.should_send_mdn(parsed, automatic=actor is None):
        raise ValidationError("Ce message ne demande pas d'accusé de lecture (ou n'en accepte pas).")
    target = parsed.disposition_notification_to
    mailbox = original.mailbox
    now = timezone.now()
    message_id = new_message_id()
    try:
        mdn = reports.build_mdn(
            original=raw,
            reporting_ua=f"{_domain()}; {PRODUCT}",
            final_recipient=mailbox.address,
            from_addr=mailbox.address,
            message_id=message_id,
            date=now,
            manual=actor is not None,
            disposition_type=disposition,
            include_original=False,
        )
    except reports.ReportError as exc:
        raise ValidationError(exc.message) from exc
    mdn_bytes = bytes(mdn)
    with transaction.atomic():
        locked = Message.objects.select_for_update().get(pk=original.pk)
        if locked.read_receipt_sent_at is not None:
            raise ValidationError("L'accusé de lecture de ce message a déjà été envoyé.")
        report = Message.objects.create(
            mailbox=mailbox,
            direction=Direction.OUTGOING,
            kind=MessageKind.MDN,
            folder=Folder.SENT,
            message_id=message_id,
            in_reply_to=original.message_id,
            subject=str(mdn["Subject"] or "")[:MAX_SUBJECT],
            from_address=mailbox.address,
            to_addresses=[target],
            sent_at=now,
            raw=blob_put(mdn_bytes, purpose="messagerie.raw", content_type="message/rfc822"),
            size=len(mdn_bytes),
            is_read=True,
            author=actor,
        )
        Recipient.objects.create(message=report, address=target, field="to", status_at=now)
        locked.read_receipt_sent_at = now
        locked.save(update_fields=["read_receipt_sent_at", "updated_at"])
        _delivery_create(report)
        audit_record(
            action="messagerie.report.send",
            actor=actor,
            target=report,
            patient_ins=original.patient_ins,
            detail={"original": original.message_id, "disposition": disposition},
        )
    return report


def recipient_retry(*, recipient: Recipient, actor: Any, request: HttpRequest | None = None) -> Delivery:
    """ "Relancer": a failed recipient goes back to the queue and the message's delivery is reopened."""
    message = recipient.message
    _check_sender(message.mailbox, actor, request)
    with transaction.atomic():
        locked_recipient = Recipient.objects.select_for_update().get(pk=recipient.pk)
        if locked_recipient.status != RecipientStatus.FAILED:
            raise ValidationError("Seul un destinataire en échec peut être relancé.")
        delivery = Delivery.objects.select_for_update().get(message=message)
        seconds = float(getattr(settings, "MSSANTE_DELIVERY_DEADLINE_SECONDS", 24 * 3600.0))
        if delivery.status == OutboxStatus.FAILED:
            delivery = outbox_retry(delivery, deadline=outbox_deadline(seconds=seconds))
        elif delivery.status in (OutboxStatus.DONE, OutboxStatus.CANCELLED):
            delivery.status = OutboxStatus.PENDING
            delivery.next_attempt_at = None
            delivery.done_at = None
            delivery.deadline = outbox_deadline(seconds=seconds)
            delivery.save(update_fields=["status", "next_attempt_at", "done_at", "deadline", "updated_at"])
        previous = locked_recipient.status_detail
        locked_recipient.status = RecipientStatus.QUEUED
        locked_recipient.status_detail = ""
        locked_recipient.smtp_code = ""
        locked_recipient.status_at = timezone.now()
        locked_recipient.save(update_fields=["status", "status_detail", "smtp_code", "status_at"])
        from messagerie import tasks

        outbox_dispatch_on_commit(delivery, tasks.deliver)
        audit_record(
            action="messagerie.recipient.retry",
            request=request,
            actor=actor,
            target=message,
            detail={"recipient": locked_recipient.address, "previous_error": previous[:200]},
        )
    return delivery


# --- The relay attempt ----------------------------------------------------------------------------------


def relay_config() -> smtp_client.RelayConfig | None:
    host = str(getattr(settings, "MSSANTE_RELAY_HOST", "") or "")
    if not host:
        return None
    return smtp_client.RelayConfig(
        host=host,
        port=int(getattr(settings, "MSSANTE_RELAY_PORT", 587)),
        security=str(getattr(settings, "MSSANTE_RELAY_SECURITY", "starttls")),
        cert=str(getattr(settings, "MSSANTE_RELAY_CERT", "")),
        key=str(getattr(settings, "MSSANTE_RELAY_KEY", "")),
        ca_bundle=str(getattr(settings, "MSSANTE_RELAY_CA_BUNDLE", "")),
        timeout=float(getattr(settings, "MSSANTE_RELAY_TIMEOUT", 30.0)),
        local_hostname=_domain(),
    )


def _delivers_locally(address: str) -> bool:
    if not address_is_hosted(address):
        return False
    return bool(getattr(settings, "MSSANTE_LOCAL_DELIVERY", True)) or relay_config() is None


class _Answer:
    __slots__ = ("channel", "code", "message", "outcome")

    def __init__(self, code: str, message: str, outcome: str, channel: str) -> None:
        self.code, self.message, self.outcome, self.channel = code, message, outcome, channel

    def as_json(self) -> dict[str, str]:
        return {
            "code": self.code,
            "message": self.message[:500],
            "outcome": self.outcome,
            "channel": self.channel,
        }


def _deliver_local(message: Message, raw: bytes, addresses: list[str]) -> dict[str, _Answer]:
    from messagerie.services import incoming

    accept = getattr(incoming, "inbound_accept", None)
    if accept is None:
        return {
            a: _Answer("local", "Distribution locale indisponible.", "temporary", "local") for a in addresses
        }
    try:
        accept(raw=raw, mail_from=message.from_address, rcpt_to=addresses, peer="local")
    except ValidationError as exc:
        text = "; ".join(exc.messages)
        return {a: _Answer("550", text, "permanent", "local") for a in addresses}
    except Exception as exc:  # the listener's storage is down: try again later
        return {a: _Answer("local", f"{type(exc).__name__}: {exc}", "temporary", "local") for a in addresses}
    answers = {a: _Answer("250", "Distribué localement.", "sent", "local") for a in addresses}
    _commit_sent(message, answers)
    return answers


def _deliver_smtp(message: Message, raw: bytes, addresses: list[str]) -> dict[str, _Answer]:
    """Submit to the relay. No database work here: the caller records the answer right after."""
    try:
        config = relay_config()
    except ValueError as exc:
        return {a: _Answer("config", str(exc), "temporary", "smtp") for a in addresses}
    if config is None:
        return {
            a: _Answer("no-relay", "Aucun relais SMTP n'est configuré.", "temporary", "smtp")
            for a in addresses
        }
    try:
        result = smtp_client.relay_client(config).submit(
            mail_from=message.from_address, rcpt_to=addresses, data=raw
        )
    except smtp_client.SmtpError as exc:
        outcome = "permanent" if exc.permanent else "temporary"
        return {a: _Answer(exc.code, exc.message, outcome, "smtp") for a in addresses}
    return {a: _Answer(str(r.code), r.message, r.outcome, "smtp") for a, r in result.recipients.items()}


def _relay_unreachable(answers: dict[str, _Answer]) -> bool:
    """The relay itself is unusable (no connection, timeout, TLS failure, 421 "closing", no relay
    configured), as opposed to an answer about this message: the next messages would fail the same way."""
    return any(
        answer.channel == "smtp"
        and answer.outcome == "temporary"
        and (not answer.code.isdigit() or answer.code == "421")
        for answer in answers.values()
    )


def _commit_sent(message: Message, answers: dict[str, _Answer]) -> None:
    """Right after the relay's 250: one autocommitted UPDATE marks the accepted recipients as sent, before
    any other bookkeeping. A worker killed after this point never sends the message again (the next
    attempt finds no queued recipient); the duplicate window is the time between the 250 and this
    statement. (The usual case, every recipient accepted, goes through `_succeed_at_once` instead.)"""
    accepted = [a for a, answer in answers.items() if answer.outcome == "sent"]
    if not accepted:
        return
    reply = answers[accepted[0]]
    Recipient.objects.filter(message=message, address__in=accepted, status=RecipientStatus.QUEUED).update(
        status=RecipientStatus.SENT,
        smtp_code=reply.code[:20],
        status_detail=reply.message[:500],
        status_at=timezone.now(),
    )


def _succeed_at_once(item: Delivery, message: Message, answers: dict[str, _Answer]) -> bool:
    """Every recipient was accepted: in ONE statement (one round trip, atomic, autocommitted), right after
    the relay's 250, mark the recipients sent, record the attempt and close the row as done.

    This replaces `_commit_sent` + `outbox_succeed` (five round trips) for the common case, with a
    stronger guarantee: there is no moment where the recipients are sent but the attempt is not recorded.
    The row is closed only if no other recipient of the message is still queued (a "Relancer" that
    re-queued one while this attempt ran); otherwise it is put back to pending and False is returned, so
    that the caller schedules another attempt at once."""
    now = timezone.now()
    accepted = list(answers)
    reply = answers[accepted[0]]
    summary = ", ".join(f"{a}: {answers[a].code}" for a in answers)[:1000]
    started_at = getattr(item, "_attempt_started_at", None) or now
    qn = connection.ops.quote_name
    recipient_t, attempt_t, delivery_t = (
        qn(Recipient._meta.db_table),
        qn(DeliveryAttempt._meta.db_table),
        qn(Delivery._meta.db_table),
    )
    sql = f"""
        WITH sent AS (
            UPDATE {recipient_t} SET status = %s, smtp_code = %s, status_detail = %s, status_at = %s
            WHERE message_id = %s AND status = %s AND address = ANY(%s)
            RETURNING 1
        ), attempt AS (
            INSERT INTO {attempt_t}
                (number, started_at, finished_at, outcome, code, message, worker, delivery_id, recipients)
            VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s::jsonb)
        ), closed AS (
            UPDATE {delivery_t}
            SET status = %s, done_at = %s, lease_until = NULL, last_error = '', last_error_code = '',
                updated_at = %s
            WHERE id = %s AND NOT EXISTS (
                SELECT 1 FROM {recipient_t}
                WHERE message_id = %s AND status = %s AND NOT (address = ANY(%s))
            )
            RETURNING 1
        )
        SELECT (SELECT count(*) FROM closed)
    """  # noqa: S608 - table names from the models' meta, every value bound
    params: list[Any] = [
        RecipientStatus.SENT.value,
        reply.code[:20],
        reply.message[:500],
        now,
        message.pk,
        RecipientStatus.QUEUED.value,
        accepted,
        item.attempts,
        started_at,
        now,
        AttemptOutcome.SUCCESS.value,
        "250",
        summary,
        item.claimed_by,
        item.pk,
        json.dumps({a: ans.as_json() for a, ans in answers.items()}),
        OutboxStatus.DONE.value,
        now,
        now,
        item.pk,
        message.pk,
        RecipientStatus.QUEUED.value,
        accepted,
    ]
    rows = _execute(sql, params)
    if rows and rows[0][0]:
        return True
    Delivery.objects.filter(pk=item.pk, status=OutboxStatus.IN_PROGRESS).update(
        status=OutboxStatus.PENDING, lease_until=None, updated_at=timezone.now()
    )
    return False


def _execute(sql: str, params: list[Any], *, binary: bool = False) -> list[tuple[Any, ...]]:
    """Run one statement of the relay's hot path on Django's connection with a psycopg cursor that binds
    on the server, so that psycopg prepares it after a few runs (Django's default cursor binds on the
    client and has PostgreSQL plan every statement again), and optionally returns binary results (bytea
    as raw bytes instead of hex text: a third of the work for a 150 KB message). Autocommitted like any
    statement outside ``transaction.atomic()``; joins the current transaction inside one."""
    connection.ensure_connection()
    with psycopg.Cursor(connection.connection) as cursor:
        cursor.execute(sql, params, binary=binary)
        return cursor.fetchall() if cursor.description is not None else []


def _load_ciphertexts(blobs: list[Blob]) -> None:
    """Fill the (deferred) ciphertext of the messages' MIME blobs with one binary query."""
    if not blobs:
        return
    table = connection.ops.quote_name(Blob._meta.db_table)
    rows = _execute(
        f"SELECT id, ciphertext FROM {table} WHERE id = ANY(%s)",  # noqa: S608 - table name from the model
        [[blob.id for blob in blobs]],
        binary=True,
    )
    found = {row[0]: row[1] for row in rows}
    for blob in blobs:
        blob.ciphertext = found.get(blob.id)


class _UsageTally:
    """``messagerie.message_delivered`` usage events of the fast path, summed per (structure, channel,
    attempt number) and written in one go (one event per batch instead of one per message; the value
    is the number of recipients, as before)."""

    def __init__(self) -> None:
        self.counts: dict[tuple[int | None, str, int], int] = {}

    def add(self, structure_id: int | None, channel: str, attempt: int, recipients: int) -> None:
        key = (structure_id, channel, attempt)
        self.counts[key] = self.counts.get(key, 0) + recipients

    def flush(self) -> None:
        counts, self.counts = self.counts, {}
        if not counts:
            return
        with transaction.atomic():
            for (structure_id, channel, attempt), recipients in counts.items():
                usage_emit(
                    "messagerie.message_delivered",
                    structure_id=structure_id,
                    value=float(recipients),
                    dims={"channel": channel, "attempt": attempt},
                )


def _close_queued(message: Message, reason: str) -> int:
    now = timezone.now()
    count = Recipient.objects.filter(message=message, status=RecipientStatus.QUEUED).update(
        status=RecipientStatus.FAILED, status_detail=reason[:500], status_at=now
    )
    if count:
        usage_emit(
            "messagerie.message_failed",
            structure_id=_usage_structure(message.mailbox),
            value=float(count),
            dims={"reason": "deadline"},
        )
    return count


def _on_delivery_failed(delivery: Delivery) -> None:
    reason = delivery.last_error or "Délai maximal dépassé sans envoi réussi."
    _close_queued(delivery.message, f"Abandon : {reason}")


class _Outcome(NamedTuple):
    delay: float | None  # seconds before the next attempt (temporary failure), None: the row is closed
    relay_down: bool = False  # the relay itself is unreachable: the following messages would fail too


def delivery_attempt(*, delivery_id: int, worker: str = "") -> float | None:
    """One attempt for the outbox row `delivery_id` alone: the accepted recipients are marked sent by one
    statement right after the 250 (`_commit_sent`), then the attempt is recorded (`_record`). Returns the
    delay before the next attempt after a temporary failure, or None when the row is done, failed, or not
    ours. (The ``deliver`` task uses `deliveries_attempt_batch`, which also takes the other due rows over
    the same connection and records a fully accepted message in a single statement.)"""
    item = outbox_claim(Delivery, delivery_id, worker=worker)
    if item is None:
        return None
    usage = _UsageTally()
    try:
        return _attempt_guarded(item, usage=usage, combined=False).delay
    finally:
        usage.flush()


def _attempt_guarded(
    item: Delivery,
    *,
    usage: _UsageTally,
    message: Message | None = None,
    queued: list[str] | None = None,
    combined: bool = True,
) -> _Outcome:
    try:
        return _attempt(item, usage=usage, message=message, queued=queued, combined=combined)
    except Exception as exc:
        # An unexpected error (unreadable blob, bug…) is recorded as a temporary failure, so that the
        # row keeps its backoff and deadline instead of cycling through expired leases for ever.
        logger.exception("delivery %s: unexpected error", item.pk)
        delay = outbox_fail(
            item,
            permanent=False,
            error=f"Erreur interne : {type(exc).__name__}",
            code="internal",
            attempt_model=DeliveryAttempt,
            attempt_fields={"delivery": item},
            on_failed=_on_delivery_failed,
        )
        return _Outcome(delay)


def _attempt(
    item: Delivery,
    *,
    usage: _UsageTally,
    message: Message | None = None,
    queued: list[str] | None = None,
    combined: bool = True,
) -> _Outcome:
    """One attempt for the claimed row `item`. With `combined` (the batch path), a message every
    recipient of which the relay accepted is recorded by `_succeed_at_once`, one statement; otherwise (and
    for every other answer) `_commit_sent` marks the accepted recipients right after the 250, then
    `_record` records the attempt and the row's new state."""
    if message is None:
        message = Message.objects.select_related("mailbox", "raw").get(pk=item.message_id)
    if queued is None:
        queued = list(
            Recipient.objects.filter(message=message, status=RecipientStatus.QUEUED).values_list(
                "address", flat=True
            )
        )
    if not queued:
        outbox_succeed(
            item,
            attempt_model=DeliveryAttempt,
            code="",
            message="Aucun destinataire en attente.",
            attempt_fields={"delivery": item},
        )
        return _Outcome(None)
    if message.raw is None:
        outbox_fail(
            item,
            permanent=True,
            error="Le contenu du message est introuvable.",
            code="no-content",
            attempt_model=DeliveryAttempt,
            attempt_fields={"delivery": item},
            on_failed=_on_delivery_failed,
        )
        return _Outcome(None)
    raw = blob_read(message.raw)
    local = [a for a in queued if _delivers_locally(a)]
    remote = [a for a in queued if a not in local]
    answers: dict[str, _Answer] = {}
    if local:
        answers.update(_deliver_local(message, raw, local))
    if remote:
        relayed = _deliver_smtp(message, raw, remote)
        if combined and not local and all(answer.outcome == "sent" for answer in relayed.values()):
            # The usual case: the first statement after the 250 marks, records and closes.
            if _succeed_at_once(item, message, relayed):
                usage.add(_usage_structure(message.mailbox), "smtp", item.attempts, len(relayed))
                return _Outcome(None)
            usage.add(_usage_structure(message.mailbox), "smtp", item.attempts, len(relayed))
            return _Outcome(0.0)
        _commit_sent(message, relayed)
        answers.update(relayed)
    return _Outcome(_record(item, message, answers), relay_down=_relay_unreachable(answers))


def _record(item: Delivery, message: Message, answers: dict[str, _Answer]) -> float | None:
    now = timezone.now()
    attempt_fields: dict[str, Any] = {
        "delivery": item,
        "recipients": {a: ans.as_json() for a, ans in answers.items()},
    }
    sent = [a for a, ans in answers.items() if ans.outcome == "sent"]
    failed = [a for a, ans in answers.items() if ans.outcome == "permanent"]
    temporary = [a for a, ans in answers.items() if ans.outcome == "temporary"]
    structure_id = _usage_structure(message.mailbox)
    with transaction.atomic():
        for address, answer in answers.items():
            if answer.outcome == "temporary":
                Recipient.objects.filter(
                    message=message, address=address, status=RecipientStatus.QUEUED
                ).update(
                    smtp_code=answer.code[:20], status_detail=f"Nouvel essai prévu : {answer.message}"[:500]
                )
                continue
            if answer.outcome == "sent":
                continue  # already committed by `_commit_sent`, right after the 250
            Recipient.objects.filter(message=message, address=address, status=RecipientStatus.QUEUED).update(
                status=RecipientStatus.FAILED,
                smtp_code=answer.code[:20],
                status_detail=answer.message[:500],
                status_at=now,
            )
        for kind, addresses in (
            ("messagerie.message_delivered", sent),
            ("messagerie.message_failed", failed),
        ):
            if addresses:
                channels = {answers[a].channel for a in addresses}
                usage_emit(
                    kind,
                    structure_id=structure_id,
                    value=float(len(addresses)),
                    dims={"channel": ",".join(sorted(channels)), "attempt": item.attempts},
                )
        summary = ", ".join(f"{a}: {answers[a].code}" for a in answers)[:1000]
        if temporary:
            first = answers[temporary[0]]
            delay = outbox_fail(
                item,
                permanent=False,
                error=f"{first.code} {first.message}"[:1000],
                code=first.code,
                attempt_model=DeliveryAttempt,
                attempt_fields=attempt_fields,
                on_failed=_on_delivery_failed,
            )
            return delay
        any_sent = Recipient.objects.filter(message=message).filter(
            Q(status=RecipientStatus.SENT)
            | Q(status=RecipientStatus.DELIVERED)
            | Q(status=RecipientStatus.READ)
        )
        if failed and not any_sent.exists():
            first = answers[failed[0]]
            outbox_fail(
                item,
                permanent=True,
                error=f"{first.code} {first.message}"[:1000],
                code=first.code,
                attempt_model=DeliveryAttempt,
                attempt_fields=attempt_fields,
            )
            return None
        outbox_succeed(
            item, attempt_model=DeliveryAttempt, code="250", message=summary, attempt_fields=attempt_fields
        )
    return None


# --- Batches: several due rows over one connection -------------------------------------------------------

DEFAULT_DELIVERY_BATCH = 50


def delivery_batch_size() -> int:
    """How many due rows one task takes at most (``MSSANTE_DELIVERY_BATCH``, 1 = one row per task)."""
    return max(1, int(getattr(settings, "MSSANTE_DELIVERY_BATCH", DEFAULT_DELIVERY_BATCH)))


@dataclass
class BatchOutcome:
    """What `deliveries_attempt_batch` did: the rows it claimed, how many it closed (done or failed), the
    rows to try again later ``(pk, delay)``, and the rows it gave back without trying them (time budget
    spent, or relay unreachable) with the delay after which they are due again (0: at once)."""

    claimed: list[int] = field(default_factory=list)
    closed: int = 0
    retries: list[tuple[int, float]] = field(default_factory=list)
    released: list[int] = field(default_factory=list)
    released_delay: float | None = None


def _due_sql(now: datetime) -> tuple[str, list[Any]]:
    # The same rows as `enrs.outbox.services._due`: pending, retries that are due, expired leases.
    return (
        "(status = %s OR (status = %s AND next_attempt_at <= %s) OR (status = %s AND lease_until < %s))",
        [OutboxStatus.PENDING.value, OutboxStatus.RETRY.value, now, OutboxStatus.IN_PROGRESS.value, now],
    )


def _claim_batch(*, first_id: int | None, limit: int, worker: str) -> tuple[list[int], datetime]:
    """Claim up to `limit` due rows (one place kept for `first_id`, taken first when it is due) in ONE
    autocommitted statement:
    ``SELECT … FOR UPDATE SKIP LOCKED`` picks them, the same statement sets them in progress with a lease
    and counts the attempt. Rows another worker holds are skipped, never waited for. Returns the ids and
    the lease end (the same for every row of the batch: it identifies them when they are given back)."""
    now = timezone.now()
    lease_until = now + timedelta(seconds=lease_seconds())
    table = connection.ops.quote_name(Delivery._meta.db_table)
    due, due_params = _due_sql(now)
    params: list[Any]
    if first_id is not None:
        picked = (
            f"WITH mine AS (SELECT id FROM {table} WHERE id = %s AND {due} FOR UPDATE SKIP LOCKED), "  # noqa: S608
            f"others AS (SELECT id FROM {table} WHERE id <> %s AND {due} "
            "ORDER BY id LIMIT %s FOR UPDATE SKIP LOCKED) "
        )
        chosen = "SELECT id FROM mine UNION ALL SELECT id FROM others"
        params = [first_id, *due_params, first_id, *due_params, limit - 1]
    else:
        picked = (
            f"WITH others AS (SELECT id FROM {table} WHERE {due} "  # noqa: S608
            "ORDER BY id LIMIT %s FOR UPDATE SKIP LOCKED) "
        )
        chosen = "SELECT id FROM others"
        params = [*due_params, limit]
    sql = (
        f"{picked}UPDATE {table} SET status = %s, attempts = attempts + 1, lease_until = %s, "  # noqa: S608
        f"claimed_by = %s, updated_at = %s WHERE id IN ({chosen}) RETURNING id"
    )
    params += [OutboxStatus.IN_PROGRESS.value, lease_until, worker, now]
    ids = sorted(row[0] for row in _execute(sql, params))
    return ids, lease_until


def _release(pks: list[int], *, lease_until: datetime, delay: float | None) -> list[int]:
    """Give back rows this batch claimed but did not try: their attempt counter is restored (no attempt
    happened), they are due at once (`delay` None: pending) or after `delay` seconds (retry)."""
    if not pks:
        return []
    now = timezone.now()
    Delivery.objects.filter(pk__in=pks, status=OutboxStatus.IN_PROGRESS, lease_until=lease_until).update(
        status=OutboxStatus.PENDING if delay is None else OutboxStatus.RETRY,
        next_attempt_at=None if delay is None else now + timedelta(seconds=delay),
        attempts=F("attempts") - 1,
        lease_until=None,
        updated_at=now,
    )
    return pks


def deliveries_attempt_batch(
    *, first_id: int | None = None, limit: int | None = None, worker: str = ""
) -> BatchOutcome:
    """One attempt for each of up to `limit` due rows (`first_id` first when it is due), one after the
    other over the worker's SMTP connection (the ``deliver`` and ``deliver_batch`` tasks).

    Same guarantees as `delivery_attempt`, row by row: each message's recipients are marked sent by the
    first statement after its 250 (which also records the attempt and closes the row), every attempt is
    recorded, temporary failures get their backoff and deadline, permanent ones fail at once. What
    changes is the cost: one statement claims the batch, two load it, then one statement per message.

    The batch stops early and gives back the rows it has not tried when the relay is unreachable (they
    are due again after the same backoff as the failed one) or when half the lease is spent (due again at
    once), so that no row's lease can expire while this worker still holds it."""
    limit = delivery_batch_size() if limit is None else max(1, limit)
    worker = (worker or socket.gethostname())[:200]
    ids, lease_until = _claim_batch(first_id=first_id, limit=limit, worker=worker)
    outcome = BatchOutcome(claimed=ids)
    if not ids:
        return outcome
    items = list(
        Delivery.objects.filter(pk__in=ids)
        .select_related("message__mailbox", "message__raw")
        .defer("message__raw__ciphertext")
        .order_by("pk")
    )
    _load_ciphertexts([i.message.raw for i in items if i.message.raw is not None])
    items.sort(key=lambda d: (d.pk != first_id, d.pk))
    queued: dict[int, list[str]] = {}
    for message_id, address in (
        Recipient.objects.filter(message_id__in=[i.message_id for i in items], status=RecipientStatus.QUEUED)
        .order_by("pk")
        .values_list("message_id", "address")
    ):
        queued.setdefault(message_id, []).append(address)
    budget = lease_seconds() / 2
    started = time.monotonic()
    usage = _UsageTally()
    try:
        for index, item in enumerate(items):
            if index and time.monotonic() - started > budget:
                outcome.released = _release(
                    [i.pk for i in items[index:]], lease_until=lease_until, delay=None
                )
                outcome.released_delay = 0.0
                break
            item._attempt_started_at = timezone.now()  # type: ignore[attr-defined]
            result = _attempt_guarded(
                item, usage=usage, message=item.message, queued=queued.get(item.message_id, [])
            )
            if result.delay is None:
                outcome.closed += 1
            else:
                outcome.retries.append((item.pk, result.delay))
            if result.relay_down and index + 1 < len(items):
                delay = result.delay if result.delay is not None else backoff_delay(1)
                outcome.released = _release(
                    [i.pk for i in items[index + 1 :]], lease_until=lease_until, delay=delay
                )
                outcome.released_delay = delay
                break
    finally:
        usage.flush()
    return outcome


def deliveries_requeue(task: Any, *, grace: float | None = None) -> int:
    """The sweeper (``tasks.requeue``): queue again the rows whose task was lost; close those past their
    deadline (their queued recipients become failed)."""
    if grace is None:
        grace = float(getattr(settings, "MSSANTE_REQUEUE_GRACE_SECONDS", 30.0))
    return outbox_requeue(Delivery, task, grace=grace, on_failed=_on_delivery_failed)


def message_mime(message: Message) -> bytes:
    """The exact MIME bytes sent (or, for a received message, as they arrived)."""
    if message.raw is None:
        raise ValidationError("Ce message n'a pas encore de contenu MIME (brouillon).")
    return blob_read(message.raw)


__all__ = [
    "BatchOutcome",
    "address_is_hosted",
    "deliveries_attempt_batch",
    "deliveries_requeue",
    "delivery_attempt",
    "delivery_batch_size",
    "draft_save",
    "message_mime",
    "message_send",
    "message_send_report",
    "new_message_id",
    "recipient_retry",
    "recipients_check",
    "relay_config",
]
