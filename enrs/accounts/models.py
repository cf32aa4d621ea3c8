from collections.abc import Iterator

from django.conf import settings
from django.contrib.auth.models import AbstractUser
from django.core.validators import RegexValidator
from django.db import models
from django.utils.crypto import salted_hmac

from .roles import Role

idnat_ps_validator = RegexValidator(
    r"^(8\d{11}|0\d{9})$",
    "L'identifiant national (IdNat_PS) est « 8 » suivi du RPPS (11 chiffres) ou « 0 » suivi de l'ADELI.",
)


class User(AbstractUser):
    """A person who signs in to the portal. Clinicians are linked to the directory by their IdNat_PS."""

    role = models.CharField("rôle", max_length=20, choices=Role.choices, default=Role.CLINICIAN)
    idnat_ps = models.CharField(
        "identifiant national (IdNat_PS)",
        max_length=12,
        blank=True,
        default="",
        validators=[idnat_ps_validator],
        help_text="« 8 » + RPPS ou « 0 » + ADELI, tel qu'inscrit dans le certificat CPS.",
    )
    # Part of the session hash: raising it ends every open session of the user ("sign out everywhere").
    session_epoch = models.PositiveIntegerField(
        "génération des sessions",
        default=0,
        editable=False,
        help_text="Augmentée à chaque « déconnexion partout » : les sessions ouvertes avant sont refusées.",
    )

    class Meta:
        verbose_name = "utilisateur"
        verbose_name_plural = "utilisateurs"
        constraints = [
            models.UniqueConstraint(
                fields=["idnat_ps"],
                condition=~models.Q(idnat_ps=""),
                name="accounts_user_idnat_ps_unique",
            )
        ]

    def __str__(self) -> str:
        full = self.get_full_name()
        return f"{full} ({self.username})" if full else self.username

    # Sessions store this hash and Django checks it on every request: it changes with the password (as in
    # Django) and with `session_epoch`, so bumping the epoch invalidates every session of the user.
    def _session_hash(self, secret: str | bytes | None = None) -> str:
        key_salt = "enrs.accounts.models.User.get_session_auth_hash"
        value = f"{self.password}:{self.session_epoch}"
        return salted_hmac(key_salt, value, secret=secret, algorithm="sha256").hexdigest()

    def get_session_auth_hash(self) -> str:
        return self._session_hash()

    def get_session_auth_fallback_hash(self) -> Iterator[str]:
        for fallback_secret in settings.SECRET_KEY_FALLBACKS:
            yield self._session_hash(secret=fallback_secret)

    @property
    def role_label(self) -> str:
        return Role(self.role).label
