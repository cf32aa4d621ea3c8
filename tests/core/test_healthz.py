"""GET /healthz reports PostgreSQL, Redis and the Celery workers; 503 when one is down."""

from collections.abc import Iterator

import pytest
from django.test import Client, override_settings

from enrs.celery import app as celery_app
from tests.celery_worker import running_worker
from tests.helpers import free_port


@pytest.fixture
def not_eager() -> Iterator[None]:
    """Health checks ask real workers (the test settings run tasks eagerly by default)."""
    with override_settings(CELERY_TASK_ALWAYS_EAGER=False):
        yield


@pytest.mark.integration
@pytest.mark.django_db
def test_all_services_up_with_a_real_worker(client: Client, not_eager: None) -> None:
    with running_worker() as worker:
        response = client.get("/healthz")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert {k: v["status"] for k, v in body["services"].items()} == {
        "database": "ok",
        "redis": "ok",
        "celery": "ok",
    }
    assert "postgresql" in body["services"]["database"]["detail"]
    assert worker in body["services"]["celery"]["detail"]


@pytest.mark.django_db
def test_no_worker_is_503(client: Client, not_eager: None) -> None:
    with override_settings(ENRS_HEALTHZ_CELERY_TIMEOUT=0.3):
        response = client.get("/healthz")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "error"
    assert body["services"]["redis"]["status"] == "ok"
    assert body["services"]["celery"]["status"] == "down"
    assert "Aucun worker Celery" in body["services"]["celery"]["detail"]


@pytest.mark.django_db
def test_redis_down_is_503_with_a_clear_message(client: Client, not_eager: None) -> None:
    # A real connection attempt to a loopback port where nothing listens, as when Redis is stopped.
    dead = f"redis://:s3cret@127.0.0.1:{free_port()}/0"
    with override_settings(CELERY_BROKER_URL=dead):
        response = client.get("/healthz")
    assert response.status_code == 503
    body = response.json()
    assert body["services"]["database"]["status"] == "ok"
    assert body["services"]["redis"]["status"] == "down"
    assert body["services"]["redis"]["detail"].startswith("Redis injoignable (redis://:***@127.0.0.1:")
    assert "s3cret" not in response.content.decode()
    assert body["services"]["celery"]["status"] == "down"
    assert "broker Redis est injoignable" in body["services"]["celery"]["detail"]


def test_database_down_is_reported(tmp_path) -> None:
    """Run the check in a process whose database is unreachable (a closed loopback port)."""
    from tests.helpers import clean_env, run_python

    env = clean_env(
        DJANGO_SETTINGS_MODULE="enrs.settings.dev",
        DATABASE_URL=f"postgres://postgres@127.0.0.1:{free_port()}/enrs",
        ENRS_VAR_DIR=str(tmp_path),
    )
    code = (
        "import django, json; django.setup(); from enrs.core.health import check_database; "
        "c = check_database(); print(json.dumps([c.status, c.detail]))"
    )
    result = run_python(code, env)
    assert result.returncode == 0, result.stderr
    status, detail = __import__("json").loads(result.stdout)
    assert status == "down"
    assert detail.startswith("Base de données injoignable (postgresql)")


@pytest.mark.django_db
def test_healthz_is_public_and_not_cached(client: Client) -> None:
    response = client.get("/healthz")
    assert response.status_code in (200, 503)
    assert "no-cache" in response["Cache-Control"] or "max-age=0" in response["Cache-Control"]
    assert response["Content-Type"] == "application/json"


def test_celery_routes_each_app_to_its_queue() -> None:
    router = celery_app.amqp.router
    assert router.route({}, "messagerie.tasks.relay_message")["queue"].name == "mssante"
    assert router.route({}, "telemedecine.tasks.study_forward")["queue"].name == "dicom"
    assert router.route({}, "dmp.tasks.submission_send")["queue"].name == "dmp"
    assert router.route({}, "enrs.core.tasks.heartbeat")["queue"].name == "default"
