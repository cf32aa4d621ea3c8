"""Form of the capacity update page (one offer at one location)."""

from typing import Any, cast

from django import forms
from django.core.exceptions import ValidationError

from .standards import valuesets as vs

# The statuses an establishment updates by hand, in the order of the form (TRE_R330).
FORM_STATUSES = (vs.INSTALLED, vs.AVAILABLE, vs.OCCUPIED, vs.RESERVED, vs.CLOSED, vs.ADDITIONAL)
STATUS_HELP = {
    vs.INSTALLED: "Capacité physiquement installée, fermés compris.",
    vs.AVAILABLE: "Patient installable maintenant, personnel présent, non réservé dans les 24 h.",
    vs.OCCUPIED: "Un patient y est installé.",
    vs.RESERVED: "Un patient identifié est attendu dans les 24 h.",
    vs.CLOSED: "Fermé, quelle qu'en soit la cause.",
    vs.ADDITIONAL: "Ouvert au-delà de l'installé en situation de tension.",
}


class CapacityForm(forms.Form):
    capacity_type = forms.ChoiceField(label="Nature de la capacité")
    gender = forms.ChoiceField(
        label="Genre des disponibles",
        required=False,
        help_text="Si les places disponibles sont réservées à un genre.",
    )
    crisis = forms.BooleanField(
        label="Capacité de crise (lits supplémentaires ouverts en tension)", required=False
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        sets = vs.valuesets()
        cast(forms.ChoiceField, self.fields["capacity_type"]).choices = list(sets.capacity_types.items())
        cast(forms.ChoiceField, self.fields["gender"]).choices = [
            ("", "Sans contrainte"),
            *sets.capacity_genders.items(),
        ]
        for status in FORM_STATUSES:
            self.fields[f"count_{status}"] = forms.IntegerField(
                label=sets.capacity_statuses[status], required=False, help_text=STATUS_HELP[status]
            )

    def count_fields(self) -> list[forms.BoundField]:
        return [self[f"count_{status}"] for status in FORM_STATUSES]

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if not self.errors and all(data.get(f"count_{s}") is None for s in FORM_STATUSES):
            raise ValidationError("Saisissez au moins un nombre.")
        return data

    def values(self) -> list[dict[str, Any]]:
        """The values for ``capacity_update``: one per filled count."""
        data = self.cleaned_data
        capacity_type = data["capacity_type"]
        values = []
        for status in FORM_STATUSES:
            count = data.get(f"count_{status}")
            if count is None:
                continue
            values.append(
                {
                    "capacity_type": capacity_type,
                    "status": status,
                    "count": count,
                    "gender": (data.get("gender") or "") if status == vs.AVAILABLE else "",
                    "crisis": bool(data.get("crisis")) if status == vs.ADDITIONAL else False,
                }
            )
        return values

    def add_service_errors(self, exc: ValidationError) -> None:
        """Show the service's errors next to their field (``count_<type>_<status>`` → ``count_<status>``)."""
        if not hasattr(exc, "error_dict"):
            self.add_error(None, exc)
            return
        for key, messages in exc.message_dict.items():
            field = f"count_{key.rsplit('_', 1)[-1]}" if key.startswith("count_") else None
            for message in messages:
                self.add_error(field if field in self.fields else None, message)
