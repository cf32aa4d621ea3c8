"""Serializers of the messagerie API (field names in English, values and messages in French)."""

from __future__ import annotations

import base64
import binascii
from typing import Any

from rest_framework import serializers

MAX_API_ATTACHMENTS = 20


class MessagerieMailboxSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    address = serializers.EmailField()
    kind = serializers.CharField(help_text="PER (personnelle), ORG (organisationnelle), APP (applicative)")
    display_name = serializers.CharField()
    unread = serializers.IntegerField(help_text="Messages non lus de la boîte de réception.")


class MessageSummarySerializer(serializers.Serializer):
    id = serializers.IntegerField(source="pk")
    folder = serializers.CharField(help_text="inbox, sent, drafts, archive ou trash")
    direction = serializers.CharField(help_text="out (envoyé) ou in (reçu)")
    kind = serializers.CharField(help_text="message, mdn (accusé de lecture) ou dsn (avis de remise)")
    subject = serializers.CharField()
    from_address = serializers.CharField()
    to_addresses = serializers.ListField(child=serializers.CharField())
    sent_at = serializers.DateTimeField(allow_null=True)
    is_read = serializers.BooleanField()
    has_attachments = serializers.BooleanField()
    patient_ins = serializers.CharField(help_text="INS du patient (identité qualifiée), ou vide.")
    cda_codes = serializers.CharField(help_text="Codes (typeCode) des documents CDA joints.")


class MessagePageSerializer(serializers.Serializer):
    page = serializers.IntegerField()
    has_next = serializers.BooleanField()
    results = MessageSummarySerializer(many=True)


class XdmDocumentSerializer(serializers.Serializer):
    index = serializers.IntegerField()
    title = serializers.CharField()
    type_code = serializers.CharField()
    type_display = serializers.CharField()
    has_pdf = serializers.BooleanField()


class AttachmentSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    filename = serializers.CharField()
    content_type = serializers.CharField()
    size = serializers.IntegerField()
    is_xdm = serializers.BooleanField()
    quarantined = serializers.BooleanField()
    quarantine_reason = serializers.CharField()
    documents = XdmDocumentSerializer(many=True)


class RecipientSerializer(serializers.Serializer):
    address = serializers.CharField()
    field = serializers.CharField()
    status = serializers.CharField(help_text="queued, sent, delivered, read ou failed")
    status_detail = serializers.CharField()
    status_at = serializers.DateTimeField(allow_null=True)


class MessageDetailSerializer(MessageSummarySerializer):
    message_id = serializers.CharField()
    in_reply_to = serializers.CharField()
    cc_addresses = serializers.ListField(child=serializers.CharField())
    request_read_receipt = serializers.BooleanField()
    no_reply = serializers.BooleanField()
    body = serializers.CharField()
    attachments = AttachmentSerializer(many=True)
    recipients = RecipientSerializer(many=True)


class FileSerializer(serializers.Serializer):
    filename = serializers.CharField(max_length=200)
    content = serializers.CharField(help_text="Contenu du fichier en base64.")

    def validate_content(self, value: str) -> bytes:
        try:
            return base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            raise serializers.ValidationError("Contenu base64 invalide.") from None


class SendSerializer(serializers.Serializer):
    to = serializers.ListField(child=serializers.CharField(max_length=255), min_length=1, max_length=100)
    cc = serializers.ListField(child=serializers.CharField(max_length=255), required=False, default=list)
    subject = serializers.CharField(max_length=250, allow_blank=True, default="")
    body = serializers.CharField(max_length=200_000, allow_blank=True, default="", trim_whitespace=False)
    patient_ins = serializers.CharField(
        max_length=15,
        required=False,
        allow_blank=True,
        default="",
        help_text="Matricule INS d'un patient connu du portail (obligatoire avec un document CDA).",
    )
    attachments = FileSerializer(many=True, required=False, default=list)
    cda_attachment = serializers.IntegerField(
        required=False,
        allow_null=True,
        default=None,
        min_value=0,
        help_text="Rang (à partir de 0) du PDF de `attachments` à transmettre aussi en CDA (IHE_XDM).",
    )
    document_type_code = serializers.CharField(max_length=20, default="11488-4")
    request_read_receipt = serializers.BooleanField(default=False)
    no_reply = serializers.BooleanField(default=False)

    def validate_attachments(self, value: list[Any]) -> list[Any]:
        if len(value) > MAX_API_ATTACHMENTS:
            raise serializers.ValidationError(f"{MAX_API_ATTACHMENTS} pièces jointes au plus.")
        return value

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        index = attrs.get("cda_attachment")
        if index is not None and index >= len(attrs.get("attachments") or []):
            raise serializers.ValidationError({"cda_attachment": "Aucune pièce jointe à ce rang."})
        return attrs
