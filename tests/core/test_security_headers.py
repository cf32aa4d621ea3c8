"""Security headers: a strict Content-Security-Policy that the DSFR pages work with, and HTTPS-only
settings in production (HSTS, secure cookies) so that `manage.py check --deploy` passes."""

import json
import re
import secrets
from pathlib import Path
from typing import cast

import pytest
from django.contrib.staticfiles import finders
from django.test import Client
from dsfr.constants import DsfrStaticAssets

from enrs.accounts.authn import SESSION_METHOD_KEY, AuthMethod
from enrs.accounts.models import User
from tests.factories import UserFactory
from tests.helpers import clean_env, run_python

VAULT_KEYS = "k1:" + "A" * 43 + "="  # 32 zero bytes: a test key, never a real one


def csp_of(response: object) -> dict[str, list[str]]:
    header = response["Content-Security-Policy"]  # type: ignore[index]
    directives = {}
    for part in header.split(";"):
        name, *values = part.split()
        directives[name] = values
    return directives


def production_env(**extra: str) -> dict[str, str]:
    return clean_env(
        DJANGO_SETTINGS_MODULE="enrs.settings.production",
        SECRET_KEY=secrets.token_urlsafe(64),
        DATABASE_URL="postgres://postgres@127.0.0.1:5432/enrs",
        REDIS_URL="redis://127.0.0.1:6379/0",
        ENRS_VAULT_KEYS=VAULT_KEYS,
        ENRS_VAULT_ACTIVE_KEY="k1",
        **extra,
    )


# --- Content-Security-Policy --------------------------------------------------------------------------


@pytest.mark.django_db
def test_pages_carry_a_strict_content_security_policy(client: Client) -> None:
    response = client.get("/")
    assert response.status_code == 200
    assert csp_of(response) == {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'"],
        "img-src": ["'self'", "data:"],
        "font-src": ["'self'"],
        "connect-src": ["'self'"],
        "manifest-src": ["'self'"],
        "object-src": ["'none'"],
        "base-uri": ["'self'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
    }
    assert "Content-Security-Policy-Report-Only" not in response


@pytest.mark.django_db
def test_error_pages_and_redirects_carry_it_too(client: Client) -> None:
    assert "frame-ancestors 'none'" in client.get("/messagerie/")["Content-Security-Policy"]  # 302
    client.force_login(cast(User, UserFactory(clinician=True)))
    denied = client.get("/tableaux-de-bord/")
    assert denied.status_code == 403
    assert "script-src 'self'" in denied["Content-Security-Policy"]


def _pages(client: Client) -> dict[str, str]:
    """The HTML of the portal's pages, anonymous and signed in with a strong session."""
    pages = {url: client.get(url).content.decode() for url in ["/", "/compte/connexion/", "/accessibilite/"]}
    user = cast(User, UserFactory(admin=True))
    client.force_login(user)
    session = client.session
    session[SESSION_METHOD_KEY] = AuthMethod.CPS.value
    session.save()
    for url in [
        "/annuaire/",
        "/messagerie/",
        "/dmp/",
        "/telemedecine/",
        "/ror/",
        "/tableaux-de-bord/",
        "/compte/",
    ]:
        response = client.get(url)
        assert response.status_code == 200, url
        pages[url] = response.content.decode()
    pages["404"] = client.get("/page-inexistante/").content.decode()
    client.force_login(cast(User, UserFactory(ars_analyst=True)))
    pages["403"] = client.get("/dmp/").content.decode()
    return pages


@pytest.mark.django_db
def test_our_pages_need_nothing_the_policy_forbids(client: Client) -> None:
    for url, html in _pages(client).items():
        scripts = re.findall(r"<script\b([^>]*)>(.*?)</script>", html, flags=re.S)
        assert scripts, url
        for attributes, body in scripts:
            if 'type="application/json"' in attributes:
                continue  # json_script data blocks are never executed: CSP does not apply to them
            assert body.strip() == "", f"{url}: inline script"
            src = re.search(r'src="([^"]+)"', attributes)
            assert src, f"{url}: script without src"
            assert src.group(1).startswith("/static/"), f"{url}: script from {src.group(1)}"
        assert re.search(r"<style\b", html) is None, f"{url}: inline <style>"
        assert re.search(r"\sstyle=", html) is None, f"{url}: style attribute"
        assert re.search(r"\son[a-z]+=", html) is None, f"{url}: inline event handler"
        assert "javascript:" not in html, url
        for ref in re.findall(r'<(?:link|img)\b[^>]*?(?:href|src)="([^"]+)"', html):
            assert ref.startswith("/"), f"{url}: {ref} is not same-origin"
            assert not ref.startswith("//"), f"{url}: {ref} is not same-origin"


@pytest.mark.django_db
def test_dsfr_js_is_a_module_served_from_static(client: Client) -> None:
    html = client.get("/").content.decode()
    assert re.search(r'<script type="module"\s+src="/static/dsfr/dist/dsfr/dsfr\.module\.min\.js"', html)


def test_dsfr_stylesheets_only_use_our_own_files_and_data_images() -> None:
    for asset in (DsfrStaticAssets.DSFR_CSS, DsfrStaticAssets.DSFR_UTILITY_CSS):
        found = finders.find(asset)
        assert found, asset
        css = Path(found).read_text(encoding="utf-8")
        urls = re.findall(r"url\(\s*['\"]?([^'\")]+)", css)
        assert urls, asset
        for url in urls:
            assert url.startswith("data:") or "://" not in url, f"{asset}: {url}"
            assert not url.startswith("//"), f"{asset}: {url}"
        assert re.search(r"@import\s+(url\()?['\"]?(https?:)?//", css) is None, asset


# --- Production ----------------------------------------------------------------------------------------


def test_check_deploy_passes_with_the_production_settings() -> None:
    result = run_python(
        "import sys; from django.core.management import execute_from_command_line; "
        "execute_from_command_line(['manage.py', 'check', '--deploy', '--fail-level', 'WARNING'])",
        production_env(),
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout
    assert "WARNINGS" not in result.stdout + result.stderr


SHOW_SECURITY = (
    "import django, json; django.setup(); from django.conf import settings as s; "
    "print(json.dumps({k: getattr(s, k) for k in ['SECURE_HSTS_SECONDS', 'SECURE_HSTS_INCLUDE_SUBDOMAINS', "
    "'SECURE_HSTS_PRELOAD', 'SECURE_SSL_REDIRECT', 'SECURE_PROXY_SSL_HEADER', 'SECURE_CONTENT_TYPE_NOSNIFF', "
    "'SESSION_COOKIE_SECURE', 'CSRF_COOKIE_SECURE', 'X_FRAME_OPTIONS', 'DEBUG']}))"
)


def test_production_settings_are_https_only() -> None:
    result = run_python(SHOW_SECURITY, production_env())
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {
        "SECURE_HSTS_SECONDS": 31536000,
        "SECURE_HSTS_INCLUDE_SUBDOMAINS": True,
        "SECURE_HSTS_PRELOAD": True,
        "SECURE_SSL_REDIRECT": True,
        "SECURE_PROXY_SSL_HEADER": ["HTTP_X_FORWARDED_PROTO", "https"],
        "SECURE_CONTENT_TYPE_NOSNIFF": True,
        "SESSION_COOKIE_SECURE": True,
        "CSRF_COOKIE_SECURE": True,
        "X_FRAME_OPTIONS": "DENY",
        "DEBUG": False,
    }


# Requests through the whole middleware stack with the production settings. An anonymous visit to a
# protected page is answered by the middleware (redirect to sign-in): no database, no collected static files.
SHOW_RESPONSES = (
    "import django, json; django.setup(); from django.test import Client; c = Client(); "
    "tls = c.get('/messagerie/', headers={'X-Forwarded-Proto': 'https'}); "
    "plain = c.get('/messagerie/'); "
    "print(json.dumps({'tls': [tls.status_code, dict(tls.headers)], "
    "'plain': [plain.status_code, plain.headers.get('Location')]}))"
)


def test_production_responses_carry_hsts_and_csp() -> None:
    result = run_python(SHOW_RESPONSES, production_env())
    assert result.returncode == 0, result.stderr
    shown = json.loads(result.stdout)
    status, headers = shown["tls"]
    assert status == 302
    assert headers["Location"] == "/compte/connexion/?next=/messagerie/"
    assert headers["Strict-Transport-Security"] == "max-age=31536000; includeSubDomains; preload"
    assert "upgrade-insecure-requests" in headers["Content-Security-Policy"]
    assert "frame-ancestors 'none'" in headers["Content-Security-Policy"]
    assert headers["X-Frame-Options"] == "DENY"
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["Referrer-Policy"] == "same-origin"
    assert headers["Cross-Origin-Opener-Policy"] == "same-origin"
    # Plain HTTP is sent to HTTPS.
    assert shown["plain"] == [301, "https://testserver/messagerie/"]
