"""What the annuaire tells the usage core (registered at ``AnnuaireConfig.ready``), and its daily snapshot.

The core (``enrs.usage``) never imports the directory: this module implements its ``StructureDirectory``
protocol (department, category and GCS collège of a structure; labels for the dashboards' filters) and
registers it. ``mssante_coverage_snapshot`` records, per department of the region, how many active
professionals have an MSSanté address (the dashboards' "directory coverage").
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

from django.conf import settings
from django.db.models import Count, Exists, OuterRef, Q, Subquery
from django.utils import timezone

from enrs.usage.resolver import StructureContext, register_structure_directory
from enrs.usage.services import SnapshotRow, usage_snapshot_replace

from .models import (
    ACTIVE_ADHERENT_STATUSES,
    Adherent,
    College,
    Department,
    MailboxAddress,
    Professional,
    Structure,
)


def _region_code() -> str:
    return str(getattr(settings, "ENRS_REGION_CODE", ""))


class AnnuaireStructureDirectory:
    def context(self, structure_id: int) -> StructureContext | None:
        college = (
            Adherent.objects.filter(structure_id=OuterRef("pk"), status__in=ACTIVE_ADHERENT_STATUSES)
            .order_by("-status", "pk")  # "member" before "candidate"
            .values("college")[:1]
        )
        row = (
            Structure.objects.filter(pk=structure_id)
            .annotate(gcs_college=Subquery(college))
            .values("commune__department__code", "category_code", "gcs_college")
            .first()
        )
        if row is None:
            return None
        return StructureContext(
            department=row["commune__department__code"] or "",
            category=row["category_code"] or "",
            college=row["gcs_college"],
        )

    def structure_labels(self, structure_ids: Iterable[int]) -> dict[int, str]:
        return dict(Structure.objects.filter(pk__in=list(structure_ids)).values_list("pk", "name"))

    def department_labels(self) -> dict[str, str]:
        qs = Department.objects.all()
        if _region_code():
            qs = qs.filter(region_code=_region_code())
        return dict(qs.values_list("code", "name"))

    def category_labels(self) -> dict[str, str]:
        rows = (
            Structure.objects.exclude(category_code="")
            .values_list("category_code", "category_label")
            .order_by("category_code")
            .distinct()
        )
        labels: dict[str, str] = {}
        for code, label in rows:
            labels.setdefault(code, label or code)
        return labels

    def college_labels(self) -> dict[int, str]:
        return {int(value): str(label) for value, label in College.choices}


def register() -> None:
    register_structure_directory(AnnuaireStructureDirectory())


def mssante_coverage_snapshot(*, day: dt.date | None = None) -> int:
    """Per department of the region: active professionals with an active exercise there (value: those
    with at least one MSSanté address; dimension ``professionals``: all of them). Idempotent per day."""
    day = day or timezone.localdate()
    has_address = Exists(MailboxAddress.objects.filter(professional=OuterRef("pk")))
    departments = Department.objects.all()
    if _region_code():
        departments = departments.filter(region_code=_region_code())
    rows = []
    for code in departments.values_list("code", flat=True).order_by("code"):
        counts = (
            Professional.objects.filter(is_active=True, exercices__structure__commune__department__code=code)
            .annotate(has_address=has_address)
            .aggregate(
                total=Count("pk", distinct=True),
                covered=Count("pk", distinct=True, filter=Q(has_address=True)),
            )
        )
        if counts["total"]:
            rows.append(
                SnapshotRow(
                    value=float(counts["covered"]),
                    department=code,
                    dims={"professionals": counts["total"]},
                )
            )
    return usage_snapshot_replace(kind="annuaire.mssante_coverage", day=day, rows=rows)
