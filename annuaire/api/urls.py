"""``/api/annuaire/``: the directory's JSON API (mounted by enrs/urls.py)."""

from django.urls import path

from . import views

app_name = "annuaire-api"

urlpatterns = [
    path("professionnels/", views.ProfessionalListView.as_view(), name="professional-list"),
    path("professionnels/<int:pk>/", views.ProfessionalDetailView.as_view(), name="professional-detail"),
    path("structures/", views.StructureListView.as_view(), name="structure-list"),
    path("structures/<int:pk>/", views.StructureDetailView.as_view(), name="structure-detail"),
]
