"""The account page (/compte/): identity, current method, the last 10 sign-ins, sign out everywhere."""

import re
from datetime import timedelta
from typing import cast

import pytest
from django.contrib.auth.models import AnonymousUser
from django.contrib.sessions.middleware import SessionMiddleware
from django.http import HttpResponse
from django.test import Client, RequestFactory
from django.urls import reverse
from django.utils import timezone

from enrs.accounts.authn import SESSION_METHOD_KEY, AuthMethod, sign_in
from enrs.accounts.models import User
from enrs.accounts.roles import Role
from tests.factories import UserFactory

PROFILE = "/compte/"


def make_user(role: Role = Role.CLINICIAN, **kwargs: object) -> User:
    return cast(User, UserFactory(**{role.value: True}, **kwargs))


def record_sign_in(user: User, *, method: AuthMethod, ip: str) -> None:
    """A real sign-in through `sign_in` (which writes the `auth.login` audit event)."""
    request = RequestFactory().post("/compte/connexion/", REMOTE_ADDR=ip)
    SessionMiddleware(lambda r: HttpResponse()).process_request(request)
    request.user = AnonymousUser()
    sign_in(request, user, method=method)


def open_profile(client: Client, user: User, method: AuthMethod | None) -> str:
    client.force_login(user)
    if method is not None:
        session = client.session
        session[SESSION_METHOD_KEY] = method.value
        session.save()
    response = client.get(PROFILE)
    assert response.status_code == 200
    assert response.templates[0].name == "accounts/profile.html"
    return response.content.decode()


def table_rows(html: str) -> list[list[str]]:
    body = html.split('id="dernieres-connexions"', 1)[1].split("<tbody>", 1)[1].split("</tbody>", 1)[0]
    rows = re.findall(r"<tr>(.*?)</tr>", body, flags=re.S)
    return [
        [re.sub(r"<[^>]+>", "", cell).strip() for cell in re.findall(r"<td>(.*?)</td>", row, re.S)]
        for row in rows
    ]


def test_the_account_page_is_at_compte() -> None:
    assert reverse("accounts:profile") == PROFILE
    assert reverse("accounts:sign_out_everywhere") == "/compte/deconnexion-partout/"


@pytest.mark.django_db
def test_anonymous_visitors_are_sent_to_login(client: Client) -> None:
    response = client.get(PROFILE)
    assert response.status_code == 302
    assert response["Location"] == "/compte/connexion/?next=/compte/"


@pytest.mark.django_db
@pytest.mark.parametrize("role", list(Role))
def test_every_role_has_an_account_page(client: Client, role: Role) -> None:
    user = make_user(role)
    html = open_profile(client, user, AuthMethod.PASSWORD)
    assert "<h1" in html
    assert "Mon compte" in html
    assert role.label in html


@pytest.mark.django_db
def test_the_page_shows_identity_and_a_strong_current_method(client: Client) -> None:
    user = make_user(first_name="Claire", last_name="Le Goff", idnat_ps="810001234567", username="clegoff")
    html = open_profile(client, user, AuthMethod.CPS)
    identity = html.split('id="identite"', 1)[1].split("</dl>", 1)[0]
    assert "Claire Le Goff" in identity
    assert "clegoff" in identity
    assert "Professionnel de santé" in identity
    assert "810001234567" in identity
    method = html.split('id="methode-actuelle"', 1)[1].split("</dd>", 1)[0]
    assert "Carte CPS" in method
    assert "Authentification forte" in method
    assert "demandent une authentification forte" not in html


@pytest.mark.django_db
def test_a_password_session_is_shown_as_simple_with_a_hint(client: Client) -> None:
    html = open_profile(client, make_user(Role.ARS_ANALYST), AuthMethod.PASSWORD)
    method = html.split('id="methode-actuelle"', 1)[1].split("</dd>", 1)[0]
    assert "Identifiant et mot de passe" in method
    assert "Authentification simple" in method
    assert "demandent une authentification forte" in html
    assert "Non renseigné" in html  # no IdNat_PS for an analyst


@pytest.mark.django_db
def test_the_page_lists_the_last_ten_sign_ins_most_recent_first(client: Client, monkeypatch) -> None:
    user = make_user()
    someone_else = make_user()
    start = timezone.now() - timedelta(days=3)
    methods = [AuthMethod.PASSWORD, AuthMethod.OTP, AuthMethod.CPS, AuthMethod.PSC]
    for i in range(12):
        monkeypatch.setattr(timezone, "now", lambda i=i: start + timedelta(hours=i))
        record_sign_in(user, method=methods[i % 4], ip=f"192.0.2.{i + 1}")
    record_sign_in(someone_else, method=AuthMethod.CPS, ip="203.0.113.99")
    monkeypatch.undo()

    html = open_profile(client, user, AuthMethod.OTP)
    rows = table_rows(html)

    assert len(rows) == 10
    assert [r[2] for r in rows] == [f"192.0.2.{i + 1}" for i in range(11, 1, -1)]
    assert [r[1] for r in rows] == [str(methods[i % 4].label) for i in range(11, 1, -1)]
    local = timezone.localtime(start + timedelta(hours=11))
    assert rows[0][0].endswith(f"{local:%H:%M}")
    assert str(local.year) in rows[0][0]
    assert "203.0.113.99" not in html
    # The two oldest are beyond the ten.
    assert "192.0.2.1<" not in html
    assert "192.0.2.2<" not in html


@pytest.mark.django_db
def test_a_user_without_recorded_sign_in_sees_an_empty_history(client: Client) -> None:
    html = open_profile(client, make_user(), None)
    assert "Aucune connexion enregistrée." in html
    assert 'id="dernieres-connexions"' not in html
    assert "Non renseignée" in html  # force_login records no method


@pytest.mark.django_db
def test_the_page_has_the_sign_out_everywhere_form(client: Client) -> None:
    html = open_profile(client, make_user(), AuthMethod.CPS)
    form = html.split(f'action="{reverse("accounts:sign_out_everywhere")}"', 1)[1].split("</form>", 1)[0]
    assert 'name="csrfmiddlewaretoken"' in form
    assert "Se déconnecter partout" in form
    assert 'method="post"' in html.split(f'action="{reverse("accounts:sign_out_everywhere")}"', 1)[0][-40:]


@pytest.mark.django_db
def test_every_page_links_to_the_account_page(client: Client) -> None:
    client.force_login(make_user(Role.GCS_STAFF))
    for url in ["/", "/annuaire/", PROFILE]:
        assert f'href="{PROFILE}"' in client.get(url).content.decode(), url
    client.logout()
    assert f'href="{PROFILE}"' not in client.get("/").content.decode()


@pytest.mark.django_db
def test_the_account_page_is_never_cached(client: Client) -> None:
    client.force_login(make_user())
    assert "no-store" in client.get(PROFILE)["Cache-Control"]
