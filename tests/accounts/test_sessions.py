"""Sessions: 30 minutes idle timeout, a new session id at sign-in, secure cookies in production, and
"sign out everywhere" (every session of the user ends, on every device)."""

import json
from datetime import timedelta
from typing import cast

import pytest
from django.conf import settings
from django.contrib.auth.models import AnonymousUser
from django.contrib.sessions.backends.db import SessionStore
from django.contrib.sessions.middleware import SessionMiddleware
from django.http import HttpRequest, HttpResponse, HttpResponseBase
from django.test import Client, RequestFactory
from django.urls import reverse
from django.utils import timezone

from enrs.accounts.authn import SESSION_METHOD_KEY, AuthMethod, auth_method, sign_in
from enrs.accounts.models import User
from enrs.accounts.roles import Role
from enrs.accounts.services import user_sign_out_everywhere
from enrs.audit.models import AuditEvent
from tests.factories import UserFactory
from tests.helpers import clean_env, run_python

LOGIN = "/compte/connexion/"


def make_user(role: Role = Role.GCS_STAFF) -> User:
    return cast(User, UserFactory(**{role.value: True}))


def signed_in_client(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


def redirected_to_login(response: HttpResponseBase) -> bool:
    return response.status_code == 302 and response["Location"].startswith(LOGIN + "?next=")


# --- Idle timeout -----------------------------------------------------------------------------------


def test_sessions_last_30_minutes_and_every_request_pushes_the_expiry_back() -> None:
    assert settings.SESSION_COOKIE_AGE == 30 * 60
    assert settings.SESSION_SAVE_EVERY_REQUEST is True


@pytest.mark.django_db
def test_a_session_expires_after_30_idle_minutes(monkeypatch) -> None:
    client = signed_in_client(make_user())
    start = timezone.now()

    def at(minutes: float) -> None:
        monkeypatch.setattr(timezone, "now", lambda: start + timedelta(minutes=minutes))

    at(0)
    assert client.get("/annuaire/").status_code == 200
    # Activity keeps the session open: three visits 29 minutes apart, 87 minutes in all.
    for minute in (29, 58, 87):
        at(minute)
        assert client.get("/annuaire/").status_code == 200, minute
    # Then 31 minutes without a request: the session is over.
    at(87 + 31)
    response = client.get("/annuaire/")
    assert redirected_to_login(response)
    assert response["Location"] == f"{LOGIN}?next=/annuaire/"
    at(87 + 32)
    assert redirected_to_login(client.get("/compte/"))


@pytest.mark.django_db
def test_the_session_cookie_tells_the_browser_the_same_idle_limit() -> None:
    client = signed_in_client(make_user())
    response = client.get("/annuaire/")
    cookie = response.cookies[settings.SESSION_COOKIE_NAME]
    assert int(cookie["max-age"]) == 1800
    assert cookie["httponly"] is True
    assert cookie["samesite"] == "Lax"


# --- Sign-in rotates the session id -------------------------------------------------------------------


def _request_with_session(rf: RequestFactory) -> HttpRequest:
    request = rf.post(LOGIN, REMOTE_ADDR="198.51.100.7")
    SessionMiddleware(lambda r: HttpResponse()).process_request(request)
    request.user = AnonymousUser()
    request.session["panier"] = "conservé"
    request.session.save()
    return request


@pytest.mark.django_db
def test_sign_in_gives_a_new_session_id_and_records_the_method(rf: RequestFactory) -> None:
    user = make_user(Role.CLINICIAN)
    request = _request_with_session(rf)
    before = request.session.session_key
    assert before is not None

    sign_in(request, user, method=AuthMethod.CPS)

    after = request.session.session_key
    assert after is not None
    assert after != before
    assert not SessionStore().exists(before)  # the old id can no longer be used (session fixation)
    assert request.session["panier"] == "conservé"
    assert request.session[SESSION_METHOD_KEY] == "cps"
    assert auth_method(request) is AuthMethod.CPS
    event = AuditEvent.objects.get(action="auth.login", actor=user)
    assert event.detail["method"] == "cps"
    assert event.ip == "198.51.100.7"


@pytest.mark.django_db
def test_the_login_form_changes_the_session_cookie(client: Client) -> None:
    UserFactory(username="martin", gcs_staff=True)
    session = client.session
    session["visite"] = 1
    session.save()
    before = client.cookies[settings.SESSION_COOKIE_NAME].value

    response = client.post(LOGIN, {"username": "martin", "password": "mot-de-passe-de-test"})
    assert response.status_code == 302
    after = client.cookies[settings.SESSION_COOKIE_NAME].value
    assert after != before
    assert not SessionStore().exists(before)


# --- Sign out everywhere ------------------------------------------------------------------------------


@pytest.mark.django_db
def test_the_session_hash_follows_the_password_and_the_session_epoch() -> None:
    user = make_user()
    first = user.get_session_auth_hash()
    assert user.get_session_auth_hash() == first
    user.session_epoch += 1
    second = user.get_session_auth_hash()
    assert second != first
    user.set_password("un-autre-mot-de-passe-tres-long")
    assert user.get_session_auth_hash() not in {first, second}


@pytest.mark.django_db
def test_sign_out_everywhere_ends_every_session_of_the_user_only(client: Client) -> None:
    user = make_user()
    client.force_login(user)
    phone, laptop = signed_in_client(user), signed_in_client(user)
    colleague = signed_in_client(make_user())
    for c in (client, phone, laptop, colleague):
        assert c.get("/annuaire/").status_code == 200

    response = client.post(reverse("accounts:sign_out_everywhere"))

    assert response.status_code == 302
    assert response["Location"] == LOGIN
    follow = client.get(LOGIN)
    assert "Toutes vos sessions ont été fermées" in follow.content.decode()
    for c in (client, phone, laptop):
        assert redirected_to_login(c.get("/annuaire/"))
    assert colleague.get("/annuaire/").status_code == 200
    user.refresh_from_db()
    assert user.session_epoch == 1
    event = AuditEvent.objects.get(action="auth.sign_out_everywhere")
    assert event.actor == user
    assert event.target_id == str(user.pk)
    assert event.detail == {"session_epoch": 1}

    # Signing in again works, with the new epoch.
    fresh = signed_in_client(user)
    assert fresh.get("/annuaire/").status_code == 200


@pytest.mark.django_db
def test_sign_out_everywhere_only_answers_post(client: Client) -> None:
    user = make_user()
    client.force_login(user)
    assert client.get(reverse("accounts:sign_out_everywhere")).status_code == 405
    user.refresh_from_db()
    assert user.session_epoch == 0
    assert client.get("/annuaire/").status_code == 200


@pytest.mark.django_db
def test_sign_out_everywhere_needs_the_csrf_token() -> None:
    user = make_user()
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    assert client.post(reverse("accounts:sign_out_everywhere")).status_code == 403
    user.refresh_from_db()
    assert user.session_epoch == 0


@pytest.mark.django_db
def test_the_service_bumps_the_epoch_atomically_and_audits(rf: RequestFactory) -> None:
    user = make_user()
    request = _request_with_session(rf)
    request.user = user
    user_sign_out_everywhere(user=user, request=request)
    user_sign_out_everywhere(user=user, request=request)
    user.refresh_from_db()
    assert user.session_epoch == 2
    assert [
        e.detail["session_epoch"] for e in AuditEvent.objects.filter(action="auth.sign_out_everywhere")
    ] == [
        1,
        2,
    ]
    assert not request.user.is_authenticated  # the current session is closed too


# --- Production cookies -------------------------------------------------------------------------------

SHOW_COOKIES = (
    "import django, json; django.setup(); from django.conf import settings as s; "
    "print(json.dumps({k: getattr(s, k) for k in ['SESSION_COOKIE_SECURE', 'SESSION_COOKIE_HTTPONLY', "
    "'SESSION_COOKIE_SAMESITE', 'SESSION_COOKIE_AGE', 'SESSION_SAVE_EVERY_REQUEST', 'CSRF_COOKIE_SECURE', "
    "'CSRF_COOKIE_HTTPONLY']}))"
)


def test_production_cookies_are_secure_and_http_only() -> None:
    env = clean_env(
        DJANGO_SETTINGS_MODULE="enrs.settings.production",
        SECRET_KEY="s" * 30 + "-production-secret-for-session-tests",
        DATABASE_URL="postgres://postgres@127.0.0.1:5432/enrs",
        REDIS_URL="redis://127.0.0.1:6379/0",
        ENRS_VAULT_KEYS="k1:" + "A" * 43 + "=",
        ENRS_VAULT_ACTIVE_KEY="k1",
    )
    result = run_python(SHOW_COOKIES, env)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {
        "SESSION_COOKIE_SECURE": True,
        "SESSION_COOKIE_HTTPONLY": True,
        "SESSION_COOKIE_SAMESITE": "Lax",
        "SESSION_COOKIE_AGE": 1800,
        "SESSION_SAVE_EVERY_REQUEST": True,
        "CSRF_COOKIE_SECURE": True,
        "CSRF_COOKIE_HTTPONLY": True,
    }
