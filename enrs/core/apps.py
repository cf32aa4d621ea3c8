from django.apps import AppConfig


class CoreConfig(AppConfig):
    name = "enrs.core"
    label = "core"
    verbose_name = "Socle ENRS"
