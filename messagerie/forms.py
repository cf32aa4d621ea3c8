"""Forms of the messagerie pages. They check the shape of what was typed; business rules (trust space,
delegations, sizes) belong to the services, whose French errors come back next to the field they name."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

from django import forms
from django.core.exceptions import ValidationError

from annuaire.models import MailboxKind
from enrs.accounts.models import User
from enrs.core.forms import DateInput, DsfrForm
from enrs.standards.valuesets import codes

from .models import Folder
from .selectors import MessageSearch

DEFAULT_DOCUMENT_TYPE = "11488-4"  # LOINC "Note de consultation" (the relay's default)
_ADDRESS_SPLIT = re.compile(r"[,;\s]+")


def split_addresses(value: str) -> list[str]:
    """Addresses typed in one field (separated by commas, semicolons or spaces), lower-cased, no repeat."""
    seen: dict[str, None] = {}
    for part in _ADDRESS_SPLIT.split(value or ""):
        part = part.strip().strip("<>").lower()
        if part:
            seen.setdefault(part, None)
    return list(seen)


class IdListField(forms.Field):
    """Ids carried by several hidden inputs of the same name."""

    widget = forms.MultipleHiddenInput

    def to_python(self, value: Any) -> list[int]:
        if not value:
            return []
        if isinstance(value, str):
            value = [value]
        ids: list[int] = []
        for item in value:
            try:
                number = int(item)
            except (TypeError, ValueError):
                raise ValidationError("Référence de pièce jointe invalide.") from None
            if number not in ids:
                ids.append(number)
        return ids


def document_type_choices() -> list[tuple[str, str]]:
    return sorted(
        ((code.code, f"{code.display} ({code.code})") for code in codes("type_code").values()),
        key=lambda item: item[1].lower(),
    )


class ComposeForm(DsfrForm):
    to = forms.CharField(
        label="À",
        max_length=4000,
        help_text="Adresses MSSanté séparées par des virgules ; tapez un nom pour chercher dans l'annuaire.",
        widget=forms.TextInput(attrs={"autocomplete": "off", "data-autocomplete": "recipients"}),
    )
    cc = forms.CharField(
        label="Copie à",
        required=False,
        max_length=4000,
        widget=forms.TextInput(attrs={"autocomplete": "off", "data-autocomplete": "recipients"}),
    )
    subject = forms.CharField(label="Objet", max_length=250, required=False)
    body = forms.CharField(
        label="Message", required=False, max_length=200_000, widget=forms.Textarea(attrs={"rows": 10})
    )
    attachments = IdListField(required=False, label="Pièces jointes")
    patient_query = forms.CharField(
        label="Patient concerné",
        required=False,
        max_length=100,
        help_text="Matricule INS ou nom de naissance ; obligatoire pour joindre un document CDA.",
        widget=forms.TextInput(attrs={"autocomplete": "off", "data-autocomplete": "patients"}),
    )
    patient = forms.IntegerField(required=False, widget=forms.HiddenInput)
    cda_attachment = forms.IntegerField(
        required=False,
        label="Joindre comme document CDA (IHE_XDM)",
        widget=forms.HiddenInput,
    )
    document_type = forms.ChoiceField(label="Type du document CDA", required=False)
    request_read_receipt = forms.BooleanField(label="Demander un accusé de lecture", required=False)
    no_reply = forms.BooleanField(
        label="Message sans réponse possible (patients : X-MSS-MES: FIN)", required=False
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        document_type = self.fields["document_type"]
        assert isinstance(document_type, forms.ChoiceField)
        document_type.choices = document_type_choices()
        document_type.initial = DEFAULT_DOCUMENT_TYPE

    def clean_to(self) -> list[str]:
        addresses = split_addresses(self.cleaned_data.get("to", ""))
        if not addresses:
            raise ValidationError("Indiquez au moins un destinataire.")
        return addresses

    def clean_cc(self) -> list[str]:
        return split_addresses(self.cleaned_data.get("cc", ""))

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        cda = data.get("cda_attachment")
        if cda is not None and cda not in (data.get("attachments") or []):
            self.add_error("cda_attachment", "Le document CDA doit être une des pièces jointes du message.")
        return data


class DraftForm(ComposeForm):
    """A draft may be saved without any recipient yet."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["to"].required = False

    def clean_to(self) -> list[str]:
        return split_addresses(self.cleaned_data.get("to", ""))


class SearchForm(DsfrForm):
    q = forms.CharField(label="Objet", required=False, max_length=200)
    correspondent = forms.CharField(label="Correspondant", required=False, max_length=255)
    date_from = forms.DateField(label="Du", required=False, widget=DateInput())
    date_to = forms.DateField(label="Au", required=False, widget=DateInput())
    patient = forms.CharField(label="Patient (INS ou nom)", required=False, max_length=100)

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        start: dt.date | None = data.get("date_from")
        end: dt.date | None = data.get("date_to")
        if start and end and start > end:
            self.add_error("date_to", "La date de fin précède la date de début.")
        return data

    def search(self) -> MessageSearch:
        if not self.is_bound or not self.is_valid():
            return MessageSearch()
        data = self.cleaned_data
        return MessageSearch(
            text=data.get("q") or "",
            correspondent=data.get("correspondent") or "",
            date_from=data.get("date_from"),
            date_to=data.get("date_to"),
            patient=data.get("patient") or "",
        )


class MoveForm(forms.Form):
    folder = forms.ChoiceField(choices=Folder.choices)


class MarkForm(forms.Form):
    read = forms.TypedChoiceField(choices=[("1", "lu"), ("0", "non lu")], coerce=lambda v: v == "1")


# --- GCS staff -----------------------------------------------------------------------------------------


class MailboxCreateForm(DsfrForm):
    address = forms.EmailField(
        label="Adresse MSSanté de l'annuaire",
        max_length=255,
        help_text="Adresse déjà inscrite dans l'annuaire, sur un domaine hébergé par l'ENRS.",
    )
    display_name = forms.CharField(label="Nom affiché", required=False, max_length=255)


class DelegationForm(DsfrForm):
    username = forms.CharField(label="Identifiant du compte du délégué", max_length=150)
    can_send = forms.BooleanField(label="Peut envoyer au nom de la boîte", required=False, initial=True)

    def clean_username(self) -> User:
        username = self.cleaned_data["username"].strip()
        user = User.objects.filter(username=username).first()
        if user is None:
            raise ValidationError("Aucun compte n'a cet identifiant.")
        return user


class TokenForm(DsfrForm):
    name = forms.CharField(label="Nom du jeton", max_length=100, help_text="Le logiciel qui l'utilisera.")


class TrustedDomainForm(DsfrForm):
    domain = forms.CharField(label="Domaine", max_length=255, help_text="Par exemple hopital.mssante.fr")
    operator = forms.CharField(label="Opérateur", required=False, max_length=255)


MAILBOX_KIND_LABELS = dict(MailboxKind.choices)
