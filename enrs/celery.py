"""The ENRS Celery application: queues `default`, `mssante`, `dicom`, `dmp` (see settings)."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "enrs.settings.dev")

app = Celery("enrs")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
