from django.urls import path

from . import views

app_name = "dashboards"

urlpatterns = [
    path("", views.index, name="index"),
    path("objectifs/", views.targets, name="targets"),
    path("objectifs/<int:pk>/supprimer/", views.target_remove, name="target_remove"),
    path("urgences/", views.urgences, name="urgences"),
    path("<slug:slug>/", views.page, name="page"),
    path("<slug:slug>/<slug:chart>/export.csv", views.export, {"fmt": "csv"}, name="export_csv"),
    path("<slug:slug>/<slug:chart>/export.xlsx", views.export, {"fmt": "xlsx"}, name="export_xlsx"),
]
