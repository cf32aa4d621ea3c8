from django.apps import AppConfig


class AuditConfig(AppConfig):
    name = "enrs.audit"
    label = "audit"
    verbose_name = "Journal d'audit"

    def ready(self) -> None:
        from django.contrib.auth.signals import user_login_failed

        from .receivers import record_login_failure

        user_login_failed.connect(record_login_failure, dispatch_uid="enrs.audit.login_failed")
