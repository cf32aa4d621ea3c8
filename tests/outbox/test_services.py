"""The shared outbox life cycle, on a concrete test table (`tests.testapp.Ping`)."""

from datetime import timedelta
from typing import Any

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from enrs.outbox.models import AttemptOutcome, OutboxStatus
from enrs.outbox.services import (
    backoff_delay,
    outbox_claim,
    outbox_deadline,
    outbox_dispatch_on_commit,
    outbox_fail,
    outbox_requeue,
    outbox_retry,
    outbox_succeed,
)
from tests.testapp.models import Ping, PingAttempt

pytestmark = pytest.mark.django_db


class RecordingTask:
    def __init__(self) -> None:
        self.queued: list[Any] = []

    def delay(self, pk: Any) -> None:
        self.queued.append(pk)

    def apply_async(self, *, args: list[Any], countdown: float) -> None:
        self.queued.append(args[0])


def test_backoff_doubles_and_is_capped() -> None:
    assert 4 <= backoff_delay(1, base=5, cap=100) <= 6
    assert 16 <= backoff_delay(3, base=5, cap=100) <= 24
    assert backoff_delay(30, base=5, cap=100) <= 120


def test_dispatch_happens_only_after_commit(django_capture_on_commit_callbacks) -> None:
    task = RecordingTask()
    ping = Ping.objects.create(target="a")
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        outbox_dispatch_on_commit(ping, task)
    assert task.queued == []
    for callback in callbacks:
        callback()
    assert task.queued == [ping.pk]


def test_claim_takes_a_due_row_once_and_leases_it() -> None:
    ping = Ping.objects.create(target="a")
    claimed = outbox_claim(Ping, ping.pk, worker="w1", lease=60)
    assert claimed is not None
    assert claimed.status == OutboxStatus.IN_PROGRESS
    assert claimed.attempts == 1
    assert claimed.claimed_by == "w1"
    # A second task for the same row finds it leased by a live worker.
    assert outbox_claim(Ping, ping.pk, worker="w2") is None


def test_an_expired_lease_is_taken_over() -> None:
    ping = Ping.objects.create(target="a")
    outbox_claim(Ping, ping.pk, worker="dead", lease=60)
    Ping.objects.filter(pk=ping.pk).update(lease_until=timezone.now() - timedelta(seconds=1))
    claimed = outbox_claim(Ping, ping.pk, worker="w2")
    assert claimed is not None
    assert claimed.attempts == 2
    assert claimed.claimed_by == "w2"


def test_success_closes_the_row_and_records_the_attempt() -> None:
    ping = Ping.objects.create(target="a")
    claimed = outbox_claim(Ping, ping.pk)
    assert claimed is not None
    seen: list[int] = []
    done = outbox_succeed(
        claimed,
        attempt_model=PingAttempt,
        code="250",
        message="ok",
        attempt_fields={"ping": ping},
        on_success=lambda row: seen.append(row.pk),
    )
    assert done.status == OutboxStatus.DONE
    assert done.done_at is not None
    assert seen == [ping.pk]
    attempt = PingAttempt.objects.get(ping=ping)
    assert (attempt.number, attempt.outcome, attempt.code) == (1, AttemptOutcome.SUCCESS, "250")
    assert outbox_claim(Ping, ping.pk) is None  # closed rows are never claimed again


def test_temporary_failure_schedules_a_retry_then_fails_after_the_deadline(settings) -> None:
    settings.ENRS_OUTBOX_BACKOFF_BASE = 10
    ping = Ping.objects.create(target="a", deadline=outbox_deadline(seconds=30))
    claimed = outbox_claim(Ping, ping.pk)
    assert claimed is not None
    delay = outbox_fail(
        claimed,
        permanent=False,
        error="421 occupé",
        code="421",
        attempt_model=PingAttempt,
        attempt_fields={"ping": ping},
    )
    assert delay is not None
    assert 8 <= delay <= 12
    ping.refresh_from_db()
    assert ping.status == OutboxStatus.RETRY
    assert ping.next_attempt_at is not None
    assert outbox_claim(Ping, ping.pk) is None  # not due yet
    Ping.objects.filter(pk=ping.pk).update(next_attempt_at=timezone.now())
    again = outbox_claim(Ping, ping.pk)
    assert again is not None
    failed: list[int] = []
    # Third backoff (~20-40 s) would land after the 30 s deadline: the row fails now.
    Ping.objects.filter(pk=ping.pk).update(attempts=3)
    again.attempts = 3
    assert (
        outbox_fail(
            again,
            permanent=False,
            error="421",
            attempt_model=PingAttempt,
            attempt_fields={"ping": ping},
            on_failed=lambda row: failed.append(row.pk),
        )
        is None
    )
    ping.refresh_from_db()
    assert ping.status == OutboxStatus.FAILED
    assert failed == [ping.pk]
    assert list(PingAttempt.objects.filter(ping=ping).values_list("outcome", flat=True)) == [
        AttemptOutcome.TEMPORARY,
        AttemptOutcome.TEMPORARY,
    ]


def test_permanent_failure_fails_at_once_and_a_person_can_retry() -> None:
    ping = Ping.objects.create(target="a")
    claimed = outbox_claim(Ping, ping.pk)
    assert claimed is not None
    assert outbox_fail(claimed, permanent=True, error="550 inconnu", code="550") is None
    ping.refresh_from_db()
    assert (ping.status, ping.last_error_code) == (OutboxStatus.FAILED, "550")
    retried = outbox_retry(ping)
    assert retried.status == OutboxStatus.PENDING
    assert retried.deadline is not None
    assert retried.deadline > timezone.now()
    with pytest.raises(ValidationError, match="en échec"):
        outbox_retry(retried)


def test_requeue_finds_lost_rows_and_closes_expired_ones() -> None:
    now = timezone.now()
    old_pending = Ping.objects.create(target="pending")
    Ping.objects.filter(pk=old_pending.pk).update(updated_at=now - timedelta(minutes=5))
    fresh_pending = Ping.objects.create(target="fresh")  # its task is probably still in the broker
    dead = Ping.objects.create(
        target="dead", status=OutboxStatus.IN_PROGRESS, lease_until=now - timedelta(seconds=5)
    )
    live = Ping.objects.create(
        target="live", status=OutboxStatus.IN_PROGRESS, lease_until=now + timedelta(minutes=5)
    )
    due = Ping.objects.create(
        target="due", status=OutboxStatus.RETRY, next_attempt_at=now - timedelta(minutes=2)
    )
    expired = Ping.objects.create(
        target="expired",
        status=OutboxStatus.RETRY,
        deadline=now - timedelta(seconds=1),
        next_attempt_at=now - timedelta(minutes=2),
    )
    closed: list[str] = []
    task = RecordingTask()
    count = outbox_requeue(Ping, task, on_failed=lambda row: closed.append(row.target))
    assert sorted(task.queued) == sorted([old_pending.pk, dead.pk, due.pk])
    assert count == 3
    assert fresh_pending.pk not in task.queued
    assert live.pk not in task.queued
    expired.refresh_from_db()
    assert expired.status == OutboxStatus.FAILED
    assert closed == ["expired"]
