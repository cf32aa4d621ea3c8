"""Celery tasks of the messagerie app (queue ``mssante``): thin wrappers that take ids and call a service.

* ``deliver`` — one attempt to relay an outgoing message (``services.outgoing.delivery_attempt``); a
  temporary failure comes back with a delay and the task schedules itself again.
* ``process_inbound`` — parse a message the listener stored and file it in the recipients' mailboxes.
* ``requeue`` — every minute: rows whose task was lost (worker killed, broker restarted) are queued again.
"""

from celery import shared_task

from .services import incoming, outgoing


@shared_task(name="messagerie.tasks.deliver", acks_late=True, ignore_result=True)
def deliver(delivery_id: int) -> None:
    delay = outgoing.delivery_attempt(delivery_id=delivery_id, worker=deliver.request.hostname or "")
    if delay is not None:
        deliver.apply_async(args=(delivery_id,), countdown=delay)


@shared_task(name="messagerie.tasks.process_inbound", acks_late=True, ignore_result=True)
def process_inbound(inbound_id: int) -> None:
    delay = incoming.inbound_process(inbound_id=inbound_id, worker=process_inbound.request.hostname or "")
    if delay is not None:
        process_inbound.apply_async(args=(inbound_id,), countdown=delay)


@shared_task(name="messagerie.tasks.requeue")
def requeue() -> dict[str, int]:
    return {
        "deliveries": outgoing.deliveries_requeue(deliver),
        "inbound": incoming.inbound_requeue(process_inbound),
    }
