"""The public ROR page (no sign-in): the offer of care near a commune.

What the public sees: structures, offers, addresses, the location's phone and the distance. Never
capacity counts, freshness dates or staff contacts (e-mail, MSSanté): the selector does not even
select them (``offer_public_search``).

Rate limit: ``ROR_PUBLIC_RATE_LIMIT`` searches per minute and client IP (``enrs.core.net.client_ip``,
which trusts X-Forwarded-For only from our reverse proxies), counted in the shared cache (Redis), fixed
one-minute windows → a 429 page in French with ``Retry-After``.

Cache: the results fragment is cached per normalised query for ``ROR_PUBLIC_CACHE_SECONDS`` (a hit
runs no SQL at all); the page around it is rendered per request (the header differs for signed-in
visitors). Anonymous answers say ``Cache-Control: public, max-age=…``, so a proxy may keep them too;
signed-in ones are private.
"""

import hashlib
import time
from typing import Any

from django import forms
from django.conf import settings
from django.contrib.auth.decorators import login_not_required
from django.core.cache import cache
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.template.loader import render_to_string
from django.utils.cache import patch_cache_control
from django.utils.safestring import mark_safe
from django.views.decorators.http import require_GET

from enrs.core.net import client_ip

from .selectors import MAX_RADIUS_KM, commune_pick, offer_public_search
from .standards.valuesets import valuesets
from .views import osm_url, select_options

DEFAULT_RATE_LIMIT = 30  # searches per minute and IP
DEFAULT_CACHE_SECONDS = 600
RADIUS_CHOICES = [(10, "10 km"), (20, "20 km"), (30, "30 km"), (50, "50 km")]
CACHE_VERSION = "v1"


def rate_limit() -> int:
    return int(getattr(settings, "ROR_PUBLIC_RATE_LIMIT", DEFAULT_RATE_LIMIT))


def cache_seconds() -> int:
    return int(getattr(settings, "ROR_PUBLIC_CACHE_SECONDS", DEFAULT_CACHE_SECONDS))


class PublicSearchForm(forms.Form):
    commune = forms.CharField(label="Commune", help_text="Nom ou code INSEE de la commune.", max_length=80)
    activity = forms.ChoiceField(
        label="Type de soins",
        required=False,
        choices=lambda: [("", "Tous"), *valuesets().choices("activity_fields")],
    )
    radius_km = forms.TypedChoiceField(
        label="Distance maximale", choices=RADIUS_CHOICES, coerce=int, required=False, empty_value=None
    )

    def clean_commune(self) -> str:
        return " ".join(self.cleaned_data["commune"].split())

    def clean_radius_km(self) -> int:
        radius = int(self.cleaned_data.get("radius_km") or 30)
        if not 0 < radius <= MAX_RADIUS_KM:
            raise ValidationError("Distance invalide.")
        return radius


def too_many_requests(request: HttpRequest) -> bool:
    """Count this request in the client's current one-minute window; True when over the limit."""
    window = int(time.time() // 60)
    key = f"ror:public:rate:{client_ip(request)}:{window}"
    cache.add(key, 0, timeout=65)
    try:
        count = cache.incr(key)
    except ValueError:  # expired between add and incr
        cache.set(key, 1, timeout=65)
        count = 1
    return count > rate_limit()


def results_cache_key(*, commune: str, activity: str, radius_km: int) -> str:
    normalised = f"{commune.casefold()}|{activity}|{radius_km}"
    digest = hashlib.sha256(normalised.encode()).hexdigest()[:32]
    return f"ror:public:results:{CACHE_VERSION}:{digest}"


def render_results(*, commune_text: str, activity: str, radius_km: int) -> str:
    """The results fragment (HTML) of one normalised query: the nearest open offers, or the communes to
    choose from, or why nothing was found."""
    context: dict[str, Any] = {"radius_km": radius_km, "activity": activity}
    chosen, candidates = commune_pick(text=commune_text)
    if chosen is None:
        context["candidates"] = candidates
    else:
        assert chosen.latitude is not None
        assert chosen.longitude is not None
        origin = (chosen.latitude, chosen.longitude)
        rows = offer_public_search(origin=origin, radius_km=radius_km, activity=activity or None)
        vs = valuesets()
        context.update(
            commune=chosen,
            results=[
                {
                    "row": row,
                    "activity_label": vs.label("activity_fields", row.activity_field_code),
                    "osm_url": osm_url(row.latitude, row.longitude),
                }
                for row in rows
            ],
        )
    return render_to_string("ror/public/_results.html", context)


@login_not_required
@require_GET
def public_search(request: HttpRequest) -> HttpResponse:
    if too_many_requests(request):
        response = render(
            request,
            "ror/public/429.html",
            {"title": "Trop de recherches", "limit": rate_limit()},
            status=429,
        )
        response["Retry-After"] = "60"
        patch_cache_control(response, no_store=True)
        return response
    form = PublicSearchForm(request.GET or None)
    results_html = ""
    if form.is_valid():
        commune_text = form.cleaned_data["commune"]
        activity = form.cleaned_data["activity"]
        radius_km = form.cleaned_data["radius_km"]
        key = results_cache_key(commune=commune_text, activity=activity, radius_km=radius_km)
        results_html = cache.get(key)  # our own rendered template (autoescaped when it was rendered)
        if results_html is None:
            results_html = render_results(commune_text=commune_text, activity=activity, radius_km=radius_km)
            cache.set(key, results_html, timeout=cache_seconds())
    response = render(
        request,
        "ror/public/search.html",
        {
            "title": "Trouver une offre de soins",
            "form": form,
            "options": select_options(form),
            "results_html": mark_safe(results_html),  # noqa: S308 — our own template, rendered above or cached
        },
    )
    if request.user.is_authenticated:
        patch_cache_control(response, private=True, max_age=0)
    else:
        patch_cache_control(response, public=True, max_age=cache_seconds())
    return response
