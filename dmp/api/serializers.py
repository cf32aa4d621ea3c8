"""Serializers of the DMP JSON API: the documents fed for a patient and their status."""

from typing import Any

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from enrs.standards import valuesets

from ..models import Document, DocumentStatus


class DmpCodedSerializer(serializers.Serializer):
    code = serializers.CharField()
    display = serializers.CharField(help_text="Libellé du jeu de valeurs national.")


class DmpDocumentSerializer(serializers.ModelSerializer):
    type = serializers.SerializerMethodField(help_text="Type de document (JDV_J07, LOINC).")
    status = serializers.ChoiceField(
        choices=DocumentStatus.choices,
        help_text="draft, queued, sent, accepted, refused, updated ou replaced.",
    )
    status_label = serializers.CharField(source="get_status_display")
    status_detail = serializers.CharField(help_text="Motif d'un refus du DMP, en français, ou précision.")
    visibility = serializers.ListField(
        child=serializers.CharField(),
        source="visibility_codes",
        help_text="Codes de visibilité : MASQUE_PS, INVISIBLE_PATIENT, INVISIBLE_REPRESENTANTS_LEGAUX "
        "(liste vide : visibilité normale).",
    )
    structure = serializers.CharField(source="structure.name")
    replaces = serializers.IntegerField(
        source="replaces_id", allow_null=True, help_text="Version précédente (même setId)."
    )

    class Meta:
        model = Document
        fields = [
            "id",
            "title",
            "type",
            "status",
            "status_label",
            "status_detail",
            "confidentiality",
            "visibility",
            "version_number",
            "set_id",
            "unique_id",
            "replaces",
            "structure",
            "service_start",
            "service_end",
            "created_at",
            "submitted_at",
            "accepted_at",
        ]
        read_only_fields = fields

    @staticmethod
    @extend_schema_field(DmpCodedSerializer)
    def get_type(document: Document) -> dict[str, Any]:
        code = valuesets.lookup("type_code", document.type_code)
        return {"code": document.type_code, "display": code.display if code else ""}


class DmpDocumentPageSerializer(serializers.Serializer):
    patient = serializers.IntegerField(help_text="Identifiant ENRS du patient.")
    next = serializers.URLField(allow_null=True)
    previous = serializers.URLField(allow_null=True)
    results = DmpDocumentSerializer(many=True)
