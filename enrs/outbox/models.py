"""The shared base of every outbox table (conventions: "Outside calls go through an outbox").

Each app that talks to the outside world (SMTP relay, DMP endpoint, DICOM peer) has its own concrete
table inheriting `OutboxItem` (what to send, to whom) and its own attempts table inheriting
`OutboxAttempt` (one row per try, with the peer's answer). The life cycle is the same everywhere:

    pending ──claim──▶ in_progress ──success──▶ done
                          │  └─temporary failure──▶ retry ──(due)──▶ in_progress …
                          └─permanent failure, or deadline passed──▶ failed ──manual retry──▶ pending

A row is claimed with ``SELECT … FOR UPDATE SKIP LOCKED`` and leased for a while: a worker killed mid-call
leaves its row ``in_progress`` with an expired lease, which the periodic sweeper hands to a new task.
"""

from django.db import models
from django.db.models import Q


class OutboxStatus(models.TextChoices):
    PENDING = "pending", "En attente"
    IN_PROGRESS = "in_progress", "En cours"
    RETRY = "retry", "Nouvel essai prévu"
    DONE = "done", "Terminé"
    FAILED = "failed", "Échec"
    CANCELLED = "cancelled", "Annulé"


OPEN_STATUSES = (OutboxStatus.PENDING, OutboxStatus.IN_PROGRESS, OutboxStatus.RETRY)


class OutboxItem(models.Model):
    status = models.CharField(
        "état", max_length=12, choices=OutboxStatus.choices, default=OutboxStatus.PENDING, db_index=True
    )
    attempts = models.PositiveIntegerField("essais", default=0)
    next_attempt_at = models.DateTimeField("prochain essai", null=True, blank=True)
    deadline = models.DateTimeField("abandon après", null=True, blank=True)
    lease_until = models.DateTimeField("réservé jusqu'à", null=True, blank=True)
    claimed_by = models.CharField("réservé par", max_length=200, blank=True)
    last_error = models.TextField("dernière erreur", blank=True)
    last_error_code = models.CharField("code de la dernière erreur", max_length=50, blank=True)
    created_at = models.DateTimeField("créé le", auto_now_add=True)
    updated_at = models.DateTimeField("modifié le", auto_now=True)
    done_at = models.DateTimeField("terminé le", null=True, blank=True)

    class Meta:
        abstract = True

    @classmethod
    def open_condition(cls) -> Q:
        return Q(status__in=OPEN_STATUSES)

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_STATUSES


class AttemptOutcome(models.TextChoices):
    SUCCESS = "success", "Succès"
    TEMPORARY = "temporary", "Échec temporaire"
    PERMANENT = "permanent", "Échec définitif"


class OutboxAttempt(models.Model):
    """One try: when, by which worker, how it ended, and what the peer said (code + text)."""

    number = models.PositiveIntegerField("essai n°")
    started_at = models.DateTimeField("début")
    finished_at = models.DateTimeField("fin", auto_now_add=True)
    outcome = models.CharField("résultat", max_length=10, choices=AttemptOutcome.choices)
    code = models.CharField("code", max_length=50, blank=True)
    message = models.TextField("message", blank=True)
    worker = models.CharField("worker", max_length=200, blank=True)

    class Meta:
        abstract = True
        ordering = ["number"]
