from django.urls import include, path

from . import member_views, views

app_name = "annuaire"

urlpatterns = [
    path("", views.index, name="index"),
    path("professionnels/<int:pk>/", views.professional_detail, name="professional_detail"),
    path("structures/<int:pk>/", views.structure_detail, name="structure_detail"),
    # GCS members (adhérents): staff pages, see annuaire/member_views.py
    path("adherents/", include(member_views.urlpatterns)),
    path("imports/", include("annuaire.import_views")),  # open-data import runs (GCS staff)
]
