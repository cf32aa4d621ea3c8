"""Celery tasks of the ror app: thin wrappers that take ids and call a service."""

from typing import Any

from celery import shared_task

from . import freshness


@shared_task(name="ror.tasks.notify_stale_offers")
def notify_stale_offers() -> dict[str, int]:
    """Run by beat: write today's stale-offer notices (once per structure and day) and queue them; queue
    again the notices whose task was lost."""
    run = freshness.stale_notices_prepare()
    requeued = freshness.stale_notices_requeue()
    return {**run.__dict__, "requeued": requeued}


@shared_task(
    name="ror.tasks.send_stale_notice",
    bind=True,
    max_retries=freshness.NOTICE_MAX_ATTEMPTS,
    default_retry_delay=60,
)
def send_stale_notice(self: Any, notice_id: int) -> str:
    """Send one notice by e-mail; on a transport error, retry with exponential backoff."""
    try:
        return freshness.stale_notice_send(notice_id=notice_id)
    except Exception as exc:  # recorded on the row by the service
        raise self.retry(exc=exc, countdown=60 * 2**self.request.retries) from exc


@shared_task(name="ror.tasks.usage_snapshot")
def usage_snapshot() -> dict[str, int]:
    """Run by beat each night: ROR freshness and beds available per department, for the dashboards."""
    from .usage_hooks import usage_snapshots

    return usage_snapshots()
