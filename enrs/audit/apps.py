from django.apps import AppConfig


class AuditConfig(AppConfig):
    name = "enrs.audit"
    label = "audit"
    verbose_name = "Journal d'audit"
