"""Usage events: small, typed facts every app emits for the dashboards (never a patient identifier).

Written only by ``enrs.usage.services.usage_emit``; read only by the dashboards' rollups. Structures are
kept as plain ids (the core does not depend on the directory app)."""

from django.db import models


class UsageEvent(models.Model):
    id = models.BigAutoField(primary_key=True)
    kind = models.CharField("événement", max_length=60)
    occurred_at = models.DateTimeField("survenu le")
    structure_id = models.BigIntegerField("structure", null=True, blank=True)
    department = models.CharField("département", max_length=3, blank=True)
    college = models.PositiveSmallIntegerField("collège", null=True, blank=True)
    value = models.FloatField("valeur", default=1.0)
    dims = models.JSONField("dimensions", default=dict, blank=True)
    recorded_at = models.DateTimeField("enregistré le", auto_now_add=True)

    class Meta:
        verbose_name = "événement d'usage"
        verbose_name_plural = "événements d'usage"
        indexes = [
            models.Index(fields=["kind", "occurred_at"], name="usage_kind_time_idx"),
            models.Index(fields=["recorded_at"], name="usage_recorded_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.kind} @ {self.occurred_at:%Y-%m-%d %H:%M}"
