"""The messagerie API (``/api/messagerie/``): the caller's boxes, the messages of a box, one message,
one file, and sending.

Two kinds of callers: a clinician signed in with a strong method (his personal box and the
organisational boxes delegated to him), and the software sender of an applicative box with its token
(``Authorization: Bearer …``; that box only). A box the caller may not use answers 404, audited as
``access.denied``. Reading a message concerning a patient is an audited patient-data access.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import transaction
from django.db.models import Count, Q
from django.http import FileResponse
from django.utils.http import content_disposition_header
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.authentication import SessionAuthentication
from rest_framework.exceptions import NotFound, PermissionDenied, ValidationError
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from enrs.audit.services import audit_record
from enrs.core.pagination import page_of
from enrs.patients.models import Patient

from .. import selectors
from ..models import ApplicationToken, Attachment, Direction, Folder, Mailbox, Message
from ..services import folders, outgoing
from ..services.mailboxes import mailbox_can_send, mailboxes_for_user
from .authentication import ApplicationTokenAuthentication, MailboxApiAccess
from .serializers import (
    MessageDetailSerializer,
    MessagePageSerializer,
    MessagerieMailboxSerializer,
    MessageSummarySerializer,
    SendSerializer,
)

TAGS = ["messagerie"]
PAGE_SIZE = 50


class MessagerieApiView(APIView):
    authentication_classes = [ApplicationTokenAuthentication, SessionAuthentication]
    permission_classes = [MailboxApiAccess]

    def token(self, request: Request) -> ApplicationToken | None:
        return request.auth if isinstance(request.auth, ApplicationToken) else None

    def actor(self, request: Request) -> Any:
        return None if self.token(request) is not None else request.user

    def boxes(self, request: Request) -> Any:
        token = self.token(request)
        if token is not None:
            return Mailbox.objects.filter(pk=token.mailbox_id, is_active=True)
        return mailboxes_for_user(request.user)

    def mailbox(self, request: Request, pk: int) -> Mailbox:
        box = self.boxes(request).filter(pk=pk).first()
        if box is None:
            token = self.token(request)
            audit_record(
                action="access.denied",
                request=request._request,
                outcome="denied",
                target_type="messagerie.mailbox",
                target_id=str(pk),
                detail={
                    "reason": "mailbox",
                    "path": request.path,
                    "method": request.method,
                    **({"token": token.prefix} if token is not None else {}),
                },
            )
            raise NotFound("Cette boîte aux lettres n'existe pas ou ne vous est pas accessible.")
        return box


def _summary(message: Message) -> dict[str, Any]:
    return MessageSummarySerializer(message).data


def _detail(message: Message) -> dict[str, Any]:
    attachments = []
    for attachment in message.attachments.all():
        attachments.append(
            {
                "id": attachment.pk,
                "filename": attachment.filename,
                "content_type": attachment.content_type,
                "size": attachment.size,
                "is_xdm": attachment.is_xdm,
                "quarantined": attachment.quarantined,
                "quarantine_reason": attachment.quarantine_reason,
                "documents": [
                    {
                        "index": d.index,
                        "title": d.title,
                        "type_code": d.type_code,
                        "type_display": d.type_display,
                        "has_pdf": d.has_pdf,
                    }
                    for d in folders.xdm_documents(attachment)
                ],
            }
        )
    data = {
        **MessageSummarySerializer(message).data,
        "message_id": message.message_id,
        "in_reply_to": message.in_reply_to,
        "cc_addresses": message.cc_addresses,
        "request_read_receipt": message.request_read_receipt,
        "no_reply": message.no_reply,
        "body": folders.message_body(message),
        "attachments": attachments,
        "recipients": [
            {
                "address": r.address,
                "field": r.field,
                "status": r.status,
                "status_detail": r.status_detail,
                "status_at": r.status_at,
            }
            for r in message.recipients.all()
        ]
        if message.direction == Direction.OUTGOING
        else [],
    }
    return data


class MailboxListView(MessagerieApiView):
    @extend_schema(
        tags=TAGS,
        summary="Mes boîtes aux lettres",
        operation_id="messagerie_mailboxes_list",
        description="Les boîtes que l'appelant peut utiliser, avec le nombre de messages non lus.",
        responses={200: MessagerieMailboxSerializer(many=True)},
    )
    def get(self, request: Request) -> Response:
        boxes = self.boxes(request).annotate(
            unread=Count("messages", filter=Q(messages__folder=Folder.INBOX, messages__is_read=False))
        )
        return Response(MessagerieMailboxSerializer(boxes, many=True).data)


class MessageListView(MessagerieApiView):
    @extend_schema(
        tags=TAGS,
        summary="Messages d'une boîte",
        operation_id="messagerie_messages_list",
        description="Les messages d'un dossier, les plus récents d'abord, par pages de 50 (sans total).",
        parameters=[
            OpenApiParameter("folder", str, enum=Folder.values, description="Dossier (défaut : inbox)."),
            OpenApiParameter("page", int, description="Page (à partir de 1)."),
        ],
        responses={200: MessagePageSerializer, 404: OpenApiResponse(description="Boîte inaccessible")},
    )
    def get(self, request: Request, mailbox: int) -> Response:
        box = self.mailbox(request, mailbox)
        folder = request.query_params.get("folder", Folder.INBOX)
        if folder not in Folder.values:
            raise ValidationError(
                {"folder": f"Dossier inconnu ; valeurs possibles : {', '.join(Folder.values)}."}
            )
        try:
            page = max(1, min(int(request.query_params.get("page", "1")), 10_000))
        except ValueError:
            raise ValidationError({"page": "Numéro de page invalide."}) from None
        rows, pagination = page_of(
            selectors.message_list(mailbox=box, folder=folder), page=page, size=PAGE_SIZE
        )
        return Response(
            {"page": page, "has_next": pagination["has_next"], "results": [_summary(m) for m in rows]}
        )

    @extend_schema(
        tags=TAGS,
        summary="Envoyer un message",
        operation_id="messagerie_messages_send",
        description=(
            "Envoie un message depuis la boîte (destinataires de l'espace de confiance MSSanté uniquement). "
            "Les fichiers sont en base64 ; `cda_attachment` désigne un PDF à transmettre aussi comme "
            "document CDA de niveau 1 dans une archive IHE_XDM (patient à l'identité qualifiée requis). "
            "L'acheminement est suivi par destinataire (`recipients`)."
        ),
        request=SendSerializer,
        responses={
            201: MessageDetailSerializer,
            400: OpenApiResponse(description="Message refusé (messages en français)"),
            403: OpenApiResponse(description="Envoi non autorisé depuis cette boîte"),
            404: OpenApiResponse(description="Boîte inaccessible"),
        },
    )
    def post(self, request: Request, mailbox: int) -> Response:
        box = self.mailbox(request, mailbox)
        token = self.token(request)
        actor = self.actor(request)
        if token is None and not mailbox_can_send(request.user, box):
            raise PermissionDenied("Votre délégation sur cette boîte ne permet pas d'envoyer des messages.")
        params = SendSerializer(data=request.data)
        params.is_valid(raise_exception=True)
        data = params.validated_data
        patient = None
        if data["patient_ins"]:
            patient = Patient.objects.filter(ins=data["patient_ins"].strip().upper()).first()
            if patient is None:
                raise ValidationError({"patient_ins": "Aucun patient connu du portail n'a ce matricule INS."})
        extra: dict[str, Any] = {"application_token": token} if token is not None else {}
        try:
            with transaction.atomic():
                files = [
                    folders.attachment_upload(
                        mailbox=box, actor=actor, upload=SimpleUploadedFile(f["filename"], f["content"])
                    )
                    for f in data["attachments"]
                ]
                index = data["cda_attachment"]
                cda = files[index] if index is not None else None
                sent = outgoing.message_send(
                    mailbox=box,
                    actor=actor,
                    to=data["to"],
                    cc=data["cc"],
                    subject=data["subject"],
                    body=data["body"],
                    patient=patient,
                    attachments=[f for f in files if f is not cda],
                    cda_from_pdf=cda,
                    document_type_code=data["document_type_code"],
                    request_read_receipt=data["request_read_receipt"],
                    no_reply=data["no_reply"],
                    request=request._request,
                    **extra,
                )
        except DjangoValidationError as error:
            raise ValidationError(
                error.message_dict if hasattr(error, "error_dict") else error.messages
            ) from error
        except DjangoPermissionDenied as error:
            raise PermissionDenied(str(error)) from error
        return Response(
            _detail(selectors.message_get(mailbox=box, pk=sent.pk)), status=status.HTTP_201_CREATED
        )


class MessageDetailView(MessagerieApiView):
    @extend_schema(
        tags=TAGS,
        summary="Lire un message",
        operation_id="messagerie_messages_read",
        description=(
            "Le message, son texte, ses pièces jointes (documents CDA des archives IHE_XDM) et, pour un "
            "message envoyé, l'état de chaque destinataire. La lecture marque le message comme lu, est "
            "tracée quand il concerne un patient, et envoie l'accusé de lecture demandé."
        ),
        responses={200: MessageDetailSerializer, 404: OpenApiResponse(description="Introuvable")},
    )
    def get(self, request: Request, mailbox: int, pk: int) -> Response:
        box = self.mailbox(request, mailbox)
        try:
            message = selectors.message_get(mailbox=box, pk=pk)
        except Message.DoesNotExist:
            raise NotFound("Ce message n'existe pas dans cette boîte.") from None
        folders.message_read(message=message, actor=self.actor(request), request=request._request)
        return Response(_detail(message))


class AttachmentView(MessagerieApiView):
    @extend_schema(
        tags=TAGS,
        summary="Télécharger une pièce jointe",
        operation_id="messagerie_attachments_download",
        responses={
            (200, "application/octet-stream"): OpenApiTypes.BINARY,
            403: OpenApiResponse(description="Pièce jointe en quarantaine"),
            404: OpenApiResponse(description="Introuvable"),
        },
    )
    def get(self, request: Request, mailbox: int, pk: int) -> FileResponse:
        box = self.mailbox(request, mailbox)
        try:
            attachment = selectors.attachment_get(mailbox=box, pk=pk)
        except Attachment.DoesNotExist:
            raise NotFound("Cette pièce jointe n'existe pas.") from None
        try:
            chunks = folders.attachment_download(
                attachment=attachment, actor=self.actor(request), request=request._request
            )
        except DjangoValidationError as error:
            raise PermissionDenied(" ".join(error.messages)) from error
        response = FileResponse(chunks, content_type=attachment.content_type)
        response["Content-Disposition"] = (
            content_disposition_header(True, attachment.filename) or "attachment"
        )
        return response
