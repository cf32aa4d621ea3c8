"""``/api/telemedecine/``: the telemedicine JSON API (mounted by enrs/urls.py)."""

from django.urls import path

from . import views

app_name = "telemedecine_api"

urlpatterns = [
    path("actes/", views.ActListView.as_view(), name="act-list"),
    path("actes/<int:pk>/", views.ActDetailView.as_view(), name="act-detail"),
    path("actes/<int:pk>/etat/", views.ActStatusView.as_view(), name="act-status"),
]
