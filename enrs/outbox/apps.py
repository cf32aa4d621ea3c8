from django.apps import AppConfig


class OutboxConfig(AppConfig):
    name = "enrs.outbox"
    label = "outbox"
    verbose_name = "Boîte d'envoi (appels sortants)"
