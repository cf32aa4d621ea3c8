"""A task makes the round trip through a real worker process on Redis."""

import os
from collections.abc import Iterator

import pytest

from enrs.celery import app as celery_app
from enrs.core import tasks
from tests.celery_worker import running_worker


@pytest.fixture
def real_broker() -> Iterator[None]:
    previous = celery_app.conf.task_always_eager
    celery_app.conf.task_always_eager = False
    try:
        yield
    finally:
        celery_app.conf.task_always_eager = previous


@pytest.mark.integration
def test_round_trip_through_a_real_worker(real_broker: None) -> None:
    with running_worker(queues="default"):
        result = tasks.echo.delay({"message": "bonjour", "n": 3})
        value = result.get(timeout=30)
        assert result.successful()
    assert value["payload"] == {"message": "bonjour", "n": 3}
    # It ran in the worker process, not eagerly in this one.
    assert value["pid"] != os.getpid()


@pytest.mark.integration
def test_heartbeat_is_recorded_by_the_worker(real_broker: None) -> None:
    from django.core.cache import cache

    cache.delete(tasks.HEARTBEAT_CACHE_KEY)
    with running_worker(queues="default"):
        at = tasks.heartbeat.delay().get(timeout=30)
    assert cache.get(tasks.HEARTBEAT_CACHE_KEY)["at"] == at
