"""HTML pages of the ROR for signed-in users: the landing page and the orientation search.

The results map is a server-drawn SVG (positions relative to the origin, the search radius as a
circle): the portal's CSP allows no outside host (no tile server, no CDN script), and the page must
work offline. Each result links to OpenStreetMap for a real map, which opens outside the portal.
"""

from collections.abc import Iterable
from typing import Any, cast
from urllib.parse import urlencode

from django import forms
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.http import require_GET

from annuaire.models import Commune
from enrs.accounts.roles import ROR_ACCESS, access_required
from enrs.core.navigation import service

from . import geo
from .selectors import (
    MAX_RADIUS_KM,
    AgeGroup,
    OrientationRow,
    Origin,
    offer_orientation_search,
    origin_resolve,
)
from .standards.valuesets import valuesets

MAP_SIZE = 400
RADIUS_CHOICES = [
    (10, "10 km"),
    (20, "20 km"),
    (30, "30 km"),
    (50, "50 km"),
    (100, "100 km"),
    (200, "200 km"),
]


def osm_url(latitude: float, longitude: float) -> str:
    query = urlencode({"mlat": f"{latitude:.6f}", "mlon": f"{longitude:.6f}"})
    return f"https://www.openstreetmap.org/?{query}#map=15/{latitude:.5f}/{longitude:.5f}"


_EMPTY_CHOICE = {"activity_fields": "Tous les champs", "operational_activities": "Toutes les activités"}


def _choices(table: str) -> list[tuple[str, str]]:
    """A value set as form choices: « all » first, then by label (the code order means nothing to users),
    except for the five champs d'activité, kept in their national order."""
    choices = valuesets().choices(table)
    if table != "activity_fields":
        choices.sort(key=lambda c: c[1])
    return [("", _EMPTY_CHOICE.get(table, "Tous les modes")), *choices]


class OrientationSearchForm(forms.Form):
    origin = forms.CharField(
        label="Commune ou position d'origine",
        help_text="Nom ou code INSEE de la commune, ou « latitude, longitude » (WGS84).",
        max_length=120,
    )
    radius_km = forms.TypedChoiceField(
        label="Rayon", choices=RADIUS_CHOICES, coerce=int, initial=50, required=False, empty_value=None
    )
    activity = forms.ChoiceField(
        label="Champ d'activité", required=False, choices=lambda: _choices("activity_fields")
    )
    specialty = forms.ChoiceField(
        label="Activité opérationnelle (spécialité)",
        required=False,
        choices=lambda: _choices("operational_activities"),
    )
    care_mode = forms.ChoiceField(
        label="Mode de prise en charge", required=False, choices=lambda: _choices("care_modes")
    )
    age_group = forms.ChoiceField(
        label="Patient",
        required=False,
        choices=[
            ("", "Tout âge"),
            (AgeGroup.ADULT.value, "Adulte (18 ans et plus)"),
            (AgeGroup.CHILD.value, "Enfant (moins de 18 ans)"),
        ],
    )
    available_only = forms.BooleanField(label="Lits ou places disponibles maintenant", required=False)

    def clean_radius_km(self) -> int:
        radius = self.cleaned_data.get("radius_km") or 50
        if not 0 < radius <= MAX_RADIUS_KM:
            raise ValidationError("Rayon invalide.")
        return int(radius)


MARKER_COLOURS = {"free": "#18753c", "stale": "#b34000", "full": "#929292"}  # DSFR success / warning / grey


def _age_range(row: OrientationRow) -> str:
    if row.age_min is None and row.age_max is None:
        return ""
    low = row.age_min if row.age_min is not None else 0
    return f"{low} à {row.age_max} ans" if row.age_max is not None else f"{low} ans et plus"


def result_views(rows: list[OrientationRow], origin: Origin, radius_km: float) -> list[dict[str, Any]]:
    """What the results table and map show, one flat dict per row: labels, formatted numbers and dates,
    map position, links. Flat dicts, formatted here, because a 50-row table with its map does a few
    thousand template lookups, and a dict lookup is the template engine's fast path."""
    vs = valuesets()
    views = []
    for number, row in enumerate(rows, start=1):
        x, y = geo.plot_xy(origin.point, (row.latitude, row.longitude), radius_km, MAP_SIZE)
        marker = "full" if row.is_closed or row.free_total == 0 else ("stale" if row.is_stale else "free")
        updated = row.capacity_updated_at
        labels = [
            vs.label("activity_fields", row.activity_field_code),
            vs.label("operational_activities", row.operational_activity_code),
            vs.label("care_modes", row.care_mode_code),
            _age_range(row),
        ]
        views.append(
            {
                "number": number,
                "row": row,
                "structure_name": row.structure_name,
                "structure_finess": row.structure_finess,
                "offer_name": row.offer_name,
                "labels": " · ".join(label for label in labels if label),
                "place": f"{row.location_name}, {row.address_line} {row.postal_code} {row.commune_name}",
                "distance": f"{row.distance_km:.1f}".replace(".", ","),
                "free_beds": row.free_beds,
                "free_places": row.free_places,
                "has_capacity_data": row.has_capacity_data,
                "updated": timezone.localtime(updated).strftime("%d/%m/%Y %H:%M") if updated else "",
                "is_stale": row.is_stale,
                "is_closed": row.is_closed,
                "phone": row.phone,
                "phone_uri": "".join(row.phone.split()),
                "email": row.email,
                "mssante_address": row.mssante_address,
                "x": f"{x:.1f}",
                "y": f"{y:.1f}",
                "colour": MARKER_COLOURS[marker],
                "osm_url": osm_url(row.latitude, row.longitude),
            }
        )
    return views


def select_options(form: forms.Form) -> dict[str, list[tuple[str, str, str]]]:
    """(value, label, " selected" or "") for every choice field of ``form``, computed once in Python: the
    template loop over ~100 options with a filter per option cost several milliseconds per page."""
    out = {}
    for name, field in form.fields.items():
        if isinstance(field, forms.ChoiceField) and not isinstance(field, forms.MultipleChoiceField):
            value = form[name].value()
            current = "" if value is None else str(value)
            choices = cast(Iterable[tuple[Any, Any]], field.choices)  # flat choices (no groups) here
            out[name] = [
                (str(code), str(label), " selected" if str(code) == current else "")
                for code, label in choices
            ]
    return out


def _pick_url(request: HttpRequest, commune: Commune) -> str:
    query = request.GET.copy()
    query["origin"] = commune.insee_code
    return f"?{query.urlencode()}"


@access_required(ROR_ACCESS)
@require_GET
def index(request: HttpRequest) -> HttpResponse:
    return render(request, "ror/index.html", {"service": service("ror"), "title": "ROR"})


@access_required(ROR_ACCESS)
@require_GET
def search(request: HttpRequest) -> HttpResponse:
    """The orientation search: nearest offers matching the patient, with free beds, freshness, contacts."""
    form = OrientationSearchForm(request.GET or None)
    context: dict[str, Any] = {
        "service": service("ror"),
        "title": "Recherche d'orientation",
        "form": form,
        "options": select_options(form),
        "map_size": MAP_SIZE,
        "map_half": MAP_SIZE // 2,
        "searched": False,
    }
    if form.is_valid():
        data = form.cleaned_data
        try:
            origin, candidates = origin_resolve(text=data["origin"])
        except ValidationError as error:
            form.add_error("origin", error)
            origin, candidates = None, []
        if candidates:
            context["candidates"] = [(c, _pick_url(request, c)) for c in candidates]
        if origin is not None:
            rows = offer_orientation_search(
                origin=origin,
                radius_km=data["radius_km"],
                activity=data["activity"] or None,
                specialty=data["specialty"] or None,
                care_mode=data["care_mode"] or None,
                age_group=data["age_group"] or None,
                available_only=data["available_only"],
            )
            context.update(
                searched=True,
                origin=origin,
                radius_km=data["radius_km"],
                results=result_views(rows, origin, data["radius_km"]),
            )
    return render(request, "ror/search/search.html", context)
