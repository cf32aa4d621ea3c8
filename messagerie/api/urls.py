from django.urls import path  # noqa: F401

app_name = "messagerie_api"

urlpatterns: list = []
