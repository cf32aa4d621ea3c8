from django.urls import path

from . import views

app_name = "ror"

urlpatterns = [
    path("", views.index, name="index"),
]
