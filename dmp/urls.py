from django.urls import path

from . import views

app_name = "dmp"

urlpatterns = [
    path("", views.index, name="index"),
    path("patients/<int:pk>/", views.patient_documents, name="patient_documents"),
    path("patients/<int:pk>/alimenter/", views.document_feed, name="document_feed"),
    path("documents/<int:pk>/", views.document_detail, name="document_detail"),
    path("documents/<int:pk>/pdf/", views.document_file, {"kind": "pdf"}, name="document_pdf"),
    path("documents/<int:pk>/cda/", views.document_file, {"kind": "cda"}, name="document_cda"),
    path("documents/<int:pk>/envoyer/", views.document_send, name="document_send"),
    path("documents/<int:pk>/visibilite/", views.document_visibility, name="document_visibility"),
    path("documents/<int:pk>/nouvelle-version/", views.document_replace, name="document_replace"),
    path("envois-en-echec/", views.failed_list, name="failed_list"),
    path("envois/<int:pk>/relancer/", views.submission_retry, name="submission_retry"),
]
