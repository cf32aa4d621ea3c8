"""Settings behave as documented: production refuses to start without its secrets; the embedded demo
defaults apply when no service is configured."""

import json

from tests.helpers import clean_env, run_python

VAULT_KEYS = "k1:" + "A" * 43 + "="  # 32 zero bytes: a test key, never a real one

SHOW = (
    "import django, json; django.setup(); from django.conf import settings as s; "
    "print(json.dumps({'engine': s.DATABASES['default']['ENGINE'], 'eager': s.CELERY_TASK_ALWAYS_EAGER, "
    "'demo': s.ENRS_DEMO_MODE, 'cache': s.CACHES['default']['BACKEND'], 'broker': s.CELERY_BROKER_URL, "
    "'storage': s.STORAGES['default']['BACKEND']}))"
)
GOOD_KEY = "k" * 20 + "-" + "production-secret-for-tests-0123456789abcdef"


def test_production_refuses_to_start_without_secret_key() -> None:
    env = clean_env(
        DJANGO_SETTINGS_MODULE="enrs.settings.production",
        DATABASE_URL="postgres://postgres@127.0.0.1:5432/enrs",
        REDIS_URL="redis://127.0.0.1:6379/0",
    )
    result = run_python("import django; django.setup()", env)
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr
    assert "SECRET_KEY est obligatoire en production" in result.stderr


def test_production_refuses_the_demo_key_and_missing_services() -> None:
    env = clean_env(DJANGO_SETTINGS_MODULE="enrs.settings.production", SECRET_KEY="enrs-demo-insecure-key")
    result = run_python("import django; django.setup()", env)
    assert result.returncode != 0
    assert "SECRET_KEY doit être une valeur secrète" in result.stderr

    env = clean_env(DJANGO_SETTINGS_MODULE="enrs.settings.production", SECRET_KEY=GOOD_KEY)
    result = run_python("import django; django.setup()", env)
    assert result.returncode != 0
    assert "DATABASE_URL est obligatoire" in result.stderr


def test_production_starts_with_its_secrets() -> None:
    env = clean_env(
        DJANGO_SETTINGS_MODULE="enrs.settings.production",
        SECRET_KEY=GOOD_KEY,
        DATABASE_URL="postgres://postgres@127.0.0.1:5432/enrs",
        REDIS_URL="redis://127.0.0.1:6379/0",
        ENRS_VAULT_KEYS=VAULT_KEYS,
        ENRS_VAULT_ACTIVE_KEY="k1",
    )
    result = run_python(SHOW, env)
    assert result.returncode == 0, result.stderr
    shown = json.loads(result.stdout)
    assert shown["engine"] == "django.db.backends.postgresql"
    assert shown["eager"] is False
    assert shown["demo"] is False
    assert shown["cache"] == "django.core.cache.backends.redis.RedisCache"


def test_embedded_defaults_without_services(tmp_path) -> None:
    env = clean_env(DJANGO_SETTINGS_MODULE="enrs.settings.dev", ENRS_VAR_DIR=str(tmp_path))
    result = run_python(SHOW, env)
    assert result.returncode == 0, result.stderr
    shown = json.loads(result.stdout)
    assert shown == {
        "engine": "django.db.backends.sqlite3",
        "eager": True,
        "demo": True,
        "cache": "django.core.cache.backends.locmem.LocMemCache",
        "broker": "memory://",
        "storage": "django.core.files.storage.FileSystemStorage",
    }


def test_postgres_and_redis_when_configured() -> None:
    env = clean_env(
        DJANGO_SETTINGS_MODULE="enrs.settings.dev",
        DATABASE_URL="postgres://postgres@127.0.0.1:5432/enrs",
        REDIS_URL="redis://127.0.0.1:6379/3",
    )
    shown = json.loads(run_python(SHOW, env).stdout)
    assert shown["engine"] == "django.db.backends.postgresql"
    assert shown["eager"] is False
    assert shown["demo"] is False
    assert shown["broker"] == "redis://127.0.0.1:6379/3"


def test_object_storage_backend_is_selected_by_environment() -> None:
    env = clean_env(
        DJANGO_SETTINGS_MODULE="enrs.settings.dev",
        ENRS_STORAGE_BACKEND="s3",
        AWS_STORAGE_BUCKET_NAME="enrs-test",
        AWS_S3_ENDPOINT_URL="http://127.0.0.1:9000",
    )
    shown = json.loads(run_python(SHOW, env).stdout)
    assert shown["storage"] == "storages.backends.s3.S3Storage"

    env["ENRS_STORAGE_BACKEND"] = "ftp"
    result = run_python(SHOW, env)
    assert result.returncode != 0
    assert "ENRS_STORAGE_BACKEND='ftp'" in result.stderr
