"""Directory pages: the search page (the annuaire's landing page) and the detail pages of a professional
and of a structure. Every signed-in role reads the directory (no patient data in it): DIRECTORY_ACCESS.

The views read the request into a form, call the selectors of `annuaire.selectors.search` and render;
ranking, pagination and the query reading live in the selectors.
"""

from typing import Any

from django import forms
from django.http import Http404, HttpRequest, HttpResponse, QueryDict
from django.shortcuts import render
from django.views.decorators.http import require_GET

from enrs.accounts.roles import DIRECTORY_ACCESS, access_required
from enrs.core import geo
from enrs.core.navigation import service

from .models import Professional, Structure, StructureKind
from .selectors.search import (
    MAX_RESULTS,
    SearchPage,
    professional_get,
    professional_search,
    structure_get,
    structure_search,
)
from .standards.nomenclatures import nomenclatures

PAGE_SIZE = 20
MAX_PAGE = MAX_RESULTS // PAGE_SIZE
PROFESSIONALS, STRUCTURES = "professionnels", "structures"
OPENSTREETMAP_URL = "https://www.openstreetmap.org/?mlat={lat:.6f}&mlon={lon:.6f}#map=16/{lat:.6f}/{lon:.6f}"


def _sorted_choices(codes: dict[str, str], empty: str) -> list[tuple[str, Any]]:
    return [("", empty), *sorted(codes.items(), key=lambda item: item[1].casefold())]


def _profession_choices() -> list[tuple[str, Any]]:
    return _sorted_choices(dict(nomenclatures().professions), "Toutes les professions")


def _specialty_choices() -> list[tuple[str, Any]]:
    """Savoir-faire grouped by profession (one <optgroup> each)."""
    codes = nomenclatures()
    groups: list[tuple[str, Any]] = [("", "Toutes les spécialités")]
    for profession, specialties in sorted(
        codes.specialties.items(), key=lambda item: codes.professions.get(item[0], item[0])
    ):
        options = sorted(specialties.items(), key=lambda item: item[1].casefold())
        groups.append((codes.professions.get(profession, profession), options))
    return groups


def _department_choices() -> list[tuple[str, Any]]:
    return [("", "Tous les départements")] + [
        (d.code, f"{d.code} — {d.name}") for d in sorted(geo.DEPARTMENTS.values(), key=lambda d: d.code)
    ]


def _sector_choices() -> list[tuple[str, Any]]:
    return _sorted_choices(dict(nomenclatures().sectors), "Tous les types de structure")


class SearchForm(forms.Form):
    """The search box and its filters, as the query string carries them (GET)."""

    quoi = forms.ChoiceField(
        label="Rechercher parmi",
        choices=[(PROFESSIONALS, "les professionnels"), (STRUCTURES, "les structures")],
        required=False,
    )
    q = forms.CharField(
        label="Nom, prénom, identifiant, commune, profession ou spécialité",
        help_text="Exemples : « Hélène Lefèvre », « cardiologue Rennes », un RPPS (11 chiffres), "
        "un FINESS (9 caractères).",
        max_length=200,
        required=False,
    )
    profession = forms.ChoiceField(label="Profession", choices=_profession_choices, required=False)
    specialite = forms.ChoiceField(label="Spécialité", choices=_specialty_choices, required=False)
    departement = forms.ChoiceField(label="Département", choices=_department_choices, required=False)
    type_structure = forms.ChoiceField(label="Type de structure", choices=_sector_choices, required=False)
    page = forms.IntegerField(min_value=1, required=False)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for name in ("profession", "specialite", "departement", "type_structure"):
            self.fields[name].error_messages["invalid_choice"] = "Choisissez une valeur de la liste."
        self.fields["page"].error_messages.update(
            {"invalid": "Numéro de page invalide.", "min_value": "Numéro de page invalide."}
        )

    def clean_quoi(self) -> str:
        return self.cleaned_data.get("quoi") or PROFESSIONALS

    def clean_page(self) -> int:
        page = self.cleaned_data.get("page") or 1
        if page > MAX_PAGE:
            raise forms.ValidationError(
                f"Les résultats s'arrêtent à la page {MAX_PAGE} : précisez la recherche ou ajoutez un filtre."
            )
        return page

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        profession, specialty = cleaned.get("profession"), cleaned.get("specialite")
        if profession and specialty and specialty not in nomenclatures().specialties.get(profession, {}):
            self.add_error(
                "specialite", "Cette spécialité n'est pas une spécialité de la profession choisie."
            )
        return cleaned

    @property
    def options(self) -> dict[str, list[tuple[str, list[tuple[str, str, bool]]]]]:
        """For each list of the form: its groups (label "" outside any <optgroup>) of (value, label,
        selected) options, for the DSFR <select> markup of the template."""
        result = {}
        for name in ("profession", "specialite", "departement", "type_structure"):
            bound = self[name]
            current = str(bound.value() or "")
            groups: list[tuple[str, list[tuple[str, str, bool]]]] = []
            for value, label in bound.field.choices:  # type: ignore[attr-defined]
                if isinstance(label, list | tuple):
                    groups.append((str(value), [(str(v), str(lab), str(v) == current) for v, lab in label]))
                else:
                    groups.append(("", [(str(value), str(label), str(value) == current)]))
            result[name] = groups
        return result

    @property
    def searching(self) -> bool:
        """True when the visitor asked for something (a text or a filter), not just opened the page."""
        data = self.cleaned_data
        return any(
            data.get(name) for name in ("q", "profession", "specialite", "departement", "type_structure")
        )


def _page_url(query: QueryDict, page: int) -> str:
    params = query.copy()
    params["page"] = str(page)
    return f"?{params.urlencode()}"


def _pagination(request: HttpRequest, number: int, has_previous: bool, has_next: bool) -> dict[str, Any]:
    return {
        "number": number,
        "previous_url": _page_url(request.GET, number - 1) if has_previous else "",
        "next_url": _page_url(request.GET, number + 1) if has_next else "",
    }


@access_required(DIRECTORY_ACCESS)
@require_GET
def index(request: HttpRequest) -> HttpResponse:
    """The directory's landing page: one search box, filters, results."""
    form = SearchForm(request.GET or None)
    context: dict[str, Any] = {"service": service("annuaire"), "title": "Annuaire", "form": form}
    if form.is_bound and form.is_valid() and form.searching:
        data = form.cleaned_data
        offset = (data["page"] - 1) * PAGE_SIZE
        results: SearchPage[Any]
        if data["quoi"] == STRUCTURES:
            results = structure_search(
                query=data["q"],
                department=data["departement"] or None,
                sector=data["type_structure"] or None,
                limit=PAGE_SIZE,
                offset=offset,
            )
        else:
            results = professional_search(
                query=data["q"],
                profession=data["profession"] or None,
                specialty=data["specialite"] or None,
                department=data["departement"] or None,
                sector=data["type_structure"] or None,
                limit=PAGE_SIZE,
                offset=offset,
            )
        context.update(
            results=results,
            searching_structures=data["quoi"] == STRUCTURES,
            pagination=_pagination(request, results.number, results.has_previous, results.has_next),
            title=f"Annuaire — recherche « {data['q']} »" if data["q"] else "Annuaire — recherche",
        )
    return render(request, "annuaire/index.html", context)


def _role_label(code: str) -> str:
    return nomenclatures().roles.get(code, code)


def _map_url(latitude: float | None, longitude: float | None) -> str:
    if latitude is None or longitude is None:
        return ""
    return OPENSTREETMAP_URL.format(lat=latitude, lon=longitude)


@access_required(DIRECTORY_ACCESS)
@require_GET
def professional_detail(request: HttpRequest, pk: int) -> HttpResponse:
    try:
        professional = professional_get(pk=pk)
    except Professional.DoesNotExist:
        raise Http404("Ce professionnel n'est pas dans l'annuaire.") from None
    exercices = [
        {
            "exercice": exercice,
            "role": _role_label(exercice.role_code),
            "map_url": _map_url(exercice.structure.latitude, exercice.structure.longitude),
        }
        for exercice in professional.exercices.all()
    ]
    name = f"{professional.first_name} {professional.last_name}".strip()
    return render(
        request,
        "annuaire/professional_detail.html",
        {
            "service": service("annuaire"),
            "title": f"{name} — Annuaire",
            "professional": professional,
            "name": name,
            "exercices": exercices,
        },
    )


@access_required(DIRECTORY_ACCESS)
@require_GET
def structure_detail(request: HttpRequest, pk: int) -> HttpResponse:
    try:
        structure = structure_get(pk=pk)
    except Structure.DoesNotExist:
        raise Http404("Cette structure n'est pas dans l'annuaire.") from None
    page_field = forms.IntegerField(min_value=1, max_value=MAX_PAGE, required=False)
    try:
        page = page_field.clean(request.GET.get("page")) or 1
    except forms.ValidationError:
        page = 1
    professionals = professional_search(
        structure=structure.pk, limit=PAGE_SIZE, offset=(page - 1) * PAGE_SIZE
    )
    return render(
        request,
        "annuaire/structure_detail.html",
        {
            "service": service("annuaire"),
            "title": f"{structure.name} — Annuaire",
            "structure": structure,
            "is_legal_entity": structure.kind == StructureKind.LEGAL_ENTITY,
            "sites": list(structure.sites.all()),
            "mailboxes": list(structure.mailboxes.all()),
            "map_url": _map_url(structure.latitude, structure.longitude),
            "professionals": professionals,
            "pagination": _pagination(request, page, professionals.has_previous, professionals.has_next),
        },
    )
