from typing import Any

from django import forms

from .models import Outcome
from .services import INS_RE


class DateInput(forms.DateInput):
    input_type = "date"

    def __init__(self) -> None:
        super().__init__(format="%Y-%m-%d")


class AuditSearchForm(forms.Form):
    """The filters of the administrators' audit page (all optional), read from the query string."""

    actor = forms.CharField(
        label="Identifiant de l'utilisateur",
        required=False,
        max_length=150,
        help_text="Identifiant exact, tel qu'enregistré au moment de l'événement.",
    )
    action = forms.CharField(
        label="Action",
        required=False,
        max_length=100,
        help_text="Préfixe : « auth » trouve auth.login, auth.login.failed…",
    )
    patient_ins = forms.CharField(
        label="INS du patient", required=False, max_length=20, help_text="15 caractères (NIR ou NIA)."
    )
    outcome = forms.ChoiceField(
        label="Résultat", required=False, choices=[("", "Tous les résultats"), *Outcome.choices]
    )
    date_from = forms.DateField(label="Du", required=False, widget=DateInput(), help_text="Date incluse.")
    date_to = forms.DateField(label="Au", required=False, widget=DateInput(), help_text="Date incluse.")

    def clean_patient_ins(self) -> str:
        ins = "".join(self.cleaned_data["patient_ins"].split()).upper()
        if ins and not INS_RE.match(ins):
            raise forms.ValidationError("L'INS compte 15 caractères : chiffres, et 2A ou 2B pour la Corse.")
        return ins

    def clean_action(self) -> str:
        return self.cleaned_data["action"].strip().lower()

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        start, end = cleaned.get("date_from"), cleaned.get("date_to")
        if start and end and start > end:
            self.add_error("date_to", "La date de fin doit être postérieure ou égale à la date de début.")
        return cleaned

    def filters(self) -> dict[str, Any]:
        """Keyword arguments for `audit_event_search` (only the filters that were filled in)."""
        if not self.is_bound:
            return {}
        data = self.cleaned_data
        mapping = {
            "actor": data.get("actor", "").strip(),
            "action_prefix": data.get("action", ""),
            "patient_ins": data.get("patient_ins", ""),
            "outcome": data.get("outcome", ""),
            "date_from": data.get("date_from"),
            "date_to": data.get("date_to"),
        }
        return {key: value for key, value in mapping.items() if value}


def filters_for_audit(filters: dict[str, Any]) -> dict[str, str]:
    """The filters as JSON-friendly text, for the event that records the search itself."""
    as_text = {}
    for key, value in filters.items():
        as_text[key] = value.isoformat() if hasattr(value, "isoformat") else str(value)
    return as_text
