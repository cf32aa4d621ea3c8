"""``/api/dmp/``: the DMP's JSON API (mounted by enrs/urls.py)."""

from django.urls import path

from . import views

app_name = "dmp_api"

urlpatterns = [
    path("patients/<int:pk>/documents/", views.PatientDocumentListView.as_view(), name="patient-documents"),
]
