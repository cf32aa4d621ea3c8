"""RPU tables: emergency departments, the files they send, their passages, rejections and feed checks.

No direct identifier is stored beyond what the OSCOUR format carries: the birth date is turned into an
age (years; months under two) and an age band at import, free-text reasons for the visit are not kept
(only whether the item was filled), DA and CCAM acts are kept as counts.
"""

from django.conf import settings
from django.core.validators import RegexValidator
from django.db import models

FINESS_VALIDATOR = RegexValidator(r"^(?:\d{2}|2[AB])\d{7}$", "Un FINESS compte 9 caractères.")


class EmergencyDepartment(models.Model):
    """A structure des urgences, known by its geographic FINESS (the one its files carry)."""

    finess = models.CharField("FINESS géographique", max_length=9, unique=True, validators=[FINESS_VALIDATOR])
    name = models.CharField("nom", max_length=200)
    establishment_finess = models.CharField(
        "FINESS juridique de l'établissement", max_length=9, blank=True, validators=[FINESS_VALIDATOR]
    )
    establishment_name = models.CharField("établissement", max_length=200, blank=True)
    # Structure of the directory (plain id: the core does not depend on annuaire).
    structure_id = models.BigIntegerField("structure (annuaire)", null=True, blank=True)
    department = models.CharField("département", max_length=3, blank=True)
    contact_email = models.EmailField("adresse de contact (supervision)", blank=True)
    expected_daily = models.PositiveIntegerField(
        "passages attendus par jour",
        null=True,
        blank=True,
        help_text="Vide : le volume habituel est la médiane des 28 derniers jours reçus.",
    )
    active = models.BooleanField("suivi actif", default=True)

    class Meta:
        verbose_name = "structure des urgences"
        verbose_name_plural = "structures des urgences"
        ordering = ["department", "name"]

    def __str__(self) -> str:
        return f"{self.name} ({self.finess})"

    @property
    def establishment_key(self) -> str:
        return self.establishment_finess or self.finess

    @property
    def establishment_label(self) -> str:
        return self.establishment_name or self.name


class FileSource(models.TextChoices):
    UPLOAD = "upload", "Dépôt dans le portail"
    DROP = "drop", "Répertoire de dépôt"


class FileStatus(models.TextChoices):
    IMPORTED = "imported", "Importé"
    REPLACED = "replaced", "Remplacé par un envoi plus récent"
    REFUSED = "refused", "Refusé"


class RpuFile(models.Model):
    emergency_department = models.ForeignKey(
        EmergencyDepartment,
        verbose_name="structure des urgences",
        on_delete=models.PROTECT,
        related_name="files",
        null=True,
        blank=True,
    )
    source = models.CharField("origine", max_length=10, choices=FileSource.choices)
    original_name = models.CharField("nom du fichier", max_length=255, blank=True)
    sha256 = models.CharField("empreinte SHA-256", max_length=64)
    size = models.PositiveIntegerField("taille (octets)", default=0)
    finess = models.CharField("FINESS du fichier", max_length=20, blank=True)
    extracted_at = models.DateTimeField("extrait le", null=True, blank=True)
    period_start = models.DateField("du", null=True, blank=True)
    period_end = models.DateField("au", null=True, blank=True)
    received_at = models.DateTimeField("reçu le")
    status = models.CharField("état", max_length=10, choices=FileStatus.choices)
    refusal_reason = models.TextField("motif du refus", blank=True)
    record_count = models.PositiveIntegerField("passages dans le fichier", default=0)
    accepted_count = models.PositiveIntegerField("passages acceptés", default=0)
    rejected_count = models.PositiveIntegerField("passages rejetés", default=0)
    uploaded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name="déposé par",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )

    class Meta:
        verbose_name = "fichier RPU"
        verbose_name_plural = "fichiers RPU"
        ordering = ["-received_at"]
        indexes = [
            models.Index(
                fields=["emergency_department", "period_start", "period_end"], name="rpu_file_ed_period_idx"
            )
        ]

    def __str__(self) -> str:
        return f"RPU {self.finess} {self.period_start} au {self.period_end} ({self.get_status_display()})"


class AgeBand(models.TextChoices):
    UNDER_1 = "lt1", "Moins de 1 an"
    UNDER_18 = "1-17", "1 à 17 ans"
    ADULT = "18-74", "18 à 74 ans"
    ELDERLY = "ge75", "75 ans et plus"
    UNKNOWN = "", "Âge inconnu"


class RpuPassage(models.Model):
    id = models.BigAutoField(primary_key=True)
    file = models.ForeignKey(RpuFile, on_delete=models.CASCADE, related_name="passages")
    emergency_department = models.ForeignKey(
        EmergencyDepartment, on_delete=models.PROTECT, related_name="passages"
    )
    record_index = models.PositiveIntegerField("rang dans le fichier")
    entry_at = models.DateTimeField("entrée")
    entry_day = models.DateField("jour d'entrée")
    exit_at = models.DateTimeField("sortie", null=True, blank=True)
    length_minutes = models.PositiveIntegerField("durée (minutes)", null=True, blank=True)
    postal_code = models.CharField("code postal", max_length=5, blank=True)
    commune = models.CharField("commune", max_length=80, blank=True)
    age_years = models.PositiveSmallIntegerField("âge (années)", null=True, blank=True)
    age_months = models.PositiveSmallIntegerField("âge (mois, avant 2 ans)", null=True, blank=True)
    age_band = models.CharField("tranche d'âge", max_length=5, choices=AgeBand.choices, blank=True)
    sex = models.CharField("sexe", max_length=1, blank=True)
    mode_entree = models.CharField("mode d'entrée", max_length=1, blank=True)
    provenance = models.CharField("provenance", max_length=1, blank=True)
    transport = models.CharField("mode de transport", max_length=5, blank=True)
    transport_pec = models.CharField("prise en charge pendant le transport", max_length=7, blank=True)
    motif = models.CharField("motif de recours (code)", max_length=12, blank=True)
    motif_filled = models.BooleanField("motif renseigné", default=False)
    gravite = models.CharField("CCMU", max_length=1, blank=True)
    dp = models.CharField("diagnostic principal", max_length=8, blank=True)
    da_count = models.PositiveSmallIntegerField("diagnostics associés", default=0)
    actes_count = models.PositiveSmallIntegerField("actes", default=0)
    mode_sortie = models.CharField("mode de sortie", max_length=1, blank=True)
    destination = models.CharField("destination", max_length=1, blank=True)
    orientation = models.CharField("orientation", max_length=10, blank=True)

    class Meta:
        verbose_name = "passage aux urgences"
        verbose_name_plural = "passages aux urgences"
        indexes = [
            models.Index(fields=["emergency_department", "entry_day"], name="rpu_ed_day_idx"),
            models.Index(fields=["entry_day"], name="rpu_day_idx"),
        ]

    def __str__(self) -> str:
        return f"Passage {self.record_index} du {self.entry_day}"


class RpuRejection(models.Model):
    file = models.ForeignKey(RpuFile, on_delete=models.CASCADE, related_name="rejections")
    record_index = models.PositiveIntegerField("rang du passage")
    line = models.PositiveIntegerField("ligne", null=True, blank=True)
    reasons = models.JSONField("motifs", default=list)

    class Meta:
        verbose_name = "passage rejeté"
        verbose_name_plural = "passages rejetés"
        ordering = ["record_index"]

    def __str__(self) -> str:
        return f"Passage {self.record_index} rejeté"


class FeedState(models.TextChoices):
    OK = "ok", "Reçu"
    MISSING = "missing", "Absent"
    LATE = "late", "En retard"
    INCOMPLETE = "incomplete", "Incomplet"


class NoticeState(models.TextChoices):
    NONE = "", "Aucune"
    NO_ADDRESS = "no_address", "Pas d'adresse de contact"
    PENDING = "pending", "À envoyer"
    SENT = "sent", "Envoyée"
    FAILED = "failed", "Échec"


class FeedCheck(models.Model):
    """The morning check of one department's feed for one day (one row per department and day)."""

    emergency_department = models.ForeignKey(
        EmergencyDepartment, on_delete=models.CASCADE, related_name="feed_checks"
    )
    day = models.DateField("jour vérifié")
    state = models.CharField("état", max_length=10, choices=FeedState.choices)
    problems = models.JSONField("constats", default=list)
    passages = models.PositiveIntegerField("passages reçus", default=0)
    usual = models.PositiveIntegerField("volume habituel", null=True, blank=True)
    first_received_at = models.DateTimeField("premier envoi reçu le", null=True, blank=True)
    checked_at = models.DateTimeField("vérifié le")
    notice_state = models.CharField("notification", max_length=10, choices=NoticeState.choices, blank=True)
    notice_attempts = models.PositiveSmallIntegerField("essais d'envoi", default=0)
    notice_sent_at = models.DateTimeField("notifié le", null=True, blank=True)
    notice_error = models.TextField("dernière erreur d'envoi", blank=True)

    class Meta:
        verbose_name = "contrôle de flux RPU"
        verbose_name_plural = "contrôles de flux RPU"
        ordering = ["-day", "emergency_department__name"]
        constraints = [
            models.UniqueConstraint(fields=["emergency_department", "day"], name="rpu_feedcheck_unique_day")
        ]

    def __str__(self) -> str:
        return f"{self.emergency_department_id} {self.day} {self.state}"
