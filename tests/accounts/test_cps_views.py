"""The CPS sign-in view (/compte/connexion/cps/): each case, its answer and its audit event."""

from pathlib import Path
from typing import Any, cast
from urllib.parse import quote

import pytest
from django.test import Client
from django.urls import reverse
from pytest_django.fixtures import Settings

from enrs.accounts import cps_views, pki_testing
from enrs.accounts.authn import SESSION_METHOD_KEY
from enrs.accounts.models import User
from enrs.accounts.pki_testing import DEFAULT_PROFESSIONALS, Issued, SamplePki, build_test_pki, make_crl
from enrs.audit.models import AuditEvent
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

URL = reverse("accounts:cps_login")
DURAND = DEFAULT_PROFESSIONALS[0]
UNTRUSTED_PEER = "203.0.113.7"


@pytest.fixture(scope="module")
def pki() -> SamplePki:
    return build_test_pki()


@pytest.fixture
def pki_files(pki: SamplePki, tmp_path: Path, settings: Settings) -> dict[str, Path]:
    files = pki.write(tmp_path / "pki")
    settings.CPS_CA_BUNDLE = str(files["ca-bundle.pem"])
    settings.CPS_CRL_FILE = str(files["crl.pem"])
    settings.CPS_CERT_HEADER = "HTTP_X_SSL_CLIENT_CERT"
    settings.CPS_VERIFY_HEADER = "HTTP_X_SSL_CLIENT_VERIFY"
    return files


@pytest.fixture
def durand(db: None) -> User:
    return cast(
        User,
        UserFactory(username="cdurand", first_name="Claire", last_name="DURAND", idnat_ps=DURAND.idnat_ps),
    )


def present(
    client: Client,
    card: Issued | None,
    *,
    verdict: str = "SUCCESS",
    peer: str = "127.0.0.1",
    next_url: str = "",
):
    """A GET on the CPS view as nginx would send it for `card` (None: no certificate)."""
    headers: dict[str, str] = {}
    if card is not None:
        headers["X-SSL-Client-Cert"] = quote(card.cert_pem.decode(), safe="")
        headers["X-SSL-Client-Verify"] = verdict
    data = {"next": next_url} if next_url else {}
    return client.get(URL, data, headers=headers, REMOTE_ADDR=peer)


def events(action: str) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(action=action).order_by("id"))


def assert_not_signed_in(client: Client) -> None:
    assert "_auth_user_id" not in client.session


def refused(response: Any, client: Client, *, text: str, reason: str, status: int = 403) -> AuditEvent:
    """The refusal page (with `text`), no session, and the one `auth.cps.refused` event, returned."""
    assert response.status_code == status
    content = response.content.decode().replace("&#x27;", "'")
    assert text in content
    assert f'data-reason="{reason}"' in content
    assert_not_signed_in(client)
    [event] = events("auth.cps.refused")
    assert event.detail["reason"] == reason
    assert events("auth.login") == []
    return event


# --- Signed in ----------------------------------------------------------------------------------------
def test_valid_card_opens_a_strong_session(
    client: Client, pki: SamplePki, pki_files: dict, durand: User
) -> None:
    response = present(client, pki.professionals[DURAND.idnat_ps])

    assert response.status_code == 302
    assert response["Location"] == reverse("core:home")
    assert client.session["_auth_user_id"] == str(durand.pk)
    assert client.session[SESSION_METHOD_KEY] == "cps"
    [login] = events("auth.login")
    assert login.actor == durand
    assert login.outcome == "success"
    card = pki.professionals[DURAND.idnat_ps].cert
    assert login.detail == {
        "method": "cps",
        "serial": format(card.serial_number, "X"),
        "issuer": card.issuer.rfc4514_string(),
        "idnat_ps": DURAND.idnat_ps,
    }
    assert events("auth.cps.refused") == []


def test_valid_card_goes_to_next(client: Client, pki: SamplePki, pki_files: dict, durand: User) -> None:
    response = present(client, pki.professionals[DURAND.idnat_ps], next_url="/annuaire/?q=cardio")
    assert response["Location"] == "/annuaire/?q=cardio"


def test_next_to_another_site_is_ignored(
    client: Client, pki: SamplePki, pki_files: dict, durand: User
) -> None:
    response = present(client, pki.professionals[DURAND.idnat_ps], next_url="https://evil.example/")
    assert response["Location"] == reverse("core:home")


def test_the_session_id_changes(client: Client, pki: SamplePki, pki_files: dict, durand: User) -> None:
    client.get(reverse("accounts:login"))
    session = client.session
    session["marker"] = "before"
    session.save()
    before = session.session_key

    present(client, pki.professionals[DURAND.idnat_ps])

    assert client.session.session_key != before


# --- Refused: invalid certificates ------------------------------------------------------------------
@pytest.mark.parametrize(
    ("card_name", "reason", "message"),
    [
        ("expired", "expired", "Votre carte CPS a expiré le"),
        ("unknown_ca", "unknown_issuer", "n'a pas été émis par une autorité IGC-Santé reconnue"),
        ("revoked", "revoked", "Ce certificat a été révoqué"),
        ("no_client_auth", "wrong_usage", "ne permet pas l'authentification du client"),
    ],
)
def test_invalid_card_is_refused(
    client: Client, pki: SamplePki, pki_files: dict, card_name: str, reason: str, message: str
) -> None:
    card: Issued = getattr(pki, card_name)
    # The card holder has an account: the refusal is about the certificate.
    UserFactory(idnat_ps=getattr(pki_testing, card_name.upper()).idnat_ps)

    event = refused(present(client, card), client, text=message, reason=reason)

    assert event.outcome == "failure"
    assert event.actor is None
    assert event.detail["serial"] == format(card.cert.serial_number, "X")
    assert event.target_type == "certificate"
    assert event.ip == "127.0.0.1"


def test_garbage_pem_is_refused(client: Client, pki_files: dict) -> None:
    response = client.get(
        URL, headers={"X-SSL-Client-Cert": "%2D%2D%2D%2D%2DBEGIN", "X-SSL-Client-Verify": "SUCCESS"}
    )

    text = "Le certificat transmis par votre carte CPS est illisible."
    event = refused(response, client, text=text, reason="malformed")
    assert event.target_type == ""


def test_nginx_verdict_must_be_success(client: Client, pki: SamplePki, pki_files: dict, durand: User) -> None:
    """Our checks pass, but nginx says FAILED (e.g. configured with another bundle): refused."""
    response = present(client, pki.professionals[DURAND.idnat_ps], verdict="FAILED:unable to get CRL")

    event = refused(response, client, text="n'a pas pu être vérifiée", reason="proxy_rejected")
    assert event.detail["proxy_verify"] == "FAILED:unable to get CRL"


def test_nginx_verdict_not_required_when_the_setting_is_empty(
    client: Client, pki: SamplePki, pki_files: dict, durand: User, settings: Settings
) -> None:
    settings.CPS_VERIFY_HEADER = ""
    response = client.get(
        URL, headers={"X-SSL-Client-Cert": quote(pki.professionals[DURAND.idnat_ps].cert_pem.decode())}
    )
    assert response.status_code == 302
    assert client.session[SESSION_METHOD_KEY] == "cps"


# --- Refused: no account ------------------------------------------------------------------------------
def test_valid_card_without_account(client: Client, pki: SamplePki, pki_files: dict) -> None:
    response = present(client, pki.professionals[DURAND.idnat_ps])

    text = (
        "Aucun compte ENRS n'est associé à la carte CPS de Claire DURAND (identifiant national 899700000011)"
    )
    event = refused(response, client, text=text, reason="unknown_account")
    assert event.outcome == "denied"
    assert (event.target_type, event.target_id) == ("professional", DURAND.idnat_ps)


def test_valid_card_of_an_inactive_account(
    client: Client, pki: SamplePki, pki_files: dict, durand: User
) -> None:
    durand.is_active = False
    durand.save()

    response = present(client, pki.professionals[DURAND.idnat_ps])

    event = refused(response, client, text="est désactivé", reason="inactive_account")
    assert (event.target_type, event.target_id) == ("accounts.user", str(durand.pk))


# --- Headers from anyone but nginx ---------------------------------------------------------------------
def test_headers_from_an_untrusted_peer_are_a_spoofing_attempt(
    client: Client, pki: SamplePki, pki_files: dict, durand: User
) -> None:
    response = present(client, pki.professionals[DURAND.idnat_ps], peer=UNTRUSTED_PEER)

    assert response.status_code == 403
    assert "ne provient pas du point d&#x27;entrée sécurisé du portail" in response.content.decode()
    assert_not_signed_in(client)
    [event] = events("auth.cps.spoofing")
    assert event.outcome == "denied"
    assert event.ip == UNTRUSTED_PEER
    assert event.detail == {
        "peer": UNTRUSTED_PEER,
        "headers": ["HTTP_X_SSL_CLIENT_CERT", "HTTP_X_SSL_CLIENT_VERIFY"],
    }
    assert events("auth.login") == []


def test_verify_header_alone_from_an_untrusted_peer(client: Client, pki_files: dict) -> None:
    response = client.get(URL, headers={"X-SSL-Client-Verify": "SUCCESS"}, REMOTE_ADDR=UNTRUSTED_PEER)
    assert response.status_code == 403
    assert len(events("auth.cps.spoofing")) == 1


def test_spoofing_is_audited_even_when_cps_is_disabled(
    client: Client, pki: SamplePki, settings: Settings
) -> None:
    settings.CPS_CA_BUNDLE = ""
    response = present(client, pki.professionals[DURAND.idnat_ps], peer=UNTRUSTED_PEER)
    assert response.status_code == 403
    assert len(events("auth.cps.spoofing")) == 1


def test_untrusted_peer_without_headers_is_sent_to_the_password_login(
    client: Client, pki_files: dict
) -> None:
    response = present(client, None, peer=UNTRUSTED_PEER)
    assert response.status_code == 302
    assert response["Location"] == reverse("accounts:login")
    assert events("auth.cps.spoofing") == []


# --- No card, disabled, misconfigured -------------------------------------------------------------------
def test_no_certificate_goes_to_the_password_login(client: Client, pki_files: dict) -> None:
    response = present(client, None, next_url="/dmp/")

    assert response.status_code == 302
    assert response["Location"] == reverse("accounts:login") + "?next=%2Fdmp%2F"
    page = client.get(response["Location"]).content.decode()
    assert "Aucune carte CPS n&#x27;a été présentée" in page
    assert 'name="password"' in page
    assert AuditEvent.objects.filter(action__startswith="auth.cps").count() == 0


def test_verdict_none_means_no_certificate(client: Client, pki_files: dict) -> None:
    response = client.get(URL, headers={"X-SSL-Client-Verify": "NONE"})
    assert response.status_code == 302
    assert response["Location"] == reverse("accounts:login")


def test_cps_disabled(client: Client, pki: SamplePki, settings: Settings) -> None:
    settings.CPS_CA_BUNDLE = ""
    response = present(client, pki.professionals[DURAND.idnat_ps])

    assert response.status_code == 302
    assert response["Location"] == reverse("accounts:login")
    page = client.get(reverse("accounts:login")).content.decode()
    assert "n&#x27;est pas activée sur ce portail" in page
    assert 'id="connexion-cps"' not in page


def test_login_page_offers_the_card_when_enabled(client: Client, pki_files: dict) -> None:
    page = client.get(reverse("accounts:login"), {"next": "/dmp/"}).content.decode()
    assert 'id="connexion-cps"' in page
    assert "Se connecter avec ma carte CPS" in page
    assert f'href="{URL}?next=/dmp/"' in page or f'href="{URL}?next=%2Fdmp%2F"' in page


def test_missing_bundle_file_answers_503(
    client: Client, pki: SamplePki, tmp_path: Path, settings: Settings
) -> None:
    settings.CPS_CA_BUNDLE = str(tmp_path / "absent.pem")
    settings.CPS_CRL_FILE = ""

    response = present(client, pki.professionals[DURAND.idnat_ps])

    refused(response, client, text="momentanément indisponible", reason="configuration", status=503)


def test_post_is_not_allowed(client: Client, pki_files: dict) -> None:
    assert client.post(URL).status_code == 405


# --- Trust material reload ------------------------------------------------------------------------------
def test_an_updated_crl_is_used_without_restart(client: Client, pki: SamplePki, pki_files: dict) -> None:
    card = pki.professionals[DURAND.idnat_ps]
    UserFactory(idnat_ps=DURAND.idnat_ps)
    assert present(client, card).status_code == 302
    client.logout()

    from cryptography.hazmat.primitives import serialization
    from django.utils import timezone

    revoking = make_crl(issuer=pki.issuing, revoked=[card.cert], now=timezone.now())
    pki_files["crl.pem"].write_bytes(
        revoking.public_bytes(serialization.Encoding.PEM)
        + pki.root_crl.public_bytes(serialization.Encoding.PEM)
    )

    response = present(client, card)
    assert response.status_code == 403
    assert events("auth.cps.refused")[-1].detail["reason"] == "revoked"


def test_trust_material_is_cached(pki_files: dict) -> None:
    first = cps_views.trust_material()
    assert cps_views.trust_material() is first
    assert len(first.ca_bundle) == 2
    assert first.crls is not None
    assert len(first.crls) == 2


def test_an_unexpected_error_is_a_refusal_not_a_500(
    client: Client, pki: SamplePki, pki_files: dict, durand: User, monkeypatch: pytest.MonkeyPatch
) -> None:
    def explode(*args: object, **kwargs: object) -> None:
        raise RuntimeError("parser surprise")

    monkeypatch.setattr(cps_views.cps, "validate_cps_certificate", explode)

    response = present(client, pki.professionals[DURAND.idnat_ps])

    event = refused(response, client, text="Votre carte CPS n'a pas pu être vérifiée.", reason="invalid")
    assert event.detail["problem"] == "RuntimeError: parser surprise"
