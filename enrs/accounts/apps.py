from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "enrs.accounts"
    label = "accounts"
    verbose_name = "Comptes et accès"
