"""``/api/messagerie/``: the messagerie's JSON API (mounted by enrs/urls.py)."""

from django.urls import path

from . import views

app_name = "messagerie-api"

urlpatterns = [
    path("boites/", views.MailboxListView.as_view(), name="mailboxes"),
    path("boites/<int:mailbox>/messages/", views.MessageListView.as_view(), name="messages"),
    path("boites/<int:mailbox>/messages/<int:pk>/", views.MessageDetailView.as_view(), name="message"),
    path(
        "boites/<int:mailbox>/pieces-jointes/<int:pk>/",
        views.AttachmentView.as_view(),
        name="attachment",
    ),
]
