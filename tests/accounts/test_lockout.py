"""Lockout: 5 failures within 15 minutes — wrong passwords and wrong codes counted together — lock the
account for 15 minutes; the user is told so on a French page, and it is audited (auth.lockout)."""

from datetime import timedelta

import pytest
from axes.models import AccessAttempt
from django.conf import settings
from django.contrib.auth import SESSION_KEY
from django.core import checks
from django.db.models import F
from django.test import Client
from django.urls import reverse

from enrs.accounts.models import User
from enrs.accounts.roles import Role
from tests.accounts.test_otp import (
    PASSWORD,
    enrolled_device,
    events,
    make_user,
    next_unused_code,
    password_login,
)

LOCK_TEXT = "Compte verrouillé pendant 15 minutes après 5 échecs"


def wrong_password(client: Client, user: User) -> str:
    response = client.post(reverse("accounts:login"), {"username": user.username, "password": "pas-le-bon"})
    return f"{response.status_code} {response.content.decode()}"


def wrong_code(client: Client, good_code: str) -> tuple[int, str]:
    wrong = f"{(int(good_code) + 500_000) % 1_000_000:06d}"
    response = client.post(reverse("accounts:otp_verify"), {"code": wrong, "next": "/"})
    return response.status_code, response.content.decode()


def expire_attempts(minutes: int) -> None:
    """Pretend the recorded failures happened `minutes` earlier."""
    AccessAttempt.objects.update(attempt_time=F("attempt_time") - timedelta(minutes=minutes))


def test_axes_is_configured_as_documented_and_its_checks_pass() -> None:
    assert settings.AXES_FAILURE_LIMIT == 5
    assert timedelta(minutes=15) == settings.AXES_COOLOFF_TIME
    assert settings.AUTHENTICATION_BACKENDS[0] == "axes.backends.AxesStandaloneBackend"
    assert "axes.middleware.AxesMiddleware" in settings.MIDDLEWARE
    problems = [
        m
        for m in checks.run_checks()
        if m.id and m.id.startswith("axes.") and m.id not in settings.SILENCED_SYSTEM_CHECKS
    ]
    assert problems == []


@pytest.mark.django_db
def test_five_wrong_passwords_lock_the_account_and_the_user_is_told(client: Client) -> None:
    user = make_user()
    for _ in range(4):
        answer = wrong_password(client, user)
        assert answer.startswith("200 ")
        assert "Identifiant ou mot de passe incorrect" in answer
    fifth = wrong_password(client, user)

    assert fifth.startswith("429 ")
    assert LOCK_TEXT in fifth
    assert "Vous pourrez réessayer à partir de" in fifth
    lock = events("auth.lockout")
    assert len(lock) == 1
    assert lock[0].outcome == "denied"
    assert (lock[0].target_type, lock[0].target_id) == ("accounts.user", str(user.pk))
    assert lock[0].detail["locked_now"] is True
    assert lock[0].detail["step"] == "password"

    # The right password now changes nothing: refused without being checked, and told why.
    response = password_login(client, user)
    assert response.status_code == 429
    assert LOCK_TEXT in response.content.decode()
    assert SESSION_KEY not in client.session
    assert events("auth.login", actor=user) == []
    assert events("auth.lockout")[-1].detail["locked_now"] is False
    # Refusals during the lock do not extend it: one record of 5 failures.
    assert AccessAttempt.objects.get(username=user.username).failures_since_start == 5


@pytest.mark.django_db
def test_the_lock_ends_after_15_minutes(client: Client) -> None:
    user = make_user(Role.ARS_ANALYST)
    for _ in range(5):
        wrong_password(client, user)
    expire_attempts(14)
    assert password_login(client, user).status_code == 429
    expire_attempts(2)  # now 16 minutes ago

    response = password_login(client, user)

    assert response.status_code == 302
    assert response["Location"] == "/"
    assert client.session[SESSION_KEY] == str(user.pk)
    assert not AccessAttempt.objects.filter(username=user.username).exists()  # complete sign-in: reset


@pytest.mark.django_db
def test_failures_spread_beyond_15_minutes_do_not_lock(client: Client) -> None:
    user = make_user(Role.ARS_ANALYST)
    for _ in range(4):
        wrong_password(client, user)
    expire_attempts(16)
    assert wrong_password(client, user).startswith("200 ")
    assert password_login(client, user).status_code == 302


@pytest.mark.django_db
def test_five_wrong_codes_lock_the_account_and_close_the_session(client: Client) -> None:
    user = make_user()
    device = enrolled_device(user)
    password_login(client, user)
    good = next_unused_code(device)
    last_step_used = device.last_t

    for _ in range(4):
        status, html = wrong_code(client, good)
        assert status == 200
        assert LOCK_TEXT not in html
    status, html = wrong_code(client, good)

    assert status == 429
    assert LOCK_TEXT in html
    assert SESSION_KEY not in client.session  # the half-open session is closed
    failures = events("otp.verify", actor=user, outcome="failure")
    assert len(failures) == 5
    assert failures[-1].detail["locked"] is True
    lock = events("auth.lockout")
    assert len(lock) == 1
    assert lock[0].actor == user
    assert lock[0].detail["step"] == "otp"
    assert lock[0].detail["locked_now"] is True
    # The OTP codes typed are never stored by axes.
    assert good not in AccessAttempt.objects.get(username=user.username).post_data

    # Locked: the password step refuses too, and the good code is no use.
    assert password_login(client, user).status_code == 429
    device.refresh_from_db()
    assert device.last_t == last_step_used  # no code was accepted
    assert events("otp.verify", actor=user, outcome="success") == []


@pytest.mark.django_db
def test_wrong_passwords_and_wrong_codes_count_together(client: Client) -> None:
    user = make_user()
    device = enrolled_device(user)
    for _ in range(3):
        wrong_password(client, user)
    password_login(client, user)  # the right password alone does not clear the counter…
    assert AccessAttempt.objects.get(username=user.username).failures_since_start == 3
    good = next_unused_code(device)
    assert wrong_code(client, good)[0] == 200
    status, html = wrong_code(client, good)
    assert status == 429
    assert LOCK_TEXT in html


@pytest.mark.django_db
def test_a_password_session_whose_account_gets_locked_cannot_give_its_code(client: Client) -> None:
    user = make_user()
    device = enrolled_device(user)
    password_login(client, user)
    attacker = Client()
    for _ in range(5):
        wrong_password(attacker, user)

    response = client.post(reverse("accounts:otp_verify"), {"code": next_unused_code(device), "next": "/"})

    assert response.status_code == 429
    assert LOCK_TEXT in response.content.decode()
    assert SESSION_KEY not in client.session
    assert events("otp.verify", actor=user, outcome="success") == []


@pytest.mark.django_db
def test_a_complete_sign_in_clears_the_failures(client: Client) -> None:
    user = make_user()
    device = enrolled_device(user)
    for _ in range(4):
        wrong_password(client, user)
    password_login(client, user)
    client.post(reverse("accounts:otp_verify"), {"code": next_unused_code(device), "next": "/"})

    assert not AccessAttempt.objects.filter(username=user.username).exists()
    client.post(reverse("accounts:logout"))
    for _ in range(4):  # a fresh count: four more failures do not lock
        assert wrong_password(client, user).startswith("200 ")
    assert (
        client.post(reverse("accounts:login"), {"username": user.username, "password": PASSWORD}).status_code
        == 302
    )


@pytest.mark.django_db
def test_accounts_are_locked_one_by_one(client: Client) -> None:
    victim, colleague = make_user(), make_user(Role.ARS_ANALYST)
    for _ in range(5):
        wrong_password(client, victim)
    # Same browser, same address: the colleague's account is not locked.
    assert password_login(client, colleague).status_code == 302
