from django.urls import path

from . import capacity_views, public_views, views

app_name = "ror"

urlpatterns = [
    path("disponibilites/", capacity_views.capacity_list, name="capacity_list"),
    path(
        "disponibilites/<int:offer_id>/<int:location_id>/", capacity_views.capacity_edit, name="capacity_edit"
    ),
    path(
        "disponibilites/<int:offer_id>/<int:location_id>/historique/",
        capacity_views.capacity_history,
        name="capacity_history",
    ),
    path("", views.index, name="index"),
    path("recherche/", views.search, name="search"),
    path("public/", public_views.public_search, name="public_search"),
]
