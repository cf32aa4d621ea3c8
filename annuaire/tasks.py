"""Celery tasks of the annuaire app: thin wrappers that take ids and call a service."""

from celery import shared_task


@shared_task(name="annuaire.tasks.usage_snapshot")
def usage_snapshot() -> int:
    """Run by beat each night: today's MSSanté coverage per department, for the dashboards."""
    from .usage_hooks import mssante_coverage_snapshot

    return mssante_coverage_snapshot()
