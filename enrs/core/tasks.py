"""Tasks of the core: small, so that a round trip through a worker proves the pipeline works."""

import os
import socket

from celery import shared_task
from django.core.cache import cache
from django.utils import timezone

HEARTBEAT_CACHE_KEY = "enrs:celery:heartbeat"


@shared_task(name="enrs.core.tasks.heartbeat")
def heartbeat() -> str:
    """Run by beat every minute: records when a worker last ran a scheduled task."""
    now = timezone.now().isoformat()
    cache.set(HEARTBEAT_CACHE_KEY, {"at": now, "host": socket.gethostname()}, timeout=3600)
    return now


@shared_task(name="enrs.core.tasks.echo")
def echo(payload: dict) -> dict:
    """Return the payload with where it ran (host, process): used by the round-trip test."""
    return {"payload": payload, "host": socket.gethostname(), "pid": os.getpid()}
