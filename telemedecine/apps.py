from django.apps import AppConfig


class TelemedecineConfig(AppConfig):
    name = "telemedecine"
    verbose_name = "Télémédecine et partage d'imagerie"
