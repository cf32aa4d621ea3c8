from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any, cast
from unittest import mock

import pytest
from django.contrib.auth.models import AnonymousUser
from django.db import connection
from django.http import HttpRequest
from django.test import RequestFactory
from django.utils import timezone

from enrs.accounts.authn import SESSION_METHOD_KEY
from enrs.accounts.models import User
from enrs.audit.models import AuditEvent
from enrs.audit.services import audit_record
from tests.factories import UserFactory


def new_user(**kwargs: Any) -> User:
    """UserFactory, typed (traits: clinician, gcs_staff, ars_analyst, admin)."""
    return cast(User, UserFactory(**kwargs))


@pytest.fixture
def make_request(rf: RequestFactory) -> Callable[..., HttpRequest]:
    """A GET request as the middlewares leave it: user, session (with the sign-in method), request id."""

    def make(
        user: Any = None,
        *,
        method: str | None = None,
        path: str = "/quelque-part/",
        request_id: str = "req-0123456789abcdef",
        **meta: Any,
    ) -> HttpRequest:
        request = rf.get(path, **meta)
        request.user = user if user is not None else AnonymousUser()
        request.session = {SESSION_METHOD_KEY: method} if method else {}  # type: ignore[assignment]
        request.request_id = request_id  # type: ignore[attr-defined]
        return request

    return make


def record_at(moment: datetime, **kwargs: Any) -> AuditEvent:
    """`audit_record` with the clock stopped at `moment` (occurred_at is taken inside the service)."""
    with mock.patch.object(timezone, "now", return_value=moment):
        return audit_record(**kwargs)


@contextmanager
def replica_session() -> Iterator[None]:
    """Bypass the append-only triggers the way a PostgreSQL superuser can: triggers do not fire in a
    session whose replication role is `replica`. Restored afterwards."""
    with connection.cursor() as cursor:
        cursor.execute("SET session_replication_role = replica")
    try:
        yield
    finally:
        with connection.cursor() as cursor:
            cursor.execute("SET session_replication_role = DEFAULT")


@pytest.fixture
def audit_truncate_allowed(transactional_db: None) -> None:
    """Tests on committed data (transactional_db) are emptied with TRUNCATE afterwards, which the audit
    trigger refuses unless the session opted in (enrs.settings.test does so on every connection; this
    makes it explicit for tests that open their own)."""
    with connection.cursor() as cursor:
        cursor.execute("SET enrs.audit_allow_truncate = on")
