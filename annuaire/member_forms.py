"""Forms of the members' pages (GCS staff).

They check the shape of what was typed; the business rules belong to `annuaire.services.members`, whose
French errors come back next to the field they concern (`add_service_errors`). Widgets carry the DSFR
classes; Django adds ``aria-invalid`` and ``aria-describedby`` (hint and error ids) to fields in error.
"""

from typing import Any, cast

from django import forms
from django.conf import settings
from django.db import models
from django.utils import timezone

from annuaire.models import (
    Adherent,
    AdherentStatus,
    College,
    Department,
    EnrsService,
    FeeStatus,
    GoverningBody,
    RepresentativeRole,
)
from annuaire.selectors.members import FEE_MISSING, member_professional_find
from annuaire.services.members import StructureData, convention_max_size_text
from enrs.core.forms import DateInput, DsfrForm

COLLEGE_CHOICES = [(value, f"{value} — {label}") for value, label in College.choices]


class FrenchDecimalField(forms.DecimalField):
    """A decimal typed the French way: comma or point, spaces between thousands (« 1 250,50 »)."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("localize", True)
        super().__init__(**kwargs)

    def to_python(self, value: Any) -> Any:
        if isinstance(value, str):
            value = "".join(value.split()).replace(",", ".")
        return super().to_python(value)


def _professional_from_identifier(form: forms.Form, field: str) -> None:
    """Replace the identifier typed in `field` with the directory professional it designates."""
    identifier = form.cleaned_data.get(field) or ""
    if not identifier:
        form.cleaned_data[field] = None
        return
    professional = member_professional_find(identifier=identifier)
    if professional is None:
        form.add_error(
            field, "Aucun professionnel de l'annuaire n'a cet identifiant (RPPS, ADELI ou IdNat_PS)."
        )
    else:
        form.cleaned_data[field] = professional


# --- List filters -------------------------------------------------------------------------------------


class MemberFilterForm(DsfrForm):
    """The filters of the members' list and of its export (all optional), read from the query string."""

    q = forms.CharField(
        label="Recherche",
        required=False,
        max_length=100,
        help_text="Nom, ou identifiant exact : FINESS, SIRET, RPPS, IdNat_PS.",
    )
    college = forms.TypedChoiceField(
        label="Collège",
        required=False,
        coerce=int,
        empty_value=None,
        choices=[("", "Tous"), *COLLEGE_CHOICES],
    )
    status = forms.ChoiceField(
        label="Statut", required=False, choices=[("", "Tous"), *AdherentStatus.choices]
    )
    department = forms.ChoiceField(label="Département", required=False)
    service = forms.ChoiceField(
        label="Service utilisé", required=False, choices=[("", "Tous"), *EnrsService.choices]
    )
    fee_status = forms.ChoiceField(
        label="Cotisation",
        required=False,
        choices=[("", "Toutes"), *FeeStatus.choices, (FEE_MISSING, "Non appelée")],
    )
    year = forms.IntegerField(
        label="Année de cotisation",
        required=False,
        min_value=2000,
        max_value=2100,
        help_text="Par défaut l'année en cours.",
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        departments = Department.objects.order_by("code").values_list("code", "name")
        cast(forms.ChoiceField, self.fields["department"]).choices = [
            ("", "Tous"),
            *((code, f"{code} — {name}") for code, name in departments),
        ]

    @property
    def fee_year(self) -> int:
        year = self.cleaned_data.get("year") if self.is_bound and self.is_valid() else None
        return year or timezone.localdate().year

    def filters(self) -> dict[str, Any]:
        """Keyword arguments for `adherent_list` (only the filters that were filled in)."""
        if not self.is_bound:
            return {}
        return {key: value for key, value in self.cleaned_data.items() if value not in (None, "")}


# --- Onboarding and edits ------------------------------------------------------------------------------


class MemberKind(models.TextChoices):
    STRUCTURE = "structure", "Une structure (établissement, service, réseau, association)"
    PROFESSIONAL = "professional", "Un professionnel de santé libéral, en son nom"


class AdherentOnboardForm(DsfrForm):
    member_kind = forms.ChoiceField(
        label="L'adhérent est",
        choices=MemberKind.choices,
        widget=forms.RadioSelect,
        initial=MemberKind.STRUCTURE,
    )
    college = forms.TypedChoiceField(
        label="Collège", coerce=int, choices=[("", "Choisir un collège"), *COLLEGE_CHOICES]
    )
    # A structure: found in the directory by its identifiers, or created there.
    finess_et = forms.CharField(label="FINESS géographique (ET)", required=False, max_length=20)
    finess_ej = forms.CharField(label="FINESS juridique (EJ)", required=False, max_length=20)
    siret = forms.CharField(
        label="SIRET",
        required=False,
        max_length=20,
        help_text="Pour une structure sans FINESS (14 chiffres).",
    )
    name = forms.CharField(
        label="Raison sociale",
        required=False,
        max_length=255,
        help_text="Nécessaire seulement si la structure n'est pas encore dans l'annuaire.",
    )
    commune_insee_code = forms.CharField(
        label="Commune (code INSEE)",
        required=False,
        max_length=5,
        help_text="5 caractères, par exemple 35238.",
    )
    address_line = forms.CharField(label="Adresse", required=False, max_length=255)
    mailbox_local_part = forms.CharField(
        label="Adresse MSSanté organisationnelle à créer", required=False, max_length=64
    )
    mailbox_address = forms.CharField(
        label="ou adresse MSSanté organisationnelle existante",
        required=False,
        max_length=255,
        help_text="Adresse complète chez un autre opérateur, par exemple secretariat@ch-exemple.mssante.fr.",
    )
    # A professional: from the directory.
    professional = forms.CharField(
        label="Identifiant du professionnel",
        required=False,
        max_length=12,
        help_text="RPPS, ADELI ou IdNat_PS.",
    )
    services = forms.MultipleChoiceField(
        label="Services ENRS utilisés",
        required=False,
        choices=EnrsService.choices,
        widget=forms.CheckboxSelectMultiple,
    )
    convention_signed_on = forms.DateField(label="Convention signée le", required=False, widget=DateInput())
    convention_document = forms.FileField(
        label="Convention signée (PDF)",
        required=False,
        widget=forms.FileInput(attrs={"accept": "application/pdf,.pdf"}),
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["mailbox_local_part"].help_text = (
            f"Partie avant « @{settings.ENRS_MSSANTE_DOMAIN} », par exemple « secretariat ». "
            "Laissez vide si la structure a déjà une adresse organisationnelle."
        )
        self.fields["convention_document"].help_text = _convention_hint()

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        if cleaned.get("member_kind") == MemberKind.PROFESSIONAL:
            if not cleaned.get("professional"):
                self.add_error("professional", "Indiquez le RPPS, l'ADELI ou l'IdNat_PS du professionnel.")
            else:
                _professional_from_identifier(self, "professional")
        return cleaned

    def service_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for `adherent_onboard` (without actor and request)."""
        data = self.cleaned_data
        kwargs: dict[str, Any] = {
            "college": data["college"],
            "services": data["services"],
            "convention_signed_on": data["convention_signed_on"],
            "convention_document": data["convention_document"] or None,
        }
        if data["member_kind"] == MemberKind.PROFESSIONAL:
            kwargs["professional"] = data["professional"]
        else:
            kwargs["structure_data"] = StructureData(
                name=data["name"],
                finess_et=data["finess_et"],
                finess_ej=data["finess_ej"],
                siret=data["siret"],
                commune_insee_code=data["commune_insee_code"],
                address_line=data["address_line"],
            )
            kwargs["mailbox_local_part"] = data["mailbox_local_part"]
            kwargs["mailbox_address"] = data["mailbox_address"]
        return kwargs


def _convention_hint() -> str:
    return f"Format PDF, {convention_max_size_text()} au plus."


class AdherentEditForm(DsfrForm):
    """The collège, the convention and, once admitted, the membership dates (corrections). Which dates
    are shown depends on the status: a candidate has none, a member a start, a former member both."""

    college = forms.TypedChoiceField(label="Collège", coerce=int, choices=COLLEGE_CHOICES)
    convention_signed_on = forms.DateField(label="Convention signée le", required=False, widget=DateInput())
    membership_start = forms.DateField(label="Début d'adhésion", widget=DateInput())
    membership_end = forms.DateField(label="Fin d'adhésion", widget=DateInput())
    convention_document = forms.FileField(
        label="Nouvelle convention signée (PDF)",
        required=False,
        widget=forms.FileInput(attrs={"accept": "application/pdf,.pdf"}),
    )

    def __init__(self, *args: Any, adherent: Adherent, **kwargs: Any) -> None:
        kwargs.setdefault(
            "initial",
            {
                "college": adherent.college,
                "convention_signed_on": adherent.convention_signed_on,
                "membership_start": adherent.membership_start,
                "membership_end": adherent.membership_end,
            },
        )
        super().__init__(*args, **kwargs)
        if adherent.status == AdherentStatus.CANDIDATE:
            del self.fields["membership_start"]
        if adherent.status in (AdherentStatus.CANDIDATE, AdherentStatus.MEMBER):
            del self.fields["membership_end"]
        hint = _convention_hint()
        if adherent.convention_document:
            hint += " Remplace la convention enregistrée, qui reste archivée."
        self.fields["convention_document"].help_text = hint

    def update_data(self) -> dict[str, Any]:
        """The `data` argument of `adherent_update`: the fields this form shows."""
        return {name: self.cleaned_data[name] for name in self.fields if name != "convention_document"}


# --- Transitions ----------------------------------------------------------------------------------------


class TransitionForm(DsfrForm):
    """The confirmation step of a transition: its date and its reason."""

    effective_on = forms.DateField(label="Date", required=False, widget=DateInput())
    reason = forms.CharField(
        label="Motif (facultatif)", required=False, max_length=2000, widget=forms.Textarea(attrs={"rows": 3})
    )

    def __init__(self, *args: Any, transition: str, **kwargs: Any) -> None:
        kwargs.setdefault("initial", {"effective_on": timezone.localdate()})
        super().__init__(*args, **kwargs)
        self.transition = transition
        effective_on, reason = self.fields["effective_on"], self.fields["reason"]
        if transition == "admit":
            effective_on.label = "Début d'adhésion"
            effective_on.help_text = "Par défaut aujourd'hui ; pas avant la signature de la convention."
            reason.label = "Note (facultatif)"
            reason.help_text = "Par exemple : décision de l'assemblée générale du…"
        else:
            effective_on.label = "Fin d'adhésion"
            effective_on.help_text = "Par défaut aujourd'hui."
        if transition == "exclude":
            reason.label = "Motif de l'exclusion"
            reason.required = True
            reason.help_text = "Obligatoire : il figure dans l'historique de l'adhérent."

    # Service arguments that are this form's fields under another name.
    SERVICE_FIELDS = {"membership_start": "effective_on", "membership_end": "effective_on"}

    def service_kwargs(self) -> dict[str, Any]:
        date_argument = "membership_start" if self.transition == "admit" else "membership_end"
        return {date_argument: self.cleaned_data["effective_on"], "reason": self.cleaned_data["reason"]}


# --- Fees, representatives, services --------------------------------------------------------------------


class FeeForm(DsfrForm):
    year = forms.IntegerField(label="Année", min_value=2000, max_value=2100)
    amount = FrenchDecimalField(
        label="Montant (€)",
        min_value=0,
        max_digits=10,
        decimal_places=2,
        help_text="Par exemple 150 ou 1 250,50.",
    )
    status = forms.ChoiceField(
        label="Statut",
        choices=[
            (FeeStatus.DUE.value, FeeStatus.DUE.label),
            (FeeStatus.LATE.value, FeeStatus.LATE.label),
            (FeeStatus.WAIVED.value, FeeStatus.WAIVED.label),
        ],
        initial=FeeStatus.DUE,
        help_text="Le paiement s'enregistre ensuite avec « Marquer comme payée ».",
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("initial", {"year": timezone.localdate().year})
        super().__init__(*args, **kwargs)


class FeePaidForm(DsfrForm):
    paid_on = forms.DateField(
        label="Payée le", required=False, widget=DateInput(), help_text="Par défaut aujourd'hui."
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("initial", {"paid_on": timezone.localdate()})
        super().__init__(*args, **kwargs)


class RepresentativeForm(DsfrForm):
    body = forms.ChoiceField(label="Instance", choices=GoverningBody.choices)
    role = forms.ChoiceField(label="Rôle", choices=RepresentativeRole.choices)
    last_name = forms.CharField(label="Nom", required=False, max_length=100)
    first_name = forms.CharField(label="Prénom", required=False, max_length=100)
    email = forms.EmailField(label="Courriel", required=False, max_length=254)
    function = forms.CharField(
        label="Fonction", required=False, max_length=150, help_text="Par exemple : directeur."
    )
    professional = forms.CharField(
        label="Identifiant dans l'annuaire (facultatif)",
        required=False,
        max_length=12,
        help_text="RPPS, ADELI ou IdNat_PS, si le représentant est un professionnel de santé ; "
        "son nom est alors repris de l'annuaire s'il n'est pas saisi.",
    )

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        _professional_from_identifier(self, "professional")
        return cleaned


class ServicesForm(DsfrForm):
    services = forms.MultipleChoiceField(
        label="Services ENRS utilisés",
        required=False,
        choices=EnrsService.choices,
        widget=forms.CheckboxSelectMultiple,
        help_text="Décochez un service pour le retirer ; les nouveaux sont utilisés à partir d'aujourd'hui.",
    )


class ConfirmForm(DsfrForm):
    """A confirmation with nothing to type (the CSRF token is the form)."""
