"""Pro Santé Connect sign-in, against a local OIDC provider double on loopback (real HTTP, real JWTs).

The Django test client cannot follow redirects to another host, so each test drives the flow step by
step: GET the start view → call the double's /authorize with httpx → GET the callback it redirects to.
"""

import base64
import hashlib
import socket
from collections.abc import Iterator
from typing import Any, cast
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest
from django.core.cache import cache
from django.test import Client
from django.urls import reverse
from pytest_django.fixtures import Settings as SettingsWrapper

from enrs.accounts import psc
from enrs.accounts.authn import SESSION_METHOD_KEY, AuthMethod
from enrs.accounts.models import User
from enrs.audit.models import AuditEvent
from tests.accounts.oidc_provider_double import OIDCProviderDouble, psc_userinfo
from tests.factories import UserFactory

CLIENT_ID = "enrs-test"
CLIENT_SECRET = "secret de test : avec espaces & symboles"
IDNAT_PS = "899700367917"
UNKNOWN_MESSAGE = "Aucun compte ENRS n&#x27;est associé à votre identité Pro Santé Connect"


@pytest.fixture
def provider() -> Iterator[OIDCProviderDouble]:
    with OIDCProviderDouble(client_id=CLIENT_ID, client_secret=CLIENT_SECRET) as double:
        yield double


@pytest.fixture
def psc_on(settings: SettingsWrapper, provider: OIDCProviderDouble) -> Iterator[SettingsWrapper]:
    settings.PSC_DISCOVERY_URL = provider.discovery_url
    settings.PSC_CLIENT_ID = CLIENT_ID
    settings.PSC_CLIENT_SECRET = CLIENT_SECRET
    settings.PSC_TOKEN_AUTH_METHOD = "client_secret_basic"
    settings.PSC_SCOPES = "openid scope_all"
    settings.PSC_ACR_VALUES = "eidas1"
    settings.PSC_ACCEPTED_ACR = []
    settings.PSC_HTTP_TIMEOUT = 5.0
    settings.PSC_REDIRECT_URI = ""
    psc.clear_cache()
    yield settings
    psc.clear_cache()


@pytest.fixture
def professional(db: None) -> User:
    return cast(
        User, UserFactory(username="jmartin", idnat_ps=IDNAT_PS, first_name="Jeanne", last_name="Martin")
    )


def start(client: Client, next_url: str = "/annuaire/") -> str:
    response = client.get(reverse("accounts:psc_start"), {"next": next_url})
    assert response.status_code == 302, response.content
    return response["Location"]


def authorize(location: str) -> str:
    """Call the double's /authorize for real and return the callback URL it redirects to."""
    response = httpx.get(location, follow_redirects=False, timeout=5)
    assert response.status_code == 302, response.text
    return response.headers["location"]


def callback(client: Client, url: str, **replace: str) -> Any:
    parts = urlsplit(url)
    assert (parts.scheme, parts.netloc, parts.path) == (
        "http",
        "testserver",
        reverse("accounts:psc_callback"),
    )
    query = {k: v[0] for k, v in parse_qs(parts.query).items()} | replace
    return client.get(f"{parts.path}?{urlencode(query)}")


def sign_in_with_psc(client: Client, next_url: str = "/annuaire/", **replace: str) -> Any:
    return callback(client, authorize(start(client, next_url)), **replace)


def refusal(reason: str) -> AuditEvent:
    events = list(AuditEvent.objects.filter(action="auth.psc.refused"))
    assert [e.detail["reason"] for e in events] == [reason]
    return events[0]


def assert_refused(
    client: Client, response: Any, reason: str, *, outcome: str = "failure", logins: int = 0
) -> AuditEvent:
    assert response.status_code == 403
    assert "Connexion par Pro Santé Connect refusée" in response.content.decode()
    assert "_auth_user_id" not in client.session
    assert psc.SESSION_FLOW_KEY not in client.session
    assert AuditEvent.objects.filter(action="auth.login").count() == logins
    event = refusal(reason)
    assert event.outcome == outcome
    assert event.actor is None
    return event


def s256(verifier: str) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()


# --- Configuration and login page --------------------------------------------------------------------


@pytest.mark.django_db
def test_login_page_has_no_psc_button_when_psc_is_not_configured(
    client: Client, settings: SettingsWrapper
) -> None:
    settings.PSC_DISCOVERY_URL = ""
    response = client.get(reverse("accounts:login"))
    assert response.status_code == 200
    assert "Pro Santé Connect" not in response.content.decode()


@pytest.mark.django_db
def test_login_page_offers_psc_when_configured(client: Client, settings: SettingsWrapper) -> None:
    settings.PSC_DISCOVERY_URL = "https://auth.bas.psc.esante.gouv.fr/auth/realms/esante-wallet/.well-known/x"
    response = client.get(reverse("accounts:login"), {"next": "/annuaire/"})
    html = response.content.decode()
    assert "S'identifier avec Pro Santé Connect" in html
    assert f'href="{reverse("accounts:psc_start")}?next=/annuaire/"' in html


@pytest.mark.django_db
def test_psc_views_do_not_exist_when_psc_is_not_configured(client: Client, settings: SettingsWrapper) -> None:
    settings.PSC_DISCOVERY_URL = ""
    assert client.get(reverse("accounts:psc_start")).status_code == 404
    assert client.get(reverse("accounts:psc_callback"), {"code": "x", "state": "y"}).status_code == 404


@pytest.mark.parametrize(
    ("url", "accepted"),
    [
        ("https://auth.esw.esante.gouv.fr/auth/realms/esante-wallet", True),
        ("http://127.0.0.1:8080/.well-known/openid-configuration", True),
        ("http://[::1]:8080/jwks", True),
        ("http://localhost/jwks", True),
        ("http://auth.esw.esante.gouv.fr/auth/realms/esante-wallet", False),
        ("ftp://127.0.0.1/x", False),
        ("https:///no-host", False),
    ],
)
def test_provider_urls_must_be_https_except_on_loopback(url: str, accepted: bool) -> None:
    if accepted:
        assert psc.require_secure_url(url, what="test") == url
    else:
        with pytest.raises(psc.PSCError) as excinfo:
            psc.require_secure_url(url, what="test")
        assert excinfo.value.reason == "insecure_endpoint"


@pytest.mark.django_db
def test_plain_http_provider_is_refused_before_any_network_call(
    client: Client, settings: SettingsWrapper
) -> None:
    settings.PSC_DISCOVERY_URL = "http://psc.example.org/.well-known/openid-configuration"
    settings.PSC_CLIENT_ID, settings.PSC_CLIENT_SECRET = CLIENT_ID, CLIENT_SECRET
    response = client.get(reverse("accounts:psc_start"))
    assert_refused(client, response, "insecure_endpoint")


@pytest.mark.django_db
def test_unreachable_provider_gives_a_refusal_page_not_a_500(
    client: Client, settings: SettingsWrapper
) -> None:
    with socket.socket() as sock:  # a port nobody listens on once closed
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    settings.PSC_DISCOVERY_URL = f"http://127.0.0.1:{port}/.well-known/openid-configuration"
    settings.PSC_CLIENT_ID, settings.PSC_CLIENT_SECRET = CLIENT_ID, CLIENT_SECRET
    psc.clear_cache()
    response = client.get(reverse("accounts:psc_start"))
    event = assert_refused(client, response, "discovery_failed")
    assert event.detail["error"] == "ConnectError"
    assert "momentanément indisponible" in response.content.decode()


# --- The full sign-in against the double ------------------------------------------------------------


@pytest.mark.integration
@pytest.mark.django_db
def test_sign_in_with_psc(
    client: Client, psc_on: SettingsWrapper, provider: OIDCProviderDouble, professional: User
) -> None:
    location = start(client, "/annuaire/")
    flow = client.session[psc.SESSION_FLOW_KEY]
    anonymous_session_key = client.session.session_key

    # The authorization request: code flow, PKCE S256, state and nonce from the session, PSC scopes and acr.
    parts = urlsplit(location)
    assert f"{parts.scheme}://{parts.netloc}{parts.path}" == f"{provider.issuer}/authorize"
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    assert query == {
        "response_type": "code",
        "client_id": CLIENT_ID,
        "redirect_uri": "http://testserver/compte/connexion/psc/retour/",
        "scope": "openid scope_all",
        "state": flow["state"],
        "nonce": flow["nonce"],
        "code_challenge": s256(flow["verifier"]),
        "code_challenge_method": "S256",
        "acr_values": "eidas1",
    }
    assert len({flow["state"], flow["nonce"], flow["verifier"]}) == 3

    response = callback(client, authorize(location))

    assert response.status_code == 302
    assert response["Location"] == "/annuaire/"
    session = client.session
    assert session.session_key != anonymous_session_key  # rotated at sign-in
    assert int(session["_auth_user_id"]) == professional.pk
    assert session[SESSION_METHOD_KEY] == AuthMethod.PSC.value
    assert psc.SESSION_FLOW_KEY not in session
    assert session[psc.SESSION_ID_TOKEN_KEY].count(".") == 2
    claims = session[psc.SESSION_CLAIMS_KEY]
    assert claims["SubjectNameID"] == IDNAT_PS
    assert claims["Palier_Authentification"] == "APPPRIP3^1.2.250.1.213.1.5.1.1.1"
    assert claims["acr"] == "eidas1"

    # The token request carried the PKCE verifier and the client credentials (HTTP Basic, form-encoded).
    [token_request] = provider.recorded.token
    assert token_request["code_verifier"] == flow["verifier"]
    assert token_request["redirect_uri"] == flow["redirect_uri"]
    assert token_request["authorization"].startswith("Basic ")
    assert "client_secret" not in token_request

    [login] = AuditEvent.objects.filter(action="auth.login")
    assert login.actor == professional
    assert login.outcome == "success"
    assert login.detail == {"method": "psc"}
    assert not AuditEvent.objects.filter(action="auth.psc.refused").exists()

    # The session is a real one: a page behind LoginRequiredMiddleware answers.
    assert client.get(reverse("core:home")).wsgi_request.user == professional


@pytest.mark.integration
@pytest.mark.django_db
@pytest.mark.parametrize(
    ("auth_method", "alg", "userinfo_as_jwt"),
    [
        ("client_secret_post", "RS256", False),
        ("client_secret_basic", "ES256", False),
        ("client_secret_basic", "RS256", True),
        ("client_secret_post", "ES256", True),
    ],
)
def test_sign_in_variants(
    client: Client,
    psc_on: SettingsWrapper,
    provider: OIDCProviderDouble,
    professional: User,
    auth_method: str,
    alg: str,
    userinfo_as_jwt: bool,
) -> None:
    psc_on.PSC_TOKEN_AUTH_METHOD = auth_method
    provider.behaviour.signing_alg = alg
    provider.behaviour.userinfo_as_jwt = userinfo_as_jwt

    response = sign_in_with_psc(client)

    assert response.status_code == 302, response.content
    assert int(client.session["_auth_user_id"]) == professional.pk
    assert client.session[SESSION_METHOD_KEY] == "psc"
    [token_request] = provider.recorded.token
    if auth_method == "client_secret_post":
        assert token_request["client_secret"] == CLIENT_SECRET
        assert token_request["authorization"] == ""
    else:
        assert "client_secret" not in token_request


@pytest.mark.integration
@pytest.mark.django_db
def test_discovery_and_jwks_are_cached(
    client: Client, psc_on: SettingsWrapper, provider: OIDCProviderDouble, professional: User
) -> None:
    for _ in range(2):
        assert sign_in_with_psc(client).status_code == 302
        client.logout()
    hits = provider.recorded.hits
    assert hits["/.well-known/openid-configuration"] == 1
    assert hits["/jwks"] == 1
    assert hits["/token"] == 2
    assert hits["/userinfo"] == 2


@pytest.mark.integration
@pytest.mark.django_db
def test_rotated_signing_key_is_fetched_again(
    client: Client, psc_on: SettingsWrapper, provider: OIDCProviderDouble, professional: User
) -> None:
    metadata = psc.provider_metadata()
    jwks = provider.jwks()
    # The cached JWKS predates the RSA key the provider now signs with.
    ec_only = {"keys": [k for k in jwks["keys"] if k["kty"] == "EC"]}
    cache.set(psc._cache_key("jwks", metadata["jwks_uri"]), ec_only)

    response = sign_in_with_psc(client)

    assert response.status_code == 302, response.content
    assert provider.recorded.hits["/jwks"] == 1


@pytest.mark.integration
@pytest.mark.django_db
def test_unsafe_next_url_is_ignored(
    client: Client, psc_on: SettingsWrapper, provider: OIDCProviderDouble, professional: User
) -> None:
    response = sign_in_with_psc(client, next_url="https://evil.example/vol")
    assert response.status_code == 302
    assert response["Location"] == reverse("core:home")


# --- Refusals: each one a 403 page and an `auth.psc.refused` event ------------------------------------


@pytest.mark.integration
@pytest.mark.django_db
def test_bad_signature_is_refused(
    client: Client, psc_on: SettingsWrapper, provider: OIDCProviderDouble, professional: User
) -> None:
    provider.behaviour.bad_signature = True
    response = sign_in_with_psc(client)
    event = assert_refused(client, response, "bad_signature")
    assert event.detail == {"reason": "bad_signature", "token": "id_token"}
    assert "n&#x27;a pas pu être vérifiée" in response.content.decode()
    assert provider.recorded.hits.get("/userinfo") is None  # nothing trusted from an unverified token


@pytest.mark.integration
@pytest.mark.django_db
def test_wrong_nonce_is_refused(
    client: Client, psc_on: SettingsWrapper, provider: OIDCProviderDouble, professional: User
) -> None:
    provider.behaviour.wrong_nonce = True
    response = sign_in_with_psc(client)
    event = assert_refused(client, response, "wrong_nonce")
    assert event.detail == {"reason": "wrong_nonce"}


@pytest.mark.integration
@pytest.mark.django_db
def test_wrong_state_is_refused_without_redeeming_the_code(
    client: Client, psc_on: SettingsWrapper, provider: OIDCProviderDouble, professional: User
) -> None:
    response = sign_in_with_psc(client, state="etat-forge-par-un-attaquant")
    assert_refused(client, response, "state_mismatch")
    assert "Recommencez la connexion" in response.content.decode()
    assert provider.recorded.token == []


@pytest.mark.integration
@pytest.mark.django_db
def test_unknown_professional_is_refused(
    client: Client, psc_on: SettingsWrapper, provider: OIDCProviderDouble, professional: User
) -> None:
    provider.userinfo = psc_userinfo(subject_name_id="810001234567")
    response = sign_in_with_psc(client)
    event = assert_refused(client, response, "unknown_professional", outcome="denied")
    assert event.detail == {"reason": "unknown_professional", "subject_name_id": "810001234567"}
    assert UNKNOWN_MESSAGE in response.content.decode()


@pytest.mark.integration
@pytest.mark.django_db
@pytest.mark.parametrize(
    ("behaviour", "reason", "outcome"),
    [
        ({"wrong_issuer": True}, "wrong_issuer", "failure"),
        ({"wrong_audience": True}, "wrong_audience", "failure"),
        ({"expired": True}, "expired", "failure"),
        ({"userinfo_status": 500}, "userinfo_failed", "failure"),
        ({"userinfo_as_jwt": True, "bad_signature": True}, "bad_signature", "failure"),
        ({"authorize_error": "access_denied"}, "provider_error", "denied"),
        (
            {"userinfo_sub": "f:00000000-0000-0000-0000-000000000000:810001234567"},
            "subject_mismatch",
            "failure",
        ),
    ],
)
def test_misbehaving_provider_is_refused(
    client: Client,
    psc_on: SettingsWrapper,
    provider: OIDCProviderDouble,
    professional: User,
    behaviour: dict[str, Any],
    reason: str,
    outcome: str,
) -> None:
    for name, value in behaviour.items():
        setattr(provider.behaviour, name, value)
    response = sign_in_with_psc(client)
    assert_refused(client, response, reason, outcome=outcome)


@pytest.mark.integration
@pytest.mark.django_db
def test_signed_userinfo_with_a_bad_signature_is_refused_after_a_good_id_token(
    client: Client, psc_on: SettingsWrapper, provider: OIDCProviderDouble, professional: User
) -> None:
    provider.behaviour.userinfo_as_jwt = True
    original_sign = provider.sign

    def sign(claims: dict[str, Any]) -> str:
        provider.behaviour.bad_signature = "SubjectNameID" in claims  # only the userinfo JWT
        return original_sign(claims)

    provider.sign = sign  # type: ignore[method-assign]
    response = sign_in_with_psc(client)
    event = assert_refused(client, response, "bad_signature")
    assert event.detail["token"] == "userinfo"


@pytest.mark.integration
@pytest.mark.django_db
def test_insufficient_acr_is_refused(
    client: Client, psc_on: SettingsWrapper, provider: OIDCProviderDouble, professional: User
) -> None:
    psc_on.PSC_ACCEPTED_ACR = ["eidas3"]
    provider.behaviour.acr = "eidas1"
    response = sign_in_with_psc(client)
    event = assert_refused(client, response, "acr_insufficient", outcome="denied")
    assert event.detail["acr"] == "eidas1"
    assert event.detail["palier"] == "APPPRIP3^1.2.250.1.213.1.5.1.1.1"


@pytest.mark.integration
@pytest.mark.django_db
def test_accepted_acr_signs_in(
    client: Client, psc_on: SettingsWrapper, provider: OIDCProviderDouble, professional: User
) -> None:
    psc_on.PSC_ACCEPTED_ACR = ["eidas1", "eidas3"]
    provider.behaviour.acr = "eidas3"
    assert sign_in_with_psc(client).status_code == 302
    assert client.session[psc.SESSION_CLAIMS_KEY]["acr"] == "eidas3"


@pytest.mark.integration
@pytest.mark.django_db
def test_wrong_client_secret_is_refused(
    client: Client, psc_on: SettingsWrapper, provider: OIDCProviderDouble, professional: User
) -> None:
    psc_on.PSC_CLIENT_SECRET = "pas le bon secret"
    response = sign_in_with_psc(client)
    event = assert_refused(client, response, "token_request_failed")
    assert event.detail == {"reason": "token_request_failed", "status": 401, "error": "invalid_client"}


@pytest.mark.integration
@pytest.mark.django_db
def test_inactive_account_is_refused(
    client: Client, psc_on: SettingsWrapper, provider: OIDCProviderDouble, professional: User
) -> None:
    User.objects.filter(pk=professional.pk).update(is_active=False)
    response = sign_in_with_psc(client)
    assert_refused(client, response, "inactive_account", outcome="denied")


@pytest.mark.integration
@pytest.mark.django_db
def test_callback_cannot_be_replayed(
    client: Client, psc_on: SettingsWrapper, provider: OIDCProviderDouble, professional: User
) -> None:
    url = authorize(start(client))
    assert callback(client, url).status_code == 302
    client.logout()

    response = callback(client, url)

    assert_refused(client, response, "flow_missing", logins=1)
    assert len(provider.recorded.token) == 1


@pytest.mark.integration
@pytest.mark.django_db
def test_expired_flow_is_refused(
    client: Client, psc_on: SettingsWrapper, provider: OIDCProviderDouble, professional: User
) -> None:
    url = authorize(start(client))
    session = client.session
    session[psc.SESSION_FLOW_KEY] = {
        **session[psc.SESSION_FLOW_KEY],
        "started": session[psc.SESSION_FLOW_KEY]["started"] - psc.FLOW_MAX_AGE - 1,
    }
    session.save()

    response = callback(client, url)

    assert_refused(client, response, "flow_expired")
    assert provider.recorded.token == []


@pytest.mark.integration
@pytest.mark.django_db
def test_callback_from_another_browser_is_refused(
    client: Client, psc_on: SettingsWrapper, provider: OIDCProviderDouble, professional: User
) -> None:
    """Login CSRF: a victim's browser that never started the flow cannot be signed in as the attacker."""
    url = authorize(start(Client()))
    response = callback(client, url)
    assert_refused(client, response, "flow_missing")
    assert provider.recorded.token == []


# --- Logout at the provider --------------------------------------------------------------------------


@pytest.mark.integration
@pytest.mark.django_db
def test_logout_ends_the_psc_session_too(
    client: Client, psc_on: SettingsWrapper, provider: OIDCProviderDouble, professional: User
) -> None:
    assert sign_in_with_psc(client).status_code == 302
    id_token = client.session[psc.SESSION_ID_TOKEN_KEY]

    response = client.post(reverse("accounts:psc_logout"))

    assert response.status_code == 302
    parts = urlsplit(response["Location"])
    assert f"{parts.scheme}://{parts.netloc}{parts.path}" == f"{provider.issuer}/logout"
    assert {k: v[0] for k, v in parse_qs(parts.query).items()} == {
        "client_id": CLIENT_ID,
        "id_token_hint": id_token,
        "post_logout_redirect_uri": "http://testserver/",
    }
    assert "_auth_user_id" not in client.session
    [event] = AuditEvent.objects.filter(action="auth.logout")
    assert event.actor == professional
    assert event.auth_method == "psc"
    assert event.detail == {"method": "psc", "provider_logout": True}
