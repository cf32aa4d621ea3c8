"""``/fhir/`` (mounted by ``enrs/urls.py``): metadata, ``[type]``, ``[type]/_search``, ``[type]/[id]``.

Anything else under ``/fhir/`` is a 404 OperationOutcome, not the portal's HTML error page.
"""

from django.urls import re_path

from . import views

app_name = "fhir"

_TYPE = r"(?P<resource_type>[A-Z][A-Za-z]{0,63})"

urlpatterns = [
    re_path(r"^$", views.base, name="base"),
    re_path(r"^metadata/?$", views.metadata, name="metadata"),
    re_path(rf"^{_TYPE}/_search/?$", views.search_post, name="search-post"),
    re_path(rf"^{_TYPE}/(?P<resource_id>[A-Za-z0-9\-.]{{1,64}})/?$", views.read, name="read"),
    re_path(rf"^{_TYPE}/?$", views.search, name="search"),
    re_path(r"^(?P<path>.+)$", views.unknown, name="unknown"),
]
