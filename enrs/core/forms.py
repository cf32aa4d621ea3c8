"""Form helpers shared by every app's pages (DSFR markup, service errors shown next to their field)."""

from collections.abc import Mapping
from typing import Any

from django import forms
from django.core.exceptions import NON_FIELD_ERRORS, ValidationError


class DateInput(forms.DateInput):
    """A native date picker (keyboard-usable), with the ISO value it expects."""

    input_type = "date"

    def __init__(self, attrs: dict[str, Any] | None = None) -> None:
        super().__init__(attrs=attrs, format="%Y-%m-%d")


class DsfrForm(forms.Form):
    """A form whose widgets carry the DSFR classes (fr-input, fr-select, fr-upload); radios, checkboxes
    and hidden inputs are left as they are (their templates carry the DSFR markup)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for field in self.fields.values():
            widget = field.widget
            if isinstance(widget, forms.RadioSelect | forms.CheckboxInput | forms.HiddenInput):
                continue
            if isinstance(widget, forms.Select):
                css = "fr-select"
            elif isinstance(widget, forms.FileInput):
                css = "fr-upload"
            else:
                css = "fr-input"
            widget.attrs["class"] = f"{widget.attrs.get('class', '')} {css}".strip()


def add_service_errors(
    form: forms.Form, error: ValidationError, field_map: Mapping[str, str] | None = None
) -> None:
    """Put a service's `ValidationError` on the form: each message next to the field it names (through
    `field_map` when the service's key has another name), the others at the top of the form."""
    if not hasattr(error, "error_dict"):
        form.add_error(None, error)
        return
    for key, errors in error.error_dict.items():
        name = (field_map or {}).get(key, key)
        form.add_error(name if name in form.fields and name != NON_FIELD_ERRORS else None, errors)
