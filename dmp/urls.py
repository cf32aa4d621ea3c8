from django.urls import path

from . import views

app_name = "dmp"

urlpatterns = [
    path("", views.index, name="index"),
]
