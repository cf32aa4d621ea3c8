"""RPU pages: landing, feed supervision, indicators (aggregates only), file upload and imported files.

Supervision and indicators are open to the dashboard roles (ARS analysts, GCS staff, administrators):
they show aggregates under the small-cell rule and never a passage. Uploading files and reading the
rejections of a file is for GCS staff and administrators (they act for the establishments).
"""

from datetime import timedelta

from django.contrib import messages
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404, render
from django.urls import reverse

from enrs.accounts.roles import ADMINISTRATION as ADMINISTRATION_ROLES
from enrs.accounts.roles import ADMINISTRATION_ACCESS, DASHBOARDS_ACCESS, access_required, user_has_role
from enrs.core.pagination import page_number, page_of

from . import selectors
from .forms import DayForm, IndicatorFilterForm, RpuUploadForm
from .models import FileSource, RpuFile
from .services import RpuFileRefused, rpu_file_import


def _can_upload(request: HttpRequest) -> bool:
    return user_has_role(request.user, ADMINISTRATION_ROLES)


@access_required(DASHBOARDS_ACCESS)
def index(request: HttpRequest) -> HttpResponse:
    return render(request, "rpu/index.html", {"can_upload": _can_upload(request)})


@access_required(DASHBOARDS_ACCESS)
def supervision(request: HttpRequest) -> HttpResponse:
    form = DayForm(request.GET or None)
    day = selectors.yesterday()
    if form.is_valid() and form.cleaned_data["jour"]:
        day = form.cleaned_data["jour"]
    rows = selectors.rpu_feed_status(day=day)
    notices = {check.emergency_department_id: check for check in selectors.feed_check_list(day=day)}
    return render(
        request,
        "rpu/supervision.html",
        {
            "form": form,
            "day": day,
            "previous_day": day - timedelta(days=1),
            "next_day": day + timedelta(days=1),
            "rows": [(row, notices.get(row.emergency_department_id)) for row in rows],
            "problem_count": sum(1 for row in rows if row.state != "ok"),
        },
    )


@access_required(DASHBOARDS_ACCESS)
def indicators(request: HttpRequest) -> HttpResponse:
    form = IndicatorFilterForm(request.GET)  # every field is optional: empty = the last 30 days
    context: dict = {"form": form}
    if form.is_valid():
        data = form.cleaned_data
        filters = {
            "emergency_department_id": data.get("structure"),
            "establishment": data.get("etablissement") or None,
            "department": data.get("departement") or None,
        }
        start, end = data["du"], data["au"]
        figures = selectors.rpu_indicators(start=start, end=end, **filters)
        weekly = (end - start).days > 62
        context.update(
            weekly=weekly,
            start=start,
            end=end,
            figures=figures,
            ccmu=[(label, figures.ccmu[key]) for key, (label, _codes) in selectors.CCMU_GROUPS.items()],
            completeness=[
                (label, figures.completeness[key]) for key, (label, _q) in selectors.ITEM_FILLED.items()
            ],
            series=selectors.rpu_visits_series(
                start=start, end=end, granularity="week" if weekly else "day", **filters
            ),
            by_department=selectors.rpu_breakdown(
                start=start, end=end, by="emergency_department", department=filters["department"]
            ),
        )
    return render(request, "rpu/indicators.html", context)


@access_required(ADMINISTRATION_ACCESS)
def upload(request: HttpRequest) -> HttpResponse:
    form = RpuUploadForm(request.POST, request.FILES) if request.method == "POST" else RpuUploadForm()
    if request.method == "POST" and form.is_valid():
        upload_file = form.cleaned_data["file"]
        try:
            rpu_file = rpu_file_import(
                data=upload_file.read(),
                source=FileSource.UPLOAD,
                original_name=upload_file.name or "",
                actor=request.user,
                expected_department=form.cleaned_data["emergency_department"],
            )
        except RpuFileRefused as refusal:
            form.add_error("file", f"Fichier refusé : {refusal.messages[0]}")
        else:
            if rpu_file.rejected_count:
                messages.warning(
                    request,
                    f"Fichier importé : {rpu_file.accepted_count} passage(s) accepté(s), "
                    f"{rpu_file.rejected_count} rejeté(s) (voir les motifs ci-dessous).",
                )
            else:
                messages.success(request, f"Fichier importé : {rpu_file.accepted_count} passage(s).")
            return HttpResponseRedirect(reverse("rpu:file_detail", args=[rpu_file.pk]))
    return render(request, "rpu/upload.html", {"form": form}, status=400 if form.errors else 200)


@access_required(ADMINISTRATION_ACCESS)
def file_list(request: HttpRequest) -> HttpResponse:
    files, pagination = page_of(selectors.rpu_file_list(), page=page_number(request), size=50)
    return render(request, "rpu/file_list.html", {"files": files, **pagination})


@access_required(ADMINISTRATION_ACCESS)
def file_detail(request: HttpRequest, pk: int) -> HttpResponse:
    rpu_file = get_object_or_404(RpuFile.objects.select_related("emergency_department", "uploaded_by"), pk=pk)
    rejections, pagination = page_of(
        selectors.rpu_rejection_list(file=rpu_file), page=page_number(request), size=100
    )
    return render(
        request, "rpu/file_detail.html", {"rpu_file": rpu_file, "rejections": rejections, **pagination}
    )
