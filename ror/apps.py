from django.apps import AppConfig


class RorConfig(AppConfig):
    name = "ror"
    verbose_name = "Répertoire Opérationnel des Ressources"
