from django.urls import path

from . import views

app_name = "ror-api"

urlpatterns = [
    path("capacites/", views.CapacityUpdateView.as_view(), name="capacity-update"),
]
