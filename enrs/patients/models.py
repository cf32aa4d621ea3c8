"""Patient identity (INS and its five traits, identity status) and the patient's choices.

Owned by the core because the DMP, telemedicine and messaging apps all name patients (architecture.md).
Rows are written only by ``enrs.patients.services``; every read of a patient for a person is audited by
the selectors that serve views.
"""

from django.conf import settings
from django.db import models
from django.db.models import Q

from enrs.standards import cda

from . import ins as ins_codes


class IdentityStatus(models.TextChoices):
    # RNIV identity reliability statuses (fr-core-cs-v2-0445, standards §1.3).
    PROVISIONAL = "PROV", "Identité provisoire"
    RETRIEVED = "RECUP", "Identité récupérée"
    VALIDATED = "VALI", "Identité validée"
    QUALIFIED = "QUAL", "Identité qualifiée"


class InsOid(models.TextChoices):
    NIR = ins_codes.OID_INS_NIR, "INS-NIR"
    NIA = ins_codes.OID_INS_NIA, "INS-NIA"
    NIR_TEST = ins_codes.OID_INS_NIR_TEST, "INS-NIR de test"
    NIR_DEMO = ins_codes.OID_INS_NIR_DEMO, "INS-NIR de démonstration"


class Sex(models.TextChoices):
    MALE = "M", "Masculin"
    FEMALE = "F", "Féminin"
    UNKNOWN = "U", "Inconnu"


class EvidenceKind(models.TextChoices):
    # High-trust identity documents of the RNIV (a VALI/QUAL identity needs one of them).
    NONE = "", "Aucun"
    ID_CARD = "CNI", "Carte nationale d'identité"
    PASSPORT = "PASSEPORT", "Passeport"
    RESIDENCE_PERMIT = "TITRE_SEJOUR", "Titre de séjour"
    FAMILY_BOOK = "LIVRET_FAMILLE", "Livret de famille (mineur, avec pièce d'un parent)"
    BIRTH_CERTIFICATE = "ACTE_NAISSANCE", "Extrait d'acte de naissance (mineur, avec pièce d'un parent)"


HIGH_TRUST_EVIDENCE = frozenset(
    {
        EvidenceKind.ID_CARD,
        EvidenceKind.PASSPORT,
        EvidenceKind.RESIDENCE_PERMIT,
        EvidenceKind.FAMILY_BOOK,
        EvidenceKind.BIRTH_CERTIFICATE,
    }
)


class Patient(models.Model):
    """One patient's identity as the region knows it. The matricule INS may travel (into a CDA, an XDS
    submission, an MSSanté header) only when the identity is qualified (``may_carry_ins``)."""

    ins = models.CharField("matricule INS", max_length=15, blank=True, db_index=True)
    ins_oid = models.CharField("OID de l'INS", max_length=32, choices=InsOid.choices, blank=True)
    birth_family_name = models.CharField("nom de naissance", max_length=100)
    birth_given_names = models.CharField(
        "prénoms de naissance", max_length=255, help_text="Liste complète, séparés par des espaces."
    )
    first_given_name = models.CharField("premier prénom de naissance", max_length=100)
    used_family_name = models.CharField("nom utilisé", max_length=100, blank=True)
    used_given_name = models.CharField("prénom utilisé", max_length=100, blank=True)
    sex = models.CharField("sexe", max_length=1, choices=Sex.choices)
    birth_date = models.DateField("date de naissance")
    birth_place_insee = models.CharField(
        "lieu de naissance (code INSEE)",
        max_length=5,
        blank=True,
        help_text="Code officiel géographique de la commune, ou 99xxx pour un pays étranger.",
    )
    identity_status = models.CharField(
        "statut de l'identité",
        max_length=5,
        choices=IdentityStatus.choices,
        default=IdentityStatus.PROVISIONAL,
    )
    evidence = models.CharField(
        "pièce d'identité vérifiée", max_length=20, choices=EvidenceKind.choices, blank=True, default=""
    )
    insi_checked_at = models.DateTimeField(
        "INS récupéré par le téléservice INSi le",
        null=True,
        blank=True,
        help_text="Déclaré par le professionnel : le téléservice INSi n'est pas raccordé au portail.",
    )
    status_set_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name="statut fixé par",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
    )
    status_set_at = models.DateTimeField("statut fixé le", null=True, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, verbose_name="créé par", on_delete=models.PROTECT, related_name="+"
    )
    created_at = models.DateTimeField("créé le", auto_now_add=True)
    updated_at = models.DateTimeField("modifié le", auto_now=True)

    class Meta:
        verbose_name = "patient"
        verbose_name_plural = "patients"
        ordering = ["birth_family_name", "first_given_name", "birth_date"]
        indexes = [models.Index(fields=["birth_family_name", "birth_date"], name="patients_name_birth_idx")]
        constraints = [
            models.UniqueConstraint(
                fields=["ins", "ins_oid"], condition=~Q(ins=""), name="patients_ins_unique"
            ),
            models.CheckConstraint(
                condition=Q(ins="", ins_oid="") | (~Q(ins="") & ~Q(ins_oid="")),
                name="patients_ins_has_oid",
            ),
            # Retrieved and qualified identities come from INSi: they have a matricule.
            models.CheckConstraint(
                condition=~Q(identity_status__in=["RECUP", "QUAL"]) | ~Q(ins=""),
                name="patients_recup_qual_have_ins",
            ),
            # Validated and qualified identities were checked against a high-trust document.
            models.CheckConstraint(
                condition=~Q(identity_status__in=["VALI", "QUAL"]) | ~Q(evidence=""),
                name="patients_vali_qual_have_evidence",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.birth_family_name} {self.first_given_name} ({self.birth_date:%d/%m/%Y})"

    @property
    def given_names(self) -> tuple[str, ...]:
        return tuple(self.birth_given_names.split())

    @property
    def may_carry_ins(self) -> bool:
        """Only a qualified identity may carry and transmit the matricule INS (fr-core, RNIV)."""
        return self.identity_status == IdentityStatus.QUALIFIED and bool(self.ins)

    @property
    def display_name(self) -> str:
        family = self.used_family_name or self.birth_family_name
        given = self.used_given_name or self.first_given_name
        return f"{family.upper()} {given}"

    def cda_identity(self, *, ins: str | None = None, ins_oid: str | None = None) -> cda.PatientIdentity:
        """The patient as a CDA recordTarget: the five traits, with the matricule INS (or the identifier
        the caller gives instead, e.g. a local one when the identity is not qualified)."""
        return cda.PatientIdentity(
            ins=self.ins if ins is None else ins,
            ins_oid=self.ins_oid if ins_oid is None else ins_oid,
            birth_family_name=self.birth_family_name,
            birth_given_names=self.given_names,
            first_given_name=self.first_given_name,
            sex=self.sex,
            birth_date=self.birth_date,
            birth_place_insee=self.birth_place_insee,
            used_family_name=self.used_family_name,
        )

    def traits(self) -> ins_codes.InsTraits:
        return ins_codes.InsTraits(
            birth_family_name=self.birth_family_name,
            birth_given_names=self.given_names,
            first_given_name=self.first_given_name,
            sex=self.sex,
            birth_date_iso=self.birth_date.isoformat() if self.birth_date else "",
            birth_place_insee=self.birth_place_insee,
        )


class IdentityStatusChange(models.Model):
    """Who changed an identity's status, when, and on what evidence (kept with the patient)."""

    patient = models.ForeignKey(Patient, on_delete=models.CASCADE, related_name="status_changes")
    previous_status = models.CharField(
        "ancien statut", max_length=5, choices=IdentityStatus.choices, blank=True
    )
    status = models.CharField("nouveau statut", max_length=5, choices=IdentityStatus.choices)
    evidence = models.CharField("pièce vérifiée", max_length=20, choices=EvidenceKind.choices, blank=True)
    reason = models.CharField("motif", max_length=255, blank=True)
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    at = models.DateTimeField("le", auto_now_add=True)

    class Meta:
        verbose_name = "changement de statut d'identité"
        verbose_name_plural = "changements de statut d'identité"
        ordering = ["-at", "-pk"]

    def __str__(self) -> str:
        return f"{self.previous_status or '-'} -> {self.status}"


class ConsentKind(models.TextChoices):
    DMP_FEEDING_OPPOSITION = "dmp_opposition", "Opposition à l'alimentation du DMP"
    DMP_ACCESS_AUTHORISATION = "dmp_access", "Autorisation d'accès du professionnel au DMP"


class Consent(models.Model):
    """A patient's recorded choice. Active while ``withdrawn_at`` is empty; a withdrawal keeps the row.

    ``professional`` is the account the choice concerns (the professional authorised to access the DMP);
    it is empty for choices that concern every professional (opposition to feeding)."""

    patient = models.ForeignKey(Patient, on_delete=models.CASCADE, related_name="consents")
    kind = models.CharField("nature", max_length=20, choices=ConsentKind.choices)
    professional = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name="professionnel concerné",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
    )
    note = models.CharField("précision", max_length=255, blank=True)
    recorded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, verbose_name="recueilli par", on_delete=models.PROTECT, related_name="+"
    )
    recorded_at = models.DateTimeField("recueilli le", auto_now_add=True)
    withdrawn_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name="retiré par",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
    )
    withdrawn_at = models.DateTimeField("retiré le", null=True, blank=True)

    class Meta:
        verbose_name = "choix du patient"
        verbose_name_plural = "choix du patient"
        ordering = ["-recorded_at", "-pk"]
        constraints = [
            # At most one active choice of each kind (per professional for access authorisations).
            models.UniqueConstraint(
                fields=["patient", "kind"],
                condition=Q(withdrawn_at__isnull=True, professional__isnull=True),
                name="patients_one_active_consent",
            ),
            models.UniqueConstraint(
                fields=["patient", "kind", "professional"],
                condition=Q(withdrawn_at__isnull=True, professional__isnull=False),
                name="patients_one_active_consent_per_professional",
            ),
        ]

    def __str__(self) -> str:
        return self.get_kind_display()

    @property
    def is_active(self) -> bool:
        return self.withdrawn_at is None
