"""The outbox life cycle, shared by every app's outbox table (see `enrs.outbox.models`).

Typical use in an app::

    # service, inside the user's transaction
    item = Delivery.objects.create(..., deadline=outbox_deadline(hours=24))
    outbox_dispatch_on_commit(item, deliver_task)

    # task (thin): claim, call the peer, record
    item = outbox_claim(Delivery, pk, worker=self.request.hostname)
    if item is None: return                     # someone else has it, or it is not due / closed
    try: answer = call_peer(item)
    except TemporaryError as e: delay = outbox_fail(item, Attempt, error=..., permanent=False)
    ...
    # periodic task: outbox_requeue(Delivery, deliver_task)
"""

from __future__ import annotations

import random
import socket
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any, TypeVar

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models, transaction
from django.db.models import Q
from django.utils import timezone

from .models import AttemptOutcome, OutboxAttempt, OutboxItem, OutboxStatus

Item = TypeVar("Item", bound=OutboxItem)


def _setting(name: str, default: float) -> float:
    return float(getattr(settings, name, default))


def lease_seconds() -> float:
    return _setting("ENRS_OUTBOX_LEASE_SECONDS", 300.0)


def backoff_delay(attempt: int, *, base: float | None = None, cap: float | None = None) -> float:
    """Seconds to wait after the `attempt`-th failure: base·2^(attempt-1), capped, ±20 % jitter so that
    rows failed together do not retry together."""
    base = _setting("ENRS_OUTBOX_BACKOFF_BASE", 5.0) if base is None else base
    cap = _setting("ENRS_OUTBOX_BACKOFF_CAP", 3600.0) if cap is None else cap
    delay = min(cap, base * (2 ** max(0, attempt - 1)))
    return delay * random.uniform(0.8, 1.2)  # noqa: S311 - jitter, not a secret


def outbox_deadline(*, seconds: float | None = None) -> datetime:
    """When a new row gives up retrying (default ``ENRS_OUTBOX_DEADLINE_SECONDS``, 24 h)."""
    if seconds is None:
        seconds = _setting("ENRS_OUTBOX_DEADLINE_SECONDS", 24 * 3600.0)
    return timezone.now() + timedelta(seconds=seconds)


def outbox_dispatch_on_commit(item: OutboxItem, task: Any, *, countdown: float | None = None) -> None:
    """Queue ``task.delay(item.pk)`` once the current transaction commits (never before: the worker must
    see the row). If the broker is down the row stays pending and the sweeper sends it later."""
    pk = item.pk

    def send() -> None:
        try:
            if countdown:
                task.apply_async(args=[pk], countdown=countdown)
            else:
                task.delay(pk)
        except Exception:
            import logging

            logging.getLogger("enrs.outbox").warning("broker unavailable, row %s left for the sweeper", pk)

    transaction.on_commit(send)


def _due(now: datetime) -> Q:
    return (
        Q(status=OutboxStatus.PENDING)
        | Q(status=OutboxStatus.RETRY, next_attempt_at__lte=now)
        | Q(status=OutboxStatus.IN_PROGRESS, lease_until__lt=now)  # its worker died
    )


def outbox_claim(model: type[Item], pk: Any, *, worker: str = "", lease: float | None = None) -> Item | None:
    """Take the row for one attempt (committed at once), or None when it is not due, closed, or being
    worked on by a live worker. The caller then makes the outside call outside any transaction."""
    now = timezone.now()
    with transaction.atomic():
        item = model._default_manager.select_for_update(skip_locked=True).filter(_due(now), pk=pk).first()
        if item is None:
            return None
        item.status = OutboxStatus.IN_PROGRESS
        item.attempts += 1
        item.lease_until = now + timedelta(seconds=lease if lease is not None else lease_seconds())
        item.claimed_by = (worker or socket.gethostname())[:200]
        item.save(update_fields=["status", "attempts", "lease_until", "claimed_by", "updated_at"])
    item._attempt_started_at = now  # type: ignore[attr-defined]
    return item


def _record_attempt(
    item: OutboxItem,
    attempt_model: type[OutboxAttempt] | None,
    outcome: str,
    code: str,
    message: str,
    **extra: Any,
) -> None:
    if attempt_model is None:
        return
    attempt_model._default_manager.create(
        number=item.attempts,
        started_at=getattr(item, "_attempt_started_at", None) or timezone.now(),
        outcome=outcome,
        code=code[:50],
        message=message,
        worker=item.claimed_by,
        **extra,
    )


def _refresh_locked(item: Item) -> Item:
    return type(item)._default_manager.select_for_update().get(pk=item.pk)


def outbox_succeed(
    item: Item,
    *,
    attempt_model: type[OutboxAttempt] | None = None,
    code: str = "",
    message: str = "",
    attempt_fields: dict[str, Any] | None = None,
    on_success: Callable[[Item], None] | None = None,
) -> Item:
    """Record a successful attempt: the row is done. ``on_success`` runs in the same transaction (the
    app's own state change, audit, usage event)."""
    with transaction.atomic():
        locked = _refresh_locked(item)
        locked.status = OutboxStatus.DONE
        locked.done_at = timezone.now()
        locked.lease_until = None
        locked.last_error = ""
        locked.last_error_code = ""
        locked.save(
            update_fields=["status", "done_at", "lease_until", "last_error", "last_error_code", "updated_at"]
        )
        locked._attempt_started_at = getattr(item, "_attempt_started_at", None)  # type: ignore[attr-defined]
        _record_attempt(
            locked, attempt_model, AttemptOutcome.SUCCESS, code, message, **(attempt_fields or {})
        )
        if on_success is not None:
            on_success(locked)
    return locked


def outbox_fail(
    item: Item,
    *,
    permanent: bool,
    error: str,
    code: str = "",
    attempt_model: type[OutboxAttempt] | None = None,
    attempt_fields: dict[str, Any] | None = None,
    on_failed: Callable[[Item], None] | None = None,
) -> float | None:
    """Record a failed attempt. A temporary failure schedules a retry with backoff and returns its delay
    in seconds; a permanent failure, or a retry that would land after the deadline, closes the row as
    failed (``on_failed`` runs in the same transaction) and returns None."""
    now = timezone.now()
    with transaction.atomic():
        locked = _refresh_locked(item)
        locked._attempt_started_at = getattr(item, "_attempt_started_at", None)  # type: ignore[attr-defined]
        _record_attempt(
            locked,
            attempt_model,
            AttemptOutcome.PERMANENT if permanent else AttemptOutcome.TEMPORARY,
            code,
            error,
            **(attempt_fields or {}),
        )
        locked.last_error = error
        locked.last_error_code = code[:50]
        locked.lease_until = None
        delay: float | None = None
        if not permanent:
            delay = backoff_delay(locked.attempts)
            if locked.deadline is not None and now + timedelta(seconds=delay) > locked.deadline:
                delay = None
        if delay is None:
            locked.status = OutboxStatus.FAILED
            locked.next_attempt_at = None
        else:
            locked.status = OutboxStatus.RETRY
            locked.next_attempt_at = now + timedelta(seconds=delay)
        locked.save(
            update_fields=[
                "status",
                "next_attempt_at",
                "last_error",
                "last_error_code",
                "lease_until",
                "updated_at",
            ]
        )
        if delay is None and on_failed is not None:
            on_failed(locked)
    return delay


def outbox_retry(item: Item, *, deadline: datetime | None = None) -> Item:
    """A person asks to try a failed row again: it goes back to pending with a fresh deadline. The caller
    audits and dispatches (``outbox_dispatch_on_commit``) in its own transaction."""
    locked = _refresh_locked(item)
    if locked.status != OutboxStatus.FAILED:
        raise ValidationError("Seul un envoi en échec peut être relancé.")
    locked.status = OutboxStatus.PENDING
    locked.next_attempt_at = None
    locked.deadline = deadline or outbox_deadline()
    locked.save(update_fields=["status", "next_attempt_at", "deadline", "updated_at"])
    return locked


def outbox_requeue(
    model: type[Item],
    task: Any,
    *,
    limit: int = 500,
    grace: float = 30.0,
    on_failed: Callable[[Item], None] | None = None,
) -> int:
    """Queue a task for every row that is due but probably has no task in flight: pending rows older than
    ``grace`` seconds, retries due for ``grace`` seconds, and rows whose lease expired (worker killed).
    Rows past their deadline that are not in progress are closed as failed (``on_failed`` runs in the
    same transaction). Returns the number queued.
    Queuing twice is harmless: `outbox_claim` lets only one task work on a row."""
    now = timezone.now()
    stale = now - timedelta(seconds=grace)
    expired = model._default_manager.filter(
        status__in=[OutboxStatus.PENDING, OutboxStatus.RETRY], deadline__lt=now
    ).values_list("pk", flat=True)[:limit]
    for pk in list(expired):
        with transaction.atomic():
            row = model._default_manager.select_for_update(skip_locked=True).filter(pk=pk).first()
            if row is not None and row.status in (OutboxStatus.PENDING, OutboxStatus.RETRY):
                row.status = OutboxStatus.FAILED
                row.last_error = row.last_error or "Délai maximal dépassé sans envoi réussi."
                row.save(update_fields=["status", "last_error", "updated_at"])
                if on_failed is not None:
                    on_failed(row)
    due = (
        model._default_manager.filter(
            Q(status=OutboxStatus.PENDING, updated_at__lt=stale)
            | Q(status=OutboxStatus.RETRY, next_attempt_at__lt=stale)
            | Q(status=OutboxStatus.IN_PROGRESS, lease_until__lt=now)
        )
        .order_by("pk")
        .values_list("pk", flat=True)[:limit]
    )
    pks = list(due)
    for pk in pks:
        task.delay(pk)
    return len(pks)


def outbox_counts(queryset: models.QuerySet[Any]) -> dict[str, int]:
    """Rows per status (for supervision pages)."""
    return dict(queryset.values_list("status").annotate(n=models.Count("pk")).values_list("status", "n"))
