"""Settings shared by every environment, driven by environment variables.

Every variable has a safe default for the embedded demo (SQLite, in-process Celery, local files);
`production.py` removes the defaults of secrets and refuses to start without them. The README lists
every variable with its default and meaning.
"""

from pathlib import Path

import environ
from kombu import Exchange, Queue

BASE_DIR = Path(__file__).resolve().parent.parent.parent
VAR_DIR = Path(environ.Env().str("ENRS_VAR_DIR", default=str(BASE_DIR / "var")))

env = environ.Env()

# --- Core -------------------------------------------------------------------------------------
SECRET_KEY = env.str("SECRET_KEY", default="enrs-demo-insecure-key-never-use-in-production")
DEBUG = env.bool("DEBUG", default=False)
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "testserver"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

# Reverse proxies (nginx) whose forwarded headers (client IP, request id, CPS client certificate) are
# trusted. Headers from any other peer are ignored.
TRUSTED_PROXY_CIDRS = env.list("TRUSTED_PROXY_CIDRS", default=["127.0.0.1/32", "::1/128"])

# Region served by this portal (INSEE region code). The name shown in the header comes from it.
ENRS_REGION_CODE = env.str("ENRS_REGION_CODE", default="53")

# --- Backing services: PostgreSQL + Redis, or the embedded demo defaults --------------------------
DATABASE_URL = env.str("DATABASE_URL", default="")
REDIS_URL = env.str("REDIS_URL", default="")

if DATABASE_URL:
    DATABASES = {"default": env.db_url_config(DATABASE_URL)}
    DATABASES["default"].setdefault("CONN_MAX_AGE", env.int("DB_CONN_MAX_AGE", default=60))
    DATABASES["default"].setdefault("CONN_HEALTH_CHECKS", True)
else:
    # Embedded demo database: a fresh clone has no var/ yet, and SQLite does not create folders.
    VAR_DIR.mkdir(parents=True, exist_ok=True)
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": VAR_DIR / "demo.sqlite3",
        }
    }

# The portal is in demo mode when it runs on the embedded defaults: a banner says so.
ENRS_DEMO_MODE = env.bool("ENRS_DEMO_MODE", default=not (DATABASE_URL and REDIS_URL))

if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": "enrs",
        }
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

# --- Applications -------------------------------------------------------------------------------
INSTALLED_APPS = [
    "enrs.core.admin_site.ENRSAdminConfig",  # django.contrib.admin behind the portal's strong sign-in
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "django.forms",  # FORM_RENDERER = TemplatesSetting finds Django's widget templates here
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_otp",
    "django_otp.plugins.otp_totp",
    "django_otp.plugins.otp_static",
    "widget_tweaks",
    "dsfr",
    # ENRS core (owned by the project: shared by several apps)
    "enrs.core",
    "enrs.accounts",
    "enrs.audit",
    "enrs.patients",
    "enrs.outbox",
    "enrs.vault",
    "enrs.usage",
    "enrs.rpu",
    "enrs.dashboards",
    # ENRS services
    "annuaire",
    "messagerie",
    "dmp",
    "telemedecine",
    "ror",
]

MIDDLEWARE = [
    "enrs.core.middleware.RequestIdMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django_otp.middleware.OTPMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Every page needs a signed-in user unless its view is marked @login_not_required.
    "django.contrib.auth.middleware.LoginRequiredMiddleware",
]

ROOT_URLCONF = "enrs.urls"
WSGI_APPLICATION = "enrs.wsgi.application"
ASGI_APPLICATION = "enrs.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.debug",
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "enrs.core.context_processors.portal",
            ],
        },
    }
]
FORM_RENDERER = "django.forms.renderers.TemplatesSetting"

# --- Identity -----------------------------------------------------------------------------------
AUTH_USER_MODEL = "accounts.User"
LOGIN_URL = "accounts:login"
LOGIN_REDIRECT_URL = "core:home"
LOGOUT_REDIRECT_URL = "core:home"
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 12}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
SESSION_COOKIE_AGE = env.int("SESSION_COOKIE_AGE", default=30 * 60)  # 30 minutes
SESSION_SAVE_EVERY_REQUEST = True  # idle timeout: every request pushes the expiry back
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"

# --- Internationalisation -----------------------------------------------------------------------
LANGUAGE_CODE = "fr"
LANGUAGES = [("fr", "Français")]
TIME_ZONE = "Europe/Paris"
USE_I18N = True
USE_TZ = True

# --- Files: everything stored goes through Django's storage API -------------------------------------
STATIC_URL = "/static/"
STATIC_ROOT = Path(env.str("STATIC_ROOT", default=str(VAR_DIR / "static")))
# Outside production (demo, dev, tests) WhiteNoise serves static files straight from the apps.
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = True
MEDIA_URL = "/media/"
MEDIA_ROOT = Path(env.str("MEDIA_ROOT", default=str(VAR_DIR / "media")))

ENRS_STORAGE_BACKEND = env.str("ENRS_STORAGE_BACKEND", default="filesystem")  # filesystem | s3
if ENRS_STORAGE_BACKEND == "s3":
    _default_storage = {
        "BACKEND": "storages.backends.s3.S3Storage",
        "OPTIONS": {
            "bucket_name": env.str("AWS_STORAGE_BUCKET_NAME", default="enrs"),
            "endpoint_url": env.str("AWS_S3_ENDPOINT_URL", default="") or None,
            "region_name": env.str("AWS_S3_REGION_NAME", default="") or None,
            "access_key": env.str("AWS_ACCESS_KEY_ID", default="") or None,
            "secret_key": env.str("AWS_SECRET_ACCESS_KEY", default="") or None,
            "default_acl": None,
            "querystring_auth": True,
            "file_overwrite": False,
        },
    }
elif ENRS_STORAGE_BACKEND == "filesystem":
    _default_storage = {
        "BACKEND": "django.core.files.storage.FileSystemStorage",
        "OPTIONS": {"location": str(MEDIA_ROOT)},
    }
else:
    from django.core.exceptions import ImproperlyConfigured

    raise ImproperlyConfigured(
        f"ENRS_STORAGE_BACKEND={ENRS_STORAGE_BACKEND!r}: valeurs possibles « filesystem » ou « s3 »."
    )
STORAGES = {
    "default": _default_storage,
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- REST API -----------------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["rest_framework.authentication.SessionAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.PageNumberPagination",
    "PAGE_SIZE": 50,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "ENRS API",
    "DESCRIPTION": "API du portail régional e-santé (ENRS).",
    "VERSION": "0.1.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SERVE_PERMISSIONS": ["rest_framework.permissions.IsAuthenticated"],
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
}

# --- Celery -------------------------------------------------------------------------------------
# Without REDIS_URL (embedded demo) tasks run in-process, eagerly.
CELERY_BROKER_URL = REDIS_URL or "memory://"
CELERY_RESULT_BACKEND = REDIS_URL or "cache+memory://"
CELERY_TASK_ALWAYS_EAGER = env.bool("CELERY_TASK_ALWAYS_EAGER", default=not REDIS_URL)
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_TASK_ACKS_LATE = True  # a task whose worker dies is delivered again
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_RESULT_EXPIRES = 24 * 3600
CELERY_TIMEZONE = TIME_ZONE
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 3600}
CELERY_TASK_DEFAULT_QUEUE = "default"
CELERY_TASK_QUEUES = [
    Queue("default", Exchange("default"), routing_key="default"),
    Queue("mssante", Exchange("mssante"), routing_key="mssante"),
    Queue("dicom", Exchange("dicom"), routing_key="dicom"),
    Queue("dmp", Exchange("dmp"), routing_key="dmp"),
]
# Each app's slow, failure-prone work has its own queue so that one stuck peer cannot starve others.
CELERY_TASK_ROUTES = {
    "messagerie.tasks.*": {"queue": "mssante"},
    "telemedecine.tasks.*": {"queue": "dicom"},
    "dmp.tasks.*": {"queue": "dmp"},
}
CELERY_BEAT_SCHEDULE = {
    "worker-heartbeat": {
        "task": "enrs.core.tasks.heartbeat",
        "schedule": 60.0,
    },
}
# Health check: how long /healthz waits for a worker to answer a ping.
ENRS_HEALTHZ_CELERY_TIMEOUT = env.float("ENRS_HEALTHZ_CELERY_TIMEOUT", default=1.0)

# --- Logging ------------------------------------------------------------------------------------
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
    },
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
    "loggers": {
        "django.db.backends": {"level": "WARNING"},
    },
}

# --- Security headers -----------------------------------------------------------------------------
# Content-Security-Policy (django-csp 4). The pages load only our own files: DSFR's CSS, fonts, icons
# and its JS (`type="module"`) are served from /static/, and no template carries an inline script or
# style. Icons embedded in the DSFR CSS are `data:` images.
from csp.constants import NONE, SELF  # noqa: E402

INSTALLED_APPS += ["csp"]
MIDDLEWARE.insert(
    MIDDLEWARE.index("django.middleware.security.SecurityMiddleware") + 1, "csp.middleware.CSPMiddleware"
)
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF],
        "style-src": [SELF],
        "img-src": [SELF, "data:"],
        "font-src": [SELF],
        "connect-src": [SELF],
        "manifest-src": [SELF],
        "object-src": [NONE],
        "base-uri": [SELF],
        "form-action": [SELF],
        "frame-ancestors": [NONE],
    },
}

# --- Pro Santé Connect ----------------------------------------------------------------------------
# OpenID Connect sign-in with CPS / e-CPS (enrs/accounts/psc.py). Empty PSC_DISCOVERY_URL = disabled.
# Production (ANS): https://auth.esw.esante.gouv.fr/auth/realms/esante-wallet/.well-known/wallet-openid-configuration
# Sandbox (BAS): the same path on auth.bas.psc.esante.gouv.fr. HTTPS only (plain HTTP on loopback only).
PSC_DISCOVERY_URL = env.str("PSC_DISCOVERY_URL", default="")
PSC_CLIENT_ID = env.str("PSC_CLIENT_ID", default="")
PSC_CLIENT_SECRET = env.str("PSC_CLIENT_SECRET", default="")
# How the client authenticates at the token endpoint: client_secret_basic or client_secret_post.
PSC_TOKEN_AUTH_METHOD = env.str("PSC_TOKEN_AUTH_METHOD", default="client_secret_basic")
PSC_SCOPES = env.str("PSC_SCOPES", default="openid scope_all")
PSC_ACR_VALUES = env.str("PSC_ACR_VALUES", default="eidas1")
# `acr` values accepted in the ID token (e.g. "eidas1,eidas3"); empty = any.
PSC_ACCEPTED_ACR = env.list("PSC_ACCEPTED_ACR", default=[])
PSC_HTTP_TIMEOUT = env.float("PSC_HTTP_TIMEOUT", default=5.0)  # seconds, each call to the provider
PSC_METADATA_CACHE_SECONDS = env.int("PSC_METADATA_CACHE_SECONDS", default=3600)  # discovery + JWKS
# Callback and post-logout URLs registered at the ANS; empty = built from the request's host.
PSC_REDIRECT_URI = env.str("PSC_REDIRECT_URI", default="")
PSC_POST_LOGOUT_REDIRECT_URI = env.str("PSC_POST_LOGOUT_REDIRECT_URI", default="")

if PSC_DISCOVERY_URL:
    from urllib.parse import urlsplit as _psc_urlsplit

    from django.core.exceptions import ImproperlyConfigured as _PSCImproperlyConfigured

    if not (PSC_CLIENT_ID and PSC_CLIENT_SECRET):
        raise _PSCImproperlyConfigured(
            "PSC_DISCOVERY_URL est défini : PSC_CLIENT_ID et PSC_CLIENT_SECRET sont requis."
        )
    if PSC_TOKEN_AUTH_METHOD not in ("client_secret_basic", "client_secret_post"):
        raise _PSCImproperlyConfigured(
            f"PSC_TOKEN_AUTH_METHOD={PSC_TOKEN_AUTH_METHOD!r} : valeurs possibles "
            "« client_secret_basic » ou « client_secret_post »."
        )
    # Logout is a form POST that redirects to the provider's end_session_endpoint (same host as the
    # discovery document at PSC): browsers apply `form-action` to that redirect.
    _psc_origin = "{0.scheme}://{0.netloc}".format(_psc_urlsplit(PSC_DISCOVERY_URL))
    CONTENT_SECURITY_POLICY["DIRECTIVES"]["form-action"] = [
        *CONTENT_SECURITY_POLICY["DIRECTIVES"]["form-action"],
        _psc_origin,
    ]

# The login page shows the "S'identifier avec Pro Santé Connect" button only when PSC is configured.
from typing import cast as _psc_cast  # noqa: E402

_psc_cast("dict[str, list[str]]", TEMPLATES[0]["OPTIONS"])["context_processors"].append(
    "enrs.accounts.psc_views.psc_context"
)
# --- end of Pro Santé Connect ---------------------------------------------------------------------

# --- CPS card sign-in -----------------------------------------------------------------------------
# nginx asks for an optional client certificate (deploy/nginx/enrs.conf) and forwards it, URL-encoded,
# with its own verdict; Django checks it again (enrs/accounts/cps.py) and opens a strong session.
# CPS_CA_BUNDLE: PEM file of the IGC-Santé CAs (the same as nginx's ssl_client_certificate); empty = CPS
# sign-in disabled. CPS_CRL_FILE: PEM CRLs, one per CA (the same as nginx's ssl_crl); empty = no
# revocation check. Both files are re-read when they change. `manage.py make_test_pki DIR` makes test ones.
CPS_CA_BUNDLE = env.str("CPS_CA_BUNDLE", default="")
CPS_CRL_FILE = env.str("CPS_CRL_FILE", default="")
# request.META keys of the headers set by nginx (X-SSL-Client-Cert / X-SSL-Client-Verify), read only
# from TRUSTED_PROXY_CIDRS. CPS_VERIFY_HEADER empty = do not require nginx's verdict to be SUCCESS.
CPS_CERT_HEADER = env.str("CPS_CERT_HEADER", default="HTTP_X_SSL_CLIENT_CERT")
CPS_VERIFY_HEADER = env.str("CPS_VERIFY_HEADER", default="HTTP_X_SSL_CLIENT_VERIFY")
# The login page shows the "Se connecter avec ma carte CPS" button only when CPS_CA_BUNDLE is set.
from typing import cast as _cps_cast  # noqa: E402

_cps_cast("dict[str, list[str]]", TEMPLATES[0]["OPTIONS"])["context_processors"].append(
    "enrs.accounts.cps_views.cps_context"
)
# --- end of CPS card sign-in ----------------------------------------------------------------------

# --- OTP and lockout ------------------------------------------------------------------------------
# Password + one-time code sign-in (enrs/accounts/views.py, otp_views.py, otp_services.py). Clinicians and
# administrators must enrol an authenticator app (TOTP, RFC 6238: HMAC-SHA-1, 30 s steps, 6 digits);
# GCS staff and ARS analysts may. Ten one-time backup codes (otp_static, stored as keyed hashes) and a code
# sent by e-mail (otp_email) are the fallbacks when the phone is not at hand.
from datetime import timedelta as _otp_timedelta  # noqa: E402

INSTALLED_APPS += ["django_otp.plugins.otp_email", "axes"]
# Axes turns lockouts flagged during the request into the "account locked" page (last middleware).
MIDDLEWARE.append("axes.middleware.AxesMiddleware")
# AxesStandaloneBackend comes first: it refuses attempts on a locked account before the password is checked.
# With it, `authenticate()` needs the request: tests sign in with `client.force_login()`, not `login()`.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    *[
        backend
        for backend in globals().get("AUTHENTICATION_BACKENDS", ["django.contrib.auth.backends.ModelBackend"])
        if backend != "axes.backends.AxesStandaloneBackend"
    ],
]

# TOTP: ±1 step of tolerance around the server's clock, no learnt drift (OTP_TOTP_SYNC) that would widen
# the window over time. A code is accepted once: the device keeps the last step used (`last_t`).
OTP_TOTP_ISSUER = env.str("OTP_TOTP_ISSUER", default="ENRS")
OTP_TOTP_SYNC = False
# django-otp's own exponential back-off after each wrong code (1, 2, 4, 8… seconds, kept until a success),
# on top of the lockout below: it caps guessing over days even when the lockout expires.
OTP_TOTP_THROTTLE_FACTOR = 1
OTP_STATIC_THROTTLE_FACTOR = 1
OTP_EMAIL_THROTTLE_FACTOR = 1
# Fallback code by e-mail (to the account's address): valid 5 minutes, one sending per minute at most.
ENRS_OTP_EMAIL_FALLBACK = env.bool("ENRS_OTP_EMAIL_FALLBACK", default=True)
OTP_EMAIL_TOKEN_VALIDITY = 300
OTP_EMAIL_COOLDOWN_DURATION = 60
OTP_EMAIL_SUBJECT = "ENRS : votre code de connexion"
OTP_EMAIL_BODY_TEMPLATE_PATH = "accounts/email/otp_code.txt"

# Outgoing e-mail (unless another block set it up first). The embedded demo prints messages on the console;
# elsewhere they go to the SMTP relay EMAIL_HOST:EMAIL_PORT.
if "EMAIL_BACKEND" not in globals():
    EMAIL_BACKEND = env.str(
        "EMAIL_BACKEND",
        default="django.core.mail.backends.console.EmailBackend"
        if ENRS_DEMO_MODE
        else "django.core.mail.backends.smtp.EmailBackend",
    )
    EMAIL_HOST = env.str("EMAIL_HOST", default="localhost")
    EMAIL_PORT = env.int("EMAIL_PORT", default=25)
    EMAIL_HOST_USER = env.str("EMAIL_HOST_USER", default="")
    EMAIL_HOST_PASSWORD = env.str("EMAIL_HOST_PASSWORD", default="")
    EMAIL_USE_TLS = env.bool("EMAIL_USE_TLS", default=False)
    EMAIL_TIMEOUT = env.int("EMAIL_TIMEOUT", default=10)  # seconds: a stuck relay must not hang sign-in
    DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="ENRS <ne-pas-repondre@localhost>")
OTP_EMAIL_SENDER = DEFAULT_FROM_EMAIL

# Lockout (django-axes, attempts kept in the database): 5 failures within 15 minutes lock the account for
# 15 minutes. Wrong passwords and wrong one-time codes count together (otp_services records the latter).
# Locked by username only: clinicians of one hospital share its public address, so an IP lock would lock
# them all out; per-address rate limiting is nginx's job (limit_req). Hence axes.W006 is silenced.
AXES_FAILURE_LIMIT = 5
AXES_COOLOFF_TIME = _otp_timedelta(minutes=15)
AXES_LOCKOUT_PARAMETERS = ["username"]
# Attempts refused while locked do not extend the lock: it ends 15 minutes after the 5th failure.
AXES_RESET_COOL_OFF_ON_FAILURE_DURING_LOCKOUT = False
# Failures are forgotten after a *complete* sign-in (password, then the code when one is due), which
# otp_services.lockout_reset does. Axes' own reset at the password step would let someone who knows the
# password try 4 codes, sign in again, try 4 more… without ever being locked.
AXES_RESET_ON_SUCCESS = False
AXES_LOCKOUT_CALLABLE = "enrs.accounts.views.lockout_response"  # French page, audited (auth.lockout)
AXES_CLIENT_IP_CALLABLE = "enrs.core.net.client_ip"  # X-Real-IP only from TRUSTED_PROXY_CIDRS
AXES_SENSITIVE_PARAMETERS = ["username", "ip_address", "code"]  # never stored in axes' attempt rows
AXES_DISABLE_ACCESS_LOG = True  # successful sign-ins are in the audit trail (auth.login)
SILENCED_SYSTEM_CHECKS = [*globals().get("SILENCED_SYSTEM_CHECKS", []), "axes.W006"]
# --- end of OTP and lockout -----------------------------------------------------------------------

# --- GCS members (adhérents) ----------------------------------------------------------------------
# Onboarding a structure gives it an organisational (ORG) MSSanté address on the region's operator domain
# (annuaire/services/members.py). Signed conventions are PDF files stored through the default storage,
# at most ENRS_MEMBER_CONVENTION_MAX_BYTES each.
ENRS_MSSANTE_DOMAIN = env.str("ENRS_MSSANTE_DOMAIN", default="enrs-demo.mssante.fr")
ENRS_MEMBER_CONVENTION_MAX_BYTES = env.int("ENRS_MEMBER_CONVENTION_MAX_BYTES", default=10 * 1024 * 1024)
# --- end of GCS members ---------------------------------------------------------------------------

# --- ROR (offers, capacities, freshness) ------------------------------------------------------------
from celery.schedules import crontab as _ror_crontab  # noqa: E402

# An offer whose availability is older than this is flagged stale, and its structure is reminded daily.
ROR_STALE_AFTER_HOURS = env.float("ROR_STALE_AFTER_HOURS", default=24.0)
# Hour (local time) of the daily stale-offer notices.
ROR_STALE_NOTICE_HOUR = env.int("ROR_STALE_NOTICE_HOUR", default=7)
CELERY_BEAT_SCHEDULE["ror-stale-offers"] = {
    "task": "ror.tasks.notify_stale_offers",
    "schedule": _ror_crontab(minute=0, hour=ROR_STALE_NOTICE_HOUR),
}
# Public offer-of-care search (no sign-in): searches per minute and client IP, and result cache lifetime.
ROR_PUBLIC_RATE_LIMIT = env.int("ROR_PUBLIC_RATE_LIMIT", default=30)
ROR_PUBLIC_CACHE_SECONDS = env.int("ROR_PUBLIC_CACHE_SECONDS", default=600)
# --- end of ROR ------------------------------------------------------------------------------------

# --- Core: patient identity, outbox, encrypted storage ---------------------------------------------------
# Test and demo INS OIDs (1.2.250.1.213.1.4.10/.11) are refused in production (see production.py).
ENRS_INS_ALLOW_TEST_OIDS = env.bool("ENRS_INS_ALLOW_TEST_OIDS", default=True)
# Outbox (SMTP relay, DMP, DICOM): lease of a claimed row before another worker may take it over, retry
# backoff (base·2^(n-1) seconds, capped) and how long a row keeps retrying before it fails.
ENRS_OUTBOX_LEASE_SECONDS = env.float("ENRS_OUTBOX_LEASE_SECONDS", default=300.0)
ENRS_OUTBOX_BACKOFF_BASE = env.float("ENRS_OUTBOX_BACKOFF_BASE", default=5.0)
ENRS_OUTBOX_BACKOFF_CAP = env.float("ENRS_OUTBOX_BACKOFF_CAP", default=3600.0)
ENRS_OUTBOX_DEADLINE_SECONDS = env.float("ENRS_OUTBOX_DEADLINE_SECONDS", default=24 * 3600.0)
# Encryption at rest (AES-256-GCM): "id:base64(32 bytes),id2:…" and the id new content is written with.
# Without keys (demo, dev, tests) a key derived from SECRET_KEY is used; production requires them.
ENRS_VAULT_KEYS = env.str("ENRS_VAULT_KEYS", default="")
ENRS_VAULT_ACTIVE_KEY = env.str("ENRS_VAULT_ACTIVE_KEY", default="")
# Encrypted content up to this size stays in the database row (same transaction); larger goes to storage.
ENRS_VAULT_INLINE_MAX = env.int("ENRS_VAULT_INLINE_MAX", default=256 * 1024)
# --- end of core ----------------------------------------------------------------------------------------

# --- Messagerie (MSSanté operator) ------------------------------------------------------------------------
# Domains whose mailboxes ENRS hosts (the listener accepts mail only for them).
MSSANTE_HOSTED_DOMAINS = env.list("MSSANTE_HOSTED_DOMAINS", default=[ENRS_MSSANTE_DOMAIN])
# X-MSS-NIL header put on every message: the product reference from convergence.esante.gouv.fr.
MSSANTE_NIL = env.str("MSSANTE_NIL", default="ENRS-DEMO-NIL")
# Outgoing relay: SMTP over TLS with the operator's IGC-Santé certificate. "starttls" or "tls" (implicit).
# Without a host, mail for hosted domains is delivered locally and other mail waits in the outbox.
MSSANTE_RELAY_HOST = env.str("MSSANTE_RELAY_HOST", default="")
MSSANTE_RELAY_PORT = env.int("MSSANTE_RELAY_PORT", default=587)
MSSANTE_RELAY_SECURITY = env.str("MSSANTE_RELAY_SECURITY", default="starttls")  # "none": local tests only
MSSANTE_RELAY_CERT = env.str("MSSANTE_RELAY_CERT", default="")
MSSANTE_RELAY_KEY = env.str("MSSANTE_RELAY_KEY", default="")
MSSANTE_RELAY_CA_BUNDLE = env.str("MSSANTE_RELAY_CA_BUNDLE", default="")
MSSANTE_RELAY_TIMEOUT = env.float("MSSANTE_RELAY_TIMEOUT", default=30.0)
# How long an outgoing message keeps retrying after temporary failures before it is marked failed.
MSSANTE_DELIVERY_DEADLINE_SECONDS = env.float("MSSANTE_DELIVERY_DEADLINE_SECONDS", default=24 * 3600.0)
# OID arc under which the operator mints the ids of the CDA documents and XDM submission sets it builds.
MSSANTE_DOCUMENT_OID_ROOT = env.str("MSSANTE_DOCUMENT_OID_ROOT", default="1.2.250.1.999.1")
# Outbox rows older than this without a task in flight are queued again by the periodic sweeper.
MSSANTE_REQUEUE_GRACE_SECONDS = env.float("MSSANTE_REQUEUE_GRACE_SECONDS", default=30.0)
# How many due outgoing messages one relay task claims and sends over one SMTP connection.
MSSANTE_DELIVERY_BATCH = env.int("MSSANTE_DELIVERY_BATCH", default=50)
# Deliver mail between two hosted mailboxes without going through SMTP.
MSSANTE_LOCAL_DELIVERY = env.bool("MSSANTE_LOCAL_DELIVERY", default=True)
# Incoming listener (manage.py mssante_smtpd): TLS with a client certificate from MSSANTE_SMTPD_CLIENT_CA.
MSSANTE_SMTPD_HOST = env.str("MSSANTE_SMTPD_HOST", default="127.0.0.1")
MSSANTE_SMTPD_PORT = env.int("MSSANTE_SMTPD_PORT", default=2525)
MSSANTE_SMTPD_CERT = env.str("MSSANTE_SMTPD_CERT", default="")
MSSANTE_SMTPD_KEY = env.str("MSSANTE_SMTPD_KEY", default="")
MSSANTE_SMTPD_CLIENT_CA = env.str("MSSANTE_SMTPD_CLIENT_CA", default="")
# Size limits: a whole message, one attachment, and what an IHE_XDM zip may expand to.
MSSANTE_MAX_MESSAGE_BYTES = env.int("MSSANTE_MAX_MESSAGE_BYTES", default=25 * 1024 * 1024)
MSSANTE_MAX_ATTACHMENT_BYTES = env.int("MSSANTE_MAX_ATTACHMENT_BYTES", default=20 * 1024 * 1024)
MSSANTE_XDM_MAX_EXPANDED_BYTES = env.int("MSSANTE_XDM_MAX_EXPANDED_BYTES", default=100 * 1024 * 1024)
CELERY_BEAT_SCHEDULE["messagerie-requeue"] = {"task": "messagerie.tasks.requeue", "schedule": 60.0}
# --- end of messagerie ----------------------------------------------------------------------------------

# --- DMP ---
# XDS.b endpoints of the DMP: repository (ITI-41) and registry (ITI-57, ITI-18). Without a repository URL
# submissions wait in the outbox (status "En attente") and are sent once it is set.
ENRS_DMP_REPOSITORY_URL = env.str("ENRS_DMP_REPOSITORY_URL", default="")
ENRS_DMP_REGISTRY_URL = env.str("ENRS_DMP_REGISTRY_URL", default="")
# Mutual TLS: CA bundle that signs the DMP server certificate, and the ORG client certificate/key (PEM).
ENRS_DMP_CA_BUNDLE = env.str("ENRS_DMP_CA_BUNDLE", default="")
ENRS_DMP_CLIENT_CERT = env.str("ENRS_DMP_CLIENT_CERT", default="")
ENRS_DMP_CLIENT_KEY = env.str("ENRS_DMP_CLIENT_KEY", default="")
# ORG ("cachet") certificate and key that sign the VIHF (PEM); empty = the TLS client pair.
ENRS_DMP_SIGNING_CERT = env.str("ENRS_DMP_SIGNING_CERT", default="")
ENRS_DMP_SIGNING_KEY = env.str("ENRS_DMP_SIGNING_KEY", default="")
# Seconds to wait for the DMP (connect + read) before the attempt counts as a temporary failure.
ENRS_DMP_TIMEOUT = env.float("ENRS_DMP_TIMEOUT", default=30.0)
# How long a submission keeps retrying after temporary failures before it is marked failed.
ENRS_DMP_DEADLINE_SECONDS = env.float("ENRS_DMP_DEADLINE_SECONDS", default=24 * 3600.0)
# OID under which ENRS mints document and submission-set uniqueIds; sourceId of the submission sets.
ENRS_DMP_OID_ROOT = env.str("ENRS_DMP_OID_ROOT", default="1.2.250.1.999.42.1")
ENRS_DMP_SOURCE_ID = env.str("ENRS_DMP_SOURCE_ID", default="1.2.250.1.999.42.1")
# Software identification carried by the VIHF (LPS_ID, LPS_Nom, LPS_Version, DMP homologation number).
ENRS_DMP_LPS_ID = env.str("ENRS_DMP_LPS_ID", default="1.2.250.1.999.42")
ENRS_DMP_LPS_NAME = env.str("ENRS_DMP_LPS_NAME", default="ENRS")
ENRS_DMP_LPS_VERSION = env.str("ENRS_DMP_LPS_VERSION", default="1.0")
ENRS_DMP_LPS_HOMOLOGATION = env.str("ENRS_DMP_LPS_HOMOLOGATION", default="")
# VIHF Authentification_Mode: INDIRECTE (the structure's cachet) or DIRECTE (the professional's CPS).
ENRS_DMP_AUTHENTICATION_MODE = env.str("ENRS_DMP_AUTHENTICATION_MODE", default="INDIRECTE")
CELERY_BEAT_SCHEDULE["dmp-requeue"] = {"task": "dmp.tasks.requeue", "schedule": 60.0}
# --- end of DMP ---

# Public address of the portal (https://…), for links in e-mails sent by tasks; empty: relative links.
ENRS_PUBLIC_URL = env.str("ENRS_PUBLIC_URL", default="")

# --- Télémédecine and DICOM ------------------------------------------------------------------------------
# Video rooms on an existing Jitsi Meet (JWT auth): without a URL, acts go by phone or in person.
TLM_JITSI_URL = env.str("TLM_JITSI_URL", default="")
TLM_JITSI_APP_ID = env.str("TLM_JITSI_APP_ID", default="")
TLM_JITSI_APP_SECRET = env.str("TLM_JITSI_APP_SECRET", default="")
TLM_JITSI_TOKEN_MINUTES = env.int("TLM_JITSI_TOKEN_MINUTES", default=30)
# A request nobody accepted expires after this many hours (scheduled) / minutes for emergencies.
TLM_REQUEST_EXPIRY_HOURS = env.float("TLM_REQUEST_EXPIRY_HOURS", default=72.0)
TLM_EMERGENCY_EXPIRY_MINUTES = env.float("TLM_EMERGENCY_EXPIRY_MINUTES", default=60.0)
# C-STORE SCP (manage.py dicom_scp): address, port and our AE title.
DICOM_SCP_HOST = env.str("DICOM_SCP_HOST", default="127.0.0.1")
DICOM_SCP_PORT = env.int("DICOM_SCP_PORT", default=11112)
DICOM_AE_TITLE = env.str("DICOM_AE_TITLE", default="ENRS")
# Browser uploads: whole upload, chunk size and number of files.
DICOM_MAX_UPLOAD_BYTES = env.int("DICOM_MAX_UPLOAD_BYTES", default=2 * 1024**3)
DICOM_UPLOAD_CHUNK_BYTES = env.int("DICOM_UPLOAD_CHUNK_BYTES", default=8 * 1024**2)
DICOM_MAX_FILES = env.int("DICOM_MAX_FILES", default=5000)
# Where chunks of uploads in progress wait (shared by every web worker; 0700, cleaned after 24 h).
DICOM_UPLOAD_DIR = env.str("DICOM_UPLOAD_DIR", default=str(VAR_DIR / "dicom-uploads"))
# Forwarding to a PACS: network timeout of each DICOM/HTTP exchange, and retry deadline of a transfer.
DICOM_NETWORK_TIMEOUT = env.float("DICOM_NETWORK_TIMEOUT", default=30.0)
DICOM_TRANSFER_DEADLINE_SECONDS = env.float("DICOM_TRANSFER_DEADLINE_SECONDS", default=6 * 3600.0)
CELERY_BEAT_SCHEDULE["telemedecine-requeue"] = {"task": "telemedecine.tasks.requeue", "schedule": 60.0}
CELERY_BEAT_SCHEDULE["telemedecine-stale-uploads"] = {
    "task": "telemedecine.tasks.expire_uploads",
    "schedule": 3600.0,
}
CELERY_BEAT_SCHEDULE["telemedecine-expire"] = {
    "task": "telemedecine.tasks.expire_requests",
    "schedule": 300.0,
}
# --- end of télémédecine ----------------------------------------------------------------------------------

# --- RPU ---
# Daily OSCOUR files (résumés de passage aux urgences) of the emergency departments.
# Folder watched by a periodic task: *.xml files dropped there are imported, then moved to done/ or refused/.
RPU_DROP_DIR = env.str("RPU_DROP_DIR", default=str(VAR_DIR / "rpu-depot"))
RPU_DROP_SCAN_SECONDS = env.float("RPU_DROP_SCAN_SECONDS", default=300.0)
# A file bigger than this, or with more passages, is refused whole.
RPU_MAX_FILE_BYTES = env.int("RPU_MAX_FILE_BYTES", default=20 * 1024 * 1024)
RPU_MAX_RECORDS = env.int("RPU_MAX_RECORDS", default=100_000)
# Local hour (Europe/Paris) before which yesterday's file must have arrived; later it is "late".
RPU_DEADLINE_HOUR = env.int("RPU_DEADLINE_HOUR", default=4)
# Local hour of the morning supervision (missing / late / incomplete feeds, e-mail to the establishments).
RPU_SUPERVISION_HOUR = env.int("RPU_SUPERVISION_HOUR", default=7)
# A day is incomplete below this share of the usual volume, or when a key item (DP, exit, CCMU, mode of
# exit) is filled in fewer than RPU_MIN_COMPLETENESS of the passages.
RPU_INCOMPLETE_RATIO = env.float("RPU_INCOMPLETE_RATIO", default=0.5)
RPU_MIN_COMPLETENESS = env.float("RPU_MIN_COMPLETENESS", default=0.8)
from celery.schedules import crontab as _rpu_crontab  # noqa: E402

CELERY_BEAT_SCHEDULE["rpu-drop-scan"] = {
    "task": "enrs.rpu.tasks.scan_drop_dir",
    "schedule": RPU_DROP_SCAN_SECONDS,
}
CELERY_BEAT_SCHEDULE["rpu-supervise"] = {
    "task": "enrs.rpu.tasks.supervise",
    "schedule": _rpu_crontab(hour=RPU_SUPERVISION_HOUR, minute=0),
}
# --- end of RPU ---
# --- Usage rollups ----------------------------------------------------------------------------------------
# Each rollup run also recomputes the days of events recorded in the last N minutes (late commits).
USAGE_ROLLUP_RESCAN_MINUTES = env.float("USAGE_ROLLUP_RESCAN_MINUTES", default=15.0)
CELERY_BEAT_SCHEDULE["usage-rollup"] = {"task": "enrs.usage.tasks.rollup", "schedule": 300.0}
# Daily state snapshots for the dashboards (directory coverage, ROR freshness and beds), once an hour:
# each run replaces the day's snapshot, so the last one of the day stays.
CELERY_BEAT_SCHEDULE["annuaire-usage-snapshot"] = {
    "task": "annuaire.tasks.usage_snapshot",
    "schedule": 3600.0,
}
CELERY_BEAT_SCHEDULE["ror-usage-snapshot"] = {"task": "ror.tasks.usage_snapshot", "schedule": 3600.0}
# --- end of Usage rollups ---------------------------------------------------------------------------------
