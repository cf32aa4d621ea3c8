"""Tables of the ror app, following the national ROR exposure model (modèle d'exposition 3.0).

* ``Offer`` ≈ RORHealthcareService (offre opérationnelle), attached to a directory structure (the ET);
* ``OfferClosure`` ≈ HealthcareService.notAvailable (fermeture / réouverture);
* ``OfferLocation`` ≈ RORLocation (lieu de réalisation de l'offre: address, COG commune, WGS84 position);
* ``Capacity`` ≈ the ``ror-location-supported-capacity`` extension of a Location, per offer;
* ``CapacityUpdate`` is our history of availability updates (who, when, before/after).

Codes are stored as the national codes (J20, J238, J19, J30, J17, J187, TRE_R330 …); they are checked
against ``ror.standards.valuesets`` by the services and forms, not by choices, so that a new version of a
value set needs no migration. Bulk loads (``seed_ror_demo``, imports) write some of these tables with COPY,
so the invariants that matter are database constraints too.
"""

from django.conf import settings
from django.db import models
from django.db.models import F, Q

from annuaire.models import Commune, Structure


class Offer(models.Model):
    """An operational offer (offre opérationnelle) of a structure (RORHealthcareService)."""

    identifier = models.CharField("identifiant de l'offre", max_length=64, unique=True)
    structure = models.ForeignKey(
        Structure, verbose_name="structure (ET)", on_delete=models.PROTECT, related_name="ror_offers"
    )
    name = models.CharField("nom de l'offre", max_length=255)
    activity_field_code = models.CharField("champ d'activité (J20)", max_length=8)
    offer_type_code = models.CharField("type d'offre (J238)", max_length=8, blank=True)
    care_mode_code = models.CharField("mode de prise en charge (J19)", max_length=8, blank=True)
    reception_type_code = models.CharField("temporalité d'accueil (J30)", max_length=8, blank=True)
    operational_activity_code = models.CharField("activité opérationnelle (J17)", max_length=8, blank=True)
    operational_activity_family_code = models.CharField(
        "famille d'activité opérationnelle (J51)", max_length=8, blank=True
    )
    age_min = models.PositiveSmallIntegerField("âge minimum (ans)", null=True, blank=True)
    age_max = models.PositiveSmallIntegerField("âge maximum (ans)", null=True, blank=True)
    public_code = models.CharField("public pris en charge", max_length=8, blank=True)
    specialised_care_codes = models.JSONField(
        "spécialisations de prise en charge (J35)", default=list, blank=True
    )
    is_active = models.BooleanField("active", default=True)
    created_at = models.DateTimeField("créée le", auto_now_add=True)
    updated_at = models.DateTimeField("modifiée le", auto_now=True)
    # Denormalised: the latest capacity update of the offer (any location), for freshness filters.
    capacity_updated_at = models.DateTimeField("disponibilités mises à jour le", null=True, blank=True)

    class Meta:
        verbose_name = "offre opérationnelle"
        verbose_name_plural = "offres opérationnelles"
        indexes = [
            models.Index(fields=["structure", "is_active"], name="ror_offer_structure_idx"),
            models.Index(fields=["activity_field_code", "care_mode_code"], name="ror_offer_field_mode_idx"),
            models.Index(fields=["operational_activity_code"], name="ror_offer_activity_idx"),
            models.Index(fields=["capacity_updated_at"], name="ror_offer_freshness_idx"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(age_min__isnull=True) | Q(age_max__isnull=True) | Q(age_min__lte=F("age_max")),
                name="ror_offer_age_range_valid",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.identifier})"


class OfferClosure(models.Model):
    """A closing period of an offer (HealthcareService.notAvailable); no end: until further notice."""

    offer = models.ForeignKey(Offer, verbose_name="offre", on_delete=models.CASCADE, related_name="closures")
    start = models.DateTimeField("début de fermeture")
    end = models.DateTimeField("réouverture", null=True, blank=True)
    reason = models.CharField("motif", max_length=255, blank=True)

    class Meta:
        verbose_name = "période de fermeture"
        verbose_name_plural = "périodes de fermeture"
        ordering = ["offer", "start"]
        constraints = [
            models.CheckConstraint(
                condition=Q(end__isnull=True) | Q(end__gt=F("start")), name="ror_offerclosure_end_after_start"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.offer_id} fermée du {self.start:%d/%m/%Y}"


class OfferLocation(models.Model):
    """A place where offers are given (RORLocation)."""

    structure = models.ForeignKey(
        Structure, verbose_name="structure", on_delete=models.PROTECT, related_name="ror_locations"
    )
    identifier = models.CharField("identifiant du lieu", max_length=64, unique=True)
    name = models.CharField("nom du lieu", max_length=255)
    address_line = models.CharField("adresse", max_length=255, blank=True)
    postal_code = models.CharField("code postal", max_length=5, blank=True)
    commune = models.ForeignKey(
        Commune,
        verbose_name="commune (COG)",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="ror_locations",
    )
    latitude = models.FloatField("latitude (WGS84)", null=True, blank=True)
    longitude = models.FloatField("longitude (WGS84)", null=True, blank=True)
    phone = models.CharField("téléphone", max_length=20, blank=True)
    email = models.EmailField("courriel", blank=True)
    offers = models.ManyToManyField(Offer, verbose_name="offres", related_name="locations", blank=True)
    created_at = models.DateTimeField("créé le", auto_now_add=True)
    updated_at = models.DateTimeField("modifié le", auto_now=True)

    class Meta:
        verbose_name = "lieu de réalisation"
        verbose_name_plural = "lieux de réalisation"
        indexes = [
            # Bounding-box searches: latitude range then longitude range.
            models.Index(fields=["latitude", "longitude"], name="ror_location_latlon_idx"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(latitude__isnull=True) | Q(latitude__gte=-90, latitude__lte=90),
                name="ror_location_latitude_range",
            ),
            models.CheckConstraint(
                condition=Q(longitude__isnull=True) | Q(longitude__gte=-180, longitude__lte=180),
                name="ror_location_longitude_range",
            ),
        ]

    def __str__(self) -> str:
        return self.name


class Capacity(models.Model):
    """A count of beds or places of one status (TRE_R330) for an offer at a location."""

    offer = models.ForeignKey(
        Offer, verbose_name="offre", on_delete=models.CASCADE, related_name="capacities"
    )
    location = models.ForeignKey(
        OfferLocation, verbose_name="lieu", on_delete=models.CASCADE, related_name="capacities"
    )
    capacity_type = models.CharField("nature de capacité (J187)", max_length=8)
    status = models.CharField("statut de capacité (TRE_R330)", max_length=2)
    count = models.PositiveIntegerField("nombre")
    gender = models.CharField("genre (J190)", max_length=8, blank=True)
    crisis = models.BooleanField("capacité de crise", default=False)
    updated_at = models.DateTimeField("mise à jour le")
    updated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name="mise à jour par",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )

    class Meta:
        verbose_name = "capacité"
        verbose_name_plural = "capacités"
        constraints = [
            models.UniqueConstraint(
                fields=["offer", "location", "capacity_type", "status"], name="ror_capacity_unique"
            ),
            models.CheckConstraint(condition=Q(count__gte=0), name="ror_capacity_count_nonnegative"),
        ]
        indexes = [models.Index(fields=["location", "status"], name="ror_capacity_location_idx")]

    def __str__(self) -> str:
        return f"{self.offer_id}/{self.location_id} {self.capacity_type} {self.status}: {self.count}"


class UpdateSource(models.TextChoices):
    FORM = "form", "Formulaire"
    API = "api", "API"
    IMPORT = "import", "Import"


class CapacityUpdate(models.Model):
    """One availability update (history): who, when, what it was before and after."""

    offer = models.ForeignKey(
        Offer, verbose_name="offre", on_delete=models.CASCADE, related_name="capacity_updates"
    )
    location = models.ForeignKey(
        OfferLocation, verbose_name="lieu", on_delete=models.CASCADE, related_name="capacity_updates"
    )
    created_at = models.DateTimeField("reçue le")
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name="auteur",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )
    token = models.ForeignKey(
        "RorApiToken",
        verbose_name="jeton d'API",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="updates",
    )
    source = models.CharField("origine", max_length=6, choices=UpdateSource.choices)
    before = models.JSONField("avant", default=dict)
    after = models.JSONField("après", default=dict)

    class Meta:
        verbose_name = "mise à jour de capacité"
        verbose_name_plural = "mises à jour de capacités"
        ordering = ["-created_at", "-pk"]
        indexes = [
            models.Index(fields=["offer", "location", "-created_at"], name="ror_capupdate_offer_idx"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(source__in=UpdateSource.values), name="ror_capupdate_source_valid"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.offer_id}/{self.location_id} {self.created_at:%Y-%m-%d %H:%M}"


class StructureMembership(models.Model):
    """Who works for which structure, in the ROR sense: staff allowed to update its capacities and
    contacts who receive the stale-offer notices."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name="utilisateur",
        on_delete=models.CASCADE,
        related_name="ror_memberships",
    )
    structure = models.ForeignKey(
        Structure, verbose_name="structure", on_delete=models.CASCADE, related_name="ror_memberships"
    )
    can_update_capacity = models.BooleanField("peut mettre à jour les disponibilités", default=True)
    receives_notices = models.BooleanField("reçoit les relances de fraîcheur", default=True)
    created_at = models.DateTimeField("créé le", auto_now_add=True)

    class Meta:
        verbose_name = "rattachement à une structure"
        verbose_name_plural = "rattachements à une structure"
        constraints = [
            models.UniqueConstraint(fields=["user", "structure"], name="ror_membership_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.user_id} → {self.structure_id}"


class RorApiToken(models.Model):
    """An API token of an establishment's software: stored as the SHA-256 of the secret, shown once."""

    name = models.CharField("libellé", max_length=100)
    key_prefix = models.CharField("début du jeton", max_length=8, db_index=True)
    key_hash = models.CharField("empreinte SHA-256", max_length=64, unique=True)
    structures = models.ManyToManyField(Structure, verbose_name="structures autorisées", related_name="+")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name="créé par",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )
    created_at = models.DateTimeField("créé le", auto_now_add=True)
    last_used_at = models.DateTimeField("dernière utilisation", null=True, blank=True)
    revoked_at = models.DateTimeField("révoqué le", null=True, blank=True)

    class Meta:
        verbose_name = "jeton d'API ROR"
        verbose_name_plural = "jetons d'API ROR"

    def __str__(self) -> str:
        return f"{self.name} ({self.key_prefix}…)"

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None


class NoticeStatus(models.TextChoices):
    PENDING = "pending", "À envoyer"
    SENT = "sent", "Envoyée"
    FAILED = "failed", "En échec"


class StaleNotice(models.Model):
    """A stale-offer notice to a structure for a given day (one per structure and day). It is the outbox
    row of the e-mail: written first, then sent by a task that records the outcome."""

    structure = models.ForeignKey(
        Structure, verbose_name="structure", on_delete=models.CASCADE, related_name="ror_stale_notices"
    )
    day = models.DateField("jour")
    offer_count = models.PositiveIntegerField("offres non à jour")
    offer_identifiers = models.JSONField("identifiants des offres", default=list)
    recipients = models.JSONField("destinataires", default=list)
    status = models.CharField(
        "état", max_length=7, choices=NoticeStatus.choices, default=NoticeStatus.PENDING
    )
    attempts = models.PositiveSmallIntegerField("tentatives", default=0)
    last_error = models.TextField("dernière erreur", blank=True)
    created_at = models.DateTimeField("créée le", auto_now_add=True)
    sent_at = models.DateTimeField("envoyée le", null=True, blank=True)

    class Meta:
        verbose_name = "relance de fraîcheur"
        verbose_name_plural = "relances de fraîcheur"
        constraints = [
            models.UniqueConstraint(fields=["structure", "day"], name="ror_stalenotice_unique"),
            models.CheckConstraint(
                condition=Q(status__in=NoticeStatus.values), name="ror_stalenotice_status_valid"
            ),
        ]
        indexes = [models.Index(fields=["status", "created_at"], name="ror_stalenotice_status_idx")]

    def __str__(self) -> str:
        return f"{self.structure_id} {self.day}"
