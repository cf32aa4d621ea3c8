from django.contrib.auth.models import AbstractUser
from django.core.validators import RegexValidator
from django.db import models

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

    @property
    def role_label(self) -> str:
        return Role(self.role).label
