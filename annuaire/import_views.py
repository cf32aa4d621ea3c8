"""Pages for the GCS staff: the open-data import runs, and for each run its counts, changes and rejections.

Included by ``annuaire/urls.py`` under ``imports/`` (URL names ``annuaire:import_list``,
``annuaire:import_detail``, ``annuaire:import_rejections_csv``). Reading only; the imports themselves run
with ``manage.py import_rpps`` / ``import_finess``.
"""

from django.http import Http404, HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import render
from django.urls import path
from django.views.decorators.http import require_GET

from enrs.accounts.roles import ADMINISTRATION_ACCESS, access_required
from enrs.core.csv_export import csv_response
from enrs.core.pagination import page_number, page_of

from .models import ImportRun
from .selectors.imports import import_change_counts, import_rejection_list, import_run_get, import_run_list
from .services.imports import import_summary

RUNS_PER_PAGE = 50
REJECTIONS_PER_PAGE = 100


def _run_or_404(run_id: int) -> ImportRun:
    try:
        return import_run_get(pk=run_id)
    except ImportRun.DoesNotExist:
        raise Http404("Cet import n'existe pas.") from None


@access_required(ADMINISTRATION_ACCESS)
@require_GET
def run_list(request: HttpRequest) -> HttpResponse:
    runs, pagination = page_of(import_run_list(), page=page_number(request), size=RUNS_PER_PAGE)
    context = {"title": "Imports de l'annuaire", "runs": runs, **pagination}
    return render(request, "annuaire/imports/run_list.html", context)


@access_required(ADMINISTRATION_ACCESS)
@require_GET
def run_detail(request: HttpRequest, run_id: int) -> HttpResponse:
    run = _run_or_404(run_id)
    rejections, pagination = page_of(
        import_rejection_list(run=run), page=page_number(request), size=REJECTIONS_PER_PAGE
    )
    summary = import_summary(run)
    extra = [
        (label, summary[key])
        for key, label in (
            ("structures_created", "structures créées"),
            ("exercices_added", "exercices ajoutés"),
            ("exercices_updated", "exercices modifiés"),
            ("exercices_removed", "exercices retirés"),
            ("geolocated", "établissements géolocalisés"),
        )
        if key in summary
    ]
    context = {
        "title": f"Import n° {run.pk}",
        "run": run,
        "changes": import_change_counts(run=run),
        "extra": extra,
        "duration": summary.get("duration_s"),
        "rejections": rejections,
        **pagination,
    }
    return render(request, "annuaire/imports/run_detail.html", context)


@access_required(ADMINISTRATION_ACCESS)
@require_GET
def rejections_csv(request: HttpRequest, run_id: int) -> StreamingHttpResponse:
    run = _run_or_404(run_id)
    rows = (
        import_rejection_list(run=run).values_list("line_number", "reason", "raw").iterator(chunk_size=2_000)
    )
    return csv_response(f"import-{run.pk}-rejets.csv", ["ligne", "motif", "contenu"], rows)


urlpatterns = [
    path("", run_list, name="import_list"),
    path("<int:run_id>/", run_detail, name="import_detail"),
    path("<int:run_id>/rejets.csv", rejections_csv, name="import_rejections_csv"),
]
