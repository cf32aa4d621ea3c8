"""Django admin of the annuaire app.

Tables reach a million rows at national scale: foreign keys use raw ids (no select of every row), list
pages skip the full count, and searches use the indexed identifier columns first.
"""

from django.contrib import admin
from django.db.models import Q, QuerySet
from django.http import HttpRequest

from enrs.audit.admin_mixins import AuditedModelAdmin

from .models import (
    Adherent,
    AdherentFee,
    AdherentRepresentative,
    AdherentService,
    Commune,
    Department,
    Exercice,
    MailboxAddress,
    Professional,
    Structure,
)


@admin.register(Department)
class DepartmentAdmin(AuditedModelAdmin):
    list_display = ["code", "name", "region_code"]
    list_filter = ["region_code"]
    search_fields = ["code", "name"]


@admin.register(Commune)
class CommuneAdmin(AuditedModelAdmin):
    list_display = ["insee_code", "name", "postal_code", "department"]
    list_filter = ["department__region_code"]
    list_select_related = ["department"]
    search_fields = ["=insee_code", "=postal_code", "name"]
    raw_id_fields = ["department"]
    show_full_result_count = False


class SiteInline(admin.TabularInline):
    model = Structure
    fk_name = "legal_entity"
    fields = ["finess_et", "name", "siret", "commune", "is_active"]
    raw_id_fields = ["commune"]
    extra = 0
    show_change_link = True
    verbose_name = "établissement"
    verbose_name_plural = "établissements (sites géographiques)"


@admin.register(Structure)
class StructureAdmin(AuditedModelAdmin):
    list_display = [
        "name",
        "kind",
        "finess_et",
        "finess_ej",
        "siret",
        "category_label",
        "commune",
        "is_active",
    ]
    list_filter = ["kind", "is_active", "sector_code", "category_code", "commune__department__region_code"]
    list_select_related = ["commune"]
    search_fields = ["=finess_et", "=finess_ej", "=siret", "=siren", "name"]
    raw_id_fields = ["legal_entity", "commune"]
    readonly_fields = ["created_at", "updated_at"]
    inlines = [SiteInline]
    show_full_result_count = False


class ExerciceInline(admin.TabularInline):
    model = Exercice
    fields = ["structure", "role_code", "exercise_mode"]
    raw_id_fields = ["structure"]
    extra = 0


class ProfessionalMailboxInline(admin.TabularInline):
    model = MailboxAddress
    fk_name = "professional"
    fields = ["address", "kind"]
    extra = 0


@admin.register(Professional)
class ProfessionalAdmin(AuditedModelAdmin):
    list_display = [
        "last_name",
        "first_name",
        "idnat_ps",
        "profession_label",
        "specialty_label",
        "is_active",
        "rpps_key_valid",
    ]
    list_filter = ["profession_code", "identifier_type", "is_active", "rpps_key_valid"]
    search_fields = ["=idnat_ps", "=rpps", "=adeli", "last_name", "first_name"]
    readonly_fields = ["rpps_key_valid", "created_at", "updated_at"]
    inlines = [ExerciceInline, ProfessionalMailboxInline]
    show_full_result_count = False

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[Professional], search_term: str
    ) -> tuple[QuerySet[Professional], bool]:
        # A number is an identifier: look it up in the unique indexes, not in a million names.
        term = search_term.strip()
        if term.isdigit():
            return queryset.filter(Q(idnat_ps=term) | Q(rpps=term) | Q(adeli=term)), False
        return super().get_search_results(request, queryset, search_term)


@admin.register(Exercice)
class ExerciceAdmin(AuditedModelAdmin):
    list_display = ["professional", "structure", "role_code", "exercise_mode"]
    list_filter = ["exercise_mode"]
    list_select_related = ["professional", "structure"]
    search_fields = ["=professional__idnat_ps", "=structure__finess_et"]
    raw_id_fields = ["professional", "structure"]
    show_full_result_count = False


@admin.register(MailboxAddress)
class MailboxAddressAdmin(AuditedModelAdmin):
    list_display = ["address", "kind", "professional", "structure"]
    list_filter = ["kind"]
    list_select_related = ["professional", "structure"]
    search_fields = ["address", "=professional__idnat_ps", "=structure__finess_et"]
    raw_id_fields = ["professional", "structure"]
    show_full_result_count = False


# Members: the GCS staff's pages (annuaire/member_views.py) are the audited way to change them; these
# inlines are the administrators' fallback.
class AdherentServiceInline(admin.TabularInline):
    model = AdherentService
    fields = ["service", "since"]
    extra = 0


class AdherentFeeInline(admin.TabularInline):
    model = AdherentFee
    fields = ["year", "amount", "status", "paid_on"]
    extra = 0


class AdherentRepresentativeInline(admin.TabularInline):
    model = AdherentRepresentative
    fields = ["body", "role", "last_name", "first_name", "email", "function", "professional"]
    raw_id_fields = ["professional"]
    extra = 0


@admin.register(Adherent)
class AdherentAdmin(AuditedModelAdmin):
    list_display = ["__str__", "college", "status", "membership_start", "membership_end"]
    list_filter = ["college", "status"]
    list_select_related = ["structure", "professional"]
    search_fields = [
        "structure__name",
        "=structure__finess_ej",
        "professional__last_name",
        "=professional__idnat_ps",
    ]
    raw_id_fields = ["structure", "professional"]
    readonly_fields = ["created_at", "updated_at"]
    date_hierarchy = "membership_start"
    inlines = [AdherentServiceInline, AdherentFeeInline, AdherentRepresentativeInline]
