"""Django admin of patient identities: read-only (every write goes through `enrs.patients.services`, which
applies the identity rules and audits), and each patient opened here is an audited read."""

from typing import Any

from django.contrib import admin
from django.http import HttpRequest, HttpResponse

from enrs.audit.admin_mixins import ReadOnlyModelAdmin
from enrs.audit.services import audit_record

from .models import Consent, IdentityStatusChange, Patient


class IdentityStatusChangeInline(admin.TabularInline):
    model = IdentityStatusChange
    extra = 0
    fields = ("at", "previous_status", "status", "evidence", "reason", "actor")
    readonly_fields = fields
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Patient)
class PatientAdmin(ReadOnlyModelAdmin):
    list_display = ("birth_family_name", "first_given_name", "birth_date", "identity_status", "created_at")
    list_filter = ("identity_status",)
    search_fields = ("=ins", "birth_family_name", "used_family_name")
    date_hierarchy = "created_at"
    inlines = [IdentityStatusChangeInline]

    def change_view(
        self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: Any = None
    ) -> HttpResponse:
        patient = self.get_object(request, object_id)
        if patient is not None:
            audit_record(
                action="patient.read",
                request=request,
                target=patient,
                patient_ins=patient.ins,
                detail={"purpose": "admin"},
            )
        return super().change_view(request, object_id, form_url, extra_context)


@admin.register(Consent)
class ConsentAdmin(ReadOnlyModelAdmin):
    list_display = ("patient", "kind", "professional", "recorded_at", "withdrawn_at")
    list_filter = ("kind",)
    list_select_related = ("patient", "professional")
    raw_id_fields = ("patient", "professional", "recorded_by", "withdrawn_by")
