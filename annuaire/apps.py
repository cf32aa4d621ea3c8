from django.apps import AppConfig


class AnnuaireConfig(AppConfig):
    name = "annuaire"
    verbose_name = "Annuaire régional des professionnels et des structures"

    def ready(self) -> None:
        # Practitioner, PractitionerRole and Organization on /fhir/ (enrs.fhir).
        from enrs.fhir.registry import registry

        from .fhir.resources import register

        register(registry)
        # Department, category and collège of structures for the usage core (enrs.usage).
        from . import usage_hooks

        usage_hooks.register()
