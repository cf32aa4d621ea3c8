"""Forms of the RPU pages: file upload, day and period filters (French errors next to the fields)."""

from datetime import date, timedelta
from typing import Any

from django import forms
from django.conf import settings
from django.utils import timezone

from .models import EmergencyDepartment
from .selectors import emergency_department_list, establishment_choices

MAX_PERIOD_DAYS = 366


class RpuUploadForm(forms.Form):
    emergency_department = forms.ModelChoiceField(
        label="Structure des urgences",
        queryset=EmergencyDepartment.objects.none(),
        empty_label="Choisir la structure des urgences",
        error_messages={
            "required": "Choisissez la structure des urgences.",
            "invalid_choice": "Choix inconnu.",
        },
    )
    file = forms.FileField(
        label="Fichier OSCOUR (XML)",
        help_text="Le fichier RPU quotidien au format OSCOUR, encodé en UTF-8.",
        error_messages={"required": "Choisissez le fichier à déposer.", "empty": "Le fichier est vide."},
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        field = self.fields["emergency_department"]
        assert isinstance(field, forms.ModelChoiceField)
        field.queryset = emergency_department_list()

    def clean_file(self) -> Any:
        upload = self.cleaned_data["file"]
        limit = int(getattr(settings, "RPU_MAX_FILE_BYTES", 20 * 1024 * 1024))
        if upload.size > limit:
            raise forms.ValidationError(f"Fichier trop volumineux : la limite est de {limit // 1024} Kio.")
        return upload


class DayForm(forms.Form):
    jour = forms.DateField(label="Jour", required=False, widget=forms.DateInput(attrs={"type": "date"}))


class IndicatorFilterForm(forms.Form):
    du = forms.DateField(label="Du", required=False, widget=forms.DateInput(attrs={"type": "date"}))
    au = forms.DateField(label="Au", required=False, widget=forms.DateInput(attrs={"type": "date"}))
    structure = forms.TypedChoiceField(
        label="Structure des urgences", required=False, coerce=int, empty_value=None
    )
    etablissement = forms.ChoiceField(label="Établissement", required=False)
    departement = forms.ChoiceField(label="Département", required=False)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        eds = list(emergency_department_list(active_only=False))
        self.fields["structure"].choices = [("", "Toutes"), *[(ed.pk, ed.name) for ed in eds]]  # type: ignore[attr-defined]
        self.fields["etablissement"].choices = [("", "Tous"), *establishment_choices()]  # type: ignore[attr-defined]
        departments = sorted({ed.department for ed in eds if ed.department})
        self.fields["departement"].choices = [("", "Tous"), *[(d, d) for d in departments]]  # type: ignore[attr-defined]

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        today = timezone.localdate()
        end: date = cleaned.get("au") or today - timedelta(days=1)
        start: date = cleaned.get("du") or end - timedelta(days=29)
        if start > end:
            self.add_error("du", "La date de début doit précéder la date de fin.")
        elif (end - start).days >= MAX_PERIOD_DAYS:
            self.add_error("du", f"La période ne peut dépasser {MAX_PERIOD_DAYS} jours.")
        cleaned["du"], cleaned["au"] = start, end
        return cleaned
