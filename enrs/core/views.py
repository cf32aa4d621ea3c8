from django.conf import settings
from django.contrib.auth.decorators import login_not_required
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from .health import health_report
from .navigation import SERVICES


@login_not_required
@require_GET
def home(request: HttpRequest) -> HttpResponse:
    return render(
        request,
        "core/home.html",
        {"title": "Accueil", "services": [s for s in SERVICES if s.key != "administration"]},
    )


@login_not_required
@require_GET
def accessibility(request: HttpRequest) -> HttpResponse:
    return render(request, "core/accessibility.html", {"title": "Accessibilité"})


@login_not_required
@require_GET
def legal(request: HttpRequest) -> HttpResponse:
    return render(request, "core/legal.html", {"title": "Mentions légales"})


@login_not_required
@require_GET
@never_cache
def healthz(request: HttpRequest) -> JsonResponse:
    healthy, services = health_report()
    body = {
        "status": "ok" if healthy else "error",
        "demo_mode": settings.ENRS_DEMO_MODE,
        "services": services,
    }
    return JsonResponse(body, status=200 if healthy else 503)


@login_not_required
def error_403(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    return render(request, "403.html", {"title": "Accès refusé", "reason": str(exception or "")}, status=403)


@login_not_required
def error_404(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    return render(request, "404.html", {"title": "Page introuvable"}, status=404)


@login_not_required
def error_500(request: HttpRequest) -> HttpResponse:
    # No context processors that could fail again: a plain template with static content.
    from django.template import loader

    return HttpResponse(loader.get_template("500.html").render({"title": "Erreur"}), status=500)
