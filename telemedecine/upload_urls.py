"""URLs of DICOM uploads and study summaries, included by ``telemedecine/urls.py`` (namespace
``telemedecine``): ``path("", include("telemedecine.upload_urls"))``."""

from django.urls import path

from . import upload_views

urlpatterns = [
    path("examens/depot/", upload_views.upload_page, name="upload"),
    path("examens/depot/debut/", upload_views.upload_start_view, name="upload_start"),
    path("examens/depot/<uuid:session_id>/", upload_views.upload_status_view, name="upload_status"),
    path("examens/depot/<uuid:session_id>/morceau/", upload_views.upload_chunk_view, name="upload_chunk"),
    path("examens/depot/<uuid:session_id>/fin/", upload_views.upload_complete_view, name="upload_complete"),
    path("examens/<int:pk>/", upload_views.study_detail, name="study_detail"),
    path("examens/<int:pk>/apercu.png", upload_views.study_thumbnail, name="study_thumbnail"),
]
