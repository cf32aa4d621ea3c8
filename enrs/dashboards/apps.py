from django.apps import AppConfig


class DashboardsConfig(AppConfig):
    name = "enrs.dashboards"
    label = "dashboards"
    verbose_name = "Tableaux de bord"
