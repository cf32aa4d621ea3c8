"""Celery tasks of the dmp app (queue ``dmp``): thin wrappers that take ids and call a service.

* ``submit`` — one attempt of one submission (ITI-41 or ITI-57, ``services.submission_attempt``); a
  temporary failure comes back with a delay and the task schedules itself again.
* ``requeue`` — every minute (``CELERY_BEAT_SCHEDULE["dmp-requeue"]``): rows whose task was lost (worker
  killed, broker restarted) are queued again; rows past their deadline are closed as failed.
"""

import logging

from celery import shared_task

from . import services

log = logging.getLogger("enrs.dmp")


@shared_task(name="dmp.tasks.submit", acks_late=True)
def submit(submission_id: int) -> None:
    delay = services.submission_attempt(submission_id=submission_id, worker=submit.request.hostname or "")
    if delay is None:
        return
    if submit.request.is_eager:
        # Run in-process (embedded demo, unit tests): no broker to wait on; the sweeper retries the row.
        log.info("DMP submission %s: retry left to the sweeper (eager mode)", submission_id)
    elif submit.app.conf.task_always_eager:
        # A real worker whose settings say "eager" (test settings): apply_async would run the retry inline
        # at once, ignoring the countdown; go through the broker.
        submit.app.send_task(submit.name, args=(submission_id,), countdown=delay)
    else:
        submit.apply_async(args=(submission_id,), countdown=delay)


@shared_task(name="dmp.tasks.requeue")
def requeue() -> int:
    return services.submissions_requeue(submit)
