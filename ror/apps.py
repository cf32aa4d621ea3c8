from django.apps import AppConfig


class RorConfig(AppConfig):
    name = "ror"
    verbose_name = "Répertoire Opérationnel des Ressources"

    def ready(self) -> None:
        # HealthcareService and Location on /fhir/ (enrs.fhir); Organization is the annuaire's.
        from enrs.fhir.registry import registry

        from .fhir.resources import register

        register(registry)
