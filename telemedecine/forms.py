"""Forms of the telemedicine pages.

They check the shape of what was typed; the workflow rules (who may act, in which state, consent before
the start, one recipient) belong to ``telemedecine.services``, whose French errors come back next to the
field they name (``add_service_errors``). Widgets carry the DSFR classes (``DsfrForm``).
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.db.models import QuerySet

from annuaire.models import Structure
from annuaire.selectors.structures import structures_of_user
from enrs.accounts.models import User
from enrs.accounts.roles import Role
from enrs.core.forms import DsfrForm

from .models import (
    ActType,
    ConsentStatus,
    Fallback,
    Incident,
    PacsPeer,
    ParticipantRole,
    Pool,
    Study,
    Urgency,
)

MAX_QUESTION = 20_000
MAX_REPORT = 100_000
MAX_ATTACHMENT_BYTES = 50 * 1024 * 1024
DATETIME_FORMATS = ["%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M", "%d/%m/%Y %H:%M"]


class DateTimeLocalInput(forms.DateTimeInput):
    """A native date-and-time picker (keyboard-usable) in the current time zone."""

    input_type = "datetime-local"

    def __init__(self, attrs: dict[str, Any] | None = None) -> None:
        super().__init__(attrs=attrs, format="%Y-%m-%dT%H:%M")


def _datetime(label: str, *, required: bool = False, help_text: str = "") -> forms.DateTimeField:
    return forms.DateTimeField(
        label=label,
        required=required,
        input_formats=DATETIME_FORMATS,
        widget=DateTimeLocalInput(),
        help_text=help_text,
        error_messages={"invalid": "Saisissez une date et une heure valides (jj/mm/aaaa hh:mm)."},
    )


def user_label(user: User) -> str:
    name = f"{user.last_name.upper()} {user.first_name}".strip()
    return name or user.username


class UserChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, obj: Any) -> str:
        return user_label(obj)


def clinicians_except(user: Any) -> QuerySet[User]:
    return (
        User.objects.filter(is_active=True, role__in=[Role.CLINICIAN, Role.ADMIN])
        .exclude(pk=getattr(user, "pk", 0) or 0)
        .order_by("last_name", "first_name", "pk")
    )


# --- The request ---------------------------------------------------------------------------------------


class ActCreateForm(DsfrForm):
    act_type = forms.ChoiceField(label="Type d'acte", choices=ActType.choices, initial=ActType.TELEEXPERTISE)
    requester_structure = forms.ModelChoiceField(
        label="Structure requérante",
        queryset=Structure.objects.none(),
        empty_label="Choisissez la structure",
        help_text="Les structures où vous exercez, d'après l'annuaire.",
    )
    pool = forms.ModelChoiceField(
        label="Équipe de garde sollicitée",
        queryset=Pool.objects.none(),
        required=False,
        empty_label="Aucune (professionnel nommé)",
        help_text="Le professionnel de garde au moment de la demande la recevra.",
    )
    requested_professional = UserChoiceField(
        label="Ou professionnel sollicité",
        queryset=User.objects.none(),
        required=False,
        empty_label="Aucun (équipe de garde)",
    )
    clinical_question = forms.CharField(
        label="Question clinique",
        max_length=MAX_QUESTION,
        widget=forms.Textarea(attrs={"rows": 6}),
        help_text="Contexte, antécédents utiles, ce que vous attendez du requis.",
    )
    urgency = forms.ChoiceField(
        label="Urgence", choices=Urgency.choices, initial=Urgency.SCHEDULED, widget=forms.RadioSelect
    )
    scheduled_at = _datetime("Date et heure prévues", help_text="Facultatif : pour une séance programmée.")
    attachment = forms.FileField(
        label="Pièce jointe",
        required=False,
        help_text="Facultatif : un document ou une photo (50 Mo au plus). Les images DICOM se déposent "
        "ensuite depuis la demande.",
    )

    def __init__(self, *args: Any, user: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["requester_structure"].queryset = structures_of_user(user)  # type: ignore[attr-defined]
        self.fields["pool"].queryset = Pool.objects.filter(is_active=True).order_by("name")  # type: ignore[attr-defined]
        self.fields["requested_professional"].queryset = clinicians_except(user)  # type: ignore[attr-defined]

    def clean_attachment(self) -> Any:
        upload = self.cleaned_data.get("attachment")
        if upload is not None and upload.size > MAX_ATTACHMENT_BYTES:
            raise forms.ValidationError("La pièce jointe dépasse 50 Mo.")
        return upload

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if data.get("pool") and data.get("requested_professional"):
            raise forms.ValidationError(
                "Adressez la demande soit à un professionnel, soit à une équipe de garde, pas aux deux."
            )
        if not self.errors and not data.get("pool") and not data.get("requested_professional"):
            self.add_error("pool", "Choisissez l'équipe de garde ou le professionnel sollicité.")
        return data


class ActEditForm(DsfrForm):
    """A draft's changeable fields (the patient, the type and the structure stay)."""

    pool = ActCreateForm.base_fields["pool"]
    requested_professional = ActCreateForm.base_fields["requested_professional"]
    clinical_question = ActCreateForm.base_fields["clinical_question"]
    urgency = ActCreateForm.base_fields["urgency"]
    scheduled_at = ActCreateForm.base_fields["scheduled_at"]

    def __init__(self, *args: Any, user: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["pool"].queryset = Pool.objects.filter(is_active=True).order_by("name")  # type: ignore[attr-defined]
        self.fields["requested_professional"].queryset = clinicians_except(user)  # type: ignore[attr-defined]

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if data.get("pool") and data.get("requested_professional"):
            raise forms.ValidationError(
                "Adressez la demande soit à un professionnel, soit à une équipe de garde, pas aux deux."
            )
        if not self.errors and not data.get("pool") and not data.get("requested_professional"):
            self.add_error("pool", "Choisissez l'équipe de garde ou le professionnel sollicité.")
        return data


# --- Actions on the act page -------------------------------------------------------------------------


class ReasonForm(DsfrForm):
    reason = forms.CharField(label="Motif", max_length=500, widget=forms.Textarea(attrs={"rows": 2}))


class CancelForm(DsfrForm):
    reason = forms.CharField(
        label="Motif de l'annulation",
        max_length=500,
        required=False,
        widget=forms.Textarea(attrs={"rows": 2}),
    )


class ConsentForm(DsfrForm):
    status = forms.ChoiceField(
        label="Consentement du patient",
        choices=[(ConsentStatus.GIVEN, "Donné"), (ConsentStatus.REFUSED, "Refusé")],
        widget=forms.RadioSelect,
    )
    at = _datetime("Recueilli le", help_text="Laissez vide pour maintenant.")


class PlanForm(DsfrForm):
    scheduled_at = _datetime("Date et heure de la séance")
    fallback = forms.ChoiceField(
        label="Mode d'échange", choices=Fallback.choices, required=False, initial=Fallback.NONE
    )


class ReportForm(DsfrForm):
    report_text = forms.CharField(
        label="Compte rendu", max_length=MAX_REPORT, widget=forms.Textarea(attrs={"rows": 10})
    )
    prescriptions = forms.CharField(
        label="Prescriptions", max_length=MAX_REPORT, required=False, widget=forms.Textarea(attrs={"rows": 4})
    )


class ParticipantForm(DsfrForm):
    name = forms.CharField(label="Nom", max_length=200)
    function = forms.CharField(label="Fonction", max_length=150, required=False)
    role = forms.ChoiceField(
        label="Rôle",
        choices=[
            (ParticipantRole.PROFESSIONAL, ParticipantRole.PROFESSIONAL.label),
            (ParticipantRole.CARE_STAFF, ParticipantRole.CARE_STAFF.label),
            (ParticipantRole.PATIENT_SIDE, ParticipantRole.PATIENT_SIDE.label),
        ],
    )


class IncidentForm(DsfrForm):
    code = forms.ChoiceField(label="Nature de l'incident", choices=Incident.Code.choices)
    description = forms.CharField(
        label="Description", max_length=2000, required=False, widget=forms.Textarea(attrs={"rows": 2})
    )
    occurred_at = _datetime("Survenu le", help_text="Laissez vide pour maintenant.")


class AmendForm(DsfrForm):
    text = forms.CharField(label="Complément", max_length=20_000, widget=forms.Textarea(attrs={"rows": 4}))


class AttachmentForm(DsfrForm):
    file = forms.FileField(label="Pièce jointe", help_text="50 Mo au plus.")

    def clean_file(self) -> Any:
        upload = self.cleaned_data["file"]
        if upload.size > MAX_ATTACHMENT_BYTES:
            raise forms.ValidationError("La pièce jointe dépasse 50 Mo.")
        return upload


class TransferForm(DsfrForm):
    study = forms.ModelChoiceField(label="Examen", queryset=Study.objects.none(), empty_label=None)
    peer = forms.ModelChoiceField(
        label="PACS du site expert", queryset=PacsPeer.objects.none(), empty_label="Choisissez le PACS"
    )

    def __init__(self, *args: Any, studies: QuerySet[Study], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["study"].queryset = studies  # type: ignore[attr-defined]
        self.fields["peer"].queryset = (  # type: ignore[attr-defined]
            PacsPeer.objects.filter(is_active=True).select_related("structure").order_by("name")
        )


# --- Pools ----------------------------------------------------------------------------------------------


class ShiftForm(DsfrForm):
    user = UserChoiceField(label="Professionnel de garde", queryset=User.objects.none(), empty_label=None)
    starts_at = _datetime("Début", required=True)
    ends_at = _datetime("Fin", required=True)

    def __init__(self, *args: Any, pool: Pool, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["user"].queryset = pool.members.filter(is_active=True).order_by(  # type: ignore[attr-defined]
            "last_name", "first_name", "pk"
        )

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        start, end = data.get("starts_at"), data.get("ends_at")
        if start and end and end <= start:
            self.add_error("ends_at", "La fin de la garde doit suivre son début.")
        return data


class PoolForm(DsfrForm):
    name = forms.CharField(
        label="Nom de l'équipe",
        max_length=150,
        help_text="Par exemple « Neurologues de garde \N{EN DASH} télé-AVC ».",
    )
    specialty = forms.CharField(label="Spécialité", max_length=150, required=False)
    structure = forms.CharField(
        label="FINESS géographique de la structure",
        max_length=9,
        help_text="Les neuf chiffres du FINESS de l'établissement qui porte l'équipe.",
    )

    def clean_structure(self) -> Structure:
        finess = (self.cleaned_data.get("structure") or "").strip()
        structure = (
            Structure.objects.filter(finess_et=finess, is_active=True).first()
            if finess.isdigit() and len(finess) == 9
            else None
        )
        if structure is None:
            raise forms.ValidationError("Aucune structure active de l'annuaire n'a ce FINESS géographique.")
        return structure


class MemberForm(DsfrForm):
    account = forms.CharField(
        label="Professionnel à ajouter",
        max_length=150,
        help_text="Son identifiant de connexion ou son identifiant national (IdNat_PS, par exemple 810…).",
    )

    def clean_account(self) -> User:
        value = (self.cleaned_data.get("account") or "").strip()
        user = (
            User.objects.filter(is_active=True, role__in=[Role.CLINICIAN, Role.ADMIN])
            .filter(**({"idnat_ps": value} if value[:1].isdigit() else {"username": value}))
            .first()
        )
        if user is None:
            raise forms.ValidationError("Aucun compte actif de professionnel de santé ne correspond.")
        return user
