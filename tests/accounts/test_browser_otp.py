"""In a real browser (Debian's Chromium driven by Playwright): sign in with a password, enrol an
authenticator app from the enrolment page, sign out, sign in again with password + code — by keyboard
only — and land on the home page under one's name."""

import os
import shutil
import subprocess
import time
from base64 import b32decode
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django_otp.oath import hotp

from enrs.accounts.roles import Role
from tests.factories import UserFactory

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
PASSWORD = "mot-de-passe-de-test"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def ensure_chromium() -> Path:
    """Debian's Chromium, installed with apt-get when missing (root only)."""
    if CHROMIUM.exists():
        return CHROMIUM
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        pytest.skip(f"{CHROMIUM} is missing and this user cannot install it (needs root and apt-get)")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update"], check=True, env=env, capture_output=True, timeout=900)
    subprocess.run(
        ["apt-get", "install", "-y", "--no-install-recommends", "chromium"],
        check=True,
        env=env,
        capture_output=True,
        timeout=1800,
    )
    assert CHROMIUM.exists(), "apt-get installed chromium but /usr/bin/chromium is still missing"
    return CHROMIUM


@pytest.fixture
def browser_page() -> Iterator[Any]:
    """A page of Debian's Chromium. Playwright's sync API runs an asyncio loop in this thread, where Django
    refuses ORM calls: the test makes its data before (fixture order) and the live server thread, which
    answers the browser, has no loop — so DJANGO_ALLOW_ASYNC_UNSAFE is not needed."""
    executable = ensure_chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(executable), headless=True, args=CHROMIUM_ARGS
        )
        try:
            context = browser.new_context(locale="fr-FR", viewport={"width": 1280, "height": 900})
            page = context.new_page()
            page.set_default_timeout(15_000)
            yield page
        finally:
            browser.close()


def totp_now(secret_b32: str, *, after_step: int = -1) -> tuple[str, int]:
    """The code the app would show now — or, if that step was already used, the next one (still within the
    server's ±1 step tolerance): a code is never accepted twice."""
    step = max(int(time.time()) // 30, after_step + 1)
    return f"{hotp(b32decode(secret_b32), step, digits=6):06d}", step


@pytest.fixture
def clinician() -> Any:
    """Made before the browser starts: no ORM call while Playwright's event loop runs in this thread."""
    return UserFactory(role=Role.CLINICIAN, first_name="Camille", last_name="Durand", username="cdurand")


def test_password_then_totp_enrolment_then_sign_in_again_with_the_code(
    clinician: Any, live_server: Any, browser_page: Any, tmp_path: Path
) -> None:
    page, user = browser_page, clinician
    base = live_server.url

    # 1. Password: a clinician without an app is sent to the enrolment.
    page.goto(f"{base}/compte/connexion/")
    page.fill("#id_username", user.username)
    page.fill("#id_password", PASSWORD)
    page.get_by_role("button", name="Se connecter", exact=True).click()
    page.wait_for_url("**/code-a-usage-unique/activer/**")
    assert page.locator("h1").inner_text() == "Activer le code à usage unique"
    assert page.locator("#qr-code svg").is_visible()

    screenshot = tmp_path / "enrolment.png"
    page.screenshot(path=str(screenshot), full_page=True)
    data = screenshot.read_bytes()
    assert data.startswith(PNG_SIGNATURE)
    assert len(data) > 5_000

    # 2. Enrolment: the key shown for manual entry gives the codes, as an authenticator app would.
    secret = page.locator("#otp-secret").inner_text().replace(" ", "")
    code, used_step = totp_now(secret)
    page.fill("#id_code", code)
    page.get_by_role("button", name="Activer").click()
    page.wait_for_selector("#codes-de-secours")
    assert page.locator("#codes-de-secours li").count() == 10
    page.get_by_role("link", name="J'ai noté mes codes, continuer").click()
    page.wait_for_url(f"{base}/")

    # 3. Sign out (the header's button).
    page.locator(".fr-header__tools-links").get_by_role("button", name="Se déconnecter").click()
    page.wait_for_load_state()
    assert page.locator(".fr-header__tools-links").get_by_role("link", name="Se connecter").is_visible()

    # 4. Sign in again, with the keyboard only: password, then the code step.
    page.goto(f"{base}/compte/connexion/")
    page.focus("#id_username")
    page.keyboard.type(user.username)
    page.keyboard.press("Tab")
    page.keyboard.type(PASSWORD)
    page.keyboard.press("Enter")
    page.wait_for_url("**/compte/connexion/code/**")
    assert page.evaluate("document.activeElement.id") == "id_code"  # the code field has the focus
    code, _ = totp_now(secret, after_step=used_step)
    page.keyboard.type(code)
    page.keyboard.press("Enter")

    # 5. Home page, signed in under one's name.
    page.wait_for_url(f"{base}/")
    assert page.locator(".fr-header__tools-links").get_by_text("Camille Durand").is_visible()
    assert page.locator("h1").first.inner_text().startswith("Espace Numérique Régional de Santé")
