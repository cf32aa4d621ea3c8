"""Celery tasks of the RPU app: thin wrappers that call a service (queue "default")."""

from typing import Any

from celery import shared_task

from . import services
from .selectors import yesterday


@shared_task(name="enrs.rpu.tasks.scan_drop_dir")
def scan_drop_dir() -> dict[str, int]:
    """Run by beat: import the files waiting in RPU_DROP_DIR."""
    outcomes = services.drop_dir_scan()
    refused = sum(1 for outcome in outcomes if outcome.refused)
    return {"imported": len(outcomes) - refused, "refused": refused}


@shared_task(name="enrs.rpu.tasks.supervise")
def supervise() -> dict[str, int]:
    """Run by beat each morning: check yesterday's feed of every emergency department and notify."""
    checks = services.feed_check_run(day=yesterday())
    counts: dict[str, int] = {}
    for check in checks:
        counts[check.state] = counts.get(check.state, 0) + 1
    return counts


@shared_task(
    name="enrs.rpu.tasks.send_feed_notice",
    bind=True,
    max_retries=services.NOTICE_MAX_ATTEMPTS,
    default_retry_delay=60,
)
def send_feed_notice(self: Any, check_id: int) -> str:
    """Send one supervision e-mail; on a transport error, retry with exponential backoff."""
    try:
        return services.feed_notice_send(check_id=check_id)
    except Exception as exc:  # recorded on the row by the service
        raise self.retry(exc=exc, countdown=60 * 2**self.request.retries) from exc
