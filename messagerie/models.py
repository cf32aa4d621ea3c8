"""Tables of the messagerie app: the region's MSSanté operator.

* `Mailbox` — a hosted box: personal (one professional), organisational (a structure's service, used by
  delegates), applicative (a software sender using an API token). Its address comes from the directory.
* `Message` — one copy of a message in one mailbox (the sender's copy in "sent", each local recipient's
  copy in "inbox"), with searchable metadata in clear and the body encrypted in the vault.
* `Recipient` — per-recipient status of an outgoing message (queued → sent → delivered/read, or failed).
* `Delivery` / `DeliveryAttempt` — the outbox of the SMTP relay (one row per outgoing message).
* `InboundMessage` — a message received by the SMTP listener, stored (encrypted) before answering 250,
  then parsed by a task.
* `TrustedDomain` — the trust-space allow-list the GCS staff maintain (domains we accept mail from and
  send mail to).
"""

from django.conf import settings
from django.db import models
from django.db.models import Q

from annuaire.models import MailboxAddress, MailboxKind, Professional, Structure
from enrs.outbox.models import OutboxAttempt, OutboxItem
from enrs.patients.models import Patient
from enrs.vault.models import Blob

__all__ = ["MailboxKind"]


class Mailbox(models.Model):
    address = models.EmailField("adresse MSSanté", max_length=255, unique=True)
    kind = models.CharField("type de boîte", max_length=3, choices=MailboxKind.choices)
    display_name = models.CharField("nom affiché", max_length=255)
    directory_entry = models.OneToOneField(
        MailboxAddress,
        verbose_name="adresse de l'annuaire",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="hosted_mailbox",
    )
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name="titulaire",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="personal_mailboxes",
        help_text="Compte du professionnel titulaire d'une boîte personnelle.",
    )
    professional = models.ForeignKey(
        Professional,
        verbose_name="professionnel",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
    )
    structure = models.ForeignKey(
        Structure, verbose_name="structure", on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    is_active = models.BooleanField("active", default=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, verbose_name="créée par", on_delete=models.PROTECT, related_name="+"
    )
    created_at = models.DateTimeField("créée le", auto_now_add=True)

    class Meta:
        verbose_name = "boîte aux lettres"
        verbose_name_plural = "boîtes aux lettres"
        constraints = [
            models.CheckConstraint(
                condition=Q(kind=MailboxKind.PERSONAL, owner__isnull=False)
                | Q(kind__in=[MailboxKind.ORGANIZATIONAL, MailboxKind.APPLICATION], structure__isnull=False),
                name="messagerie_mailbox_owner_matches_kind",
            )
        ]

    def __str__(self) -> str:
        return self.address


class Delegation(models.Model):
    """A user allowed to read (and, with ``can_send``, to send from) an organisational mailbox."""

    mailbox = models.ForeignKey(Mailbox, on_delete=models.CASCADE, related_name="delegations")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="mailbox_delegations"
    )
    can_send = models.BooleanField("peut envoyer", default=True)
    granted_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    granted_at = models.DateTimeField("accordée le", auto_now_add=True)
    revoked_at = models.DateTimeField("retirée le", null=True, blank=True)

    class Meta:
        verbose_name = "délégation"
        verbose_name_plural = "délégations"
        constraints = [
            models.UniqueConstraint(
                fields=["mailbox", "user"],
                condition=Q(revoked_at__isnull=True),
                name="messagerie_one_delegation",
            )
        ]

    def __str__(self) -> str:
        return f"{self.user} → {self.mailbox}"


class ApplicationToken(models.Model):
    """API token of an applicative mailbox (a lab system sending results). Only its SHA-256 is kept."""

    mailbox = models.ForeignKey(Mailbox, on_delete=models.CASCADE, related_name="tokens")
    name = models.CharField("nom", max_length=100)
    prefix = models.CharField("préfixe", max_length=12, db_index=True)
    token_sha256 = models.CharField("empreinte", max_length=64, unique=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField("créé le", auto_now_add=True)
    last_used_at = models.DateTimeField("dernier usage", null=True, blank=True)
    revoked_at = models.DateTimeField("révoqué le", null=True, blank=True)

    class Meta:
        verbose_name = "jeton applicatif"
        verbose_name_plural = "jetons applicatifs"

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"


class TrustedDomain(models.Model):
    """A domain of the MSSanté trust space (ANS list of authorised domains), kept by the GCS staff."""

    domain = models.CharField("domaine", max_length=255, unique=True)
    operator = models.CharField("opérateur", max_length=255, blank=True)
    is_active = models.BooleanField("actif", default=True)
    added_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    added_at = models.DateTimeField("ajouté le", auto_now_add=True)

    class Meta:
        verbose_name = "domaine de l'espace de confiance"
        verbose_name_plural = "domaines de l'espace de confiance"
        ordering = ["domain"]

    def __str__(self) -> str:
        return self.domain


class Folder(models.TextChoices):
    INBOX = "inbox", "Réception"
    SENT = "sent", "Envoyés"
    DRAFTS = "drafts", "Brouillons"
    ARCHIVE = "archive", "Archives"
    TRASH = "trash", "Corbeille"


class Direction(models.TextChoices):
    OUTGOING = "out", "Envoyé"
    INCOMING = "in", "Reçu"


class MessageKind(models.TextChoices):
    MESSAGE = "message", "Message"
    MDN = "mdn", "Accusé de lecture (MDN)"
    DSN = "dsn", "Avis de remise (DSN)"


class Message(models.Model):
    mailbox = models.ForeignKey(Mailbox, on_delete=models.PROTECT, related_name="messages")
    direction = models.CharField("sens", max_length=3, choices=Direction.choices)
    kind = models.CharField("nature", max_length=8, choices=MessageKind.choices, default=MessageKind.MESSAGE)
    folder = models.CharField("dossier", max_length=8, choices=Folder.choices, db_index=True)
    # Metadata, searchable, in clear.
    message_id = models.CharField("Message-ID", max_length=255, db_index=True)
    in_reply_to = models.CharField("en réponse à", max_length=255, blank=True)
    subject = models.CharField("objet", max_length=998, blank=True)
    from_address = models.CharField("expéditeur", max_length=255)
    to_addresses = models.JSONField("destinataires", default=list)
    cc_addresses = models.JSONField("copie", default=list, blank=True)
    sent_at = models.DateTimeField("date", null=True, blank=True, db_index=True)
    patient = models.ForeignKey(
        Patient, verbose_name="patient", on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    patient_ins = models.CharField("INS du patient", max_length=15, blank=True, db_index=True)
    cda_codes = models.CharField("codes des documents CDA", max_length=255, blank=True)
    request_read_receipt = models.BooleanField("accusé de lecture demandé", default=False)
    no_reply = models.BooleanField("sans réponse possible (X-MSS-MES: FIN)", default=False)
    # Content, encrypted: the text body, and for received mail the raw MIME as it arrived.
    body = models.ForeignKey(Blob, on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    raw = models.ForeignKey(Blob, on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    size = models.PositiveIntegerField("taille (octets)", default=0)
    has_attachments = models.BooleanField("pièces jointes", default=False)
    is_read = models.BooleanField("lu", default=False)
    read_at = models.DateTimeField("lu le", null=True, blank=True)
    read_receipt_sent_at = models.DateTimeField("accusé de lecture envoyé le", null=True, blank=True)
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name="rédigé par",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
    )
    created_at = models.DateTimeField("créé le", auto_now_add=True)
    updated_at = models.DateTimeField("modifié le", auto_now=True)

    class Meta:
        verbose_name = "message"
        verbose_name_plural = "messages"
        ordering = ["-sent_at", "-pk"]
        indexes = [
            models.Index(fields=["mailbox", "folder", "-sent_at"], name="msg_mailbox_folder_idx"),
            models.Index(
                fields=["mailbox", "is_read"], name="msg_mailbox_unread_idx", condition=Q(is_read=False)
            ),
        ]
        constraints = [
            # Delivery is idempotent by Message-ID: one copy per mailbox and direction.
            models.UniqueConstraint(
                fields=["mailbox", "direction", "message_id"],
                condition=~Q(folder="drafts"),
                name="messagerie_one_copy_per_mailbox",
            )
        ]

    def __str__(self) -> str:
        return f"{self.subject or '(sans objet)'} <{self.message_id}>"


class Attachment(models.Model):
    """A file of a message (or uploaded for a message being written: then ``message`` is empty)."""

    message = models.ForeignKey(
        Message, on_delete=models.CASCADE, null=True, blank=True, related_name="attachments"
    )
    mailbox = models.ForeignKey(Mailbox, on_delete=models.CASCADE, related_name="+")
    uploaded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    filename = models.CharField("nom du fichier", max_length=255)
    content_type = models.CharField("type", max_length=150)
    size = models.PositiveIntegerField("taille (octets)")
    blob = models.ForeignKey(Blob, on_delete=models.PROTECT, related_name="+")
    is_xdm = models.BooleanField("archive IHE_XDM", default=False)
    quarantined = models.BooleanField("en quarantaine", default=False)
    quarantine_reason = models.CharField("motif de quarantaine", max_length=255, blank=True)
    # For an XDM: what its CDA documents are (shown in the read view).
    documents = models.JSONField("documents CDA", default=list, blank=True)
    created_at = models.DateTimeField("ajoutée le", auto_now_add=True)

    class Meta:
        verbose_name = "pièce jointe"
        verbose_name_plural = "pièces jointes"
        ordering = ["pk"]

    def __str__(self) -> str:
        return self.filename


class RecipientStatus(models.TextChoices):
    QUEUED = "queued", "En file d'attente"
    SENT = "sent", "Envoyé"
    DELIVERED = "delivered", "Remis"
    READ = "read", "Lu"
    FAILED = "failed", "Échec"


class Recipient(models.Model):
    message = models.ForeignKey(Message, on_delete=models.CASCADE, related_name="recipients")
    address = models.CharField("adresse", max_length=255)
    field = models.CharField("champ", max_length=2, choices=[("to", "À"), ("cc", "Cc")], default="to")
    status = models.CharField(
        "état", max_length=10, choices=RecipientStatus.choices, default=RecipientStatus.QUEUED, db_index=True
    )
    status_detail = models.CharField("précision", max_length=500, blank=True)
    smtp_code = models.CharField("code SMTP / DSN", max_length=20, blank=True)
    status_at = models.DateTimeField("depuis", null=True, blank=True)

    class Meta:
        verbose_name = "destinataire"
        verbose_name_plural = "destinataires"
        ordering = ["pk"]
        constraints = [
            models.UniqueConstraint(fields=["message", "address"], name="messagerie_recipient_once"),
        ]

    def __str__(self) -> str:
        return f"{self.address} ({self.get_status_display()})"


class Delivery(OutboxItem):
    """The relay's outbox row of one outgoing message (its recipients still ``queued`` are sent)."""

    message = models.OneToOneField(Message, on_delete=models.PROTECT, related_name="delivery")

    class Meta:
        verbose_name = "envoi SMTP"
        verbose_name_plural = "envois SMTP"
        indexes = [models.Index(fields=["status", "next_attempt_at"], name="msg_delivery_due_idx")]


class DeliveryAttempt(OutboxAttempt):
    delivery = models.ForeignKey(Delivery, on_delete=models.CASCADE, related_name="attempt_rows")
    recipients = models.JSONField("réponses par destinataire", default=dict, blank=True)

    class Meta(OutboxAttempt.Meta):
        verbose_name = "essai d'envoi"
        verbose_name_plural = "essais d'envoi"


class InboundStatus(models.TextChoices):
    RECEIVED = "received", "Reçu, à traiter"
    PROCESSED = "processed", "Distribué"
    QUARANTINED = "quarantined", "En quarantaine"
    FAILED = "failed", "Échec du traitement"


class InboundMessage(OutboxItem):
    """A message accepted by the SMTP listener (or delivered locally), stored before answering 250.

    It reuses the outbox life cycle for its processing task (claim, retry, requeue when a worker died);
    ``outcome`` says what the processing concluded."""

    raw = models.ForeignKey(Blob, on_delete=models.PROTECT, related_name="+")
    mail_from = models.CharField("MAIL FROM", max_length=255, blank=True)
    rcpt_to = models.JSONField("RCPT TO", default=list)
    message_id = models.CharField("Message-ID", max_length=255, blank=True, db_index=True)
    peer = models.CharField("pair", max_length=255, blank=True)
    peer_certificate = models.CharField("certificat du pair", max_length=500, blank=True)
    outcome = models.CharField(
        "résultat",
        max_length=12,
        choices=InboundStatus.choices,
        default=InboundStatus.RECEIVED,
        db_index=True,
    )
    outcome_detail = models.TextField("détail", blank=True)
    received_at = models.DateTimeField("reçu le", auto_now_add=True)

    class Meta:
        verbose_name = "message entrant"
        verbose_name_plural = "messages entrants"
