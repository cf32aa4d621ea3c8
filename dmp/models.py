"""Tables of the dmp app: documents fed to the DMP and their submissions.

* `Document` — one version of a document for one patient: the uploaded PDF and the CDA R2 level-1 built
  around it (both encrypted in the vault), its XDS identifiers (uniqueId, setId, version, entryUUID), its
  visibility and its status (a closed state machine, one service per transition in `dmp.services`):

      draft ──submit──▶ queued ──attempt──▶ sent ──▶ accepted ──replace──▶ replaced (old version)
                           │                  └──▶ refused (status_detail says why, in French)
                           └──────────────────────▶ refused

  ``updated`` marks an accepted document whose visibility was changed afterwards (ITI-57 accepted).
* `Submission` / `SubmissionAttempt` — the outbox of the DMP endpoint: one row per ITI-41 (provide and
  register) or ITI-57 (metadata update) call, one attempt row per try with the request and response
  stored encrypted for support.
* `DocumentEvent` — the history shown to users (who did what, when).
"""

from django.conf import settings
from django.db import models
from django.db.models import Q

from annuaire.models import Professional, Structure
from enrs.outbox.models import OutboxAttempt, OutboxItem
from enrs.patients.models import Patient
from enrs.vault.models import Blob


class DocumentStatus(models.TextChoices):
    DRAFT = "draft", "Brouillon"
    QUEUED = "queued", "En file d'envoi"
    SENT = "sent", "Envoyé, en attente de réponse"
    ACCEPTED = "accepted", "Accepté par le DMP"
    REFUSED = "refused", "Refusé"
    UPDATED = "updated", "Accepté, visibilité mise à jour"
    REPLACED = "replaced", "Remplacé par une nouvelle version"


class Confidentiality(models.TextChoices):
    NORMAL = "N", "Normal"
    RESTRICTED = "R", "Restreint"
    VERY_RESTRICTED = "V", "Très restreint"


class DocumentSource(models.TextChoices):
    UPLOAD = "upload", "Dépôt d'un PDF par un professionnel"
    TELEMEDECINE = "telemedecine", "Compte rendu de télémédecine"


class Document(models.Model):
    patient = models.ForeignKey(Patient, verbose_name="patient", on_delete=models.PROTECT, related_name="+")
    structure = models.ForeignKey(
        Structure, verbose_name="structure", on_delete=models.PROTECT, related_name="+"
    )
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL, verbose_name="auteur (compte)", on_delete=models.PROTECT, related_name="+"
    )
    author_professional = models.ForeignKey(
        Professional,
        verbose_name="auteur (annuaire)",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
    )
    source = models.CharField(
        "origine", max_length=12, choices=DocumentSource.choices, default=DocumentSource.UPLOAD
    )
    type_code = models.CharField("type de document (LOINC, JDV_J07)", max_length=20)
    title = models.CharField("titre", max_length=255)
    confidentiality = models.CharField(
        "confidentialité", max_length=1, choices=Confidentiality.choices, default=Confidentiality.NORMAL
    )
    masked_from_professionals = models.BooleanField("masqué aux professionnels (MASQUE_PS)", default=False)
    invisible_to_patient = models.BooleanField(
        "invisible au patient (INVISIBLE_PATIENT)",
        default=False,
        help_text="Jusqu'à la consultation d'annonce.",
    )
    invisible_to_legal_representatives = models.BooleanField(
        "invisible aux représentants légaux (INVISIBLE_REPRESENTANTS_LEGAUX)", default=False
    )
    facility_type = models.CharField("type d'établissement (JDV_J02)", max_length=20)
    practice_setting = models.CharField("cadre d'exercice (JDV_J04)", max_length=20)
    service_start = models.DateTimeField("début de l'acte")
    service_end = models.DateTimeField("fin de l'acte", null=True, blank=True)
    unique_id = models.CharField("identifiant unique (uniqueId)", max_length=128, unique=True)
    set_id = models.CharField("identifiant de l'ensemble des versions (setId)", max_length=128, db_index=True)
    version_number = models.PositiveIntegerField("version", default=1)
    entry_uuid = models.CharField("entryUUID", max_length=64, unique=True)
    # The entry as the registry currently holds it: each accepted ITI-57 creates a new metadata version
    # with a new entryUUID (same logical id, the first entryUUID).
    registry_entry_uuid = models.CharField("entryUUID courant au registre", max_length=64, blank=True)
    registry_version = models.PositiveIntegerField("version des métadonnées au registre", default=1)
    replaces = models.ForeignKey(
        "self",
        verbose_name="remplace",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="replacements",
        help_text="Version précédente (même setId).",
    )
    pdf = models.ForeignKey(Blob, verbose_name="PDF", on_delete=models.PROTECT, related_name="+")
    cda = models.ForeignKey(Blob, verbose_name="document CDA", on_delete=models.PROTECT, related_name="+")
    cda_sha1 = models.CharField("empreinte SHA-1 du CDA", max_length=40)
    cda_size = models.PositiveIntegerField("taille du CDA (octets)")
    status = models.CharField(
        "état", max_length=10, choices=DocumentStatus.choices, default=DocumentStatus.DRAFT, db_index=True
    )
    status_detail = models.TextField("détail de l'état", blank=True)
    created_at = models.DateTimeField("créé le", auto_now_add=True)
    updated_at = models.DateTimeField("modifié le", auto_now=True)
    submitted_at = models.DateTimeField("soumis le", null=True, blank=True)
    accepted_at = models.DateTimeField("accepté le", null=True, blank=True)

    class Meta:
        verbose_name = "document DMP"
        verbose_name_plural = "documents DMP"
        ordering = ["-created_at", "-pk"]
        indexes = [
            models.Index(fields=["patient", "-created_at"], name="dmp_document_patient_idx"),
            models.Index(fields=["structure", "status"], name="dmp_document_structure_idx"),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["set_id", "version_number"],
                condition=~Q(status="refused"),
                name="dmp_document_one_version",
            ),
            models.CheckConstraint(
                condition=Q(version_number=1, replaces__isnull=True)
                | Q(version_number__gt=1, replaces__isnull=False),
                name="dmp_document_version_chain",
            ),
            models.CheckConstraint(
                condition=Q(service_end__isnull=True) | Q(service_end__gte=models.F("service_start")),
                name="dmp_document_service_dates_ordered",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.title} (v{self.version_number})"

    @property
    def visibility_codes(self) -> list[str]:
        """The DMP visibility codes of the document (empty list: normal visibility)."""
        codes = []
        if self.masked_from_professionals:
            codes.append("MASQUE_PS")
        if self.invisible_to_patient:
            codes.append("INVISIBLE_PATIENT")
        if self.invisible_to_legal_representatives:
            codes.append("INVISIBLE_REPRESENTANTS_LEGAUX")
        return codes


class SubmissionKind(models.TextChoices):
    ITI41 = "iti41", "Dépôt du document (ITI-41)"
    ITI57 = "iti57", "Mise à jour de la visibilité (ITI-57)"


class Submission(OutboxItem):
    """The outbox row of one call to the DMP endpoint for one document."""

    document = models.ForeignKey(Document, on_delete=models.PROTECT, related_name="submissions")
    kind = models.CharField("nature", max_length=5, choices=SubmissionKind.choices)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, verbose_name="demandé par", on_delete=models.PROTECT, related_name="+"
    )
    # The entryUUID the request carries (ITI-57: the new metadata version), kept for retries.
    entry_uuid = models.CharField("entryUUID envoyé", max_length=64, blank=True)
    # ITI-57 only: the visibility requested.
    target_masked_from_professionals = models.BooleanField("masqué aux professionnels demandé", null=True)
    target_invisible_to_patient = models.BooleanField("invisible au patient demandé", null=True)
    target_invisible_to_legal_representatives = models.BooleanField(
        "invisible aux représentants légaux demandé", null=True
    )

    class Meta:
        verbose_name = "envoi au DMP"
        verbose_name_plural = "envois au DMP"
        ordering = ["-created_at", "-pk"]
        indexes = [models.Index(fields=["status", "next_attempt_at"], name="dmp_submission_due_idx")]
        constraints = [
            models.CheckConstraint(
                condition=Q(kind="iti41")
                | Q(
                    kind="iti57",
                    target_masked_from_professionals__isnull=False,
                    target_invisible_to_patient__isnull=False,
                    target_invisible_to_legal_representatives__isnull=False,
                ),
                name="dmp_submission_iti57_has_target",
            )
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} — {self.document}"


class SubmissionAttempt(OutboxAttempt):
    submission = models.ForeignKey(Submission, on_delete=models.CASCADE, related_name="attempt_rows")
    request = models.ForeignKey(
        Blob, verbose_name="requête", on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    response = models.ForeignKey(
        Blob, verbose_name="réponse", on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    # Full Content-Type headers (an MTOM header with its boundary and start part does not fit in a blob's).
    request_content_type = models.CharField("type de la requête", max_length=500, blank=True)
    response_content_type = models.CharField("type de la réponse", max_length=500, blank=True)
    http_status = models.PositiveSmallIntegerField("statut HTTP", null=True, blank=True)
    registry_errors = models.JSONField("erreurs du registre", default=list, blank=True)
    duration_ms = models.PositiveIntegerField("durée (ms)", null=True, blank=True)

    class Meta(OutboxAttempt.Meta):
        verbose_name = "essai d'envoi au DMP"
        verbose_name_plural = "essais d'envoi au DMP"


class DocumentEvent(models.Model):
    """One line of a document's history, in French, for the people who follow it."""

    document = models.ForeignKey(Document, on_delete=models.CASCADE, related_name="events")
    action = models.CharField("action", max_length=40)
    status = models.CharField("état après", max_length=10, choices=DocumentStatus.choices)
    detail = models.TextField("détail", blank=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name="par",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
    )
    at = models.DateTimeField("le", auto_now_add=True)

    class Meta:
        verbose_name = "événement d'un document"
        verbose_name_plural = "événements des documents"
        ordering = ["at", "pk"]

    def __str__(self) -> str:
        return f"{self.action} → {self.status}"
