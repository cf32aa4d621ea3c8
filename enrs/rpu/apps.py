from django.apps import AppConfig


class RpuConfig(AppConfig):
    name = "enrs.rpu"
    label = "rpu"
    verbose_name = "Résumés de passage aux urgences (RPU)"
