from django.urls import path  # noqa: F401

app_name = "dmp_api"

urlpatterns: list = []
