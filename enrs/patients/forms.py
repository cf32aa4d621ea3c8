"""Forms of the patient identity pages.

They check the shape of what was typed; the identity rules (status, evidence, INS key and OID, traits
required for a qualified identity) belong to `enrs.patients.services`, whose French errors come back
next to the field they concern (`add_service_errors`). Widgets carry the DSFR classes; Django adds
``aria-invalid`` and ``aria-describedby`` to fields in error.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.db.models import Q

from enrs.accounts.roles import CLINICAL
from enrs.core.forms import DateInput, DsfrForm

from .models import ConsentKind, EvidenceKind, IdentityStatus, InsOid, Patient, Sex
from .services import IdentityInput

INSI_NOT_CONNECTED = (
    "Le téléservice INSi n'est pas raccordé au portail : cochez cette case seulement si vous avez "
    "récupéré ou vérifié l'INS par INSi dans votre logiciel. Cette déclaration est tracée."
)


# --- Search ------------------------------------------------------------------------------------------


class PatientSearchForm(DsfrForm):
    q = forms.CharField(
        label="Matricule INS ou nom",
        required=False,
        max_length=100,
        help_text="Matricule INS (15 caractères, espaces admis) ou début du nom de naissance ou d'usage.",
    )
    birth_date = forms.DateField(label="Date de naissance", required=False, widget=DateInput())

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        query = (data.get("q") or "").strip()
        if not self.errors and not query and not data.get("birth_date"):
            raise ValidationError("Saisissez un matricule INS, ou un nom et une date de naissance.")
        if query and not query[:1].isdigit() and len(query) < 2:
            self.add_error("q", "Saisissez au moins deux lettres du nom.")
        return data


# --- Identity ----------------------------------------------------------------------------------------

_OID_CHOICES = [("", "Pas de matricule INS"), *InsOid.choices]
_STATUS_HELP = (
    "Provisoire : identité déclarée. Récupérée : INS obtenu par INSi. Validée : pièce d'identité à haut "
    "niveau de confiance vérifiée. Qualifiée : les deux, et les cinq traits renseignés."
)


class IdentityForm(DsfrForm):
    """The five INS traits, the names in use, and the matricule INS with its OID."""

    birth_family_name = forms.CharField(label="Nom de naissance", max_length=100)
    birth_given_names = forms.CharField(
        label="Prénoms de naissance",
        max_length=255,
        help_text="Tous les prénoms de l'acte de naissance, dans l'ordre, séparés par des espaces.",
    )
    first_given_name = forms.CharField(
        label="Premier prénom de naissance",
        max_length=100,
        help_text="Le premier de la liste des prénoms de naissance.",
    )
    sex = forms.ChoiceField(label="Sexe", choices=[("", "Choisir"), *Sex.choices])
    birth_date = forms.DateField(label="Date de naissance", widget=DateInput())
    birth_place_insee = forms.CharField(
        label="Lieu de naissance (code INSEE)",
        max_length=5,
        required=False,
        help_text="Code officiel géographique de la commune de naissance (5 caractères, 2A/2B pour la "
        "Corse), ou 99 suivi du code du pays pour une naissance à l'étranger.",
    )
    used_family_name = forms.CharField(label="Nom utilisé", max_length=100, required=False)
    used_given_name = forms.CharField(label="Prénom utilisé", max_length=100, required=False)
    ins = forms.CharField(
        label="Matricule INS",
        max_length=25,
        required=False,
        help_text="NIR ou NIA : 13 caractères et la clé de 2 chiffres (espaces admis).",
    )
    ins_oid = forms.ChoiceField(label="Nature du matricule (OID)", choices=_OID_CHOICES, required=False)

    field_order = [
        "birth_family_name",
        "birth_given_names",
        "first_given_name",
        "sex",
        "birth_date",
        "birth_place_insee",
        "used_family_name",
        "used_given_name",
        "ins",
        "ins_oid",
    ]

    def __init__(self, data: Any = None, *args: Any, patient: Patient | None = None, **kwargs: Any) -> None:
        if patient is not None:
            kwargs.setdefault("initial", initial_of(patient))
        super().__init__(data, *args, **kwargs)
        self.fields["birth_place_insee"].widget.attrs["autocomplete"] = "off"
        self.fields["ins"].widget.attrs.update({"autocomplete": "off", "inputmode": "text"})

    def clean_birth_place_insee(self) -> str:
        value = (self.cleaned_data.get("birth_place_insee") or "").strip().upper()
        if value and not (len(value) == 5 and (value.isdigit() or value[:2] in ("2A", "2B"))):
            raise ValidationError(
                "Code INSEE invalide : 5 caractères (2A ou 2B pour la Corse, 99xxx pour l'étranger)."
            )
        return value

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if (data.get("ins") or "").strip() and not data.get("ins_oid"):
            self.add_error("ins_oid", "Indiquez la nature du matricule INS (NIR ou NIA).")
        if data.get("ins_oid") and not (data.get("ins") or "").strip():
            self.add_error("ins", "Saisissez le matricule INS, ou choisissez « Pas de matricule INS ».")
        return data

    def identity(self) -> IdentityInput:
        data = self.cleaned_data
        return IdentityInput(
            birth_family_name=data["birth_family_name"],
            birth_given_names=data["birth_given_names"],
            first_given_name=data["first_given_name"],
            sex=data["sex"],
            birth_date=data["birth_date"],
            birth_place_insee=data.get("birth_place_insee") or "",
            used_family_name=data.get("used_family_name") or "",
            used_given_name=data.get("used_given_name") or "",
            ins=(data.get("ins") or "").strip(),
            ins_oid=data.get("ins_oid") or "",
        )


def initial_of(patient: Patient) -> dict[str, Any]:
    return {
        "birth_family_name": patient.birth_family_name,
        "birth_given_names": patient.birth_given_names,
        "first_given_name": patient.first_given_name,
        "sex": patient.sex,
        "birth_date": patient.birth_date,
        "birth_place_insee": patient.birth_place_insee,
        "used_family_name": patient.used_family_name,
        "used_given_name": patient.used_given_name,
        "ins": patient.ins,
        "ins_oid": patient.ins_oid,
    }


class StatusFieldsMixin(forms.Form):
    identity_status = forms.ChoiceField(
        label="Statut de l'identité",
        choices=IdentityStatus.choices,
        initial=IdentityStatus.PROVISIONAL,
        help_text=_STATUS_HELP,
    )
    evidence = forms.ChoiceField(
        label="Pièce d'identité vérifiée",
        choices=EvidenceKind.choices,
        required=False,
        help_text="Obligatoire pour une identité validée ou qualifiée.",
    )
    insi_checked = forms.BooleanField(
        label="INS récupéré via INSi (déclaré)", required=False, help_text=INSI_NOT_CONNECTED
    )

    # The INSi call already declared for the identity as it stands (a corrected identity is provisional).
    insi_done = False

    def check_insi_declared(self, data: dict[str, Any]) -> None:
        """RECUP and QUAL mean "INS obtained from INSi": the user declares the call (INSi is not
        connected to the portal)."""
        status = data.get("identity_status")
        wants_insi = status in (IdentityStatus.RETRIEVED, IdentityStatus.QUALIFIED)
        if wants_insi and not data.get("insi_checked") and not self.insi_done:
            self.add_error(
                "insi_checked",
                "Une identité récupérée ou qualifiée suppose un INS obtenu par le téléservice INSi : cochez "
                "cette déclaration après l'avoir interrogé depuis votre logiciel.",
            )


class PatientCreateForm(IdentityForm, StatusFieldsMixin):
    field_order = [*IdentityForm.field_order, "identity_status", "evidence", "insi_checked"]

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        self.check_insi_declared(data)
        return data


class StatusForm(DsfrForm, StatusFieldsMixin):
    reason = forms.CharField(
        label="Motif",
        max_length=255,
        required=False,
        help_text="Par exemple : pièce présentée lors de l'admission, INS vérifié par INSi.",
    )

    def __init__(self, *args: Any, patient: Patient | None = None, **kwargs: Any) -> None:
        if patient is not None:
            kwargs.setdefault(
                "initial", {"identity_status": patient.identity_status, "evidence": patient.evidence}
            )
        super().__init__(*args, **kwargs)
        self.insi_done = patient is not None and patient.identity_status in (
            IdentityStatus.RETRIEVED,
            IdentityStatus.QUALIFIED,
        )

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        self.check_insi_declared(data)
        return data


# --- Patient choices -----------------------------------------------------------------------------------


class ConsentForm(DsfrForm):
    kind = forms.ChoiceField(label="Choix du patient", choices=ConsentKind.choices, widget=forms.RadioSelect)
    professional = forms.CharField(
        label="Professionnel autorisé",
        max_length=150,
        required=False,
        help_text="Pour une autorisation d'accès : IdNat_PS ou identifiant de connexion du professionnel ; "
        "laissez vide pour vous-même.",
    )
    note = forms.CharField(label="Précision", max_length=255, required=False)

    def __init__(self, *args: Any, user: Any = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.user = user

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        identifier = (data.get("professional") or "").strip()
        if data.get("kind") != ConsentKind.DMP_ACCESS_AUTHORISATION:
            data["professional"] = None
            return data
        if not identifier:
            data["professional"] = self.user
            return data
        found = (
            get_user_model()
            .objects.filter(
                Q(idnat_ps=identifier) | Q(username=identifier), is_active=True, role__in=CLINICAL
            )
            .first()
        )
        if found is None:
            self.add_error("professional", "Aucun professionnel de santé du portail n'a cet identifiant.")
        data["professional"] = found
        return data
