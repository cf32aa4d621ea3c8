from django.urls import include, path

from . import views

app_name = "telemedecine"

urlpatterns = [
    path("", views.index, name="index"),
    path("demandes/nouvelle/", views.act_create, name="act_create"),
    path("demandes/<int:pk>/", views.act_detail, name="act_detail"),
    path("demandes/<int:pk>/modifier/", views.act_edit, name="act_edit"),
    path("demandes/<int:pk>/progression/", views.act_progress, name="act_progress"),
    path("demandes/<int:pk>/salle/", views.act_join, name="act_join"),
    path("demandes/<int:pk>/compte-rendu.pdf", views.act_report_file, {"kind": "pdf"}, name="act_report_pdf"),
    path("demandes/<int:pk>/compte-rendu.xml", views.act_report_file, {"kind": "cda"}, name="act_report_cda"),
    path(
        "demandes/<int:pk>/pieces-jointes/<int:attachment_pk>/",
        views.attachment_download,
        name="attachment_download",
    ),
    path("demandes/<int:pk>/transferts/", views.transfer_create, name="transfer_create"),
    path(
        "demandes/<int:pk>/transferts/<int:transfer_pk>/relancer/",
        views.transfer_retry,
        name="transfer_retry",
    ),
    path("demandes/<int:pk>/<slug:action>/", views.act_action, name="act_action"),
    path("equipes/", views.pool_list, name="pool_list"),
    path("equipes/nouvelle/", views.pool_create, name="pool_create"),
    path("equipes/<int:pk>/", views.pool_detail, name="pool_detail"),
    path("equipes/<int:pk>/membres/", views.member_add, name="member_add"),
    path("equipes/<int:pk>/membres/<int:user_pk>/retirer/", views.member_remove, name="member_remove"),
    path("equipes/<int:pk>/gardes/", views.shift_add, name="shift_add"),
    path("equipes/<int:pk>/gardes/<int:shift_pk>/retirer/", views.shift_remove, name="shift_remove"),
    # DICOM uploads and study summaries (helper "dicomcore"): examens/…
    path("", include("telemedecine.upload_urls")),
]
