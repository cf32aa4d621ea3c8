"""The append-only, hash-chained audit trail.

Rows are written only by ``enrs.audit.services.audit_record``. They are never updated nor deleted: the
ORM refuses it here, and on PostgreSQL a trigger refuses it in the database (migration 0002).
"""

from typing import Any

from django.conf import settings
from django.db import models

from .chain import EventContent


class AuditAppendOnlyError(Exception):
    """Raised when code tries to change or delete an audit event through the ORM."""

    def __init__(self) -> None:
        super().__init__(
            "Le journal d'audit est en ajout seul : un événement ne se modifie ni ne se supprime."
        )


class Outcome(models.TextChoices):
    SUCCESS = "success", "Succès"
    FAILURE = "failure", "Échec"
    DENIED = "denied", "Refusé"


# Labels shown to administrators for the actions the portal records; others are shown as their code.
ACTION_LABELS: dict[str, str] = {
    "auth.login": "Connexion",
    "auth.login.failed": "Échec de connexion",
    "auth.lockout": "Verrouillage du compte",
    "auth.logout": "Déconnexion",
    "auth.sign_out_everywhere": "Fermeture de toutes les sessions",
    "auth.cps.refused": "Connexion par carte CPS refusée",
    "auth.cps.spoofing": "En-têtes de carte CPS non fiables",
    "auth.psc.refused": "Connexion Pro Santé Connect refusée",
    "access.denied": "Accès refusé",
    "otp.enrol.start": "Début d'enrôlement d'un code à usage unique",
    "otp.enrol": "Enrôlement d'un code à usage unique",
    "otp.verify": "Vérification d'un code à usage unique",
    "otp.email.send": "Envoi d'un code par courriel",
    "otp.backup_codes.generate": "Création de codes de secours",
    "otp.backup_code.used": "Utilisation d'un code de secours",
    "patient.read": "Consultation de données d'un patient",
    "audit.search": "Consultation du journal d'audit",
    "audit.export": "Export du journal d'audit",
    "audit.view": "Consultation d'un événement d'audit",
}


class AuditEventQuerySet(models.QuerySet["AuditEvent"]):
    def update(self, **kwargs: Any) -> int:
        raise AuditAppendOnlyError

    def delete(self) -> tuple[int, dict[str, int]]:
        raise AuditAppendOnlyError


class AuditEvent(models.Model):
    id = models.BigAutoField(primary_key=True)
    occurred_at = models.DateTimeField("date", editable=False)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name="utilisateur",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="audit_events",
        editable=False,
        db_index=False,  # the (actor, occurred_at) index below serves lookups by actor
    )
    actor_label = models.CharField(
        "identifiant de l'utilisateur",
        max_length=150,
        blank=True,
        editable=False,
        help_text="Identifiant au moment de l'événement (ou identifiant saisi lors d'un échec de connexion).",
    )
    auth_method = models.CharField("méthode d'authentification", max_length=20, blank=True, editable=False)
    action = models.CharField("action", max_length=100, editable=False)
    target_type = models.CharField("type de cible", max_length=100, blank=True, editable=False)
    target_id = models.CharField("identifiant de cible", max_length=100, blank=True, editable=False)
    patient_ins = models.CharField("INS du patient", max_length=15, blank=True, editable=False)
    ip = models.GenericIPAddressField("adresse IP", null=True, blank=True, editable=False)
    user_agent = models.CharField("navigateur", max_length=512, blank=True, editable=False)
    outcome = models.CharField("résultat", max_length=10, choices=Outcome.choices, editable=False)
    request_id = models.CharField("identifiant de requête", max_length=64, blank=True, editable=False)
    detail = models.JSONField("détail", default=dict, blank=True, editable=False)
    prev_hash = models.CharField("empreinte précédente", max_length=64, editable=False)
    hash = models.CharField("empreinte", max_length=64, editable=False)

    objects = AuditEventQuerySet.as_manager()

    class Meta:
        verbose_name = "événement d'audit"
        verbose_name_plural = "événements d'audit"
        indexes = [
            models.Index(fields=["occurred_at"], name="audit_event_occurred_idx"),
            models.Index(fields=["actor", "occurred_at"], name="audit_event_actor_idx"),
            models.Index(fields=["actor_label", "occurred_at"], name="audit_event_actor_label_idx"),
            # varchar_pattern_ops: lets PostgreSQL use the index for the prefix search (LIKE 'auth.%').
            models.Index(fields=["action"], name="audit_event_action_idx", opclasses=["varchar_pattern_ops"]),
            models.Index(
                fields=["patient_ins", "occurred_at"],
                name="audit_event_patient_idx",
                condition=~models.Q(patient_ins=""),
            ),
        ]
        constraints = [
            # One successor per link: two writers that raced past the lock would fork the chain.
            models.UniqueConstraint(fields=["prev_hash"], name="audit_event_prev_hash_unique"),
            models.CheckConstraint(
                condition=models.Q(outcome__in=Outcome.values), name="audit_event_outcome_valid"
            ),
        ]

    def __str__(self) -> str:
        return f"#{self.pk} {self.action} {self.actor_label or '-'} {self.outcome}"

    def save(self, *args: Any, **kwargs: Any) -> None:
        if not self._state.adding:
            raise AuditAppendOnlyError
        super().save(*args, **kwargs)

    def delete(self, *args: Any, **kwargs: Any) -> tuple[int, dict[str, int]]:
        raise AuditAppendOnlyError

    @property
    def action_label(self) -> str:
        return ACTION_LABELS.get(self.action, self.action)

    @property
    def auth_method_label(self) -> str:
        from enrs.accounts.authn import AuthMethod

        try:
            return str(AuthMethod(self.auth_method).label)
        except ValueError:
            return self.auth_method

    def content(self) -> EventContent:
        return EventContent(
            occurred_at=self.occurred_at,
            actor_id=self.actor_id,
            actor_label=self.actor_label,
            auth_method=self.auth_method,
            action=self.action,
            target_type=self.target_type,
            target_id=self.target_id,
            patient_ins=self.patient_ins,
            ip=self.ip,
            user_agent=self.user_agent,
            outcome=self.outcome,
            request_id=self.request_id,
            detail=self.detail,
        )
