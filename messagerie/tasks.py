"""Celery tasks of the messagerie app (queue ``mssante``): thin wrappers that take ids and call a service.

* ``deliver`` — relay an outgoing message (queued once per message when it is written): one attempt for
  its row and, over the same SMTP connection, for the other due rows (up to ``MSSANTE_DELIVERY_BATCH``,
  ``services.outgoing.deliveries_attempt_batch``). A task whose row another task already took still
  drains what is due, or does nothing (one statement). Rows that failed temporarily are scheduled again
  with their backoff delay; rows given back untried are picked up by ``deliver_batch``.
* ``deliver_batch`` — the same without a particular row: up to ``limit`` due rows.
* ``process_inbound`` — parse a message the listener stored and file it in the recipients' mailboxes.
* ``requeue`` — every minute: rows whose task was lost (worker killed, broker restarted) are queued again.
"""

from __future__ import annotations

from typing import Any

from celery import shared_task

from .services import incoming, outgoing


def _follow_up(outcome: outgoing.BatchOutcome) -> None:
    for pk, delay in outcome.retries:
        deliver.apply_async(args=(pk,), countdown=delay)
    if outcome.released:
        deliver_batch.apply_async(countdown=outcome.released_delay or 0.0)


@shared_task(name="messagerie.tasks.deliver", acks_late=True, ignore_result=True)
def deliver(delivery_id: int) -> None:
    _follow_up(outgoing.deliveries_attempt_batch(first_id=delivery_id, worker=deliver.request.hostname or ""))


@shared_task(name="messagerie.tasks.deliver_batch", acks_late=True, ignore_result=True)
def deliver_batch(limit: int | None = None) -> None:
    _follow_up(outgoing.deliveries_attempt_batch(limit=limit, worker=deliver_batch.request.hostname or ""))


@shared_task(name="messagerie.tasks.process_inbound", acks_late=True, ignore_result=True)
def process_inbound(inbound_id: int) -> None:
    delay = incoming.inbound_process(inbound_id=inbound_id, worker=process_inbound.request.hostname or "")
    if delay is not None:
        process_inbound.apply_async(args=(inbound_id,), countdown=delay)


@shared_task(name="messagerie.tasks.requeue")
def requeue() -> dict[str, Any]:
    return {
        "deliveries": outgoing.deliveries_requeue(deliver),
        "inbound": incoming.inbound_requeue(process_inbound),
    }
