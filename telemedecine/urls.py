from django.urls import path

from . import views

app_name = "telemedecine"

urlpatterns = [
    path("", views.index, name="index"),
]
