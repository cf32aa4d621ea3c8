"""CPS card sign-in end to end: a real nginx, running the production site deploy/nginx/enrs.conf, in front
of the test server, and an HTTPS client that presents (or not) a card certificate from the test PKI.

nginx comes from the Debian package, installed here when missing (root only; otherwise the tests are
skipped with the reason). Everything listens on loopback, on free ports, under the test's temporary dir.
"""

import os
import re
import shutil
import ssl
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import cast
from urllib.parse import quote, urlsplit

import httpx
import pytest
from django.contrib.sessions.backends.db import SessionStore
from pytest_django.fixtures import Settings
from pytest_django.live_server_helper import LiveServer

from enrs.accounts.authn import SESSION_METHOD_KEY
from enrs.accounts.models import User
from enrs.accounts.pki_testing import (
    DEFAULT_PROFESSIONALS,
    EXPIRED,
    NO_CLIENT_AUTH,
    REVOKED,
    UNKNOWN_CA,
    Professional,
    SamplePki,
    build_test_pki,
)
from enrs.audit.models import AuditEvent
from tests.factories import UserFactory
from tests.helpers import REPO, free_port, port_open, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

DEPLOY = REPO / "deploy" / "nginx"
CPS_PATH = "/compte/connexion/cps/"
DURAND, MARTIN = DEFAULT_PROFESSIONALS[0], DEFAULT_PROFESSIONALS[1]


# --- nginx ------------------------------------------------------------------------------------------------
def _find_nginx() -> str | None:
    found = shutil.which("nginx")
    if found:
        return found
    return "/usr/sbin/nginx" if os.access("/usr/sbin/nginx", os.X_OK) else None


def _apt_get(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    return subprocess.run(
        ["apt-get", *args], env=env, capture_output=True, text=True, timeout=900, check=False
    )


@pytest.fixture(scope="session")
def nginx_binary() -> str:
    """The nginx executable; installs the Debian package when it is missing and we are root."""
    found = _find_nginx()
    if found:
        return found
    if os.geteuid() != 0:
        pytest.skip("nginx n'est pas installé et son installation (apt-get install nginx) demande root.")
    install = ("install", "-y", "--no-install-recommends", "nginx")
    result = _apt_get(*install)
    if result.returncode != 0:  # stale package lists: refresh once, then retry
        _apt_get("update")
        result = _apt_get(*install)
    found = _find_nginx()
    if result.returncode != 0 or not found:
        pytest.fail(f"apt-get install nginx a échoué :\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}")
    return found


def render_site(source: str, *, certs: Path, upstream: str, http_port: int, https_port: int) -> str:
    """The production site with its certificate paths, upstream and ports rewritten for loopback."""
    replacements = {
        "server web:8000;": f"server {upstream};",
        "/etc/nginx/certs/": f"{certs}/",
        "listen 80;": f"listen 127.0.0.1:{http_port};",
        "listen 443 ssl;": f"listen 127.0.0.1:{https_port} ssl;",
    }
    for old, new in replacements.items():
        assert old in source, f"deploy/nginx/enrs.conf no longer contains {old!r}: update this test"
        source = source.replace(old, new)
    # IPv6 listeners: not needed on loopback (and ::1 may be missing in a container).
    source, count = re.subn(r"^\s*listen \[::\]:\d+[^;]*;\s*$", "", source, flags=re.MULTILINE)
    assert count == 2
    return source


@dataclass(frozen=True)
class Front:
    https: str
    http: str
    pki: SamplePki
    files: dict[str, Path]

    def client(self, card: str | None = None) -> httpx.Client:
        """An HTTPS client that trusts the test root and presents the card `card` (a file stem), if any."""
        context = ssl.create_default_context(cafile=str(self.files["root-ca.crt"]))
        if card is not None:
            context.load_cert_chain(self.files[f"{card}.crt"], self.files[f"{card}.key"])
        return httpx.Client(base_url=self.https, verify=context, timeout=20)


@pytest.fixture(scope="module")
def front(
    nginx_binary: str, live_server: LiveServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Front]:
    """nginx on two free loopback ports (HTTP, HTTPS) in front of the live test server."""
    tmp = tmp_path_factory.mktemp("nginx")
    pki = build_test_pki()
    files = pki.write(tmp / "certs")
    upstream = urlsplit(live_server.url)
    http_port, https_port = free_port(), free_port()
    site = tmp / "enrs.conf"
    site.write_text(
        render_site(
            (DEPLOY / "enrs.conf").read_text(),
            certs=tmp / "certs",
            upstream=f"127.0.0.1:{upstream.port}",
            http_port=http_port,
            https_port=https_port,
        )
    )
    main = (DEPLOY / "test.conf.template").read_text()
    for name, value in {
        "USER_DIRECTIVE": "user root root;" if os.geteuid() == 0 else "",
        "TMP": str(tmp),
        "SITE": str(site),
    }.items():
        main = main.replace("{{" + name + "}}", value)
    assert "{{" not in main
    conf = tmp / "nginx.conf"
    conf.write_text(main)

    command = [nginx_binary, "-p", str(tmp), "-e", str(tmp / "error.log"), "-c", str(conf)]
    check = subprocess.run([*command, "-t"], capture_output=True, text=True, timeout=30, check=False)
    assert check.returncode == 0, f"nginx -t:\n{check.stderr}"
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        wait_until(
            lambda: process.poll() is not None or (port_open(https_port) and port_open(http_port)),
            timeout=20,
            what="nginx",
        )
        if process.poll() is not None:
            log = (tmp / "error.log").read_text() if (tmp / "error.log").exists() else ""
            stderr = process.stderr.read() if process.stderr else ""
            pytest.fail(f"nginx stopped at start ({process.returncode}):\n{stderr}\n{log}")
        yield Front(f"https://127.0.0.1:{https_port}", f"http://127.0.0.1:{http_port}", pki, files)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
        if process.stderr:
            process.stderr.close()


@pytest.fixture(autouse=True)
def cps_settings(front: Front, settings: Settings) -> None:
    """Django (the live server thread reads the same settings) trusts the same files as nginx."""
    settings.CPS_CA_BUNDLE = str(front.files["ca-bundle.pem"])
    settings.CPS_CRL_FILE = str(front.files["crl.pem"])
    settings.TRUSTED_PROXY_CIDRS = ["127.0.0.1/32", "::1/128"]


def account(professional_idnat: str, username: str) -> User:
    return cast(User, UserFactory(username=username, idnat_ps=professional_idnat))


def session_of(response: httpx.Response) -> SessionStore:
    key = response.cookies.get("sessionid")
    assert key, "no session cookie"
    return SessionStore(session_key=key)


# --- Scenarios --------------------------------------------------------------------------------------------
def test_valid_card_signs_in(front: Front) -> None:
    durand = account(DURAND.idnat_ps, "cdurand")

    with front.client(DURAND.idnat_ps) as client:
        response = client.get(CPS_PATH, params={"next": "/annuaire/"})

    assert response.status_code == 302, response.text[:2000]
    assert response.headers["location"] == "/annuaire/"
    session = session_of(response)
    assert session["_auth_user_id"] == str(durand.pk)
    assert session[SESSION_METHOD_KEY] == "cps"
    login = AuditEvent.objects.get(action="auth.login")
    assert login.actor == durand
    assert login.detail["method"] == "cps"
    assert login.detail["idnat_ps"] == DURAND.idnat_ps  # the card that went through nginx
    # Forwarded by nginx: the client address and nginx's request id (32 hex digits), echoed back.
    assert login.ip == "127.0.0.1"
    assert re.fullmatch(r"[0-9a-f]{32}", login.request_id)
    assert response.headers["x-request-id"] == login.request_id


@pytest.mark.parametrize(
    ("card", "professional", "reason", "message"),
    [
        ("expired", EXPIRED, "expired", "Votre carte CPS a expiré le"),
        ("unknown-ca", UNKNOWN_CA, "unknown_issuer", "autorité IGC-Santé reconnue"),
        ("revoked", REVOKED, "revoked", "Ce certificat a été révoqué"),
        ("no-client-auth", NO_CLIENT_AUTH, "wrong_usage", "authentification du client"),
    ],
)
def test_invalid_card_is_refused_with_a_french_message(
    front: Front, card: str, professional: Professional, reason: str, message: str
) -> None:
    account(professional.idnat_ps, f"titulaire-{card}")

    with front.client(card) as client:
        response = client.get(CPS_PATH)

    # nginx let the certificate through (optional_no_ca): the refusal page is Django's, in French.
    assert response.status_code == 403
    assert message in response.text.replace("&#x27;", "'")
    assert f'data-reason="{reason}"' in response.text
    assert "sessionid" not in response.cookies
    event = AuditEvent.objects.get(action="auth.cps.refused")
    assert event.detail["reason"] == reason
    # nginx's own verdict reached Django, and nginx disagreed too.
    assert event.detail["proxy_verify"].startswith("FAILED:")
    assert not AuditEvent.objects.filter(action="auth.login").exists()


def test_no_card_offers_the_password_login(front: Front) -> None:
    with front.client(None) as client:
        response = client.get(CPS_PATH, params={"next": "/dmp/"})
        assert response.status_code == 302
        assert response.headers["location"] == "/compte/connexion/?next=%2Fdmp%2F"
        page = client.get(response.headers["location"])

    assert page.status_code == 200
    text = page.text.replace("&#x27;", "'")
    assert "Aucune carte CPS n'a été présentée" in text
    assert "code à usage unique" in text
    assert 'name="username"' in text
    assert 'name="password"' in text
    assert "Se connecter avec ma carte CPS" in text
    assert not AuditEvent.objects.filter(action__startswith="auth.cps").exists()


def test_headers_sent_by_the_client_never_reach_django(front: Front) -> None:
    """A client without a card forges nginx's headers (also with underscores): nginx drops them all."""
    account(DURAND.idnat_ps, "cdurand")
    forged_pem = quote(front.pki.professionals[DURAND.idnat_ps].cert_pem.decode(), safe="")
    headers = {
        "X-SSL-Client-Cert": forged_pem,
        "X-SSL-Client-Verify": "SUCCESS",
        "X_SSL_Client_Cert": forged_pem,
        "X_SSL_Client_Verify": "SUCCESS",
    }
    with front.client(None) as client:
        response = client.get(CPS_PATH, headers=headers)

    assert response.status_code == 302
    assert response.headers["location"].startswith("/compte/connexion/")
    assert "sessionid" not in response.cookies or "_auth_user_id" not in session_of(response)
    assert not AuditEvent.objects.filter(action="auth.login").exists()


def test_the_header_carries_the_presented_card_not_the_clients_copy(front: Front) -> None:
    """Martin presents his card and adds a header with Durand's certificate: he is signed in as Martin."""
    account(DURAND.idnat_ps, "cdurand")
    martin = account(MARTIN.idnat_ps, "pmartin")
    durand_pem = quote(front.pki.professionals[DURAND.idnat_ps].cert_pem.decode(), safe="")

    with front.client(MARTIN.idnat_ps) as client:
        response = client.get(CPS_PATH, headers={"X-SSL-Client-Cert": durand_pem})

    assert response.status_code == 302
    assert session_of(response)["_auth_user_id"] == str(martin.pk)


def test_headers_sent_straight_to_the_app_are_a_spoofing_attempt(
    front: Front, live_server: LiveServer, settings: Settings
) -> None:
    """Bypassing nginx (here from 127.0.0.2, not a trusted proxy) with the headers: refused, audited."""
    account(DURAND.idnat_ps, "cdurand")
    settings.TRUSTED_PROXY_CIDRS = ["127.0.0.1/32"]
    forged_pem = quote(front.pki.professionals[DURAND.idnat_ps].cert_pem.decode(), safe="")
    port = urlsplit(live_server.url).port
    transport = httpx.HTTPTransport(local_address="127.0.0.2")
    with httpx.Client(transport=transport, timeout=20) as client:
        response = client.get(
            f"http://127.0.0.1:{port}{CPS_PATH}",
            headers={"X-SSL-Client-Cert": forged_pem, "X-SSL-Client-Verify": "SUCCESS"},
        )

    assert response.status_code == 403
    event = AuditEvent.objects.get(action="auth.cps.spoofing")
    assert event.outcome == "denied"
    assert event.detail["peer"] == "127.0.0.2"
    assert not AuditEvent.objects.filter(action="auth.login").exists()


def test_plain_http_is_redirected_to_https(front: Front) -> None:
    with httpx.Client(timeout=20) as client:
        response = client.get(f"{front.http}{CPS_PATH}")
    assert response.status_code == 301
    assert response.headers["location"] == f"https://127.0.0.1{CPS_PATH}"


def test_a_failing_card_does_not_lock_the_rest_of_the_portal(front: Front) -> None:
    """A browser may present an expired card on every request: nginx still passes each request to Django
    unchanged (method, URI, body), so the password sign-in keeps working."""
    user = account(EXPIRED.idnat_ps, "titulaire-expire")
    with front.client("expired") as client:
        login_page = client.get("/compte/connexion/")
        assert login_page.status_code == 200
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', login_page.text)
        assert token
        response = client.post(
            "/compte/connexion/",
            data={
                "csrfmiddlewaretoken": token.group(1),
                "username": user.username,
                "password": "mot-de-passe-de-test",
            },
            headers={"Referer": f"{front.https}/compte/connexion/"},
        )

    assert response.status_code == 302, response.text[:2000]
    assert session_of(response)["_auth_user_id"] == str(user.pk)
