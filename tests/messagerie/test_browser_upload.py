"""In a real browser (Debian's Chromium driven by Playwright): a clinician attaches a ~5 MB PDF on the
compose page; the file goes up by XHR with a progress bar that reaches 100 %, the attachment appears in
the list with its hidden reference, and the CSP (no inline script) lets the page's own script run."""

import os
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from django.db import connection
from django.test import Client
from django.urls import reverse

from enrs.accounts.authn import SESSION_METHOD_KEY, AuthMethod
from messagerie.models import Attachment, Mailbox
from tests.accounts.test_browser_otp import CHROMIUM_ARGS, ensure_chromium
from tests.messagerie.factories import make_mailbox, owner_of

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

FIVE_MB = 5 * 1024 * 1024


@pytest.fixture
def mailbox() -> Mailbox:
    """Made before the browser starts: no ORM call while Playwright's event loop runs in this thread."""
    return make_mailbox()


@pytest.fixture
def session_cookie(mailbox: Mailbox) -> str:
    """A strong (CPS) session of the box owner, opened with the test client."""
    client = Client()
    client.force_login(owner_of(mailbox))
    session = client.session
    session[SESSION_METHOD_KEY] = AuthMethod.CPS.value
    session.save()
    return session.session_key or ""


@pytest.fixture
def browser_page(live_server: Any, session_cookie: str) -> Iterator[Any]:
    executable = ensure_chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(executable), headless=True, args=CHROMIUM_ARGS
        )
        try:
            context = browser.new_context(locale="fr-FR", viewport={"width": 1280, "height": 900})
            context.add_cookies([{"name": "sessionid", "value": session_cookie, "url": live_server.url}])
            page = context.new_page()
            page.set_default_timeout(30_000)
            yield page
        finally:
            browser.close()


def test_a_5_mb_file_uploads_with_a_progress_bar_to_100_percent(
    mailbox: Mailbox, live_server: Any, browser_page: Any
) -> None:
    page = browser_page
    console: list[str] = []
    page.on("console", lambda message: console.append(message.text))
    content = b"%PDF-1.4\n" + os.urandom(FIVE_MB)

    page.goto(live_server.url + reverse("messagerie:compose", args=[mailbox.pk]))
    assert page.locator("h1").first.inner_text() == "Nouveau message"
    page.set_input_files(
        "#id_files", files=[{"name": "scanner-thorax.pdf", "mimeType": "application/pdf", "buffer": content}]
    )

    page.wait_for_selector(".televersement--termine", timeout=60_000)
    assert page.eval_on_selector(".televersement progress", "p => p.value") == 100
    assert page.eval_on_selector(".televersement progress", "p => p.max") == 100
    assert "100 %" in page.locator(".televersement__pourcentage").inner_text()
    item = page.locator("#liste-pieces-jointes li[data-attachment]")
    assert item.count() == 1
    assert "scanner-thorax.pdf" in item.inner_text()
    attachment_id = item.locator("input[name=attachments]").get_attribute("value")
    # A PDF can be sent as a CDA document: the choice is offered next to it.
    assert item.get_by_label("Joindre comme document CDA (IHE_XDM)").count() == 1
    # The file input was emptied: the file travels by reference, not a second time with the form.
    assert page.eval_on_selector("#id_files", "i => i.files.length") == 0
    assert not [text for text in console if "Content Security Policy" in text]

    # Playwright's loop runs in this thread, where Django refuses ORM calls: read the row from another.
    with ThreadPoolExecutor(max_workers=1) as pool:
        stored = pool.submit(_stored, int(attachment_id or 0)).result()
    assert (stored["mailbox_id"], stored["size"], stored["message_id"]) == (mailbox.pk, len(content), None)
    assert stored["uploaded_by_id"] == mailbox.owner_id


def _stored(pk: int) -> dict[str, Any]:
    try:
        row = (
            Attachment.objects.filter(pk=pk)
            .values("mailbox_id", "size", "message_id", "uploaded_by_id")
            .get()
        )
        return dict(row)
    finally:
        connection.close()
