"""Sign-in forms: identifier + password, then the one-time code (authenticator app, backup code, e-mail)."""

import re
from typing import Any

from django import forms
from django.contrib.auth.forms import AuthenticationForm

TOTP_DIGITS = 6
BACKUP_CODE_RE = re.compile(r"^[a-z0-9]{10}$")


def normalise_backup_code(value: str) -> str:
    """What the user typed, without spaces and dashes, in lower case: « ABCDE-FGHJK » → « abcdefghjk »."""
    return re.sub(r"[\s\-]", "", value or "").lower()


class LoginForm(AuthenticationForm):
    """Identifier and password, checked by `authenticate()` (django-axes refuses locked accounts there)."""

    error_messages = {
        "invalid_login": (
            "Identifiant ou mot de passe incorrect. Les deux champs tiennent compte des majuscules."
        ),
        "inactive": "Ce compte est désactivé. Contactez le support du GCS e-santé.",
    }

    def __init__(self, request: Any = None, *args: Any, **kwargs: Any) -> None:
        super().__init__(request, *args, **kwargs)
        self.fields["username"].label = "Identifiant"
        self.fields["password"].label = "Mot de passe"
        self.fields["username"].error_messages["required"] = "Saisissez votre identifiant."
        self.fields["password"].error_messages["required"] = "Saisissez votre mot de passe."


class TOTPCodeForm(forms.Form):
    """A 6-digit code from the authenticator app, or from the e-mail."""

    code = forms.CharField(
        label="Code à usage unique",
        help_text="Les 6 chiffres affichés par votre application d'authentification.",
        max_length=16,
        error_messages={"required": "Saisissez le code à 6 chiffres."},
    )

    def clean_code(self) -> str:
        code = re.sub(r"\s", "", self.cleaned_data["code"])
        if not re.fullmatch(rf"[0-9]{{{TOTP_DIGITS}}}", code):
            raise forms.ValidationError("Le code se compose de 6 chiffres.", code="format")
        return code


class EmailCodeForm(TOTPCodeForm):
    code = forms.CharField(
        label="Code reçu par e-mail",
        help_text="Les 6 chiffres du message que nous venons de vous envoyer (valable 5 minutes).",
        max_length=16,
        error_messages={"required": "Saisissez le code à 6 chiffres reçu par e-mail."},
    )


class BackupCodeForm(forms.Form):
    """One of the ten backup codes given at enrolment (10 letters or digits, dash optional)."""

    code = forms.CharField(
        label="Code de secours",
        help_text="L'un des 10 codes de secours remis lors de l'activation, par exemple abcde-fghjk.",
        max_length=32,
        error_messages={"required": "Saisissez l'un de vos codes de secours."},
    )

    def clean_code(self) -> str:
        code = normalise_backup_code(self.cleaned_data["code"])
        if not BACKUP_CODE_RE.match(code):
            raise forms.ValidationError(
                "Un code de secours se compose de 10 lettres ou chiffres (le tiret est facultatif).",
                code="format",
            )
        return code
