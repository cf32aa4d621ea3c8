"""Forms of the DMP pages: feeding a PDF, replacing a document, changing its visibility.

The forms check what was sent (a real PDF of bounded size, codes from the national value sets, dates);
the DMP rules (qualified identity, opposition, authorisation, CDA and metadata validity) are checked by
`dmp.services`, whose French refusals come back next to the fields or at the top of the form.
"""

from __future__ import annotations

import datetime as dt
import io
import warnings
from typing import Any, cast

from django import forms
from django.core.exceptions import ValidationError
from django.core.files.uploadedfile import UploadedFile
from django.utils import timezone
from pypdf import PdfReader
from pypdf.errors import PyPdfError

from annuaire.models import Structure
from enrs.core.forms import DsfrForm
from enrs.standards import valuesets

from .models import Confidentiality, Document
from .services import MAX_PDF_BYTES

MAX_MB = MAX_PDF_BYTES // (1024 * 1024)

# Practice setting (J04) a structure's activity sector (J02, the directory's TRE_R02 code) implies.
_AMBULATORY = {"SA05", "SA07", "SA08", "SA09", "SA50", "SA52"}
_MEDICO_SOCIAL = {"SA16", "SA17", "SA18", "SA20", "SA21", "SA41"}
_HOSPITAL = {"SA01", "SA02", "SA03", "SA04", "SA30", "SA34", "SA36"}


def facility_default(structure: Structure) -> str:
    """The structure's facility type (J02): its activity sector in the directory, when it is a J02 code."""
    code = structure.sector_code or ""
    return code if code and valuesets.lookup("facility_type", code) is not None else ""


def practice_setting_default(facility_type: str) -> str:
    if facility_type in _HOSPITAL:
        return "ETABLISSEMENT"
    if facility_type in _AMBULATORY:
        return "AMBULATOIRE"
    if facility_type in _MEDICO_SOCIAL:
        return "ESSMS"
    return ""


def _choices(name: str, empty: str) -> list[tuple[str, str]]:
    rows = sorted(valuesets.codes(name).values(), key=lambda c: c.display.casefold())
    return [("", empty), *((c.code, f"{c.display} ({c.code})") for c in rows)]


def type_code_choices() -> list[tuple[str, str]]:
    return _choices("type_code", "Choisir un type de document")


def read_pdf(upload: UploadedFile) -> bytes:
    """The bytes of an uploaded PDF, or a French `ValidationError`: too big, not a PDF, unreadable,
    password-protected or without any page."""
    if upload.size is not None and upload.size > MAX_PDF_BYTES:
        raise ValidationError(f"Le fichier dépasse la taille maximale de {MAX_MB} Mo.")
    data = upload.read(MAX_PDF_BYTES + 1)
    if len(data) > MAX_PDF_BYTES:
        raise ValidationError(f"Le fichier dépasse la taille maximale de {MAX_MB} Mo.")
    if not data:
        raise ValidationError("Le fichier est vide.")
    if not data.startswith(b"%PDF-"):
        raise ValidationError("Le fichier n'est pas un PDF (seuls les documents PDF sont acceptés).")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            reader = PdfReader(io.BytesIO(data), strict=False)
            if reader.is_encrypted:
                raise ValidationError(
                    "Le PDF est protégé par un mot de passe : déposez une version non protégée."
                )
            pages = len(reader.pages)
    except ValidationError:
        raise
    except (PyPdfError, ValueError, KeyError, TypeError, AttributeError, RecursionError) as exc:
        raise ValidationError("Le PDF est illisible ou endommagé : enregistrez-le de nouveau.") from exc
    if pages < 1:
        raise ValidationError("Le PDF ne contient aucune page.")
    return data


class DateTimeInput(forms.DateTimeInput):
    """A native date and time picker (keyboard-usable), local time."""

    input_type = "datetime-local"

    def __init__(self, attrs: dict[str, Any] | None = None) -> None:
        super().__init__(attrs=attrs, format="%Y-%m-%dT%H:%M")


def _aware(value: dt.datetime | None) -> dt.datetime | None:
    if value is not None and timezone.is_naive(value):
        return timezone.make_aware(value)
    return value


class _PdfFields(DsfrForm):
    pdf = forms.FileField(
        label="Document PDF",
        help_text=f"Format PDF, {MAX_MB} Mo au maximum.",
        widget=forms.ClearableFileInput(attrs={"accept": "application/pdf,.pdf"}),
    )
    type_code = forms.ChoiceField(label="Type de document", choices=type_code_choices)
    title = forms.CharField(label="Titre", max_length=255)
    service_start = forms.DateTimeField(
        label="Date de l'acte (début)",
        widget=DateTimeInput(),
        input_formats=["%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M", "%d/%m/%Y %H:%M"],
    )
    service_end = forms.DateTimeField(
        label="Fin de l'acte",
        required=False,
        widget=DateTimeInput(),
        input_formats=["%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M", "%d/%m/%Y %H:%M"],
    )

    def clean_pdf(self) -> bytes:
        return read_pdf(self.cleaned_data["pdf"])

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        data["service_start"] = _aware(data.get("service_start"))
        data["service_end"] = _aware(data.get("service_end"))
        start, end = data.get("service_start"), data.get("service_end")
        if start and end and end < start:
            self.add_error("service_end", "La fin de l'acte précède son début.")
        return data


class FeedForm(_PdfFields):
    """Feed the DMP with a PDF report for one patient."""

    structure = forms.ModelChoiceField(
        label="Structure",
        queryset=Structure.objects.none(),
        empty_label=None,
        help_text="La structure pour laquelle vous déposez le document (custodian du document).",
    )
    confidentiality = forms.ChoiceField(
        label="Confidentialité", choices=Confidentiality.choices, initial=Confidentiality.NORMAL
    )
    masked_from_professionals = forms.BooleanField(
        label="Masqué aux professionnels de santé (MASQUE_PS)",
        required=False,
        help_text="Seuls le patient et vous-même pourront le voir.",
    )
    invisible_to_patient = forms.BooleanField(
        label="Invisible au patient (INVISIBLE_PATIENT)",
        required=False,
        help_text="Jusqu'à la consultation d'annonce : rendez-le visible ensuite.",
    )
    invisible_to_legal_representatives = forms.BooleanField(
        label="Invisible aux représentants légaux (INVISIBLE_REPRESENTANTS_LEGAUX)", required=False
    )
    facility_type = forms.ChoiceField(
        label="Type d'établissement",
        required=False,
        help_text="Laissé vide : celui de la structure dans l'annuaire.",
    )
    practice_setting = forms.ChoiceField(
        label="Cadre d'exercice",
        required=False,
        help_text="Laissé vide : déduit du type d'établissement.",
    )

    field_order = [
        "pdf",
        "type_code",
        "title",
        "service_start",
        "service_end",
        "structure",
        "facility_type",
        "practice_setting",
        "confidentiality",
        "masked_from_professionals",
        "invisible_to_patient",
        "invisible_to_legal_representatives",
    ]

    def __init__(self, *args: Any, structures: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        cast(forms.ModelChoiceField, self.fields["structure"]).queryset = structures
        first = next(iter(structures), None) if not self.is_bound else None
        facility = facility_default(first) if first is not None else ""
        cast(forms.ChoiceField, self.fields["facility_type"]).choices = _choices(
            "facility_type", "D'après la structure" + (f" ({facility})" if facility else "")
        )
        cast(forms.ChoiceField, self.fields["practice_setting"]).choices = _choices(
            "practice_setting", "D'après le type d'établissement"
        )
        if first is not None:
            self.initial.setdefault("structure", first.pk)
        if not self.is_bound:
            self.initial.setdefault("service_start", timezone.localtime().replace(second=0, microsecond=0))

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        structure = data.get("structure")
        if structure is None:
            return data
        facility = data.get("facility_type") or facility_default(structure)
        if not facility:
            self.add_error(
                "facility_type",
                "L'annuaire ne donne pas le type d'établissement de cette structure : choisissez-le.",
            )
        setting = data.get("practice_setting") or practice_setting_default(facility)
        if facility and not setting:
            self.add_error("practice_setting", "Choisissez le cadre d'exercice de l'acte.")
        data["facility_type"], data["practice_setting"] = facility, setting
        return data


class ReplaceForm(_PdfFields):
    """A new version of an accepted document (the visibility and the structure are carried over)."""

    def __init__(self, *args: Any, document: Document, **kwargs: Any) -> None:
        kwargs.setdefault(
            "initial",
            {
                "type_code": document.type_code,
                "title": document.title,
                "service_start": timezone.localtime(document.service_start).replace(tzinfo=None),
                "service_end": (
                    timezone.localtime(document.service_end).replace(tzinfo=None)
                    if document.service_end
                    else None
                ),
            },
        )
        super().__init__(*args, **kwargs)


class VisibilityForm(DsfrForm):
    masked_from_professionals = forms.BooleanField(
        label="Masqué aux professionnels de santé (MASQUE_PS)", required=False
    )
    invisible_to_patient = forms.BooleanField(
        label="Invisible au patient (INVISIBLE_PATIENT)",
        required=False,
        help_text="Décochez après la consultation d'annonce pour que le patient voie le document.",
    )
    invisible_to_legal_representatives = forms.BooleanField(
        label="Invisible aux représentants légaux (INVISIBLE_REPRESENTANTS_LEGAUX)", required=False
    )

    def __init__(self, *args: Any, document: Document, **kwargs: Any) -> None:
        kwargs.setdefault(
            "initial",
            {
                "masked_from_professionals": document.masked_from_professionals,
                "invisible_to_patient": document.invisible_to_patient,
                "invisible_to_legal_representatives": document.invisible_to_legal_representatives,
            },
        )
        super().__init__(*args, **kwargs)
