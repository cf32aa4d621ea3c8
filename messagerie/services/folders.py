"""What a mailbox user does with the messages of his box (owner: helper "mailui").

* ``message_read`` — open a message: marks it read, writes a patient-data access in the audit trail when
  the message concerns a patient, and sends the read receipt (MDN) the sender asked for, once.
* ``message_mark`` / ``message_move`` / ``message_delete`` — read/unread, folders, trash then for good.
* ``attachment_upload`` — a file uploaded for a message being written (size and type checked, encrypted).
* ``attachment_download`` / ``xdm_document_pdf`` — reading a file of a message, or the PDF carried by a
  CDA level 1 document of an IHE_XDM archive (audited; quarantined files are never handed out).

Callers (views, API) check first that the user may use the box (``selectors.mailbox_get_for_user``).
"""

from __future__ import annotations

import logging
import os
import re
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.files.uploadedfile import UploadedFile
from django.db import transaction
from django.db.models import ProtectedError
from django.http import HttpRequest
from django.utils import timezone

from enrs.audit.services import audit_record
from enrs.outbox.models import OPEN_STATUSES
from enrs.standards.cda import CdaError, parse_cda
from enrs.vault.models import Blob
from enrs.vault.services import blob_chunks, blob_delete, blob_put, blob_read

from ..models import Attachment, Direction, Folder, Mailbox, Message, MessageKind
from ..standards import xdm
from . import outgoing

READ_DISPOSITION = "displayed"
logger = logging.getLogger(__name__)


# --- Reading -------------------------------------------------------------------------------------------


def message_concerns_patient(message: Message) -> bool:
    return bool(message.patient_id or message.patient_ins or message.cda_codes)


def message_patient_ins(message: Message) -> str:
    if message.patient_ins:
        return message.patient_ins
    patient = message.patient if message.patient_id else None
    return patient.ins if patient is not None and patient.ins else ""


def _wants_read_receipt(message: Message) -> bool:
    """A read receipt is due for a received message (never for a report) that asked for one."""
    return (
        message.direction == Direction.INCOMING
        and message.kind == MessageKind.MESSAGE
        and message.request_read_receipt
        and message.read_receipt_sent_at is None
        and message.folder != Folder.DRAFTS
    )


def _send_read_receipt(message: Message, actor: Any) -> None:
    """The MDN the sender asked for. A receipt that cannot be built (the message does not really ask for
    one, or forbids it) never prevents reading: the refusal is logged and reading goes on."""
    try:
        with transaction.atomic():
            outgoing.message_send_report(original=message, disposition=READ_DISPOSITION, actor=actor)
    except ValidationError as error:
        logger.info("Accusé de lecture non envoyé pour le message %s : %s", message.pk, error.messages)
        return
    message.refresh_from_db(fields=["read_receipt_sent_at"])


def message_read(*, message: Message, actor: Any, request: HttpRequest | None = None) -> Message:
    """`actor` opens `message`: it is marked read, the access is audited when it concerns a patient, and
    the read receipt the sender asked for is sent (once)."""
    with transaction.atomic():
        locked = Message.objects.select_for_update().get(pk=message.pk)
        now = timezone.now()
        if not locked.is_read:
            locked.is_read = True
            locked.read_at = now
            locked.save(update_fields=["is_read", "read_at", "updated_at"])
        if _wants_read_receipt(locked):
            _send_read_receipt(locked, actor)
        if message_concerns_patient(locked):
            audit_record(
                action="messagerie.message.read",
                request=request,
                actor=actor,
                target=locked,
                patient_ins=message_patient_ins(locked),
                detail={"mailbox": locked.mailbox.address, "direction": locked.direction},
            )
    message.is_read, message.read_at = locked.is_read, locked.read_at
    message.read_receipt_sent_at = locked.read_receipt_sent_at
    return locked


def message_body(message: Message) -> str:
    """The text body, decrypted from the vault ("" when the message has none)."""
    if message.body is None:
        return ""
    return blob_read(message.body).decode("utf-8", errors="replace")


# --- Mark, move, delete --------------------------------------------------------------------------------


def message_mark(
    *, message: Message, read: bool, actor: Any = None, request: HttpRequest | None = None
) -> Message:
    """Mark `message` read or unread (marking read this way sends no read receipt: that is for reading)."""
    with transaction.atomic():
        locked = Message.objects.select_for_update().get(pk=message.pk)
        if locked.is_read != read:
            locked.is_read = read
            locked.read_at = timezone.now() if read else None
            locked.save(update_fields=["is_read", "read_at", "updated_at"])
            if actor is not None:
                audit_record(
                    action="messagerie.message.mark",
                    request=request,
                    actor=actor,
                    target=locked,
                    detail={"read": read},
                )
    return locked


def folders_allowed(message: Message) -> list[str]:
    """The folders `message` may be moved to from where it is."""
    if message.folder == Folder.DRAFTS:
        return [Folder.TRASH]
    home = Folder.INBOX if message.direction == Direction.INCOMING else Folder.SENT
    return [f for f in (home, Folder.ARCHIVE, Folder.TRASH) if f != message.folder]


def message_move(
    *, message: Message, folder: str, actor: Any = None, request: HttpRequest | None = None
) -> Message:
    """Move `message` to `folder` (received mail: inbox/archive/trash; sent mail: sent/archive/trash)."""
    with transaction.atomic():
        locked = Message.objects.select_for_update().get(pk=message.pk)
        if folder == locked.folder:
            return locked
        if folder not in folders_allowed(locked):
            label = Folder(folder).label if folder in Folder.values else folder
            raise ValidationError(
                {"folder": f"Ce message ne peut pas être déplacé vers le dossier « {label} »."}
            )
        previous = locked.folder
        locked.folder = folder
        locked.save(update_fields=["folder", "updated_at"])
        if actor is not None:
            audit_record(
                action="messagerie.message.move",
                request=request,
                actor=actor,
                target=locked,
                detail={"from": previous, "to": folder},
            )
    return locked


def _blob_forget(blob_id: Any) -> None:
    """Delete a blob nobody else references (an inbound row may share the raw MIME of a copy)."""
    try:
        blob = Blob.objects.filter(pk=blob_id).first()
    except ValidationError:  # not a blob id
        return
    if blob is None:
        return
    try:
        with transaction.atomic():
            blob_delete(blob)
    except ProtectedError:
        pass


def message_delete(*, message: Message, actor: Any, request: HttpRequest | None = None) -> bool:
    """Put `message` in the trash; from the trash, delete it for good (body and files too).
    True when it was deleted for good."""
    with transaction.atomic():
        locked = Message.objects.select_for_update().get(pk=message.pk)
        if locked.folder != Folder.TRASH:
            previous = locked.folder
            locked.folder = Folder.TRASH
            locked.save(update_fields=["folder", "updated_at"])
            audit_record(
                action="messagerie.message.trash",
                request=request,
                actor=actor,
                target=locked,
                detail={"from": previous},
            )
            return False
        delivery = getattr(locked, "delivery", None)
        if delivery is not None and delivery.status in OPEN_STATUSES:
            raise ValidationError(
                "Ce message est encore en cours d'envoi : il pourra être supprimé définitivement une fois "
                "l'envoi terminé."
            )
        blob_ids: list[Any] = [locked.body_id, locked.raw_id]
        for blob_id, documents in locked.attachments.values_list("blob_id", "documents"):
            blob_ids.append(blob_id)
            blob_ids += [d.get("body_blob") for d in documents or [] if isinstance(d, dict)]
        detail = {"message_id": locked.message_id, "mailbox": locked.mailbox_id}
        target_id = str(locked.pk)
        if delivery is not None:
            delivery.delete()
        locked.attachments.all().delete()
        locked.delete()
        for blob_id in filter(None, blob_ids):
            _blob_forget(blob_id)
        audit_record(
            action="messagerie.message.delete",
            request=request,
            actor=actor,
            target_type="messagerie.message",
            target_id=target_id,
            detail=detail,
        )
    return True


# --- Attachments ---------------------------------------------------------------------------------------

# What may be attached, by extension (the browser's content type is not trusted): the files clinicians
# exchange (reports, letters, images, structured documents). Executables, scripts and archives are refused.
ALLOWED_TYPES: dict[str, str] = {
    ".pdf": "application/pdf",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".png": "image/png",
    ".tif": "image/tiff",
    ".tiff": "image/tiff",
    ".txt": "text/plain",
    ".csv": "text/csv",
    ".xml": "text/xml",
    ".hl7": "application/hl7-v2",
    ".rtf": "application/rtf",
    ".odt": "application/vnd.oasis.opendocument.text",
    ".docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    ".dcm": "application/dicom",
}
# Leading bytes a file of these types must start with.
MAGIC: dict[str, tuple[bytes, ...]] = {
    "application/pdf": (b"%PDF-",),
    "image/jpeg": (b"\xff\xd8\xff",),
    "image/png": (b"\x89PNG\r\n\x1a\n",),
    "image/tiff": (b"II*\x00", b"MM\x00*"),
    "application/vnd.oasis.opendocument.text": (b"PK\x03\x04",),
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document": (b"PK\x03\x04",),
}
_UNSAFE_FILENAME = re.compile(r"[\x00-\x1f\x7f/\\:*?\"<>|]+")


def attachment_max_bytes() -> int:
    return int(settings.MSSANTE_MAX_ATTACHMENT_BYTES)


def safe_filename(name: str) -> str:
    """A file name safe to store and to send back in a header: no path, no control character."""
    name = unicodedata.normalize("NFC", os.path.basename((name or "").replace("\\", "/")))
    name = _UNSAFE_FILENAME.sub("_", name).strip(" .")
    if len(name) > 200:
        stem, ext = os.path.splitext(name)
        name = stem[: 200 - len(ext)] + ext
    return name


def _size_text(size: int) -> str:
    return f"{size / (1024 * 1024):.0f} Mo".replace(".", ",")


def attachment_upload(*, mailbox: Mailbox, actor: Any, upload: UploadedFile) -> Attachment:
    """Store a file for a message being written in `mailbox` (not yet attached to a message)."""
    filename = safe_filename(upload.name or "")
    if not filename:
        raise ValidationError({"file": "Le fichier n'a pas de nom."})
    extension = os.path.splitext(filename)[1].lower()
    content_type = ALLOWED_TYPES.get(extension)
    if content_type is None:
        allowed = ", ".join(sorted({e.lstrip(".") for e in ALLOWED_TYPES}))
        raise ValidationError(
            {
                "file": f"Type de fichier non accepté ({extension or 'sans extension'}). "
                f"Types acceptés : {allowed}."
            }
        )
    size = upload.size or 0
    if size <= 0:
        raise ValidationError({"file": "Le fichier est vide."})
    if size > attachment_max_bytes():
        raise ValidationError(
            {
                "file": "Le fichier dépasse la taille maximale d'une pièce jointe "
                f"({_size_text(attachment_max_bytes())})."
            }
        )
    upload.seek(0)
    head = upload.read(16)
    upload.seek(0)
    signatures = MAGIC.get(content_type)
    if signatures and not head.startswith(signatures):
        raise ValidationError(
            {"file": f"Le contenu de « {filename} » ne correspond pas à son extension ({extension})."}
        )
    with transaction.atomic():
        blob = blob_put(upload.chunks(), purpose="messagerie.attachment", content_type=content_type)
        attachment = Attachment.objects.create(
            mailbox=mailbox,
            uploaded_by=actor,
            filename=filename,
            content_type=content_type,
            size=blob.size,
            blob=blob,
        )
        audit_record(
            action="messagerie.attachment.upload",
            actor=actor,
            target=attachment,
            detail={"mailbox": mailbox.address, "size": blob.size, "content_type": content_type},
        )
    return attachment


def uploads_for(*, mailbox: Mailbox, actor: Any, ids: list[int]) -> list[Attachment]:
    """The files `actor` uploaded in `mailbox` for a message being written, by id (others are refused)."""
    if not ids:
        return []
    found = {
        a.pk: a
        for a in Attachment.objects.filter(
            pk__in=ids, mailbox=mailbox, uploaded_by=actor, message__isnull=True
        )
    }
    missing = [i for i in ids if i not in found]
    if missing:
        raise ValidationError(
            {"attachments": "Une pièce jointe n'est plus disponible : ajoutez-la à nouveau."}
        )
    return [found[i] for i in ids]


def _audit_file_access(
    *, action: str, attachment: Attachment, actor: Any, request: HttpRequest | None, detail: dict
) -> None:
    message = attachment.message
    audit_record(
        action=action,
        request=request,
        actor=actor,
        target=attachment,
        patient_ins=message_patient_ins(message) if message is not None else "",
        detail={"filename": attachment.filename, **detail},
    )


def attachment_download(
    *, attachment: Attachment, actor: Any, request: HttpRequest | None = None
) -> Iterator[bytes]:
    """The decrypted content of `attachment`, piece by piece; the access is audited first."""
    if attachment.quarantined:
        raise ValidationError(
            f"La pièce jointe « {attachment.filename} » est en quarantaine "
            f"({attachment.quarantine_reason or 'motif non précisé'}) : elle ne peut pas être téléchargée."
        )
    with transaction.atomic():
        _audit_file_access(
            action="messagerie.attachment.download",
            attachment=attachment,
            actor=actor,
            request=request,
            detail={"size": attachment.size},
        )
    return blob_chunks(attachment.blob)


# --- IHE_XDM documents ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class XdmDocumentInfo:
    index: int
    title: str
    type_code: str
    type_display: str
    media_type: str
    has_pdf: bool


def _package(attachment: Attachment) -> xdm.XdmPackage:
    return xdm.parse_xdm(
        blob_read(attachment.blob), max_total_bytes=int(settings.MSSANTE_XDM_MAX_EXPANDED_BYTES)
    )


def xdm_documents(attachment: Attachment) -> list[XdmDocumentInfo]:
    """The CDA documents of an XDM attachment: from the metadata stored when it arrived, else read from
    the archive itself. [] for a quarantined or unreadable archive."""
    if not attachment.is_xdm or attachment.quarantined:
        return []
    if attachment.documents:
        return [_info_from_json(i, d) for i, d in enumerate(attachment.documents) if isinstance(d, dict)]
    try:
        package = _package(attachment)
    except (xdm.XdmError, ValueError):
        return []
    infos = []
    for index, (entry, content) in enumerate(package.documents):
        media_type, has_pdf = "", False
        try:
            parsed = parse_cda(content)
            media_type, has_pdf = parsed.body_media_type, parsed.body_media_type == "application/pdf"
        except (CdaError, ValueError):
            pass
        infos.append(
            XdmDocumentInfo(
                index=index,
                title=entry.title,
                type_code=entry.type_code.code,
                type_display=entry.type_code.display,
                media_type=media_type,
                has_pdf=has_pdf,
            )
        )
    return infos


def _info_from_json(index: int, data: dict) -> XdmDocumentInfo:
    """One document as stored with the attachment: by the listener (``code``, ``code_display``,
    ``body_media_type``, ``body_blob``) or by the relay for a document it built from a PDF (``type_code``,
    ``type_display``)."""
    type_code = data.get("type_code") or data.get("code") or ""
    display = data.get("type_display") or data.get("code_display") or data.get("display") or ""
    if isinstance(type_code, dict):
        display = display or type_code.get("display", "")
        type_code = type_code.get("code", "")
    media_type = str(data.get("body_media_type") or data.get("media_type") or "")
    if "body_media_type" in data or "media_type" in data:
        has_pdf = media_type == "application/pdf"
    else:  # the relay builds CDA level 1 documents from a PDF only
        has_pdf = bool(data.get("has_pdf", True))
    return XdmDocumentInfo(
        index=index,
        title=str(data.get("title") or ""),
        type_code=str(type_code),
        type_display=str(display),
        media_type=media_type or ("application/pdf" if has_pdf else ""),
        has_pdf=has_pdf,
    )


def _stored_body(attachment: Attachment, index: int) -> Blob | None:
    """The body the listener extracted from document `index` when the message arrived, if any."""
    documents = attachment.documents if isinstance(attachment.documents, list) else []
    if not 0 <= index < len(documents) or not isinstance(documents[index], dict):
        return None
    blob_id = documents[index].get("body_blob")
    if not blob_id or documents[index].get("body_media_type") != "application/pdf":
        return None
    try:
        return Blob.objects.filter(pk=blob_id).first()
    except (ValueError, ValidationError):
        return None


def xdm_document_pdf(
    *, attachment: Attachment, index: int, actor: Any, request: HttpRequest | None = None
) -> tuple[str, bytes]:
    """(file name, PDF) of the level-1 CDA document number `index` of an XDM attachment (audited)."""
    if not attachment.is_xdm or attachment.quarantined:
        raise ValidationError("Cette pièce jointe n'est pas une archive IHE_XDM lisible.")
    stored = _stored_body(attachment, index)
    if stored is not None:
        info = _info_from_json(index, attachment.documents[index])
        with transaction.atomic():
            _audit_file_access(
                action="messagerie.document.read",
                attachment=attachment,
                actor=actor,
                request=request,
                detail={"document": index, "type_code": info.type_code},
            )
        name = safe_filename(info.title or f"document-{index + 1}") or f"document-{index + 1}"
        return f"{name}.pdf", blob_read(stored)
    try:
        package = _package(attachment)
        entry, content = package.documents[index]
        parsed = parse_cda(content)
    except IndexError:
        raise ValidationError("Ce document n'existe pas dans l'archive.") from None
    except (xdm.XdmError, CdaError, ValueError) as error:
        raise ValidationError(f"L'archive IHE_XDM ne peut pas être lue : {error}") from error
    if parsed.body_media_type != "application/pdf" or not parsed.body:
        raise ValidationError("Ce document CDA ne contient pas de PDF (document structuré).")
    with transaction.atomic():
        _audit_file_access(
            action="messagerie.document.read",
            attachment=attachment,
            actor=actor,
            request=request,
            detail={"document": index, "type_code": parsed.type_code.code},
        )
    title = safe_filename(parsed.title or entry.title or f"document-{index + 1}") or f"document-{index + 1}"
    return f"{title}.pdf", parsed.body
