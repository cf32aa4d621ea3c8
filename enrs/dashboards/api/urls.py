from django.urls import path

from . import views

app_name = "dashboards-api"

urlpatterns = [
    path("", views.PageListView.as_view(), name="pages"),
    path("<slug:page>/<slug:chart>/", views.FigureView.as_view(), name="figure"),
]
