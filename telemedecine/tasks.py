"""Celery tasks of the telemedecine app (queue ``dicom``): thin wrappers that take ids and call a service.

* ``forward`` — one attempt to forward a study to a PACS (``services.transfers.transfer_attempt``); a
  temporary failure comes back with a delay and the task schedules itself again; accepted instances are
  never sent twice.
* ``requeue`` — every minute: transfers whose task was lost are queued again.
* ``expire_requests`` — every five minutes: requests nobody accepted in time expire.
* ``expire_uploads`` — every hour: browser uploads abandoned for a day are refused and their chunks deleted.
"""

from celery import shared_task

from .services import acts, transfers, uploads


@shared_task(name="telemedecine.tasks.forward", acks_late=True)
def forward(transfer_id: int) -> None:
    delay = transfers.transfer_attempt(transfer_id=transfer_id, worker=forward.request.hostname or "")
    if delay is not None:
        forward.apply_async(args=(transfer_id,), countdown=delay)


@shared_task(name="telemedecine.tasks.requeue")
def requeue() -> int:
    return transfers.transfers_requeue(forward)


@shared_task(name="telemedecine.tasks.expire_requests")
def expire_requests() -> int:
    return acts.acts_expire()


@shared_task(name="telemedecine.tasks.expire_uploads")
def expire_uploads() -> int:
    return uploads.uploads_expire_stale()
