from django.apps import AppConfig


class DmpConfig(AppConfig):
    name = "dmp"
    verbose_name = "Alimentation du DMP"
