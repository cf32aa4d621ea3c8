"""Dashboard pages, chart exports and targets. Thin: filters → `figures` → template / download.

Every view here is open to `DASHBOARDS_ACCESS` (ARS analysts, GCS staff, administrators) and shows
aggregates only; editing targets needs `TARGETS_ACCESS` (GCS staff and administrators)."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseBadRequest, HttpResponseBase
from django.shortcuts import get_object_or_404, redirect, render
from django.templatetags.static import static
from django.urls import NoReverseMatch, reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from enrs.accounts.roles import (
    ADMINISTRATION,
    DASHBOARDS_ACCESS,
    ROLE_DENIED_MESSAGE,
    AccessRule,
    access_required,
    user_has_role,
)
from enrs.usage.models import Target
from enrs.usage.selectors import indicator_list, latest_rollup_day, target_list
from enrs.usage.services import target_delete, target_set

from . import rpu_figures
from .catalog import PAGES, PageSpec, page_get
from .exports import figure_csv, figure_xlsx
from .figures import Figure, Filters, figure_build, selector_memo
from .forms import FilterForm, TargetForm, filters_from_query, query_error
from .selectors import figure_for

# Targets steer the regional programme: set by GCS staff and administrators; ARS analysts read them.
TARGETS_ACCESS = AccessRule(ADMINISTRATION, strong=False, name="dashboards_targets")
URGENCES_SLUG = "urgences"
# Installed by `make static-vendor` (npm ci, then copied; never committed).
CHART_JS = "dashboards/vendor/chart.umd.min.js"


def _chart_js_url() -> str | None:
    """Chart.js's URL, or None when a manifest storage does not know it (not installed): the pages then
    show their tables only instead of failing."""
    try:
        return static(CHART_JS)
    except ValueError:
        return None


def _nav(request: HttpRequest, current: str) -> list[dict[str, Any]]:
    query = request.GET.urlencode()
    suffix = f"?{query}" if query else ""
    items = [
        {
            "slug": p.slug,
            "title": p.title,
            "url": (
                reverse("dashboards:index")
                if p.slug == "synthese"
                else reverse("dashboards:page", args=[p.slug])
            )
            + suffix,
            "current": p.slug == current,
        }
        for p in PAGES
    ]
    if rpu_figures.available():
        items.append(
            {
                "slug": URGENCES_SLUG,
                "title": "Urgences (RPU)",
                "url": reverse("dashboards:urgences") + suffix,
                "current": current == URGENCES_SLUG,
            }
        )
    items.append(
        {
            "slug": "objectifs",
            "title": "Objectifs de déploiement",
            "url": reverse("dashboards:targets"),
            "current": current == "objectifs",
        }
    )
    return items


def _filter_labels(form: FilterForm, filters: Filters) -> dict[str, str]:
    """French labels of the chosen filters (for the page summary and the exports)."""
    labels = {}
    for name, key, value in (
        ("departement", "department", filters.department),
        ("categorie", "category", filters.category),
        ("college", "college", filters.college),
        ("membre", "structure", filters.structure_id),
    ):
        field = form.fields.get(name)
        if value is None or field is None:
            continue
        choices = {str(k): str(v) for k, v in getattr(field, "choices", [])}
        labels[key] = choices.get(str(value), str(value))
    return labels


def _render_page(
    request: HttpRequest,
    *,
    slug: str,
    title: str,
    description: str,
    figures: list[Figure],
    form: FilterForm,
    filters: Filters,
    extra: dict[str, Any] | None = None,
) -> HttpResponse:
    query = request.GET.urlencode()
    drill = request.GET.copy()
    for name in ("departement", "categorie", "college"):
        drill.pop(name, None)
    context = {
        "drill_query": drill.urlencode(),
        "title": f"{title} — Tableaux de bord",
        "page_title": title,
        "page_slug": slug,
        "description": description,
        "nav": _nav(request, slug),
        "form": form,
        "filters": filters,
        "filter_labels": _filter_labels(form, filters),
        "figures": figures,
        "query": f"?{query}" if query else "",
        "can_edit_targets": user_has_role(request.user, TARGETS_ACCESS.roles),
        "chart_js_url": _chart_js_url(),
        "data_as_of": latest_rollup_day() if slug != URGENCES_SLUG else None,
        **(extra or {}),
    }
    return render(request, "dashboards/page.html", context)


def _page(request: HttpRequest, page: PageSpec) -> HttpResponse:
    form, filters = filters_from_query(request.GET)
    with selector_memo():  # the charts of one page share their identical selector calls
        figures = [figure_build(page, chart, filters) for chart in page.charts]
    return _render_page(
        request,
        slug=page.slug,
        title=page.title,
        description=page.description,
        figures=figures,
        form=form,
        filters=filters,
    )


@access_required(DASHBOARDS_ACCESS)
@require_GET
def index(request: HttpRequest) -> HttpResponse:
    """The overview: each service's use against the year's targets."""
    page = page_get("synthese")
    assert page is not None
    return _page(request, page)


@access_required(DASHBOARDS_ACCESS)
@require_GET
def page(request: HttpRequest, slug: str) -> HttpResponse:
    spec = page_get(slug)
    if spec is None or spec.slug == "synthese":
        raise Http404("Tableau de bord inconnu.")
    return _page(request, spec)


@access_required(DASHBOARDS_ACCESS)
@require_GET
def urgences(request: HttpRequest) -> HttpResponse:
    """Emergency departments' activity (RPU) from `enrs.rpu.selectors`, with a link to the feeds'
    supervision."""
    if not rpu_figures.available():
        raise Http404("Les indicateurs des urgences ne sont pas disponibles.")
    form, filters = filters_from_query(request.GET)
    try:
        supervision_url = reverse(rpu_figures.SUPERVISION_URL_NAME)
    except NoReverseMatch:
        supervision_url = ""
    return _render_page(
        request,
        slug=URGENCES_SLUG,
        title="Urgences (RPU)",
        description="Passages aux urgences d'après les résumés de passage (RPU) transmis chaque jour par les "
        "services d'urgence : volumes, âges, gravité, durées, hospitalisations, modes d'arrivée, complétude.",
        figures=rpu_figures.figures(filters),
        form=form,
        filters=filters,
        extra={
            "supervision_url": supervision_url,
            "feed": rpu_figures.feed_summary(department=filters.department),
        },
    )


@access_required(DASHBOARDS_ACCESS)
@require_GET
def export(request: HttpRequest, slug: str, chart: str, fmt: str) -> HttpResponseBase:
    """One chart's table as CSV or XLSX, for the filters of the query string."""
    form = FilterForm(request.GET or {})
    if not form.is_valid():
        return HttpResponseBadRequest(
            f"Filtres invalides : {query_error(form)}", content_type="text/plain; charset=utf-8"
        )
    filters = form.filters()
    figure = figure_for(slug, chart, filters)
    if figure is None or not figure.available:
        raise Http404("Tableau inconnu ou indisponible.")
    if fmt == "csv":
        return figure_csv(figure, filters)
    return figure_xlsx(figure, filters, _filter_labels(form, filters))


# --- Targets ------------------------------------------------------------------------------------------


@access_required(DASHBOARDS_ACCESS)
@require_http_methods(["GET", "POST"])
def targets(request: HttpRequest) -> HttpResponse:
    """The yearly targets (read by every dashboard role; the form only for GCS staff and administrators)."""
    can_edit = user_has_role(request.user, TARGETS_ACCESS.roles)
    form = TargetForm(request.POST or None) if can_edit else None
    if request.method == "POST":
        if form is None:
            raise PermissionDenied(ROLE_DENIED_MESSAGE)
        if form.is_valid():
            data = form.cleaned_data
            try:
                target_set(
                    indicator=data["indicateur"],
                    year=data["annee"],
                    department=data.get("departement") or "",
                    value=data["valeur"],
                    actor=request.user,
                )
            except ValidationError as exc:
                for message in exc.messages:
                    form.add_error(None, message)
            else:
                messages.success(request, "Objectif enregistré.")
                return redirect("dashboards:targets")
    labels = {i.code: i.label for i in indicator_list()}
    rows = [
        (target, labels.get(target.indicator, target.indicator))
        for target in target_list().order_by("-year", "indicator", "department")
    ]
    return render(
        request,
        "dashboards/targets.html",
        {
            "title": "Objectifs de déploiement — Tableaux de bord",
            "page_title": "Objectifs de déploiement",
            "nav": _nav(request, "objectifs"),
            "form": form,
            "targets": rows,
            "can_edit_targets": can_edit,
        },
        status=400 if form is not None and form.is_bound and form.errors else 200,
    )


@access_required(TARGETS_ACCESS)
@require_POST
def target_remove(request: HttpRequest, pk: int) -> HttpResponse:
    target = get_object_or_404(Target, pk=pk)
    target_delete(target=target, actor=request.user)
    messages.success(request, "Objectif supprimé.")
    return redirect("dashboards:targets")
