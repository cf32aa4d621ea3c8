"""In a real browser (Debian's Chromium driven by Playwright): a clinician uploads a zip of a
multi-instance study from the upload page; the network drops one piece on the way and the page resumes;
the progress bar reaches 100 % and the study summary shows the right counts and a preview."""

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings as django_settings
from django.test import Client

from enrs.accounts.authn import SESSION_METHOD_KEY, AuthMethod
from enrs.accounts.roles import Role
from tests.accounts.test_browser_otp import CHROMIUM_ARGS, ensure_chromium
from tests.factories import UserFactory
from tests.telemedecine.dicom_samples import make_study, zip_of

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

CHUNK = 32 * 1024


@pytest.fixture
def upload_settings(settings: Any, tmp_path: Path) -> Any:
    settings.DICOM_UPLOAD_DIR = str(tmp_path / "uploads")
    settings.DICOM_UPLOAD_CHUNK_BYTES = CHUNK
    return settings


@pytest.fixture
def session_cookie(upload_settings: Any) -> str:
    """A strongly authenticated clinician's session, made before the browser starts (no ORM call while
    Playwright's event loop runs in this thread)."""
    user: Any = UserFactory(role=Role.CLINICIAN, first_name="Camille", last_name="Durand")
    client = Client()
    client.force_login(user)
    session = client.session
    session[SESSION_METHOD_KEY] = AuthMethod.CPS.value
    session.save()
    return str(session.session_key)


@pytest.fixture
def study_zip(tmp_path: Path) -> Path:
    path = tmp_path / "scanner-cerebral.zip"
    path.write_bytes(zip_of(make_study((4, 3))))
    assert path.stat().st_size > 3 * CHUNK  # several pieces
    return path


@pytest.fixture
def browser_page(session_cookie: str, live_server: Any) -> Iterator[Any]:
    executable = ensure_chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(executable), headless=True, args=CHROMIUM_ARGS
        )
        try:
            context = browser.new_context(locale="fr-FR", viewport={"width": 1280, "height": 900})
            context.add_cookies(
                [
                    {
                        "name": django_settings.SESSION_COOKIE_NAME,
                        "value": session_cookie,
                        "url": live_server.url,
                    }
                ]
            )
            page = context.new_page()
            page.set_default_timeout(30_000)
            yield page
        finally:
            browser.close()


def test_upload_a_zip_with_progress_and_resume_then_see_the_summary(
    live_server: Any, browser_page: Any, study_zip: Path
) -> None:
    page = browser_page
    dropped: list[str] = []
    offsets: list[str] = []

    def flaky_network(route: Any) -> None:
        offset = route.request.headers.get("x-upload-offset", "")
        offsets.append(offset)
        if offset == str(CHUNK) and not dropped:
            dropped.append(offset)
            route.abort("connectionreset")  # the second piece is lost once
        else:
            route.continue_()

    page.route("**/examens/depot/*/morceau/", flaky_network)
    page.goto(f"{live_server.url}/telemedecine/examens/depot/")
    assert page.locator("h1").inner_text() == "Déposer un examen d'imagerie"
    assert page.eval_on_selector("#depot-progression", "e => e.value") == 0

    page.set_input_files("#depot-archive", str(study_zip))
    page.get_by_role("button", name="Déposer l'examen").click()
    link = page.locator("#depot-lien-examen")
    link.wait_for(state="visible")

    assert dropped == [str(CHUNK)]
    assert offsets.count(str(CHUNK)) == 2  # lost once, sent again after asking the server where to resume
    assert page.eval_on_selector("#depot-progression", "e => e.value") == 100
    assert page.locator("#depot-pourcentage").inner_text() == "100"
    assert page.locator("#depot-etat").inner_text() == "Dépôt terminé : 7 image(s) dans 2 série(s)."
    assert page.locator("#depot-erreur").inner_text() == ""

    link.click()
    page.wait_for_url("**/telemedecine/examens/*/")
    assert page.locator("#examen-series").inner_text() == "2"
    assert page.locator("#examen-images").inner_text() == "7"
    assert page.locator("#examen-modalites").inner_text() == "CT,MR"
    assert page.locator("#examen-etat").text_content() == "Disponible"
    rows = page.locator("#examen-table-series tbody tr")
    assert rows.count() == 2
    assert rows.nth(0).locator("td").nth(3).inner_text() == "4"
    preview = page.locator("#examen-apercu")
    preview.wait_for(state="visible")
    assert page.eval_on_selector("#examen-apercu", "img => img.complete && img.naturalWidth") > 0


@pytest.fixture
def study_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "CT_CEREBRAL"
    for name, data in make_study((2, 3)):
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    (folder / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1")  # litter a Mac leaves: ignored
    return folder


def test_upload_a_folder_sent_as_one_stream(live_server: Any, browser_page: Any, study_folder: Path) -> None:
    page = browser_page
    page.goto(f"{live_server.url}/telemedecine/examens/depot/")
    page.set_input_files("#depot-dossier", str(study_folder))
    page.get_by_role("button", name="Déposer l'examen").click()
    page.locator("#depot-lien-examen").wait_for(state="visible")
    assert page.eval_on_selector("#depot-progression", "e => e.value") == 100
    assert page.locator("#depot-etat").inner_text() == "Dépôt terminé : 5 image(s) dans 2 série(s)."
    page.locator("#depot-lien-examen").click()
    page.wait_for_url("**/telemedecine/examens/*/")
    assert page.locator("#examen-series").inner_text() == "2"
    assert page.locator("#examen-images").inner_text() == "5"


def test_a_refused_upload_shows_the_reason(live_server: Any, browser_page: Any, tmp_path: Path) -> None:
    page = browser_page
    bad = tmp_path / "melange.zip"
    bad.write_bytes(zip_of([*make_study((2,)), ("SE001/compte-rendu.txt", b"Compte rendu")]))
    page.goto(f"{live_server.url}/telemedecine/examens/depot/")
    page.set_input_files("#depot-archive", str(bad))
    page.get_by_role("button", name="Déposer l'examen").click()
    alert = page.locator("#depot-erreur .fr-alert")
    alert.wait_for(state="visible")
    assert alert.inner_text() == (
        "Fichier « SE001/compte-rendu.txt » refusé : Ce fichier n'est pas un fichier DICOM."
    )
    assert page.locator("#depot-etat").inner_text() == "Dépôt refusé."
    assert page.locator("#depot-lien-examen").count() == 0
