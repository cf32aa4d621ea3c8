"""Tables of the telemedecine app: acts and their trace, on-call pools, rooms, DICOM studies and transfers.

Acts (CSP R.6316-1 to R.6316-4, standards §7): an `Act` is requested by a professional for a patient, to
a professional or to an on-call `Pool`; it moves through a closed set of states (one service per
transition). What the law asks to record — consent, participants, date and times, report, prescriptions,
technical incidents — is stored on the act and its child tables; a closed act is only amended
(`ActAmendment`), never edited. `ActEvent` is the act's own trace (the audit trail has every access).

Images (standards §8): a `Study` / `Series` / `Instance` index over DICOM files stored encrypted in the
vault, filled by browser uploads (`UploadSession`, resumable chunks) and by the C-STORE SCP; a
`Transfer` (outbox row) forwards a study to a `PacsPeer` (C-STORE or STOW-RS) instance by instance
(`TransferItem`), so that a resumed transfer never re-sends what the peer accepted.
"""

import uuid

from django.conf import settings
from django.db import models
from django.db.models import Q

from annuaire.models import Structure
from enrs.accounts.models import User
from enrs.outbox.models import OutboxAttempt, OutboxItem
from enrs.patients.models import Patient
from enrs.vault.models import Blob

USER = settings.AUTH_USER_MODEL


# --- On-call pools ----------------------------------------------------------------------------------


class Pool(models.Model):
    """An on-call pool answering requests (e.g. "Neurologues de garde - télé-AVC")."""

    name = models.CharField("nom", max_length=150, unique=True)
    specialty = models.CharField("spécialité", max_length=150, blank=True)
    structure = models.ForeignKey(
        Structure, verbose_name="structure", on_delete=models.PROTECT, related_name="+"
    )
    ror_offer_identifier = models.CharField("offre ROR", max_length=64, blank=True)
    members = models.ManyToManyField(
        User, verbose_name="membres", related_name="telemedicine_pools", blank=True
    )
    is_active = models.BooleanField("actif", default=True)
    created_at = models.DateTimeField("créé le", auto_now_add=True)

    class Meta:
        verbose_name = "équipe de garde"
        verbose_name_plural = "équipes de garde"
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Shift(models.Model):
    """One slot of a pool's rota: who is on call from ``starts_at`` to ``ends_at``."""

    pool = models.ForeignKey(Pool, on_delete=models.CASCADE, related_name="shifts")
    user = models.ForeignKey(USER, verbose_name="de garde", on_delete=models.PROTECT, related_name="+")
    starts_at = models.DateTimeField("début")
    ends_at = models.DateTimeField("fin")

    class Meta:
        verbose_name = "garde"
        verbose_name_plural = "gardes"
        ordering = ["starts_at"]
        indexes = [models.Index(fields=["pool", "starts_at", "ends_at"], name="tlm_shift_now_idx")]
        constraints = [
            models.CheckConstraint(condition=Q(ends_at__gt=models.F("starts_at")), name="tlm_shift_order")
        ]

    def __str__(self) -> str:
        return f"{self.pool} : {self.user} ({self.starts_at:%d/%m %H:%M} → {self.ends_at:%d/%m %H:%M})"


# --- Acts -------------------------------------------------------------------------------------------


class ActType(models.TextChoices):
    TELECONSULTATION = "teleconsultation", "Téléconsultation"
    TELEEXPERTISE = "teleexpertise", "Téléexpertise"
    TELESURVEILLANCE = "telesurveillance", "Télésurveillance médicale"
    TELEASSISTANCE = "teleassistance", "Téléassistance médicale"
    REGULATION = "regulation", "Régulation médicale"
    TELESOIN = "telesoin", "Télésoin"


class Urgency(models.TextChoices):
    SCHEDULED = "scheduled", "Programmée"
    URGENT = "urgent", "Urgente (dans la journée)"
    EMERGENCY = "emergency", "Urgence vitale (immédiate)"


class ActStatus(models.TextChoices):
    DRAFT = "draft", "Brouillon"
    SENT = "sent", "Envoyée"
    ACCEPTED = "accepted", "Acceptée"
    IN_PROGRESS = "in_progress", "En cours"
    REPORT_SIGNED = "report_signed", "Compte rendu signé"
    CLOSED = "closed", "Clôturée"
    REFUSED = "refused", "Refusée"
    CANCELLED = "cancelled", "Annulée"
    EXPIRED = "expired", "Expirée"


class ConsentStatus(models.TextChoices):
    NOT_RECORDED = "", "Non recueilli"
    GIVEN = "given", "Consentement donné"
    REFUSED = "refused", "Consentement refusé"


class Fallback(models.TextChoices):
    NONE = "", "Vidéo"
    PHONE = "phone", "Téléphone"
    IN_PERSON = "in_person", "En présence"
    ASYNC = "async", "Sans échange en direct (avis sur dossier)"


class Act(models.Model):
    reference = models.UUIDField("référence", default=uuid.uuid4, unique=True, editable=False)
    act_type = models.CharField("type d'acte", max_length=20, choices=ActType.choices)
    status = models.CharField(
        "état", max_length=14, choices=ActStatus.choices, default=ActStatus.DRAFT, db_index=True
    )
    urgency = models.CharField("urgence", max_length=10, choices=Urgency.choices, default=Urgency.SCHEDULED)
    patient = models.ForeignKey(Patient, verbose_name="patient", on_delete=models.PROTECT, related_name="+")
    requester = models.ForeignKey(USER, verbose_name="demandeur", on_delete=models.PROTECT, related_name="+")
    requester_structure = models.ForeignKey(
        Structure, verbose_name="structure demandeuse", on_delete=models.PROTECT, related_name="+"
    )
    requested_professional = models.ForeignKey(
        USER,
        verbose_name="professionnel sollicité",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
    )
    pool = models.ForeignKey(
        Pool,
        verbose_name="équipe de garde sollicitée",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="acts",
    )
    expert = models.ForeignKey(
        USER,
        verbose_name="requis (a accepté)",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
    )
    clinical_question = models.TextField("question clinique")
    # Consent (R.6316-2 of 2010; standards §7): given or refused, when, collected by whom.
    consent = models.CharField(
        "consentement", max_length=8, choices=ConsentStatus.choices, blank=True, default=""
    )
    consent_at = models.DateTimeField("consentement recueilli le", null=True, blank=True)
    consent_collected_by = models.ForeignKey(
        USER,
        verbose_name="consentement recueilli par",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
    )
    # Planning and times of the act (R.6316-4 4°).
    scheduled_at = models.DateTimeField("planifié le", null=True, blank=True)
    expires_at = models.DateTimeField("expire le", null=True, blank=True)
    sent_at = models.DateTimeField("envoyée le", null=True, blank=True)
    accepted_at = models.DateTimeField("acceptée le", null=True, blank=True)
    started_at = models.DateTimeField("début", null=True, blank=True)
    ended_at = models.DateTimeField("fin", null=True, blank=True)
    closed_at = models.DateTimeField("clôturée le", null=True, blank=True)
    status_reason = models.CharField("motif (refus, annulation)", max_length=500, blank=True)
    # Room on the configured video service (Jitsi Meet), or the fallback used.
    room_name = models.CharField("salle de visioconférence", max_length=100, blank=True)
    fallback = models.CharField(
        "mode d'échange", max_length=10, choices=Fallback.choices, blank=True, default=""
    )
    # Report (R.6316-4 1°) and prescriptions (2°).
    report_text = models.TextField("compte rendu", blank=True)
    prescriptions = models.TextField("prescriptions", blank=True)
    report_signed_at = models.DateTimeField("compte rendu signé le", null=True, blank=True)
    report_signed_by = models.ForeignKey(
        USER,
        verbose_name="compte rendu signé par",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
    )
    report_pdf = models.ForeignKey(Blob, on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    report_cda = models.ForeignKey(Blob, on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    # Outcomes of the report's routes (filled from the DMP and messaging apps' services).
    dmp_document_id = models.BigIntegerField("document DMP", null=True, blank=True)
    report_message_id = models.BigIntegerField("message MSSanté du compte rendu", null=True, blank=True)
    created_at = models.DateTimeField("créée le", auto_now_add=True)
    updated_at = models.DateTimeField("modifiée le", auto_now=True)

    class Meta:
        verbose_name = "acte de télémédecine"
        verbose_name_plural = "actes de télémédecine"
        ordering = ["-created_at", "-pk"]
        constraints = [
            models.CheckConstraint(
                condition=~Q(status__in=["sent", "accepted", "in_progress", "report_signed", "closed"])
                | Q(requested_professional__isnull=False)
                | Q(pool__isnull=False),
                name="tlm_act_has_a_recipient",
            )
        ]

    def __str__(self) -> str:
        return f"{self.get_act_type_display()} {str(self.reference)[:8]} ({self.get_status_display()})"


class ParticipantRole(models.TextChoices):
    REQUESTER = "requester", "Requérant"
    EXPERT = "expert", "Requis"
    PROFESSIONAL = "professional", "Autre professionnel"
    CARE_STAFF = "care_staff", "Personnel auprès du patient (EHPAD…)"
    PATIENT_SIDE = "patient_side", "Proche ou aidant"


class Participant(models.Model):
    """Who took part (R.6316-4 3°): an account, or a named person without one (EHPAD staff, a relative)."""

    act = models.ForeignKey(Act, on_delete=models.CASCADE, related_name="participants")
    user = models.ForeignKey(USER, on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    name = models.CharField("nom", max_length=200, blank=True)
    role = models.CharField("rôle", max_length=14, choices=ParticipantRole.choices)
    function = models.CharField("fonction", max_length=150, blank=True)
    added_at = models.DateTimeField("ajouté le", auto_now_add=True)

    class Meta:
        verbose_name = "participant"
        verbose_name_plural = "participants"
        ordering = ["pk"]
        constraints = [
            models.CheckConstraint(
                condition=Q(user__isnull=False) | ~Q(name=""), name="tlm_participant_named"
            )
        ]

    def __str__(self) -> str:
        return self.name or str(self.user)


class Incident(models.Model):
    """A technical incident during the act (R.6316-4 5°)."""

    class Code(models.TextChoices):
        VIDEO = "video", "Vidéo ou son défaillants"
        NETWORK = "network", "Coupure réseau"
        IMAGES = "images", "Images indisponibles ou incomplètes"
        DEVICE = "device", "Objet connecté ou appareil défaillant"
        OTHER = "other", "Autre"

    act = models.ForeignKey(Act, on_delete=models.CASCADE, related_name="incidents")
    code = models.CharField("nature", max_length=10, choices=Code.choices)
    description = models.TextField("description", blank=True)
    reported_by = models.ForeignKey(USER, on_delete=models.PROTECT, related_name="+")
    occurred_at = models.DateTimeField("survenu le")

    class Meta:
        verbose_name = "incident technique"
        verbose_name_plural = "incidents techniques"
        ordering = ["occurred_at", "pk"]

    def __str__(self) -> str:
        return self.get_code_display()


class ActAttachment(models.Model):
    act = models.ForeignKey(Act, on_delete=models.CASCADE, related_name="attachments")
    filename = models.CharField("nom du fichier", max_length=255)
    content_type = models.CharField("type", max_length=150)
    size = models.PositiveIntegerField("taille (octets)")
    blob = models.ForeignKey(Blob, on_delete=models.PROTECT, related_name="+")
    uploaded_by = models.ForeignKey(USER, on_delete=models.PROTECT, related_name="+")
    uploaded_at = models.DateTimeField("ajoutée le", auto_now_add=True)

    class Meta:
        verbose_name = "pièce jointe"
        verbose_name_plural = "pièces jointes"
        ordering = ["pk"]

    def __str__(self) -> str:
        return self.filename


class ActEvent(models.Model):
    """The act's trace, shown on the act: every transition and notable step, by whom and when."""

    act = models.ForeignKey(Act, on_delete=models.CASCADE, related_name="events")
    at = models.DateTimeField("le", auto_now_add=True)
    actor = models.ForeignKey(USER, on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    event = models.CharField("événement", max_length=50)
    detail = models.JSONField("détail", default=dict, blank=True)

    class Meta:
        verbose_name = "trace de l'acte"
        verbose_name_plural = "traces des actes"
        ordering = ["at", "pk"]

    def __str__(self) -> str:
        return f"{self.event} @ {self.at:%Y-%m-%d %H:%M}"


class ActAmendment(models.Model):
    """An addition to a closed act (closed acts are never edited)."""

    act = models.ForeignKey(Act, on_delete=models.CASCADE, related_name="amendments")
    author = models.ForeignKey(USER, on_delete=models.PROTECT, related_name="+")
    at = models.DateTimeField("le", auto_now_add=True)
    text = models.TextField("complément")

    class Meta:
        verbose_name = "complément"
        verbose_name_plural = "compléments"
        ordering = ["at", "pk"]

    def __str__(self) -> str:
        return f"Complément du {self.at:%d/%m/%Y %H:%M}"


# --- DICOM studies ---------------------------------------------------------------------------------


class StudySource(models.TextChoices):
    UPLOAD = "upload", "Dépôt depuis le navigateur"
    SCP = "scp", "Réception DICOM (C-STORE)"


class StudyStatus(models.TextChoices):
    RECEIVING = "receiving", "Réception en cours"
    AVAILABLE = "available", "Disponible"
    REJECTED = "rejected", "Refusée"


class Study(models.Model):
    study_instance_uid = models.CharField("Study Instance UID", max_length=64)
    site = models.ForeignKey(
        Structure,
        verbose_name="site d'origine",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
    )
    source = models.CharField("origine", max_length=6, choices=StudySource.choices)
    status = models.CharField(
        "état", max_length=10, choices=StudyStatus.choices, default=StudyStatus.RECEIVING, db_index=True
    )
    status_detail = models.CharField("précision", max_length=500, blank=True)
    sending_ae_title = models.CharField("AE title émetteur", max_length=16, blank=True)
    uploaded_by = models.ForeignKey(USER, on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    act = models.ForeignKey(Act, on_delete=models.SET_NULL, null=True, blank=True, related_name="studies")
    # Identity as the DICOM headers carry it, and the patient it was reconciled with (INS).
    dicom_patient_id = models.CharField("Patient ID (DICOM)", max_length=64, blank=True)
    dicom_patient_name = models.CharField("Patient's Name (DICOM)", max_length=200, blank=True)
    dicom_patient_birth_date = models.CharField("Patient's Birth Date (DICOM)", max_length=8, blank=True)
    patient = models.ForeignKey(Patient, on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    study_date = models.DateField("date de l'examen", null=True, blank=True)
    description = models.CharField("description", max_length=200, blank=True)
    accession_number = models.CharField("numéro d'examen", max_length=64, blank=True)
    modalities = models.CharField("modalités", max_length=100, blank=True)
    series_count = models.PositiveIntegerField("séries", default=0)
    instance_count = models.PositiveIntegerField("images", default=0)
    total_bytes = models.PositiveBigIntegerField("volume (octets)", default=0)
    thumbnail = models.ForeignKey(Blob, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    created_at = models.DateTimeField("reçue le", auto_now_add=True)
    updated_at = models.DateTimeField("modifiée le", auto_now=True)

    class Meta:
        verbose_name = "examen d'imagerie"
        verbose_name_plural = "examens d'imagerie"
        ordering = ["-created_at", "-pk"]
        constraints = [
            models.UniqueConstraint(
                fields=["study_instance_uid", "site"], name="tlm_study_once_per_site", nulls_distinct=False
            )
        ]

    def __str__(self) -> str:
        return f"{self.modalities or 'DICOM'} {self.study_date or ''} ({self.instance_count} images)"


class Series(models.Model):
    study = models.ForeignKey(Study, on_delete=models.CASCADE, related_name="series")
    series_instance_uid = models.CharField("Series Instance UID", max_length=64)
    modality = models.CharField("modalité", max_length=16, blank=True)
    number = models.IntegerField("numéro", null=True, blank=True)
    description = models.CharField("description", max_length=200, blank=True)
    instance_count = models.PositiveIntegerField("images", default=0)

    class Meta:
        verbose_name = "série"
        verbose_name_plural = "séries"
        ordering = ["number", "pk"]
        constraints = [
            models.UniqueConstraint(fields=["study", "series_instance_uid"], name="tlm_series_once_per_study")
        ]

    def __str__(self) -> str:
        return f"{self.modality} {self.description or self.series_instance_uid}"


class Instance(models.Model):
    series = models.ForeignKey(Series, on_delete=models.CASCADE, related_name="instances")
    sop_instance_uid = models.CharField("SOP Instance UID", max_length=64)
    sop_class_uid = models.CharField("SOP Class UID", max_length=64)
    transfer_syntax_uid = models.CharField("Transfer Syntax UID", max_length=64)
    instance_number = models.IntegerField("numéro", null=True, blank=True)
    size = models.PositiveBigIntegerField("taille (octets)")
    sha256 = models.CharField("empreinte SHA-256 du fichier", max_length=64)
    blob = models.ForeignKey(Blob, on_delete=models.PROTECT, related_name="+")
    received_at = models.DateTimeField("reçue le", auto_now_add=True)

    class Meta:
        verbose_name = "image DICOM"
        verbose_name_plural = "images DICOM"
        ordering = ["instance_number", "pk"]
        constraints = [
            models.UniqueConstraint(
                fields=["series", "sop_instance_uid"], name="tlm_instance_once_per_series"
            )
        ]

    def __str__(self) -> str:
        return self.sop_instance_uid


class UploadStatus(models.TextChoices):
    OPEN = "open", "En cours"
    COMPLETE = "complete", "Terminé"
    FAILED = "failed", "Refusé"


class UploadSession(models.Model):
    """A resumable browser upload (folder or zip of DICOM files) sent in chunks."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    user = models.ForeignKey(USER, on_delete=models.CASCADE, related_name="+")
    act = models.ForeignKey(Act, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    filename = models.CharField("nom", max_length=255)
    total_size = models.PositiveBigIntegerField("taille annoncée (octets)")
    received_size = models.PositiveBigIntegerField("reçu (octets)", default=0)
    status = models.CharField("état", max_length=8, choices=UploadStatus.choices, default=UploadStatus.OPEN)
    error = models.TextField("erreur", blank=True)
    study = models.ForeignKey(Study, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    created_at = models.DateTimeField("créé le", auto_now_add=True)
    updated_at = models.DateTimeField("modifié le", auto_now=True)

    class Meta:
        verbose_name = "dépôt d'images"
        verbose_name_plural = "dépôts d'images"

    def __str__(self) -> str:
        return f"{self.filename} ({self.received_size}/{self.total_size})"


# --- DICOM peers and transfers ---------------------------------------------------------------------


class PeerProtocol(models.TextChoices):
    CSTORE = "cstore", "DICOM C-STORE"
    STOW = "stow", "DICOMweb STOW-RS"


class PacsPeer(models.Model):
    """An expert site's PACS that studies are forwarded to."""

    name = models.CharField("nom", max_length=150)
    structure = models.ForeignKey(Structure, verbose_name="site", on_delete=models.PROTECT, related_name="+")
    protocol = models.CharField("protocole", max_length=6, choices=PeerProtocol.choices)
    host = models.CharField("hôte", max_length=255, blank=True)
    port = models.PositiveIntegerField("port", null=True, blank=True)
    ae_title = models.CharField("AE title du PACS", max_length=16, blank=True)
    calling_ae_title = models.CharField("AE title de l'ENRS", max_length=16, default="ENRS")
    dicomweb_url = models.URLField("URL DICOMweb", blank=True)
    max_parallel = models.PositiveSmallIntegerField("envois simultanés", default=2)
    is_active = models.BooleanField("actif", default=True)

    class Meta:
        verbose_name = "PACS destinataire"
        verbose_name_plural = "PACS destinataires"
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class AllowedSender(models.Model):
    """An AE title allowed to push studies into the ENRS C-STORE SCP; studies are filed under its site."""

    ae_title = models.CharField("AE title", max_length=16, unique=True)
    structure = models.ForeignKey(Structure, verbose_name="site", on_delete=models.PROTECT, related_name="+")
    is_active = models.BooleanField("actif", default=True)

    class Meta:
        verbose_name = "émetteur DICOM autorisé"
        verbose_name_plural = "émetteurs DICOM autorisés"
        ordering = ["ae_title"]

    def __str__(self) -> str:
        return self.ae_title


class TransferPurpose(models.TextChoices):
    CARE = "care", "Soins (identité conservée)"
    TEACHING = "teaching", "Enseignement (anonymisé)"
    RESEARCH = "research", "Recherche (anonymisé)"


class Transfer(OutboxItem):
    """Forwarding one study to one peer (outbox row of the ``dicom`` queue)."""

    study = models.ForeignKey(Study, on_delete=models.PROTECT, related_name="transfers")
    peer = models.ForeignKey(PacsPeer, on_delete=models.PROTECT, related_name="transfers")
    act = models.ForeignKey(Act, on_delete=models.SET_NULL, null=True, blank=True, related_name="transfers")
    purpose = models.CharField(
        "finalité", max_length=8, choices=TransferPurpose.choices, default=TransferPurpose.CARE
    )
    requested_by = models.ForeignKey(USER, on_delete=models.PROTECT, related_name="+")
    instances_total = models.PositiveIntegerField("images à envoyer", default=0)
    instances_sent = models.PositiveIntegerField("images acceptées par le PACS", default=0)
    bytes_sent = models.PositiveBigIntegerField("octets envoyés", default=0)
    verified_at = models.DateTimeField("vérifié sur le PACS le", null=True, blank=True)

    class Meta:
        verbose_name = "transfert d'examen"
        verbose_name_plural = "transferts d'examens"
        indexes = [models.Index(fields=["status", "next_attempt_at"], name="tlm_transfer_due_idx")]


class TransferItemStatus(models.TextChoices):
    PENDING = "pending", "À envoyer"
    SENT = "sent", "Acceptée"
    FAILED = "failed", "Refusée"


class TransferItem(models.Model):
    transfer = models.ForeignKey(Transfer, on_delete=models.CASCADE, related_name="items")
    instance = models.ForeignKey(Instance, on_delete=models.PROTECT, related_name="+")
    # With de-identification the peer receives a remapped SOP Instance UID.
    sent_sop_instance_uid = models.CharField("SOP Instance UID envoyé", max_length=64, blank=True)
    status = models.CharField(
        "état", max_length=8, choices=TransferItemStatus.choices, default=TransferItemStatus.PENDING
    )
    status_code = models.CharField("statut DICOM / HTTP", max_length=20, blank=True)
    sent_at = models.DateTimeField("acceptée le", null=True, blank=True)

    class Meta:
        verbose_name = "image transférée"
        verbose_name_plural = "images transférées"
        constraints = [
            models.UniqueConstraint(fields=["transfer", "instance"], name="tlm_transfer_item_once")
        ]

    def __str__(self) -> str:
        return f"{self.instance_id} → {self.get_status_display()}"


class TransferAttempt(OutboxAttempt):
    transfer = models.ForeignKey(Transfer, on_delete=models.CASCADE, related_name="attempt_rows")
    instances_sent = models.PositiveIntegerField("images acceptées pendant l'essai", default=0)

    class Meta(OutboxAttempt.Meta):
        verbose_name = "essai de transfert"
        verbose_name_plural = "essais de transfert"
