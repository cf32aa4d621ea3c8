"""Tables of the annuaire app: geography, structures (FINESS), professionals (RPPS/ADELI), their
exercices, MSSanté addresses and the members (adhérents) of the GCS.

Codes follow the national nomenclatures (see ``annuaire/standards``); labels are stored next to the
codes, as in the Annuaire Santé extractions, so that lists need no join. Bulk loads (``seed_demo``,
open-data imports) write these tables with COPY, so every invariant that matters is also a database
constraint, not only a ``clean()`` rule.
"""

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q
from django.db.models.functions import Concat

from .standards import identifiers


def validate_finess(value: str) -> None:
    if not identifiers.finess_is_valid(value):
        raise ValidationError(
            "Numéro FINESS invalide : 9 caractères dont la clé de contrôle (Luhn) en dernière position.",
            code="invalid_finess",
        )


def validate_siren(value: str) -> None:
    if not identifiers.siren_is_valid(value):
        raise ValidationError("Numéro SIREN invalide : 9 chiffres dont la clé de Luhn.", code="invalid_siren")


def validate_siret(value: str) -> None:
    if not identifiers.siret_is_valid(value):
        raise ValidationError(
            "Numéro SIRET invalide : 14 chiffres dont la clé de Luhn.", code="invalid_siret"
        )


def validate_rpps(value: str) -> None:
    # Shape only: a failing RPPS key is recorded in Professional.rpps_key_valid, never rejected.
    if not identifiers.rpps_is_well_formed(value):
        raise ValidationError("Numéro RPPS invalide : 11 chiffres attendus.", code="invalid_rpps")


def validate_adeli(value: str) -> None:
    if not identifiers.adeli_is_well_formed(value):
        raise ValidationError("Numéro ADELI invalide : 9 chiffres attendus.", code="invalid_adeli")


class Department(models.Model):
    code = models.CharField("code INSEE", max_length=3, unique=True)
    name = models.CharField("nom", max_length=100)
    region_code = models.CharField("code région", max_length=2, db_index=True)

    class Meta:
        verbose_name = "département"
        verbose_name_plural = "départements"
        ordering = ["code"]

    def __str__(self) -> str:
        return f"{self.code} — {self.name}"


class Commune(models.Model):
    insee_code = models.CharField("code INSEE", max_length=5, unique=True)
    name = models.CharField("nom", max_length=150)
    department = models.ForeignKey(
        Department, verbose_name="département", on_delete=models.PROTECT, related_name="communes"
    )
    postal_code = models.CharField("code postal", max_length=5, db_index=True)
    latitude = models.FloatField("latitude", null=True, blank=True)
    longitude = models.FloatField("longitude", null=True, blank=True)

    class Meta:
        verbose_name = "commune"
        verbose_name_plural = "communes"
        ordering = ["insee_code"]
        indexes = [models.Index(fields=["name"], name="annuaire_commune_name_idx")]

    def __str__(self) -> str:
        return f"{self.name} ({self.postal_code})"


class StructureKind(models.TextChoices):
    # FHIR Organization.type slice organizationType: LEGAL-ENTITY / GEOGRAPHICAL-ENTITY.
    LEGAL_ENTITY = "EJ", "Entité juridique"
    SITE = "ET", "Établissement (entité géographique)"


class Structure(models.Model):
    """A FINESS legal entity (EJ) or a geographic site (ET/EG); sites without FINESS (cabinets,
    associations) are sites with an empty FINESS and, usually, a SIRET."""

    kind = models.CharField("type de structure", max_length=2, choices=StructureKind.choices)
    finess_ej = models.CharField(
        "FINESS juridique (EJ)", max_length=9, blank=True, validators=[validate_finess]
    )
    finess_et = models.CharField(
        "FINESS géographique (ET)",
        max_length=9,
        unique=True,
        null=True,
        blank=True,
        validators=[validate_finess],
        help_text="Vide pour les structures sans FINESS (cabinets, associations).",
    )
    legal_entity = models.ForeignKey(
        "self",
        verbose_name="entité juridique",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="sites",
    )
    siren = models.CharField("SIREN", max_length=9, blank=True, validators=[validate_siren])
    siret = models.CharField("SIRET", max_length=14, blank=True, validators=[validate_siret])
    name = models.CharField("raison sociale", max_length=255)
    category_code = models.CharField("code catégorie (TRE_R66)", max_length=4, blank=True)
    category_label = models.CharField("catégorie d'établissement", max_length=255, blank=True)
    sector_code = models.CharField("code secteur d'activité (TRE_R02)", max_length=5, blank=True)
    sector_label = models.CharField("secteur d'activité", max_length=255, blank=True)
    address_line = models.CharField("adresse", max_length=255, blank=True)
    postal_code = models.CharField("code postal", max_length=5, blank=True)
    commune = models.ForeignKey(
        Commune,
        verbose_name="commune",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="structures",
    )
    latitude = models.FloatField("latitude", null=True, blank=True)
    longitude = models.FloatField("longitude", null=True, blank=True)
    is_active = models.BooleanField("active", default=True)
    rpps_structure_id = models.CharField(
        "identifiant technique RPPS",
        max_length=32,
        unique=True,
        null=True,
        blank=True,
        help_text="« Identifiant technique de la structure » de l'extraction RPPS : la clé des cabinets "
        "sans FINESS ni SIRET.",
    )
    last_import_run = models.ForeignKey(
        "ImportRun",
        verbose_name="dernier import",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        help_text="Dernier import qui a créé, modifié ou repris cette structure ; vide pour une saisie "
        "manuelle. Seules les structures venues d'un import FINESS sont désactivées quand elles "
        "disparaissent du fichier.",
    )
    created_at = models.DateTimeField("créée le", auto_now_add=True)
    updated_at = models.DateTimeField("modifiée le", auto_now=True)

    class Meta:
        verbose_name = "structure"
        verbose_name_plural = "structures"
        indexes = [
            models.Index(fields=["finess_ej"], name="annuaire_structure_ej_idx"),
            models.Index(fields=["siren"], name="annuaire_structure_siren_idx"),
            models.Index(fields=["siret"], name="annuaire_structure_siret_idx"),
            models.Index(fields=["name"], name="annuaire_structure_name_idx"),
            models.Index(fields=["sector_code", "category_code"], name="annuaire_structure_type_idx"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(kind__in=StructureKind.values), name="annuaire_structure_kind_valid"
            ),
            # A legal entity is not a site: no geographic FINESS, no parent.
            models.CheckConstraint(
                condition=Q(kind=StructureKind.SITE) | Q(finess_et__isnull=True, legal_entity__isnull=True),
                name="annuaire_structure_ej_has_no_site_fields",
            ),
            models.UniqueConstraint(
                fields=["finess_ej"],
                condition=Q(kind=StructureKind.LEGAL_ENTITY) & ~Q(finess_ej=""),
                name="annuaire_structure_finess_ej_unique",
            ),
        ]

    def __str__(self) -> str:
        number = self.finess_et or self.finess_ej or self.siret
        return f"{self.name} ({number})" if number else self.name

    @property
    def idnat_struct(self) -> str:
        """IdNat_Struct (CDA/XDS/VIHF organisation identifier) from the structure's own FINESS or SIRET."""
        return identifiers.organization_idnat_struct(
            finess=self.finess_et or self.finess_ej, siret=self.siret
        )

    @property
    def department_code(self) -> str:
        """INSEE code of the department of its commune ("" when the commune is unknown)."""
        commune = self.commune
        return commune.department.code if commune is not None and commune.department_id else ""

    def clean(self) -> None:
        if self.finess_et == "":
            self.finess_et = None
        if self.kind == StructureKind.LEGAL_ENTITY and (self.finess_et or self.legal_entity_id):
            raise ValidationError(
                "Une entité juridique n'a ni FINESS géographique ni entité juridique parente."
            )
        if self.siret and self.siren and not self.siret.startswith(self.siren):
            raise ValidationError({"siret": "Le SIRET doit commencer par le SIREN de la structure."})


class IdentifierType(models.TextChoices):
    RPPS = identifiers.IdentifierType.RPPS.value, "RPPS"
    ADELI = identifiers.IdentifierType.ADELI.value, "ADELI"


class Professional(models.Model):
    """A health professional (« exercice professionnel » of the Annuaire Santé)."""

    idnat_ps = models.CharField(
        "identifiant national (IdNat_PS)",
        max_length=12,
        unique=True,
        help_text="« 8 » + RPPS (12 caractères) ou « 0 » + ADELI (10 caractères).",
    )
    identifier_type = models.CharField("type d'identifiant", max_length=5, choices=IdentifierType.choices)
    rpps = models.CharField("RPPS", max_length=11, blank=True, validators=[validate_rpps])
    adeli = models.CharField("ADELI", max_length=9, blank=True, validators=[validate_adeli])
    civility_code = models.CharField("code civilité (TRE_R81)", max_length=4, blank=True)
    last_name = models.CharField("nom d'exercice", max_length=100)
    first_name = models.CharField("prénom d'exercice", max_length=100, blank=True)
    profession_code = models.CharField("code profession (TRE_G15)", max_length=3)
    profession_label = models.CharField("profession", max_length=100, blank=True)
    category_code = models.CharField("code catégorie professionnelle (TRE_R09)", max_length=2, blank=True)
    specialty_code = models.CharField("code savoir-faire", max_length=10, blank=True)
    specialty_label = models.CharField("savoir-faire", max_length=255, blank=True)
    is_active = models.BooleanField("actif", default=True)
    rpps_key_valid = models.BooleanField(
        "clé RPPS valide",
        default=True,
        help_text="Faux quand la clé de Luhn du RPPS échoue : un avertissement, jamais un refus.",
    )
    last_import_run = models.ForeignKey(
        "ImportRun",
        verbose_name="dernier import",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        help_text="Dernier import RPPS qui a créé, modifié ou repris ce professionnel ; vide pour une "
        "saisie manuelle. Seuls les professionnels venus d'un import sont désactivés quand ils "
        "disparaissent du fichier.",
    )
    created_at = models.DateTimeField("créé le", auto_now_add=True)
    updated_at = models.DateTimeField("modifié le", auto_now=True)

    class Meta:
        verbose_name = "professionnel de santé"
        verbose_name_plural = "professionnels de santé"
        indexes = [
            models.Index(fields=["last_name", "first_name"], name="annuaire_pro_name_idx"),
            models.Index(fields=["profession_code", "specialty_code"], name="annuaire_pro_profession_idx"),
            models.Index(fields=["adeli"], condition=~Q(adeli=""), name="annuaire_pro_adeli_idx"),
        ]
        constraints = [
            models.UniqueConstraint(fields=["rpps"], condition=~Q(rpps=""), name="annuaire_pro_rpps_unique"),
            # The IdNat_PS is the prefixed RPPS or ADELI, and nothing else.
            models.CheckConstraint(
                condition=(
                    Q(identifier_type=IdentifierType.RPPS, idnat_ps=Concat(models.Value("8"), "rpps"))
                    & ~Q(rpps="")
                )
                | (
                    Q(identifier_type=IdentifierType.ADELI, idnat_ps=Concat(models.Value("0"), "adeli"))
                    & ~Q(adeli="")
                ),
                name="annuaire_pro_idnat_ps_matches_identifier",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.first_name} {self.last_name} ({self.idnat_ps})".strip()

    def clean(self) -> None:
        """The IdNat_PS must be the prefixed identifier; a failing RPPS key only clears rpps_key_valid."""
        if self.identifier_type == IdentifierType.RPPS:
            if not identifiers.rpps_is_well_formed(self.rpps):
                raise ValidationError(
                    {"rpps": "Un identifiant de type RPPS demande un numéro RPPS de 11 chiffres."}
                )
            expected = identifiers.idnat_ps_from_rpps(self.rpps)
            self.rpps_key_valid = identifiers.rpps_key_is_valid(self.rpps)
        elif self.identifier_type == IdentifierType.ADELI:
            if not identifiers.adeli_is_well_formed(self.adeli):
                raise ValidationError(
                    {"adeli": "Un identifiant de type ADELI demande un numéro ADELI de 9 chiffres."}
                )
            expected = identifiers.idnat_ps_from_adeli(self.adeli)
        else:
            return
        if self.idnat_ps != expected:
            raise ValidationError({"idnat_ps": f"L'identifiant national doit être « {expected} »."})


class ExerciseMode(models.TextChoices):
    # TRE_R23 ModeExercice (complete; the same codes are in standards/data/nomenclatures.json).
    SALARIED = "S", "Salarié"
    LIBERAL = "L", "Libéral, indépendant, artisan, commerçant"
    VOLUNTEER = "B", "Bénévole"


class Exercice(models.Model):
    """Where and how a professional works (« situation d'exercice »): professional, structure and role."""

    professional = models.ForeignKey(
        Professional,
        verbose_name="professionnel",
        on_delete=models.CASCADE,
        related_name="exercices",
        db_index=False,  # the unique constraint below starts with this column
    )
    structure = models.ForeignKey(
        Structure, verbose_name="structure", on_delete=models.CASCADE, related_name="exercices"
    )
    role_code = models.CharField("code fonction (TRE_R21)", max_length=6)
    exercise_mode = models.CharField("mode d'exercice (TRE_R23)", max_length=1, choices=ExerciseMode.choices)
    created_at = models.DateTimeField("créé le", auto_now_add=True)

    class Meta:
        verbose_name = "exercice"
        verbose_name_plural = "exercices"
        constraints = [
            models.UniqueConstraint(
                fields=["professional", "structure", "role_code"], name="annuaire_exercice_unique"
            ),
            models.CheckConstraint(
                condition=Q(exercise_mode__in=ExerciseMode.values), name="annuaire_exercice_mode_valid"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.professional_id} @ {self.structure_id} ({self.role_code}, {self.exercise_mode})"


class MailboxKind(models.TextChoices):
    # TRE_R257 TypeBAL: PER/ORG/APP are the expected values [unverified, standards §2].
    PERSONAL = "PER", "Personnelle"
    ORGANIZATIONAL = "ORG", "Organisationnelle"
    APPLICATION = "APP", "Applicative"


class MailboxAddress(models.Model):
    """An MSSanté address, owned by a professional (PER) or by a structure (ORG, APP)."""

    address = models.EmailField("adresse MSSanté", max_length=255, unique=True)
    kind = models.CharField("type de boîte", max_length=3, choices=MailboxKind.choices)
    professional = models.ForeignKey(
        Professional,
        verbose_name="professionnel",
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="mailboxes",
    )
    structure = models.ForeignKey(
        Structure,
        verbose_name="structure",
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="mailboxes",
    )
    created_at = models.DateTimeField("créée le", auto_now_add=True)

    class Meta:
        verbose_name = "adresse MSSanté"
        verbose_name_plural = "adresses MSSanté"
        constraints = [
            models.CheckConstraint(
                condition=Q(kind=MailboxKind.PERSONAL, professional__isnull=False, structure__isnull=True)
                | Q(
                    kind__in=[MailboxKind.ORGANIZATIONAL, MailboxKind.APPLICATION],
                    structure__isnull=False,
                    professional__isnull=True,
                ),
                name="annuaire_mailbox_owner_matches_kind",
            ),
        ]

    def __str__(self) -> str:
        return self.address


class College(models.IntegerChoices):
    """The eight collèges of the GCS members' assembly."""

    PUBLIC_ESTABLISHMENTS = 1, "Établissements publics et ESPIC"
    PRIVATE_ESTABLISHMENTS = 2, "Établissements privés"
    HOME_HOSPITALISATION = 3, "HAD"
    LIBERAL_PHYSICIANS = 4, "Médecins libéraux"
    OTHER_LIBERAL_PROFESSIONALS = 5, "Autres professionnels libéraux"
    HEALTH_SERVICES_AND_NETWORKS = 6, "Services et réseaux de santé"
    MEDICO_SOCIAL_ESTABLISHMENTS = 7, "Établissements médico-sociaux"
    PATIENT_ASSOCIATIONS = 8, "Associations d'usagers agréées"


class AdherentStatus(models.TextChoices):
    CANDIDATE = "candidate", "Candidat"
    MEMBER = "member", "Membre"
    RESIGNED = "resigned", "Démissionnaire"
    EXCLUDED = "excluded", "Exclu"


ACTIVE_ADHERENT_STATUSES = [AdherentStatus.CANDIDATE, AdherentStatus.MEMBER]


class Adherent(models.Model):
    """A member (or candidate) of the GCS: a structure or a professional, in one of the 8 collèges."""

    structure = models.ForeignKey(
        Structure,
        verbose_name="structure",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="adhesions",
    )
    professional = models.ForeignKey(
        Professional,
        verbose_name="professionnel",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="adhesions",
    )
    college = models.PositiveSmallIntegerField("collège", choices=College.choices)
    status = models.CharField(
        "statut", max_length=10, choices=AdherentStatus.choices, default=AdherentStatus.CANDIDATE
    )
    membership_start = models.DateField("début d'adhésion", null=True, blank=True)
    membership_end = models.DateField("fin d'adhésion", null=True, blank=True)
    convention_signed_on = models.DateField("convention signée le", null=True, blank=True)
    convention_document = models.FileField(
        "convention signée", upload_to="annuaire/conventions/%Y/", blank=True, max_length=255, db_default=""
    )
    status_reason = models.TextField(
        "motif du dernier changement de statut",
        blank=True,
        db_default="",
        help_text="Obligatoire pour une exclusion.",
    )
    status_changed_at = models.DateTimeField("statut modifié le", null=True, blank=True)
    created_at = models.DateTimeField("créé le", auto_now_add=True)
    updated_at = models.DateTimeField("modifié le", auto_now=True)

    class Meta:
        verbose_name = "adhérent"
        verbose_name_plural = "adhérents"
        indexes = [models.Index(fields=["college", "status"], name="annuaire_adherent_college_idx")]
        constraints = [
            models.CheckConstraint(
                condition=Q(structure__isnull=False, professional__isnull=True)
                | Q(structure__isnull=True, professional__isnull=False),
                name="annuaire_adherent_exactly_one_member",
            ),
            models.CheckConstraint(
                condition=Q(college__gte=1, college__lte=8), name="annuaire_adherent_college_valid"
            ),
            models.CheckConstraint(
                condition=Q(status__in=AdherentStatus.values), name="annuaire_adherent_status_valid"
            ),
            models.CheckConstraint(
                condition=Q(membership_end__isnull=True)
                | Q(membership_start__isnull=True)
                | Q(membership_end__gte=models.F("membership_start")),
                name="annuaire_adherent_dates_ordered",
            ),
            # One ongoing membership (candidate or member) per structure and per professional.
            models.UniqueConstraint(
                fields=["structure"],
                condition=Q(structure__isnull=False, status__in=ACTIVE_ADHERENT_STATUSES),
                name="annuaire_adherent_structure_active_unique",
            ),
            models.UniqueConstraint(
                fields=["professional"],
                condition=Q(professional__isnull=False, status__in=ACTIVE_ADHERENT_STATUSES),
                name="annuaire_adherent_professional_active_unique",
            ),
        ]

    def __str__(self) -> str:
        member = self.structure or self.professional
        return f"{member} — collège {self.college}"


class EnrsService(models.TextChoices):
    """The ENRS services a member may use."""

    ANNUAIRE = "annuaire", "Annuaire"
    MESSAGERIE = "messagerie", "Messagerie sécurisée"
    DMP = "dmp", "Alimentation du DMP"
    TELEMEDECINE = "telemedecine", "Télémédecine"
    ROR = "ror", "ROR"


class AdherentService(models.Model):
    adherent = models.ForeignKey(
        Adherent, verbose_name="adhérent", on_delete=models.CASCADE, related_name="services"
    )
    service = models.CharField("service", max_length=20, choices=EnrsService.choices)
    since = models.DateField("depuis", null=True, blank=True)

    class Meta:
        verbose_name = "service utilisé"
        verbose_name_plural = "services utilisés"
        constraints = [
            models.UniqueConstraint(fields=["adherent", "service"], name="annuaire_adherent_service_unique"),
        ]

    def __str__(self) -> str:
        return self.get_service_display()


class FeeStatus(models.TextChoices):
    DUE = "due", "À payer"
    PAID = "paid", "Payée"
    LATE = "late", "En retard"
    WAIVED = "waived", "Exonérée"


class AdherentFee(models.Model):
    """The yearly membership fee of a member and whether it was paid."""

    adherent = models.ForeignKey(
        Adherent, verbose_name="adhérent", on_delete=models.CASCADE, related_name="fees"
    )
    year = models.PositiveSmallIntegerField("année")
    amount = models.DecimalField("montant (€)", max_digits=10, decimal_places=2)
    status = models.CharField("statut", max_length=6, choices=FeeStatus.choices, default=FeeStatus.DUE)
    paid_on = models.DateField("payée le", null=True, blank=True)

    class Meta:
        verbose_name = "cotisation"
        verbose_name_plural = "cotisations"
        ordering = ["-year"]
        constraints = [
            models.UniqueConstraint(fields=["adherent", "year"], name="annuaire_fee_one_per_year"),
            models.CheckConstraint(condition=Q(amount__gte=0), name="annuaire_fee_amount_positive"),
            models.CheckConstraint(
                condition=Q(year__gte=2000, year__lte=2100), name="annuaire_fee_year_plausible"
            ),
            models.CheckConstraint(
                condition=~Q(status="paid") | Q(paid_on__isnull=False), name="annuaire_fee_paid_has_date"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.year} — {self.amount} € ({self.get_status_display()})"


class GoverningBody(models.TextChoices):
    GENERAL_ASSEMBLY = "ag", "Assemblée générale"
    RESTRICTED_COMMITTEE = "comite", "Comité restreint"


class RepresentativeRole(models.TextChoices):
    HOLDER = "holder", "Titulaire"
    SUBSTITUTE = "substitute", "Suppléant"


class AdherentRepresentative(models.Model):
    """Who represents a member at the general assembly or on the restricted committee."""

    adherent = models.ForeignKey(
        Adherent, verbose_name="adhérent", on_delete=models.CASCADE, related_name="representatives"
    )
    body = models.CharField("instance", max_length=6, choices=GoverningBody.choices)
    role = models.CharField("rôle", max_length=10, choices=RepresentativeRole.choices)
    last_name = models.CharField("nom", max_length=100)
    first_name = models.CharField("prénom", max_length=100)
    email = models.EmailField("courriel", blank=True)
    function = models.CharField("fonction", max_length=150, blank=True)
    professional = models.ForeignKey(
        Professional,
        verbose_name="professionnel de l'annuaire",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="representations",
    )

    class Meta:
        verbose_name = "représentant"
        verbose_name_plural = "représentants"
        constraints = [
            # One holder and one substitute per member and per body.
            models.UniqueConstraint(
                fields=["adherent", "body", "role"], name="annuaire_representative_unique"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.first_name} {self.last_name} ({self.get_role_display()}, {self.get_body_display()})"


class ImportKind(models.TextChoices):
    RPPS = "rpps", "RPPS (PS_LibreAcces_Personne_activite)"
    FINESS = "finess", "FINESS (établissements)"


class ImportStatus(models.TextChoices):
    RUNNING = "running", "En cours"
    SUCCEEDED = "succeeded", "Terminé"
    FAILED = "failed", "Échec"


class ImportRun(models.Model):
    """One run of a national open-data import: what file, what it changed, what it rejected."""

    kind = models.CharField("type", max_length=6, choices=ImportKind.choices)
    file_name = models.CharField("fichier", max_length=255)
    file_sha256 = models.CharField("empreinte SHA-256", max_length=64)
    encoding = models.CharField("encodage", max_length=20, blank=True)
    status = models.CharField(
        "statut", max_length=9, choices=ImportStatus.choices, default=ImportStatus.RUNNING
    )
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, verbose_name="lancé par", on_delete=models.PROTECT, null=True, blank=True
    )
    started_at = models.DateTimeField("début", auto_now_add=True)
    finished_at = models.DateTimeField("fin", null=True, blank=True)
    rows_read = models.PositiveIntegerField("lignes lues", default=0)
    rows_created = models.PositiveIntegerField("créations", default=0)
    rows_updated = models.PositiveIntegerField("mises à jour", default=0)
    rows_unchanged = models.PositiveIntegerField("inchangées", default=0)
    rows_deactivated = models.PositiveIntegerField("désactivations", default=0)
    rows_rejected = models.PositiveIntegerField("rejets", default=0)
    error = models.TextField("erreur", blank=True)

    class Meta:
        verbose_name = "import"
        verbose_name_plural = "imports"
        ordering = ["-started_at"]
        indexes = [models.Index(fields=["kind", "-started_at"], name="annuaire_importrun_kind_idx")]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} — {self.file_name} ({self.get_status_display()})"


class ImportRejection(models.Model):
    """A line of an import file that was not loaded, and why."""

    run = models.ForeignKey(
        ImportRun, verbose_name="import", on_delete=models.CASCADE, related_name="rejections"
    )
    line_number = models.PositiveIntegerField("ligne")
    reason = models.CharField("motif", max_length=255)
    raw = models.TextField("contenu (tronqué)", blank=True)

    class Meta:
        verbose_name = "ligne rejetée"
        verbose_name_plural = "lignes rejetées"
        ordering = ["run", "line_number"]

    def __str__(self) -> str:
        return f"ligne {self.line_number} : {self.reason}"


class ChangeKind(models.TextChoices):
    CREATED = "created", "Création"
    UPDATED = "updated", "Mise à jour"
    DEACTIVATED = "deactivated", "Désactivation"
    REACTIVATED = "reactivated", "Réactivation"


class DirectoryChange(models.Model):
    """What an import changed on one professional or structure (before/after of the changed fields)."""

    run = models.ForeignKey(
        ImportRun, verbose_name="import", on_delete=models.CASCADE, related_name="changes"
    )
    kind = models.CharField("type", max_length=11, choices=ChangeKind.choices)
    professional = models.ForeignKey(
        Professional, on_delete=models.CASCADE, null=True, blank=True, related_name="changes"
    )
    structure = models.ForeignKey(
        Structure, on_delete=models.CASCADE, null=True, blank=True, related_name="changes"
    )
    fields = models.JSONField("champs modifiés", default=dict, blank=True)

    class Meta:
        verbose_name = "modification d'import"
        verbose_name_plural = "modifications d'import"
        constraints = [
            models.CheckConstraint(
                condition=Q(structure__isnull=False, professional__isnull=True)
                | Q(structure__isnull=True, professional__isnull=False),
                name="annuaire_change_exactly_one_target",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} ({self.run_id})"
