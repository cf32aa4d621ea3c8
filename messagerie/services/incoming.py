"""Incoming mail: what the SMTP listener (``manage.py mssante_smtpd``) and local delivery hand over.

Life of a received message:

1. ``inbound_accept`` stores the raw MIME encrypted in the vault and an `InboundMessage` row in one
   committed transaction, and queues ``tasks.process_inbound`` once it has committed. The listener answers
   ``250`` only after it returned: an accepted message is never lost.
2. ``inbound_process`` (the task) claims the row, parses the message and files one copy per hosted
   recipient mailbox (idempotent by Message-ID: a second delivery of the same message to the same box is a
   no-op). IHE_XDM archives are checked; a bad one is kept but quarantined with the reason, and the message
   is still delivered. DSN (RFC 3464) and MDN (RFC 8098) update the per-recipient status of the original
   outgoing message; a report is never acknowledged.
3. ``inbound_requeue`` (periodic) re-queues rows whose task was lost.

The trust-space allow-list (`TrustedDomain`) is read by ``domain_is_trusted`` and loaded from / exported to
a text file by ``trusted_domains_load`` / ``trusted_domains_export`` (``manage.py mssante_trusted_domains``).
"""

from __future__ import annotations

import hashlib
import logging
import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email import policy
from email.parser import BytesHeaderParser
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from enrs.audit.services import audit_record
from enrs.outbox.services import (
    outbox_claim,
    outbox_deadline,
    outbox_dispatch_on_commit,
    outbox_fail,
    outbox_requeue,
    outbox_succeed,
)
from enrs.patients.ins import mod97_is_valid
from enrs.patients.models import IdentityStatus, Patient
from enrs.standards.cda import CdaError, parse_cda
from enrs.usage.services import usage_emit
from enrs.vault.services import blob_put, blob_read
from messagerie.models import (
    Attachment,
    Direction,
    Folder,
    InboundMessage,
    InboundStatus,
    Mailbox,
    Message,
    MessageKind,
    Recipient,
    RecipientStatus,
    TrustedDomain,
)
from messagerie.standards import mime, reports, xdm

log = logging.getLogger("enrs.messagerie.incoming")

MAX_RECIPIENTS = 100
_XML_TYPES = ("text/xml", "application/xml", "application/hl7-v3+xml")
_DOMAIN = re.compile(r"^(?=.{1,253}$)(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$")


# --- Trust space and hosted addresses ---------------------------------------------------------------------


def hosted_domains() -> set[str]:
    return {d.strip().lower() for d in getattr(settings, "MSSANTE_HOSTED_DOMAINS", []) if d.strip()}


def _domain_of(address: str) -> str:
    parts = mime.split_address(address)
    return parts[1] if parts else ""


def domain_is_trusted(domain: str) -> bool:
    """True for a hosted domain or an active allow-listed one. An allow-list entry starting with a dot
    (``.mssante.fr``) covers every sub-domain of it."""
    domain = (domain or "").strip().lower().rstrip(".")
    if not domain or not _DOMAIN.match(domain):
        return False
    if domain in hosted_domains():
        return True
    labels = domain.split(".")
    parents = ["." + ".".join(labels[i:]) for i in range(1, len(labels) - 1)]
    return TrustedDomain.objects.filter(is_active=True, domain__in=[domain, *parents]).exists()


def _hosted_mailbox(address: str) -> Mailbox | None:
    if not mime.is_valid_address(address or ""):
        return None
    return Mailbox.objects.filter(address__iexact=address, is_active=True).first()


def address_is_hosted(address: str) -> bool:
    """True when `address` is an active mailbox hosted here."""
    return _hosted_mailbox(address) is not None


# --- Accepting ----------------------------------------------------------------------------------------------


def _header_message_id(raw: bytes) -> str:
    try:
        headers = BytesHeaderParser(policy=policy.compat32).parsebytes(raw)
        value = str(headers.get("Message-ID", "") or "")
    except Exception:  # hostile headers must not stop the message from being stored
        return ""
    value = re.sub(r"\s+", "", value)
    return value[:255]


def inbound_accept(
    *,
    raw: bytes,
    mail_from: str,
    rcpt_to: list[str],
    peer: str = "",
    peer_certificate: str = "",
) -> InboundMessage:
    """Store a received message durably (vault blob + row, committed) and queue its processing.

    Raises `ValidationError` (French) for unacceptable input; any other exception means nothing was stored
    (the listener answers 451 and the sender retries)."""
    if not isinstance(raw, bytes | bytearray) or not raw:
        raise ValidationError("Le message reçu est vide.")
    max_bytes = int(settings.MSSANTE_MAX_MESSAGE_BYTES)
    if len(raw) > max_bytes:
        raise ValidationError(f"Le message dépasse la taille maximale autorisée ({max_bytes} octets).")
    if mail_from and not mime.is_valid_address(mail_from):
        raise ValidationError(f"Adresse d'expéditeur invalide : « {mail_from[:200]} ».")
    recipients = [r.strip() for r in rcpt_to if isinstance(r, str) and r.strip()]
    if not recipients:
        raise ValidationError("Le message n'a aucun destinataire.")
    if len(recipients) > MAX_RECIPIENTS:
        raise ValidationError(f"Trop de destinataires (maximum {MAX_RECIPIENTS}).")
    for address in recipients:
        if not mime.is_valid_address(address):
            raise ValidationError(f"Adresse de destinataire invalide : « {address[:200]} ».")
    from messagerie import tasks  # the tasks module imports this one

    raw = bytes(raw)
    with transaction.atomic():
        blob = blob_put(raw, purpose="messagerie.inbound", content_type="message/rfc822")
        item = InboundMessage.objects.create(
            raw=blob,
            mail_from=mail_from[:255],
            rcpt_to=recipients,
            message_id=_header_message_id(raw),
            peer=(peer or "")[:255],
            peer_certificate=(peer_certificate or "")[:500],
            deadline=outbox_deadline(),
        )
        outbox_dispatch_on_commit(item, tasks.process_inbound)
        audit_record(
            action="messagerie.inbound.accept",
            target=item,
            detail={"size": len(raw), "recipients": len(recipients), "peer": item.peer},
        )
    return item


# --- Reading a message (pure work, before any write) ------------------------------------------------------


@dataclass
class _PlannedDocument:
    info: dict[str, Any]  # what Attachment.documents keeps (no patient name or birth date)
    match: dict[str, str] = field(default_factory=dict)  # traits used to link a local patient
    body: bytes = b""
    body_media_type: str = ""


@dataclass
class _PlannedAttachment:
    filename: str
    content_type: str
    data: bytes
    is_xdm: bool = False
    quarantined: bool = False
    reason: str = ""
    documents: list[_PlannedDocument] = field(default_factory=list)


@dataclass
class _Plan:
    parsed: mime.ParsedMessage
    message_id: str
    attachments: list[_PlannedAttachment]
    cda_codes: list[str]
    patient_ins: str
    patient: Patient | None


def _fold(text: str) -> str:
    folded = unicodedata.normalize("NFKD", text or "").encode("ascii", "ignore").decode("ascii")
    return re.sub(r"[^A-Z]", "", folded.upper())


def _is_xdm(attachment: mime.ParsedAttachment) -> bool:
    return attachment.filename.upper() == xdm.ZIP_FILENAME.upper()


def _check_xdm(attachment: _PlannedAttachment) -> None:
    """Fill `documents`, or quarantine the archive with the reason (never raises)."""
    try:
        package = xdm.parse_xdm(attachment.data, max_total_bytes=int(settings.MSSANTE_XDM_MAX_EXPANDED_BYTES))
    except xdm.XdmError as exc:
        attachment.quarantined = True
        attachment.reason = exc.message[:255]
        return
    except Exception:  # a parser bug on hostile input must not stop the delivery
        log.exception("unexpected error reading an IHE_XDM archive")
        attachment.quarantined = True
        attachment.reason = "Archive IHE_XDM illisible."
        return
    documents: list[_PlannedDocument] = []
    for entry, content in package.documents:
        info: dict[str, Any] = {
            "uri": entry.uri,
            "mime_type": entry.mime_type,
            "code": entry.type_code.code,
            "code_display": entry.type_code.display,
            "title": entry.title,
            "ins": "",
            "ins_oid": "",
            "qualified_ins": False,
        }
        planned = _PlannedDocument(info=info)
        if entry.mime_type in _XML_TYPES:
            try:
                cda = parse_cda(content)
            except CdaError as exc:
                attachment.quarantined = True
                attachment.reason = f"Document « {entry.uri} » illisible : {exc}"[:255]
                attachment.documents = []
                return
            info.update(
                code=cda.type_code.code or info["code"],
                code_display=cda.type_code.display or info["code_display"],
                title=cda.title or info["title"],
                document_id=cda.document_id,
                effective_time=cda.effective_time.isoformat() if cda.effective_time else "",
                ins=cda.ins,
                ins_oid=cda.ins_oid,
                qualified_ins=cda.qualified_ins,
                body_media_type=cda.body_media_type,
            )
            planned.match = {
                "birth_date": cda.birth_date.isoformat() if cda.birth_date else "",
                "family": _fold(cda.patient_family),
            }
            if cda.body:
                planned.body, planned.body_media_type = cda.body, cda.body_media_type
        documents.append(planned)
    attachment.documents = documents


def _patient_for(documents: list[_PlannedDocument]) -> tuple[str, Patient | None]:
    """The INS the documents name (only when they all name the same one), and the local patient with
    that INS when his identity is qualified and the birth date / birth name of the document match."""
    named = [d for d in documents if d.info.get("ins")]
    ins_values = {d.info["ins"].upper() for d in named}
    if len(ins_values) != 1:
        return "", None
    ins = ins_values.pop()
    if not mod97_is_valid(ins):
        return "", None
    qualified = [d for d in named if d.info.get("qualified_ins")]
    if not qualified:
        return ins, None
    doc = qualified[0]
    candidates = Patient.objects.filter(ins=ins, identity_status=IdentityStatus.QUALIFIED)
    if doc.info.get("ins_oid"):
        candidates = candidates.filter(ins_oid=doc.info["ins_oid"])
    for patient in candidates[:2]:
        if patient.birth_date.isoformat() != doc.match.get("birth_date"):
            continue
        if _fold(patient.birth_family_name) != doc.match.get("family"):
            continue
        return ins, patient
    return ins, None


def _message_id_for(parsed: mime.ParsedMessage, item: InboundMessage) -> str:
    value = re.sub(r"\s+", "", parsed.message_id or "")
    if not value:
        domain = next(iter(sorted(hosted_domains())), "localhost")
        return f"<inbound-{item.pk}@{domain}>"
    if len(value) > 255:
        return "<" + hashlib.sha256(value.encode()).hexdigest() + "@message-id.long>"
    return value


def _plan(parsed: mime.ParsedMessage, item: InboundMessage) -> _Plan:
    attachments: list[_PlannedAttachment] = []
    for part in parsed.attachments:
        planned = _PlannedAttachment(
            filename=part.filename[:255],
            content_type=(part.content_type or "application/octet-stream")[:150],
            data=part.data,
            is_xdm=_is_xdm(part),
        )
        if planned.is_xdm:
            _check_xdm(planned)
        attachments.append(planned)
    docs = [d for a in attachments if not a.quarantined for d in a.documents]
    codes: list[str] = []
    for doc in docs:
        if doc.info.get("code") and doc.info["code"] not in codes:
            codes.append(doc.info["code"])
    patient_ins, patient = _patient_for(docs)
    return _Plan(
        parsed=parsed,
        message_id=_message_id_for(parsed, item),
        attachments=attachments,
        cda_codes=codes,
        patient_ins=patient_ins,
        patient=patient,
    )


# --- Filing copies ----------------------------------------------------------------------------------------


def _aware(moment: datetime | None) -> datetime:
    if moment is None:
        return timezone.now()
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment


def _addresses(values: Iterable[str]) -> list[str]:
    return [v[:255] for v in values][:MAX_RECIPIENTS]


def _file_copy(*, item: InboundMessage, plan: _Plan, mailbox: Mailbox, kind: str) -> Message | None:
    """One recipient's copy (with its attachments), or None when the box already has this message."""
    parsed = plan.parsed
    existing = Message.objects.filter(
        mailbox=mailbox, direction=Direction.INCOMING, message_id=plan.message_id
    )
    if existing.exclude(folder=Folder.DRAFTS).exists():
        return None
    is_report = kind != MessageKind.MESSAGE
    try:
        with transaction.atomic():  # savepoint: a concurrent delivery of the same message wins
            if parsed.text or not parsed.html:
                text, content_type = parsed.text, "text/plain; charset=utf-8"
            else:
                text, content_type = parsed.html, "text/html; charset=utf-8"
            body = blob_put(text.encode("utf-8"), purpose="messagerie.body", content_type=content_type)
            message = Message.objects.create(
                mailbox=mailbox,
                direction=Direction.INCOMING,
                kind=kind,
                folder=Folder.INBOX,
                message_id=plan.message_id,
                in_reply_to=re.sub(r"\s+", "", parsed.header("in-reply-to"))[:255],
                subject=parsed.subject[:998],
                from_address=(parsed.from_addr or item.mail_from)[:255],
                to_addresses=_addresses(parsed.to),
                cc_addresses=_addresses(parsed.cc),
                sent_at=_aware(parsed.date),
                patient=plan.patient,
                patient_ins=plan.patient_ins,
                cda_codes=",".join(plan.cda_codes)[:255],
                request_read_receipt=(not is_report) and reports.should_send_mdn(parsed, automatic=False),
                no_reply=parsed.header(mime.HEADER_MES).strip().upper() == "FIN",
                body=body,
                raw=item.raw,
                size=item.raw.size,
                has_attachments=bool(plan.attachments),
                # An MDN only confirms what the sent message's status already shows.
                is_read=kind == MessageKind.MDN,
            )
    except IntegrityError:
        return None
    for planned in plan.attachments:
        documents = []
        for doc in planned.documents:
            info = dict(doc.info)
            if doc.body:
                extracted = blob_put(
                    doc.body, purpose="messagerie.cda_body", content_type=doc.body_media_type[:150]
                )
                info["body_blob"] = str(extracted.pk)
            documents.append(info)
        Attachment.objects.create(
            message=message,
            mailbox=mailbox,
            filename=planned.filename,
            content_type=planned.content_type,
            size=len(planned.data),
            blob=blob_put(planned.data, purpose="messagerie.attachment", content_type=planned.content_type),
            is_xdm=planned.is_xdm,
            quarantined=planned.quarantined,
            quarantine_reason=planned.reason,
            documents=documents,
        )
    return message


# --- Reports (DSN / MDN) ------------------------------------------------------------------------------------


def _id_variants(value: str) -> list[str]:
    value = re.sub(r"\s+", "", value or "")
    if not value:
        return []
    bare = value.strip("<>")
    return [v for v in dict.fromkeys([value, f"<{bare}>", bare]) if v]


def _apply_to_recipient(recipient: Recipient, *, status: str, detail: str, code: str, kind: str) -> bool:
    """Move one recipient forward: queued/sent → delivered → read. A failure overrides anything, except
    that a DSN cannot undo a read receipt; the recipient's own MDN error always wins and stays."""
    current = recipient.status
    # An integration error (MDN processed/Error) stays visible: a later "displayed" does not hide it.
    kept_error = current == RecipientStatus.FAILED and recipient.smtp_code in reports.INTEGRATION_ERRORS
    if status == RecipientStatus.READ:
        allowed = current != RecipientStatus.READ and not kept_error
    elif status == RecipientStatus.DELIVERED:
        allowed = (
            current in (RecipientStatus.QUEUED, RecipientStatus.SENT, RecipientStatus.FAILED)
            and not kept_error
        )
    elif status == RecipientStatus.FAILED:
        allowed = kind == "mdn" or current != RecipientStatus.READ
    else:  # a note only (delayed, relayed…): the status stays
        allowed = current in (RecipientStatus.QUEUED, RecipientStatus.SENT)
        status = current
    if not allowed:
        return False
    recipient.status = status
    recipient.status_detail = detail[:500]
    recipient.smtp_code = code[:20]
    recipient.status_at = timezone.now()
    recipient.save(update_fields=["status", "status_detail", "smtp_code", "status_at"])
    return True


def _report_update(rcpt: reports.ReportRecipient, kind: str) -> tuple[str, str, str]:
    """(new status, detail, code) for one recipient of a report."""
    if kind == "mdn":
        if rcpt.failed:
            label = reports.INTEGRATION_ERRORS.get(rcpt.error_code) or rcpt.error_label  # the ANS wording
            text = f"{rcpt.error_code} — {label}" if label else (rcpt.diagnostic or rcpt.error_code)
            return (
                RecipientStatus.FAILED,
                f"Erreur d'intégration signalée par le destinataire : {text}",
                (rcpt.error_code or "error"),
            )
        if rcpt.action == "displayed":
            return RecipientStatus.READ, "Lu par le destinataire (accusé de lecture).", ""
        if rcpt.action in ("processed", "dispatched"):
            return RecipientStatus.DELIVERED, "Reçu et traité par le destinataire (accusé de réception).", ""
        if rcpt.action == "deleted":
            return "", "Supprimé par le destinataire sans avoir été lu.", ""
        return "", f"Accusé « {rcpt.action} » reçu.", ""
    diagnostic = rcpt.diagnostic.partition(";")[2].strip() if ";" in rcpt.diagnostic else rcpt.diagnostic
    if rcpt.action == "failed" or rcpt.status.startswith("5"):
        text = "Échec de remise signalé par le serveur du destinataire"
        return RecipientStatus.FAILED, f"{text} : {diagnostic or rcpt.status}", rcpt.status
    if rcpt.action == "delivered":
        return RecipientStatus.DELIVERED, "Remis dans la boîte du destinataire (avis de remise).", rcpt.status
    if rcpt.action == "delayed":
        return "", f"Remise retardée : {diagnostic or rcpt.status}", rcpt.status
    return "", f"Avis de remise « {rcpt.action} » reçu.", rcpt.status


def _apply_report(*, report: reports.DeliveryReport, parsed: mime.ParsedMessage, boxes: list[Mailbox]) -> str:
    """Update the recipients of the original outgoing message; returns a note for the inbound row."""
    ids = _id_variants(report.original_message_id) or _id_variants(parsed.header("in-reply-to"))
    if not ids:
        return "Rapport sans référence au message d'origine : ignoré."
    originals = list(
        Message.objects.select_for_update()
        .filter(direction=Direction.OUTGOING, message_id__in=ids, mailbox__in=boxes)
        .exclude(folder=Folder.DRAFTS)
    )
    if not originals:
        return f"Message d'origine {ids[0]} introuvable dans les boîtes destinataires : rapport ignoré."
    updated = 0
    for rcpt in report.per_recipient:
        status, detail, code = _report_update(rcpt, report.kind)
        addresses = [a for a in (rcpt.recipient, rcpt.original_recipient) if a]
        if not addresses:
            continue
        query = Q()
        for address in addresses:
            query |= Q(address__iexact=address)
        for recipient in Recipient.objects.select_for_update().filter(query, message__in=originals):
            updated += _apply_to_recipient(
                recipient, status=status, detail=detail, code=code, kind=report.kind
            )
    return f"Rapport {report.kind.upper()} appliqué : {updated} destinataire(s) mis à jour."


def _confirm_local_delivery(item: InboundMessage, message_id: str, addresses: list[str]) -> int:
    """When the sender is a hosted box (local delivery, or our own relay through the listener), its sent
    copy's recipients now in their inbox are ``delivered`` (no DSN comes for them)."""
    if not item.mail_from or not addresses:
        return 0
    originals = Message.objects.filter(
        direction=Direction.OUTGOING,
        message_id__in=_id_variants(message_id),
        mailbox__address__iexact=item.mail_from,
    ).exclude(folder=Folder.DRAFTS)
    query = Q()
    for address in addresses:
        query |= Q(address__iexact=address)
    return (
        Recipient.objects.filter(query, message__in=originals)
        .filter(status__in=[RecipientStatus.QUEUED, RecipientStatus.SENT])
        .update(
            status=RecipientStatus.DELIVERED,
            status_detail="Distribué dans la boîte du destinataire.",
            smtp_code="250",
            status_at=timezone.now(),
        )
    )


# --- Processing ---------------------------------------------------------------------------------------------


def _mark_failed(item: InboundMessage) -> None:
    item.outcome = InboundStatus.FAILED
    item.outcome_detail = item.last_error or "Échec du traitement."
    item.save(update_fields=["outcome", "outcome_detail"])


def inbound_process(*, inbound_id: int, worker: str = "") -> float | None:
    """Parse one stored message and file it (see the module docstring). Returns a delay in seconds when the
    row must be tried again (temporary failure), else None."""
    item = outbox_claim(InboundMessage, inbound_id, worker=worker)
    if item is None:
        return None
    try:
        raw = blob_read(item.raw)
    except Exception as exc:  # storage unavailable or altered blob: try again later
        log.warning("inbound %s: cannot read the stored message: %s", item.pk, exc)
        return outbox_fail(
            item,
            permanent=False,
            error="Lecture du message stocké impossible.",
            code="vault",
            on_failed=_mark_failed,
        )
    try:
        parsed = mime.parse_message(raw, max_bytes=max(len(raw), 1))
    except mime.MimeError as exc:
        return outbox_fail(
            item,
            permanent=True,
            error=f"Message illisible : {exc.message}",
            code=exc.code,
            on_failed=_mark_failed,
        )
    report: reports.DeliveryReport | None = None
    if parsed.is_report:
        try:
            report = reports.parse_report(raw)
        except Exception as exc:  # ReportError, or a parser surprise: file it as a plain message
            log.info("inbound %s: unreadable report filed as a message: %s", item.pk, exc)
    try:
        plan = _plan(parsed, item)
    except Exception as exc:  # never leave the row claimed: retry (then fail at the deadline)
        log.exception("inbound %s: reading the content failed", item.pk)
        return outbox_fail(
            item,
            permanent=False,
            error=f"Erreur pendant la lecture du contenu : {type(exc).__name__}",
            code="content",
            on_failed=_mark_failed,
        )

    def file_it(locked: InboundMessage) -> None:
        notes: list[str] = []
        boxes: list[Mailbox] = []
        hosted = hosted_domains()
        for address in locked.rcpt_to:
            box = _hosted_mailbox(address)
            if box is None:
                where = "hébergée" if _domain_of(address) in hosted else "non hébergée"
                notes.append(f"Adresse {where} inconnue ou inactive : {address[:200]}.")
            elif box not in boxes:
                boxes.append(box)
        if report is not None:
            notes.append(_apply_report(report=report, parsed=parsed, boxes=boxes))
        kind = {"dsn": MessageKind.DSN, "mdn": MessageKind.MDN}.get(
            report.kind if report is not None else "", MessageKind.MESSAGE
        )
        filed: list[Message] = []
        for box in boxes:
            message = _file_copy(item=locked, plan=plan, mailbox=box, kind=kind)
            if message is None:
                notes.append(f"Déjà présent dans {box.address} : ignoré.")
            else:
                filed.append(message)
        if boxes:
            _confirm_local_delivery(locked, plan.message_id, [b.address for b in boxes])
        quarantined = [a for a in plan.attachments if a.quarantined]
        for attachment in quarantined:
            notes.append(f"Pièce jointe « {attachment.filename} » en quarantaine : {attachment.reason}")
        if boxes:
            outcome = InboundStatus.QUARANTINED if quarantined else InboundStatus.PROCESSED
            notes.insert(0, f"Distribué dans {len(filed)} boîte(s).")
        else:
            outcome = InboundStatus.FAILED
            notes.insert(0, "Aucune boîte hébergée active parmi les destinataires.")
        locked.outcome = outcome
        locked.outcome_detail = "\n".join(notes)
        if not locked.message_id:
            locked.message_id = plan.message_id
        locked.save(update_fields=["outcome", "outcome_detail", "message_id"])
        for message in filed:
            usage_emit(
                "messagerie.message_received",
                structure_id=message.mailbox.structure_id,
                dims={
                    "kind": str(kind),
                    "attachments": len(plan.attachments),
                    "xdm": any(a.is_xdm for a in plan.attachments),
                    "quarantined": bool(quarantined),
                    "bytes": message.size,
                },
            )
        for message in filed:
            audit_record(
                action="messagerie.message.receive",
                target=message,
                patient_ins=message.patient_ins,
                detail={"inbound": locked.pk, "kind": str(kind), "quarantined": bool(quarantined)},
            )

    try:
        outbox_succeed(item, on_success=file_it)
    except Exception as exc:  # database trouble: nothing was filed (one transaction), try again
        log.exception("inbound %s: filing failed", item.pk)
        return outbox_fail(
            item,
            permanent=False,
            error=f"Erreur pendant le classement : {type(exc).__name__}",
            code="filing",
            on_failed=_mark_failed,
        )
    return None


def inbound_requeue(task: Any) -> int:
    """Queue the processing task again for rows whose task was lost (periodic)."""
    return outbox_requeue(InboundMessage, task, on_failed=_mark_failed)


# --- Allow-list file ----------------------------------------------------------------------------------------


def parse_domain_list(text: str) -> list[tuple[str, str]]:
    """``domain [operator]`` per line, ``#`` starts a comment. Returns (domain, operator) pairs; raises
    `ValidationError` listing every bad line (nothing is loaded then)."""
    errors: list[str] = []
    entries: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        content = line.split("#", 1)[0].strip()
        if not content:
            continue
        domain, _, operator = content.partition(" ")
        domain = domain.strip().lower().rstrip(".")
        bare = domain[1:] if domain.startswith(".") else domain
        if not _DOMAIN.match(bare):
            errors.append(f"ligne {number} : domaine invalide « {domain[:100]} »")
            continue
        entries[domain] = operator.strip()[:255]
    if errors:
        raise ValidationError(["Liste de domaines refusée :", *errors])
    return list(entries.items())


def trusted_domains_load(*, text: str, replace: bool = False, actor: Any = None) -> dict[str, int]:
    """Add (or re-activate) the domains of the list; with `replace`, deactivate active domains not in it."""
    entries = parse_domain_list(text)
    counts = {"added": 0, "reactivated": 0, "unchanged": 0, "deactivated": 0}
    with transaction.atomic():
        listed = set()
        for domain, operator in entries:
            listed.add(domain)
            row, created = TrustedDomain.objects.select_for_update().get_or_create(
                domain=domain, defaults={"operator": operator, "added_by": actor}
            )
            if created:
                counts["added"] += 1
                continue
            changed = []
            if not row.is_active:
                row.is_active = True
                changed.append("is_active")
                counts["reactivated"] += 1
            if operator and row.operator != operator:
                row.operator = operator
                changed.append("operator")
            if changed:
                row.save(update_fields=changed)
            if "is_active" not in changed:
                counts["unchanged"] += 1
        if replace:
            counts["deactivated"] = (
                TrustedDomain.objects.filter(is_active=True)
                .exclude(domain__in=listed)
                .update(is_active=False)
            )
        audit_record(
            action="messagerie.trusted_domain.load", actor=actor, detail=dict(counts, replace=replace)
        )
    return counts


def trusted_domains_export() -> str:
    lines = ["# Espace de confiance MSSanté : domaines autorisés (un par ligne, opérateur facultatif)"]
    for domain, operator in TrustedDomain.objects.filter(is_active=True).values_list("domain", "operator"):
        lines.append(f"{domain} {operator}".rstrip())
    return "\n".join(lines) + "\n"
