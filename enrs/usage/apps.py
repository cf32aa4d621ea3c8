from django.apps import AppConfig


class UsageConfig(AppConfig):
    name = "enrs.usage"
    label = "usage"
    verbose_name = "Événements d'usage"
