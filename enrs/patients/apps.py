from django.apps import AppConfig


class PatientsConfig(AppConfig):
    name = "enrs.patients"
    label = "patients"
    verbose_name = "Identité des patients"
