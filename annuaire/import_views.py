"""Pages for the GCS staff: the open-data import runs, and for each run its counts, changes and rejections.

Included by ``annuaire/urls.py`` under ``imports/`` (URL names ``annuaire:import_list``,
``annuaire:import_detail``, ``annuaire:import_rejections_csv``). Reading only; the imports themselves run
with ``manage.py import_rpps`` / ``import_finess``.
"""

import csv
from collections.abc import Iterator
from typing import Any

from django.db.models import Count
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import get_object_or_404, render
from django.urls import path
from django.views.decorators.http import require_GET

from enrs.accounts.roles import ADMINISTRATION_ACCESS, access_required

from .models import ChangeKind, DirectoryChange, ImportRejection, ImportRun
from .services.imports import import_summary

RUNS_PER_PAGE = 50
REJECTIONS_PER_PAGE = 100
MAX_PAGE = 10_000
# A cell starting with one of these is a formula for Excel / LibreOffice (CSV injection).
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


def _page_number(request: HttpRequest) -> int:
    try:
        page = int(request.GET.get("page", "1"))
    except ValueError:
        return 1
    return min(max(page, 1), MAX_PAGE)


def _pagination(page: int, rows: list[Any], size: int) -> dict[str, Any]:
    """One row more than a page says whether there is a next page, without counting everything."""
    return {
        "page": page,
        "has_previous": page > 1,
        "has_next": len(rows) > size,
        "previous_page": page - 1,
        "next_page": page + 1,
    }


@access_required(ADMINISTRATION_ACCESS)
@require_GET
def run_list(request: HttpRequest) -> HttpResponse:
    page = _page_number(request)
    offset = (page - 1) * RUNS_PER_PAGE
    runs = list(
        ImportRun.objects.select_related("actor").order_by("-started_at", "-id")[
            offset : offset + RUNS_PER_PAGE + 1
        ]
    )
    context = {
        "title": "Imports de l'annuaire",
        "runs": runs[:RUNS_PER_PAGE],
        **_pagination(page, runs, RUNS_PER_PAGE),
    }
    return render(request, "annuaire/imports/run_list.html", context)


@access_required(ADMINISTRATION_ACCESS)
@require_GET
def run_detail(request: HttpRequest, run_id: int) -> HttpResponse:
    run = get_object_or_404(ImportRun.objects.select_related("actor"), pk=run_id)
    page = _page_number(request)
    offset = (page - 1) * REJECTIONS_PER_PAGE
    rejections = list(
        ImportRejection.objects.filter(run=run).order_by("line_number")[
            offset : offset + REJECTIONS_PER_PAGE + 1
        ]
    )
    by_kind = {
        row["kind"]: row["n"]
        for row in DirectoryChange.objects.filter(run=run).values("kind").annotate(n=Count("id")).order_by()
    }
    changes = [(ChangeKind(kind).label, by_kind[kind]) for kind in ChangeKind.values if kind in by_kind]
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
        "changes": changes,
        "extra": extra,
        "duration": summary.get("duration_s"),
        "rejections": rejections[:REJECTIONS_PER_PAGE],
        **_pagination(page, rejections, REJECTIONS_PER_PAGE),
    }
    return render(request, "annuaire/imports/run_detail.html", context)


class _Echo:
    def write(self, value: str) -> str:
        return value


def _cell(value: str) -> str:
    return "'" + value if value.startswith(FORMULA_PREFIXES) else value


@access_required(ADMINISTRATION_ACCESS)
@require_GET
def rejections_csv(request: HttpRequest, run_id: int) -> StreamingHttpResponse:
    run = get_object_or_404(ImportRun, pk=run_id)
    writer = csv.writer(_Echo(), delimiter=";")

    def rows() -> Iterator[str]:
        yield "\ufeff" + writer.writerow(["ligne", "motif", "contenu"])
        for line_number, reason, raw in (
            ImportRejection.objects.filter(run=run)
            .order_by("line_number")
            .values_list("line_number", "reason", "raw")
            .iterator(chunk_size=2_000)
        ):
            yield writer.writerow([line_number, _cell(reason), _cell(raw)])

    response = StreamingHttpResponse(rows(), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="import-{run.pk}-rejets.csv"'
    return response


urlpatterns = [
    path("", run_list, name="import_list"),
    path("<int:run_id>/", run_detail, name="import_detail"),
    path("<int:run_id>/rejets.csv", rejections_csv, name="import_rejections_csv"),
]
