"""A real Celery worker process on the test Redis, for integration tests."""

import os
import signal
import subprocess
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from django.conf import settings

from enrs.celery import app as celery_app
from tests.helpers import REPO, wait_until

QUEUES = "default,mssante,dicom,dmp"


def _responding(name: str) -> bool:
    replies = celery_app.control.ping(destination=[name], timeout=0.5) or []
    return any(name in reply for reply in replies)


@contextmanager
def running_worker(*, queues: str = QUEUES, database_name: str | None = None) -> Iterator[str]:
    """Start `celery -A enrs worker` as a subprocess on the test broker; yield its node name."""
    name = f"enrs-test-{uuid.uuid4().hex[:8]}@localhost"
    env = dict(os.environ)
    env["DJANGO_SETTINGS_MODULE"] = "enrs.settings.test"
    env["TEST_REDIS_URL"] = settings.CELERY_BROKER_URL
    if database_name:
        db = settings.DATABASES["default"]
        env["DATABASE_URL"] = (
            f"postgres://{db['USER']}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{database_name}"
        )
    log_path = REPO / "var" / "test-logs" / f"{name.split('@')[0]}.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    log = open(log_path, "w")  # noqa: SIM115 - closed below
    process = subprocess.Popen(
        [
            str(REPO / ".venv" / "bin" / "celery"),
            "-A",
            "enrs",
            "worker",
            "-Q",
            queues,
            "-n",
            name,
            "--pool",
            "solo",
            "--without-gossip",
            "--without-mingle",
            "--loglevel",
            "INFO",
        ],
        cwd=REPO,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        try:
            wait_until(lambda: process.poll() is None and _responding(name), timeout=60, what="celery worker")
        except TimeoutError as exc:
            raise TimeoutError(f"{exc}; worker log:\n{log_path.read_text()[-3000:]}") from exc
        yield name
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        log.close()
