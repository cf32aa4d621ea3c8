"""Celery tasks of the usage core: thin wrappers over the rollup services."""

from typing import Any

from celery import shared_task

from . import rollups


@shared_task(name="enrs.usage.tasks.rollup")
def rollup() -> dict[str, Any]:
    """Run by beat every 5 minutes: recompute the days touched by newly recorded events."""
    result = rollups.rollup_run()
    return result.__dict__
