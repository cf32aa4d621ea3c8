from django.urls import path

from . import views

app_name = "rpu"
urlpatterns = [
    path("", views.index, name="index"),
    path("supervision/", views.supervision, name="supervision"),
    path("indicateurs/", views.indicators, name="indicators"),
    path("depot/", views.upload, name="upload"),
    path("fichiers/", views.file_list, name="file_list"),
    path("fichiers/<int:pk>/", views.file_detail, name="file_detail"),
]
