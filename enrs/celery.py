"""The ENRS Celery application: queues `default`, `mssante`, `dicom`, `dmp` (see settings)."""

import os
from typing import Any

from celery import Celery
from celery.signals import worker_init

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "enrs.settings.dev")

app = Celery("enrs")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@worker_init.connect
def _workers_never_run_eagerly(sender: Any = None, **kwargs: Any) -> None:
    """A worker executes tasks it receives from the broker: even when settings ask for eager tasks (tests,
    the embedded demo), a retry it schedules must go back through the broker with its countdown."""
    app.conf.task_always_eager = False
