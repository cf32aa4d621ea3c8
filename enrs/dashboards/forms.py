"""The dashboards' filter form (query string, shared by pages, exports and API) and the targets form."""

from __future__ import annotations

from datetime import date
from typing import Any

from django import forms
from django.core.exceptions import ValidationError
from django.utils import timezone

from enrs.usage.indicators import INDICATORS
from enrs.usage.selectors import filter_choices

from .figures import GRANULARITIES, Filters

MAX_SPAN_DAYS = 5 * 366
EARLIEST = date(2000, 1, 1)
GRANULARITY_CHOICES = [("", "Automatique"), *GRANULARITIES.items()]


def default_period(today: date | None = None) -> tuple[date, date]:
    """From the 1st of January to today: the year the targets are set for."""
    today = today or timezone.localdate()
    return date(today.year, 1, 1), today


def auto_granularity(start: date, end: date) -> str:
    days = (end - start).days + 1
    if days <= 62:
        return "day"
    if days <= 400:
        return "week"
    return "month"


class FilterForm(forms.Form):
    """Period, step and scope. Field names are the query-string parameters (French, stable: the API
    uses them too)."""

    debut = forms.DateField(label="Du", required=False, widget=forms.DateInput(attrs={"type": "date"}))
    fin = forms.DateField(label="Au", required=False, widget=forms.DateInput(attrs={"type": "date"}))
    pas = forms.ChoiceField(label="Pas de temps", choices=GRANULARITY_CHOICES, required=False)
    departement = forms.ChoiceField(label="Département", required=False)
    categorie = forms.ChoiceField(label="Catégorie de structure", required=False)
    college = forms.ChoiceField(label="Collège", required=False)
    membre = forms.CharField(label="Membre (identifiant de la structure)", required=False, max_length=18)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        choices = filter_choices()
        everyone = [("", "Tous")]
        dept = self.fields["departement"]
        cat = self.fields["categorie"]
        college = self.fields["college"]
        assert isinstance(dept, forms.ChoiceField)
        assert isinstance(cat, forms.ChoiceField)
        assert isinstance(college, forms.ChoiceField)
        dept.choices = everyone + [(c, f"{c} — {label}") for c, label in choices.get("department", [])]
        cat.choices = [("", "Toutes"), *choices.get("category", [])]
        college.choices = everyone + list(choices.get("college", []))
        structures = choices.get("structure")
        if structures:
            self.fields["membre"] = forms.ChoiceField(
                label="Membre", required=False, choices=everyone + list(structures)
            )

    def clean_membre(self) -> int | None:
        value = self.cleaned_data.get("membre")
        if value in (None, ""):
            return None
        try:
            number = int(value)
        except (TypeError, ValueError):
            raise ValidationError("Identifiant de membre invalide : un nombre est attendu.") from None
        if number <= 0:
            raise ValidationError("Identifiant de membre invalide : un nombre est attendu.")
        return number

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        default_start, default_end = default_period()
        start = data.get("debut") or (default_start if not data.get("fin") else None)
        end = data.get("fin") or default_end
        if start is None:
            start = end.replace(month=1, day=1)
        if start < EARLIEST:
            self.add_error("debut", "La période ne peut pas commencer avant 2000.")
        elif end < start:
            self.add_error("fin", "La fin de la période doit suivre son début.")
        elif (end - start).days > MAX_SPAN_DAYS:
            self.add_error("fin", "La période ne peut pas dépasser cinq ans.")
        data["debut"], data["fin"] = start, end
        return data

    def filters(self) -> Filters:
        """The filters once the form is valid (call is_valid() first)."""
        data = self.cleaned_data
        start, end = data["debut"], data["fin"]
        college = data.get("college")
        return Filters(
            start=start,
            end=end,
            granularity=data.get("pas") or auto_granularity(start, end),
            department=data.get("departement") or None,
            category=data.get("categorie") or None,
            college=int(college) if college else None,
            structure_id=int(data["membre"]) if data.get("membre") else None,
        )


def filters_from_query(query: Any) -> tuple[FilterForm, Filters]:
    """Bind the form to a query string; invalid filters fall back to the defaults (form keeps the errors)."""
    form = FilterForm(query or None)
    if form.is_bound and form.is_valid():
        return form, form.filters()
    start, end = default_period()
    fallback = Filters(start=start, end=end, granularity=auto_granularity(start, end))
    if not form.is_bound:
        form = FilterForm(initial={"debut": start.isoformat(), "fin": end.isoformat()})
    return form, fallback


def query_error(form: FilterForm) -> str:
    """One French sentence listing the form's errors (exports and API answer 400 with it)."""
    parts = []
    for name, errors in form.errors.items():
        label = form.fields[name].label if name in form.fields else "Filtres"
        parts.append(f"{label} : {' '.join(str(e) for e in errors)}")
    return " ; ".join(parts)


class TargetForm(forms.Form):
    indicateur = forms.ChoiceField(label="Indicateur")
    annee = forms.IntegerField(label="Année", min_value=2000, max_value=2100)
    departement = forms.ChoiceField(
        label="Département", required=False, help_text="Vide : objectif régional."
    )
    valeur = forms.FloatField(label="Valeur de l'objectif", min_value=0)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        indicator = self.fields["indicateur"]
        dept = self.fields["departement"]
        assert isinstance(indicator, forms.ChoiceField)
        assert isinstance(dept, forms.ChoiceField)
        indicator.choices = [("", "Choisir un indicateur")] + [
            (i.code, f"{i.label} ({i.unit})") for i in _indicators()
        ]
        dept.choices = [("", "Région entière")] + [
            (c, f"{c} — {label}") for c, label in filter_choices().get("department", [])
        ]
        if not self.is_bound and "annee" not in self.initial:
            self.initial["annee"] = timezone.localdate().year


def _indicators() -> list[Any]:
    values = INDICATORS.values() if isinstance(INDICATORS, dict) else INDICATORS
    return list(values)
