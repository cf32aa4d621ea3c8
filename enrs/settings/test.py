"""Test settings: real PostgreSQL and Redis, as in production (never SQLite)."""

from .base import *

DATABASE_URL = env.str("DATABASE_URL", default="postgres://postgres@127.0.0.1:5432/enrs")
REDIS_URL = env.str("TEST_REDIS_URL", default="redis://127.0.0.1:6379/14")
DATABASES = {"default": env.db_url_config(DATABASE_URL)}
DATABASES["default"]["CONN_MAX_AGE"] = 0
# Test databases are emptied with TRUNCATE after tests on committed data; the audit trail's trigger
# allows that only in sessions that opt in (production never does).
DATABASES["default"]["OPTIONS"] = {"options": "-c enrs.audit_allow_truncate=on"}
CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": REDIS_URL,
        "KEY_PREFIX": "enrs-test",
    }
}
CELERY_BROKER_URL = REDIS_URL
CELERY_RESULT_BACKEND = REDIS_URL
# Unit tests run tasks in-process; the integration tests start a real worker on Redis.
CELERY_TASK_ALWAYS_EAGER = True
ENRS_DEMO_MODE = False

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
MEDIA_ROOT = VAR_DIR / "test-media"
STORAGES["default"] = {
    "BACKEND": "django.core.files.storage.FileSystemStorage",
    "OPTIONS": {"location": str(MEDIA_ROOT)},
}
# A concrete outbox table for the tests of the shared outbox base.
INSTALLED_APPS = [*INSTALLED_APPS, "tests.testapp"]
