"""Health of the services the portal depends on: PostgreSQL, Redis and the Celery workers."""

from dataclasses import asdict, dataclass
from typing import Literal
from urllib.parse import urlsplit, urlunsplit

import redis
from django.conf import settings
from django.db import connection

from enrs.celery import app as celery_app

Status = Literal["ok", "down", "embedded"]


@dataclass(frozen=True, slots=True)
class Check:
    status: Status
    detail: str

    @property
    def healthy(self) -> bool:
        return self.status != "down"


def _redacted(url: str) -> str:
    """The URL without its password, for messages people read."""
    parts = urlsplit(url)
    if parts.password:
        netloc = f"{parts.username or ''}:***@{parts.hostname}" + (f":{parts.port}" if parts.port else "")
        parts = parts._replace(netloc=netloc)
    return urlunsplit(parts)


def check_database() -> Check:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except Exception as exc:
        return Check("down", f"Base de données injoignable ({connection.vendor}) : {exc}".strip())
    if connection.vendor == "sqlite":
        return Check("embedded", "Base SQLite embarquée (mode démonstration).")
    return Check("ok", f"{connection.vendor} répond ({connection.settings_dict.get('NAME')}).")


def check_redis() -> Check:
    url = settings.CELERY_BROKER_URL
    if not url.startswith(("redis://", "rediss://")):
        return Check(
            "embedded", "Pas de Redis configuré : cache local et tâches exécutées dans le processus."
        )
    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=1.0, socket_timeout=1.0)
        try:
            client.ping()
        finally:
            client.close()
    except redis.RedisError as exc:
        return Check("down", f"Redis injoignable ({_redacted(url)}) : {exc}")
    return Check("ok", f"Redis répond ({_redacted(url)}).")


def check_celery(*, broker: Check) -> Check:
    if settings.CELERY_TASK_ALWAYS_EAGER:
        return Check("embedded", "Tâches Celery exécutées dans le processus web (mode démonstration).")
    if not broker.healthy:
        return Check("down", "Impossible de joindre les workers Celery : le broker Redis est injoignable.")
    try:
        replies = celery_app.control.ping(timeout=settings.ENRS_HEALTHZ_CELERY_TIMEOUT) or []
    except Exception as exc:
        return Check("down", f"Workers Celery injoignables : {exc}")
    workers = sorted(name for reply in replies for name in reply)
    if not workers:
        return Check("down", "Aucun worker Celery n'a répondu : lancez « make worker ».")
    return Check("ok", f"{len(workers)} worker(s) Celery : {', '.join(workers)}.")


def health_report() -> tuple[bool, dict[str, dict[str, str]]]:
    """(all healthy, per-service status and detail)."""
    database = check_database()
    broker = check_redis()
    workers = check_celery(broker=broker)
    checks = {"database": database, "redis": broker, "celery": workers}
    return all(c.healthy for c in checks.values()), {k: asdict(c) for k, c in checks.items()}
