"""Production: secrets and services must come from the environment; the app refuses to start otherwise."""

from django.core.exceptions import ImproperlyConfigured

from .base import *


def _required(name: str) -> str:
    value = env.str(name, default="")
    if not value:
        raise ImproperlyConfigured(
            f"La variable d'environnement {name} est obligatoire en production : "
            "le portail refuse de démarrer sans elle."
        )
    return value


SECRET_KEY = _required("SECRET_KEY")
if SECRET_KEY.startswith("enrs-demo-") or len(SECRET_KEY) < 50:
    raise ImproperlyConfigured("SECRET_KEY doit être une valeur secrète d'au moins 50 caractères.")
DATABASE_URL = _required("DATABASE_URL")
REDIS_URL = _required("REDIS_URL")
DATABASES = {"default": env.db_url_config(DATABASE_URL)}
DATABASES["default"]["CONN_MAX_AGE"] = env.int("DB_CONN_MAX_AGE", default=60)
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": REDIS_URL,
        "KEY_PREFIX": "enrs",
    }
}
CELERY_BROKER_URL = REDIS_URL
CELERY_RESULT_BACKEND = REDIS_URL
CELERY_TASK_ALWAYS_EAGER = False
ENRS_DEMO_MODE = False
DEBUG = False

# HTTPS everywhere, behind nginx which terminates TLS.
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=True)
SECURE_REDIRECT_EXEMPT = [r"^healthz$"]  # probes from the load balancer speak plain HTTP
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=31536000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = True
SECURE_HSTS_PRELOAD = True
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
# Cookies only over HTTPS, out of reach of scripts; sessions expire after SESSION_COOKIE_AGE idle (base.py).
SESSION_COOKIE_SECURE = True
SESSION_COOKIE_HTTPONLY = True
CSRF_COOKIE_SECURE = True
CSRF_COOKIE_HTTPONLY = True
X_FRAME_OPTIONS = "DENY"
# Content-Security-Policy (base.py): in production, also ask browsers to upgrade any http:// sub-resource.
CONTENT_SECURITY_POLICY["DIRECTIVES"]["upgrade-insecure-requests"] = True  # type: ignore[assignment]

WHITENOISE_USE_FINDERS = False  # collectstatic runs at image build time
WHITENOISE_AUTOREFRESH = False
STORAGES["staticfiles"] = {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"}

# Patient identity: test and demo INS are never accepted; stored content is encrypted under real keys.
ENRS_INS_ALLOW_TEST_OIDS = False
ENRS_VAULT_KEYS = _required("ENRS_VAULT_KEYS")
ENRS_VAULT_ACTIVE_KEY = _required("ENRS_VAULT_ACTIVE_KEY")
if MSSANTE_RELAY_SECURITY not in ("starttls", "tls"):
    raise ImproperlyConfigured("MSSANTE_RELAY_SECURITY doit valoir « starttls » ou « tls » en production.")
