from django.contrib import admin
from django.contrib.auth.admin import UserAdmin as BaseUserAdmin

from enrs.audit.admin_mixins import AuditedModelAdmin

from .models import User


@admin.register(User)
class UserAdmin(AuditedModelAdmin, BaseUserAdmin):
    list_display = ("username", "last_name", "first_name", "role", "idnat_ps", "is_active")
    list_filter = ("role", "is_active", "is_staff")
    search_fields = ("username", "last_name", "first_name", "email", "idnat_ps")
    fieldsets = (
        *(BaseUserAdmin.fieldsets or ()),
        ("ENRS", {"fields": ("role", "idnat_ps")}),
    )
    add_fieldsets = (
        *BaseUserAdmin.add_fieldsets,
        ("ENRS", {"fields": ("role", "idnat_ps")}),
    )
