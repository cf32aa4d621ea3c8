from django.urls import path

from . import views

app_name = "patients"

urlpatterns = [
    path("", views.patient_search, name="search"),
    path("nouveau/", views.patient_create, name="create"),
    path("<int:pk>/", views.patient_detail, name="detail"),
    path("<int:pk>/identite/", views.patient_edit, name="edit"),
    path("<int:pk>/statut/", views.patient_status, name="status"),
    path("<int:pk>/historique/", views.patient_history, name="history"),
    path("<int:pk>/choix/", views.consent_record, name="consent_record"),
    path("<int:pk>/choix/<int:consent_pk>/retrait/", views.consent_withdraw, name="consent_withdraw"),
]
