"""Django admin of the dmp app: read-only views for support (every write goes through `dmp.services`)."""

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from enrs.audit.admin_mixins import ReadOnlyModelAdmin

from .models import Document, DocumentEvent, Submission, SubmissionAttempt


class DocumentEventInline(admin.TabularInline):
    model = DocumentEvent
    extra = 0
    can_delete = False
    fields = ("at", "action", "status", "detail", "actor")
    readonly_fields = fields

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Document)
class DocumentAdmin(ReadOnlyModelAdmin):
    # No patient name in lists: the patient is shown by primary key only (reads are audited in the portal).
    list_display = ("pk", "title", "type_code", "version_number", "status", "structure", "created_at")
    list_filter = ("status", "source", "masked_from_professionals", "invisible_to_patient")
    search_fields = ("unique_id", "set_id", "entry_uuid")
    list_select_related = ("structure",)
    raw_id_fields = ("patient", "structure", "author", "author_professional", "replaces", "pdf", "cda")
    inlines = [DocumentEventInline]


class SubmissionAttemptInline(admin.TabularInline):
    model = SubmissionAttempt
    extra = 0
    can_delete = False
    fields = ("number", "started_at", "outcome", "code", "http_status", "duration_ms", "message", "worker")
    readonly_fields = fields

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Submission)
class SubmissionAdmin(ReadOnlyModelAdmin):
    list_display = ("pk", "document", "kind", "status", "attempts", "last_error_code", "created_at")
    list_filter = ("kind", "status")
    list_select_related = ("document",)
    raw_id_fields = ("document", "requested_by")
    inlines = [SubmissionAttemptInline]
