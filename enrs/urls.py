from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from enrs.core import views as core_views

urlpatterns = [
    path("healthz", core_views.healthz, name="healthz"),
    # Before the core's include: the dashboards app replaces the core's "tableaux-de-bord/" landing.
    path("tableaux-de-bord/", include("enrs.dashboards.urls")),
    path("", include("enrs.core.urls")),
    path("compte/", include("enrs.accounts.urls")),
    path("audit/", include("enrs.audit.urls")),
    path("patients/", include("enrs.patients.urls")),
    path("annuaire/", include("annuaire.urls")),
    path("messagerie/", include("messagerie.urls")),
    path("dmp/", include("dmp.urls")),
    path("telemedecine/", include("telemedecine.urls")),
    path("ror/", include("ror.urls")),
    path("urgences/", include("enrs.rpu.urls")),
    path("api/ror/", include("ror.api.urls")),
    path("api/annuaire/", include("annuaire.api.urls")),
    path("api/messagerie/", include("messagerie.api.urls")),
    path("api/dmp/", include("dmp.api.urls")),
    path("api/telemedecine/", include("telemedecine.api.urls")),
    path("api/tableaux-de-bord/", include("enrs.dashboards.api.urls")),
    path("fhir/", include("enrs.fhir.urls")),
    path("admin/", admin.site.urls),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    # Split view + sidecar: Swagger UI from our own static files, no inline script (strict CSP).
    path("api/docs/", SpectacularSwaggerSplitView.as_view(url_name="api-schema"), name="api-docs"),
]

handler403 = "enrs.core.views.error_403"
handler404 = "enrs.core.views.error_404"
handler500 = "enrs.core.views.error_500"
