"""Changes made through the Django admin are audited like every other write.

`AuditedModelAdmin` records `<app>.<model>.create|update|delete` (with `"via": "admin"` and the changed
field names) for the object and for the rows of its inlines, in the admin's own transaction.
"""

from typing import Any

from django.contrib import admin
from django.db import models
from django.forms import BaseFormSet, ModelForm
from django.http import HttpRequest

from .services import audit_record


def _action(obj: models.Model, verb: str) -> str:
    opts = obj._meta
    return f"{opts.app_label}.{opts.model_name}.{verb}"


def audit_admin_change(
    request: HttpRequest, obj: models.Model, verb: str, changed: list[str] | None = None
) -> None:
    detail: dict[str, Any] = {"via": "admin"}
    if changed is not None:
        detail["changed"] = sorted(changed)
    audit_record(action=_action(obj, verb), request=request, target=obj, detail=detail)


class AuditedModelAdmin(admin.ModelAdmin):
    def save_model(self, request: HttpRequest, obj: Any, form: ModelForm, change: bool) -> None:
        super().save_model(request, obj, form, change)
        audit_admin_change(request, obj, "update" if change else "create", list(form.changed_data))

    def delete_model(self, request: HttpRequest, obj: Any) -> None:
        audit_admin_change(request, obj, "delete")
        super().delete_model(request, obj)

    def delete_queryset(self, request: HttpRequest, queryset: models.QuerySet[Any]) -> None:
        for obj in queryset:
            audit_admin_change(request, obj, "delete")
        super().delete_queryset(request, queryset)

    def save_formset(self, request: HttpRequest, form: ModelForm, formset: BaseFormSet, change: bool) -> None:
        super().save_formset(request, form, formset, change)
        for obj in getattr(formset, "new_objects", []):
            audit_admin_change(request, obj, "create")
        for obj, changed in getattr(formset, "changed_objects", []):
            audit_admin_change(request, obj, "update", list(changed))
        for obj in getattr(formset, "deleted_objects", []):
            audit_admin_change(request, obj, "delete")


class ReadOnlyModelAdmin(AuditedModelAdmin):
    """Rows written only by services (messages, documents, acts, audit-relevant history): the admin shows
    them, never adds, changes or deletes them."""

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class ReadOnlyTabularInline(admin.TabularInline):
    extra = 0
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
