"""Django admin of the RPU app: emergency departments are managed here (audited)."""

from django.contrib import admin

from enrs.audit.admin_mixins import AuditedModelAdmin

from .models import EmergencyDepartment


@admin.register(EmergencyDepartment)
class EmergencyDepartmentAdmin(AuditedModelAdmin):
    list_display = ["name", "finess", "establishment_name", "department", "contact_email", "active"]
    list_filter = ["department", "active"]
    search_fields = ["name", "finess", "establishment_finess", "establishment_name"]
