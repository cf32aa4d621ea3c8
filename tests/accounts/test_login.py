"""Sign-in with a password, then the code step: where each role goes, what the session holds, what is
audited, and that nothing clinical opens before the second factor."""

from typing import Any
from urllib.parse import urlencode

import pytest
from django.contrib.auth import SESSION_KEY
from django.test import Client
from django.urls import reverse
from django_otp import DEVICE_ID_SESSION_KEY

from enrs.accounts.authn import SESSION_METHOD_KEY
from enrs.accounts.roles import Role
from tests.accounts.test_otp import (
    PASSWORD,
    enrolled_device,
    events,
    make_user,
    next_unused_code,
    password_login,
    verify_url,
)

pytestmark = pytest.mark.django_db


def enrol_url(next_url: str = "/") -> str:
    return f"{reverse('accounts:otp_enrol')}?{urlencode({'next': next_url})}"


def test_the_login_page_is_in_french_with_labelled_fields(client: Client) -> None:
    html = client.get(reverse("accounts:login")).content.decode()
    assert '<label class="fr-label" for="id_username">Identifiant' in html
    assert '<label class="fr-label" for="id_password">Mot de passe' in html
    assert 'autocomplete="current-password"' in html


def test_a_wrong_password_is_refused_next_to_the_form_and_audited(client: Client) -> None:
    user = make_user()
    response = client.post(reverse("accounts:login"), {"username": user.username, "password": "pas-le-bon"})

    assert response.status_code == 200
    assert "Identifiant ou mot de passe incorrect" in response.content.decode()
    assert SESSION_KEY not in client.session
    failed = events("auth.login.failed")
    assert len(failed) == 1
    assert failed[0].detail == {"username": user.username}
    assert events("auth.login") == []


def test_clinician_with_an_app_goes_to_the_code_step_then_gets_a_strong_session(client: Client) -> None:
    user = make_user(Role.CLINICIAN)
    device = enrolled_device(user)

    response = password_login(client, user, next_url="/messagerie/")

    assert response.status_code == 302
    assert response["Location"] == verify_url("/messagerie/")
    assert client.session[SESSION_KEY] == str(user.pk)
    assert client.session[SESSION_METHOD_KEY] == "password"
    login_event = events("auth.login", actor=user)
    assert len(login_event) == 1
    assert login_event[0].detail == {"method": "password"}
    # Password only: nothing clinical yet, the access rule sends back to the code step.
    assert client.get("/messagerie/")["Location"] == verify_url("/messagerie/")

    page = client.get(response["Location"])
    assert page.status_code == 200
    html = page.content.decode()
    assert 'autocomplete="one-time-code"' in html
    assert 'inputmode="numeric"' in html
    assert 'name="next" value="/messagerie/"' in html

    key_before = client.session.session_key
    done = client.post(
        reverse("accounts:otp_verify"), {"code": next_unused_code(device), "next": "/messagerie/"}
    )

    assert done.status_code == 302
    assert done["Location"] == "/messagerie/"
    assert client.session[SESSION_METHOD_KEY] == "otp"
    assert client.session[DEVICE_ID_SESSION_KEY] == device.persistent_id
    assert client.session.session_key != key_before  # new session id once strong
    verified = events("otp.verify", actor=user)
    assert [(e.outcome, e.detail) for e in verified][-1] == ("success", {"method": "totp"})
    assert client.get("/messagerie/").status_code == 200
    # An open, strong session that comes back to the sign-in page goes on.
    assert client.get(reverse("accounts:login") + "?next=/dmp/")["Location"] == "/dmp/"


def test_a_wrong_code_is_shown_next_to_the_field_and_the_session_stays_weak(client: Client) -> None:
    user = make_user()
    device = enrolled_device(user)
    password_login(client, user)
    good = next_unused_code(device)
    wrong = f"{(int(good) + 1) % 1_000_000:06d}"

    response = client.post(reverse("accounts:otp_verify"), {"code": wrong, "next": "/"})

    html = response.content.decode()
    assert response.status_code == 200
    assert 'id="id_code-erreurs"' in html
    assert "Code incorrect" in html
    assert 'aria-invalid="true"' in html
    assert client.session[SESSION_METHOD_KEY] == "password"
    failure = events("otp.verify", actor=user)[-1]
    assert failure.outcome == "failure"
    assert failure.detail["reason"] == "wrong_code"

    malformed = client.post(reverse("accounts:otp_verify"), {"code": "12ab", "next": "/"})
    assert "Le code se compose de 6 chiffres" in malformed.content.decode()


@pytest.mark.parametrize("role", [Role.CLINICIAN, Role.ADMIN])
def test_clinicians_and_administrators_without_an_app_are_sent_to_enrol(client: Client, role: Role) -> None:
    user = make_user(role)
    response = password_login(client, user, next_url="/dmp/")
    assert response["Location"] == enrol_url("/dmp/")
    assert client.session[SESSION_METHOD_KEY] == "password"
    enrol_page = client.get(response["Location"]).content.decode()
    assert "Plus tard" not in enrol_page  # no way round it for these roles
    # The code step itself sends them to the enrolment too.
    assert client.get(verify_url("/dmp/"))["Location"] == enrol_url("/dmp/")


@pytest.mark.parametrize("role", [Role.GCS_STAFF, Role.ARS_ANALYST])
def test_other_roles_may_skip_the_enrolment_but_are_offered_it(client: Client, role: Role) -> None:
    user = make_user(role)
    response = password_login(client, user, next_url="/annuaire/")
    assert response["Location"] == "/annuaire/"
    page = client.get("/", follow=True).content.decode()
    assert "activez un code à usage unique" in page
    assert reverse("accounts:otp_enrol") in page
    enrol_page = client.get(enrol_url("/annuaire/")).content.decode()
    assert "Plus tard" in enrol_page


def test_a_role_that_may_skip_must_still_give_its_code_once_enrolled(client: Client) -> None:
    user = make_user(Role.GCS_STAFF)
    enrolled_device(user)
    assert password_login(client, user)["Location"] == verify_url("/")


def test_next_pointing_elsewhere_is_ignored(client: Client) -> None:
    user = make_user(Role.ARS_ANALYST)
    response = password_login(client, user, next_url="https://attaquant.example/")
    assert response["Location"] == "/"


def test_code_step_and_enrolment_need_a_session(client: Client) -> None:
    for name in ("accounts:otp_verify", "accounts:otp_enrol", "accounts:otp_backup_codes"):
        response = client.get(reverse(name))
        assert response.status_code == 302
        assert response["Location"].startswith(reverse("accounts:login"))


def test_a_pending_session_that_comes_back_to_sign_in_is_sent_to_its_code_step(client: Client) -> None:
    user = make_user()
    enrolled_device(user)
    password_login(client, user)
    assert client.get(reverse("accounts:login") + "?next=/dmp/")["Location"] == verify_url("/dmp/")


def test_signing_out_ends_the_session(client: Client) -> None:
    user = make_user(Role.ARS_ANALYST)
    password_login(client, user)
    response = client.post(reverse("accounts:logout"))
    assert response.status_code == 302
    assert SESSION_KEY not in client.session


def test_login_home_shows_the_user_name_after_full_sign_in(client: Client) -> None:
    user: Any = make_user(first_name="Camille", last_name="Durand")
    device = enrolled_device(user)
    password_login(client, user)
    client.post(reverse("accounts:otp_verify"), {"code": next_unused_code(device), "next": "/"})
    assert "Camille Durand" in client.get("/").content.decode()
    assert PASSWORD not in client.get("/").content.decode()
