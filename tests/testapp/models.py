"""A concrete outbox table used only by the tests of `enrs.outbox` (installed by the test settings)."""

from django.db import models

from enrs.outbox.models import OutboxAttempt, OutboxItem


class Ping(OutboxItem):
    target = models.CharField(max_length=50)
    outcome_note = models.CharField(max_length=50, blank=True)


class PingAttempt(OutboxAttempt):
    ping = models.ForeignKey(Ping, on_delete=models.CASCADE, related_name="attempt_rows")
