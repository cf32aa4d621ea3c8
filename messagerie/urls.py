from django.urls import path

from . import views

app_name = "messagerie"

box = "boites/<int:mailbox>/"
urlpatterns = [
    path("", views.index, name="index"),
    path(box, views.mailbox_home, name="mailbox"),
    path(f"{box}dossiers/<slug:folder>/", views.folder_view, name="folder"),
    path(f"{box}recherche/", views.search_view, name="search"),
    path(f"{box}nouveau/", views.compose, name="compose"),
    path(f"{box}televersement/", views.upload, name="upload"),
    path(f"{box}messages/<int:pk>/", views.message_view, name="message"),
    path(f"{box}messages/<int:pk>/lecture/", views.message_mark_view, name="message_mark"),
    path(f"{box}messages/<int:pk>/deplacer/", views.message_move_view, name="message_move"),
    path(f"{box}messages/<int:pk>/supprimer/", views.message_delete_view, name="message_delete"),
    path(f"{box}pieces-jointes/<int:pk>/", views.attachment_view, name="attachment"),
    path(
        f"{box}pieces-jointes/<int:pk>/documents/<int:index>/", views.document_pdf_view, name="document_pdf"
    ),
    path(f"{box}destinataires/<int:pk>/relancer/", views.recipient_retry_view, name="recipient_retry"),
    path("annuaire-mssante/", views.recipient_search, name="recipient_search"),
    path("patients/", views.patient_lookup, name="patient_lookup"),
    # GCS staff: hosted boxes, delegations, tokens, trust space.
    path("gestion/", views.staff_mailboxes, name="staff_mailboxes"),
    path("gestion/boites/<int:pk>/", views.staff_mailbox, name="staff_mailbox"),
    path("gestion/boites/<int:pk>/etat/", views.staff_mailbox_state, name="staff_mailbox_state"),
    path("gestion/boites/<int:pk>/delegations/", views.staff_delegation_grant, name="staff_delegation_grant"),
    path(
        "gestion/delegations/<int:pk>/retrait/", views.staff_delegation_revoke, name="staff_delegation_revoke"
    ),
    path("gestion/boites/<int:pk>/jetons/", views.staff_token_create, name="staff_token_create"),
    path("gestion/jetons/<int:pk>/revocation/", views.staff_token_revoke, name="staff_token_revoke"),
    path("gestion/domaines/", views.staff_domains, name="staff_domains"),
    path("gestion/domaines/<int:pk>/retrait/", views.staff_domain_remove, name="staff_domain_remove"),
]
