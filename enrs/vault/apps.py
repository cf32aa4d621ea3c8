from django.apps import AppConfig


class VaultConfig(AppConfig):
    name = "enrs.vault"
    label = "vault"
    verbose_name = "Stockage chiffré"
