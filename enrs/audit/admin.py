"""Read-only view of the audit trail in the Django admin (no add, change or delete), itself audited."""

from typing import Any

from django.contrib import admin
from django.http import HttpRequest, HttpResponse

from .models import AuditEvent
from .services import audit_record


@admin.register(AuditEvent)
class AuditEventAdmin(admin.ModelAdmin):
    list_display = (
        "id",
        "occurred_at",
        "actor_label",
        "auth_method",
        "action",
        "target_type",
        "target_id",
        "patient_ins",
        "ip",
        "outcome",
    )
    list_filter = ("outcome", "auth_method")
    search_fields = ("=actor_label", "=patient_ins", "=request_id", "=target_id", "^action")
    list_select_related = ("actor",)
    ordering = ("-id",)
    show_full_result_count = False  # no COUNT(*) over millions of rows on every page
    readonly_fields = [f.name for f in AuditEvent._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def changelist_view(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        if self.has_view_permission(request):
            audit_record(
                action="audit.search",
                request=request,
                detail={"via": "admin", "query": {k: request.GET.get(k, "") for k in sorted(request.GET)}},
            )
        return super().changelist_view(request, extra_context)

    def change_view(
        self,
        request: HttpRequest,
        object_id: str,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        if self.has_view_permission(request):
            audit_record(
                action="audit.view",
                request=request,
                target_type="audit.auditevent",
                target_id=str(object_id)[:100],
                detail={"via": "admin"},
            )
        return super().change_view(request, object_id, form_url, extra_context)
