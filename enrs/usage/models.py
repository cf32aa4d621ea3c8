"""Usage events: small, typed facts every app emits for the dashboards (never a patient identifier).

Written only by ``enrs.usage.services.usage_emit``; read only by the rollups. Structures are kept as plain
ids (the core does not depend on the directory app: ``annuaire`` registers a resolver, see ``resolver.py``).

Rollups (rebuilt per local day from the raw events, so a re-run gives the same numbers):

* ``UsageDaily`` / ``UsageMonthly``: per day (month) x kind x structure context, one row with
  ``dim_key = ""`` (every event) and one row per value of each dimension the indicators break down by
  (``dim_key = "method"``, ``dim_value = "cps"``…), plus ``dim_key = "sum:<dim>"`` rows that carry the
  sum of a numeric dimension (delays) in ``total``.
* ``UsageActorDaily`` / ``UsageActorMonthly``: the distinct pseudonymous actors (keyed HMAC of the user id)
  per day (month) x kind x structure context, for "active professionals".
"""

from django.conf import settings
from django.db import models


class UsageEvent(models.Model):
    id = models.BigAutoField(primary_key=True)
    kind = models.CharField("événement", max_length=60)
    occurred_at = models.DateTimeField("survenu le")
    structure_id = models.BigIntegerField("structure", null=True, blank=True)
    department = models.CharField("département", max_length=3, blank=True)
    category = models.CharField("catégorie de structure", max_length=4, blank=True, db_default="")
    college = models.PositiveSmallIntegerField("collège", null=True, blank=True)
    # Keyed HMAC of the acting user's id (never the id, a name, or anything about a patient).
    actor_key = models.CharField("acteur (pseudonyme)", max_length=32, blank=True, db_default="")
    value = models.FloatField("valeur", default=1.0)
    dims = models.JSONField("dimensions", default=dict, blank=True)
    recorded_at = models.DateTimeField("enregistré le", auto_now_add=True)

    class Meta:
        verbose_name = "événement d'usage"
        verbose_name_plural = "événements d'usage"
        indexes = [
            models.Index(fields=["kind", "occurred_at"], name="usage_kind_time_idx"),
            models.Index(fields=["recorded_at"], name="usage_recorded_idx"),
            models.Index(fields=["occurred_at"], name="usage_time_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.kind} @ {self.occurred_at:%Y-%m-%d %H:%M}"


class _Rollup(models.Model):
    kind = models.CharField("événement", max_length=60)
    structure_id = models.BigIntegerField("structure", null=True, blank=True)
    department = models.CharField("département", max_length=3, blank=True)
    category = models.CharField("catégorie de structure", max_length=4, blank=True)
    college = models.PositiveSmallIntegerField("collège", null=True, blank=True)
    dim_key = models.CharField("dimension", max_length=40, blank=True)
    dim_value = models.CharField("valeur de dimension", max_length=100, blank=True)
    count = models.BigIntegerField("nombre d'événements")
    total = models.FloatField("somme des valeurs")

    class Meta:
        abstract = True


class UsageDaily(_Rollup):
    id = models.BigAutoField(primary_key=True)
    day = models.DateField("jour")

    class Meta:
        verbose_name = "agrégat quotidien d'usage"
        verbose_name_plural = "agrégats quotidiens d'usage"
        indexes = [
            models.Index(fields=["kind", "dim_key", "day"], name="usage_daily_kind_idx"),
            models.Index(fields=["day"], name="usage_daily_day_idx"),
            models.Index(fields=["department", "kind", "dim_key", "day"], name="usage_daily_dept_idx"),
            models.Index(fields=["category", "kind", "dim_key", "day"], name="usage_daily_cat_idx"),
            models.Index(fields=["college", "kind", "dim_key", "day"], name="usage_daily_college_idx"),
            models.Index(fields=["structure_id", "kind", "dim_key", "day"], name="usage_daily_struct_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.day}"


class UsageMonthly(_Rollup):
    id = models.BigAutoField(primary_key=True)
    month = models.DateField("mois")  # first day of the month

    class Meta:
        verbose_name = "agrégat mensuel d'usage"
        verbose_name_plural = "agrégats mensuels d'usage"
        indexes = [
            # Covering: breakdowns by structure over a year are index-only scans.
            models.Index(
                fields=["kind", "dim_key", "month"],
                name="usage_monthly_kind_idx",
                include=["structure_id", "dim_value", "count", "total"],
            ),
            models.Index(fields=["month"], name="usage_monthly_month_idx"),
            models.Index(fields=["department", "kind", "dim_key", "month"], name="usage_monthly_dept_idx"),
            models.Index(fields=["category", "kind", "dim_key", "month"], name="usage_monthly_cat_idx"),
            models.Index(fields=["college", "kind", "dim_key", "month"], name="usage_monthly_college_idx"),
            models.Index(
                fields=["structure_id", "kind", "dim_key", "month"], name="usage_monthly_struct_idx"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.month}"


class CubeLevel(models.IntegerChoices):
    """Which structure-context columns a ``UsageCube`` row is grouped by (PostgreSQL ``GROUPING()`` of
    department, category, collège: a set bit means "all values")."""

    FULL = 0, "département x catégorie x collège"
    DEPARTMENT = 3, "département"
    CATEGORY = 5, "catégorie"
    COLLEGE = 6, "collège"
    REGION = 7, "région"


class UsageCube(models.Model):
    """The rollups without the structure, pre-grouped per filter (grouping sets), per day (``period_kind``
    "d") and per month ("m"): a year for the whole region, or with any filter that is not a structure,
    reads a few hundred rows. Derived from ``UsageDaily`` / ``UsageMonthly`` by the rollup."""

    id = models.BigAutoField(primary_key=True)
    period_kind = models.CharField("période", max_length=1)  # "d" (day) or "m" (month, first day)
    period = models.DateField("début de période")
    level = models.PositiveSmallIntegerField("niveau", choices=CubeLevel.choices)
    kind = models.CharField("événement", max_length=60)
    department = models.CharField("département", max_length=3, null=True, blank=True)
    category = models.CharField("catégorie de structure", max_length=4, null=True, blank=True)
    college = models.PositiveSmallIntegerField("collège", null=True, blank=True)
    dim_key = models.CharField("dimension", max_length=40, blank=True)
    dim_value = models.CharField("valeur de dimension", max_length=100, blank=True)
    count = models.BigIntegerField("nombre d'événements")
    total = models.FloatField("somme des valeurs")

    class Meta:
        verbose_name = "agrégat par filtre"
        verbose_name_plural = "agrégats par filtre"
        indexes = [
            models.Index(fields=["period_kind", "level", "kind", "dim_key", "period"], name="usage_cube_idx"),
            models.Index(
                fields=["period_kind", "level", "kind", "dim_key", "department", "period"],
                name="usage_cube_dept_idx",
            ),
            models.Index(
                fields=["period_kind", "level", "kind", "dim_key", "category", "period"],
                name="usage_cube_cat_idx",
            ),
            models.Index(
                fields=["period_kind", "level", "kind", "dim_key", "college", "period"],
                name="usage_cube_college_idx",
            ),
            models.Index(fields=["period_kind", "period"], name="usage_cube_period_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.period_kind}{self.period} niveau {self.level}"


class DistinctSpan(models.TextChoices):
    MONTH = "m", "mois"
    WEEK = "w", "semaine"
    YEAR = "y", "année"


class UsageDistinct(models.Model):
    """Distinct actors per month (or ISO week, or calendar year), kind and filter (grouping sets of the
    actor rollups), so that the "active professionals" of the region or of one department over a month,
    a week or a year is one row. ``month`` is the first day of the span (Monday for a week, 1 January for
    a year)."""

    id = models.BigAutoField(primary_key=True)
    span = models.CharField("durée", max_length=1, choices=DistinctSpan.choices, default=DistinctSpan.MONTH)
    month = models.DateField("mois")
    level = models.PositiveSmallIntegerField("niveau", choices=CubeLevel.choices)
    kind = models.CharField("événement", max_length=60)
    department = models.CharField("département", max_length=3, null=True, blank=True)
    category = models.CharField("catégorie de structure", max_length=4, null=True, blank=True)
    college = models.PositiveSmallIntegerField("collège", null=True, blank=True)
    actors = models.IntegerField("acteurs distincts")

    class Meta:
        verbose_name = "acteurs distincts (mois)"
        verbose_name_plural = "acteurs distincts (mois)"
        indexes = [
            models.Index(fields=["level", "kind", "month"], name="usage_distinct_idx"),
            models.Index(fields=["month"], name="usage_distinct_month_idx"),
            models.Index(fields=["span", "level", "kind", "month"], name="usage_distinct_span_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.month} niveau {self.level}: {self.actors}"


class _ActorRollup(models.Model):
    kind = models.CharField("événement", max_length=60)
    # The first 60 bits of the event's actor_key (a keyed HMAC) as an integer: distinct counts of integers
    # are several times faster than of strings; collisions are negligible below millions of actors.
    actor = models.BigIntegerField("acteur (pseudonyme)")
    structure_id = models.BigIntegerField("structure", null=True, blank=True)
    department = models.CharField("département", max_length=3, blank=True)
    category = models.CharField("catégorie de structure", max_length=4, blank=True)
    college = models.PositiveSmallIntegerField("collège", null=True, blank=True)

    class Meta:
        abstract = True


class UsageActorDaily(_ActorRollup):
    id = models.BigAutoField(primary_key=True)
    day = models.DateField("jour")

    class Meta:
        verbose_name = "acteur actif (jour)"
        verbose_name_plural = "acteurs actifs (jour)"
        indexes = [
            models.Index(fields=["kind", "day", "actor"], name="usage_actor_d_kind_idx"),
            models.Index(fields=["day"], name="usage_actor_d_day_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.day}"


class UsageActorMonthly(_ActorRollup):
    id = models.BigAutoField(primary_key=True)
    month = models.DateField("mois")

    class Meta:
        verbose_name = "acteur actif (mois)"
        verbose_name_plural = "acteurs actifs (mois)"
        indexes = [
            models.Index(fields=["kind", "month", "actor"], name="usage_actor_m_kind_idx"),
            models.Index(fields=["month"], name="usage_actor_m_month_idx"),
            models.Index(fields=["department", "kind", "month"], name="usage_actor_m_dept_idx"),
            models.Index(fields=["structure_id", "kind", "month"], name="usage_actor_m_struct_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.month}"


class RollupState(models.Model):
    """Watermark of the incremental rollup: every event with ``id <= last_event_id`` is rolled up."""

    name = models.CharField("nom", max_length=40, unique=True)
    last_event_id = models.BigIntegerField("dernier événement agrégé", default=0)
    updated_at = models.DateTimeField("mis à jour le", auto_now=True)

    class Meta:
        verbose_name = "état des agrégats"
        verbose_name_plural = "états des agrégats"

    def __str__(self) -> str:
        return f"{self.name}: {self.last_event_id}"


class Target(models.Model):
    """A yearly deployment target of one indicator, for the region (``department = ""``) or a department."""

    indicator = models.CharField("indicateur", max_length=60)
    year = models.PositiveSmallIntegerField("année")
    department = models.CharField("département", max_length=3, blank=True, default="")
    value = models.FloatField("valeur cible")
    set_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name="fixée par",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )
    set_at = models.DateTimeField("fixée le", auto_now=True)

    class Meta:
        verbose_name = "objectif de déploiement"
        verbose_name_plural = "objectifs de déploiement"
        ordering = ["indicator", "year", "department"]
        constraints = [
            models.UniqueConstraint(fields=["indicator", "year", "department"], name="usage_target_unique"),
            models.CheckConstraint(condition=models.Q(value__gte=0), name="usage_target_value_nonnegative"),
        ]

    def __str__(self) -> str:
        return f"{self.indicator} {self.year} {self.department or 'région'} : {self.value:g}"
