"""Reads of the open-data import runs (staff pages)."""

from django.db.models import Count, QuerySet

from annuaire.models import ChangeKind, DirectoryChange, ImportRejection, ImportRun


def import_run_list() -> QuerySet[ImportRun]:
    return ImportRun.objects.select_related("actor").order_by("-started_at", "-id")


def import_run_get(*, pk: int) -> ImportRun:
    return ImportRun.objects.select_related("actor").get(pk=pk)


def import_rejection_list(*, run: ImportRun) -> QuerySet[ImportRejection]:
    return ImportRejection.objects.filter(run=run).order_by("line_number")


def import_change_counts(*, run: ImportRun) -> list[tuple[str, int]]:
    """(label, count) of the run's changes per kind, in the order of ChangeKind."""
    by_kind = {
        row["kind"]: row["n"]
        for row in DirectoryChange.objects.filter(run=run).values("kind").annotate(n=Count("id")).order_by()
    }
    return [(ChangeKind(kind).label, by_kind[kind]) for kind in ChangeKind.values if kind in by_kind]
