"""The incoming SMTP listener, as a real process (``manage.py mssante_smtpd``) on loopback, with mutual
TLS from a throw-away IGC-Santé-like PKI: who is refused, and what is stored before 250."""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import re
import signal
import smtplib
import ssl
import subprocess
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from aiosmtpd.smtp import Envelope, Session
from cryptography.hazmat.primitives import serialization
from django.conf import settings as django_settings

from enrs.accounts import pki_testing
from enrs.vault.services import blob_read
from messagerie import smtpd
from messagerie.models import Direction, InboundMessage, Message, TrustedDomain
from tests.helpers import PYTHON, REPO, free_port, port_open, wait_until
from tests.messagerie.test_incoming import ALICE, DOMAIN, FOREIGN, SENDER, build_mail, make_box

MAX_BYTES = 200_000


@dataclass(frozen=True)
class Pki:
    ca_bundle: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    rogue_cert: Path
    rogue_key: Path
    revoked_cert: Path
    revoked_key: Path
    crl: Path


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    now = dt.datetime.now(dt.UTC)
    root = pki_testing.make_ca("TEST ENRS - AC RACINE IGC-SANTE", now=now)
    issuing = pki_testing.make_ca("TEST ENRS - AC IGC-SANTE ELEMENTAIRE ORGANISATIONS", now=now, parent=root)
    server = pki_testing.issue_server(
        issuer=issuing, now=now, dns_names=["localhost"], ip_addresses=["127.0.0.1"]
    )
    client = pki_testing.issue_organisation(
        issuer=issuing,
        now=now,
        common_name="mx.ch-exemple.mssante.fr",
        idnat_struct="1750000000",
        organisation="CH EXEMPLE",
    )
    revoked = pki_testing.issue_organisation(
        issuer=issuing,
        now=now,
        common_name="mx.ancien.mssante.fr",
        idnat_struct="1888888888",
        organisation="OPERATEUR RADIE",
    )
    crl = pki_testing.make_crl(issuer=issuing, revoked=[revoked.cert], now=now)
    rogue_root = pki_testing.make_ca("AC INCONNUE - HORS IGC-SANTE", now=now)
    rogue = pki_testing.issue_organisation(
        issuer=rogue_root,
        now=now,
        common_name="mx.pirate.example",
        idnat_struct="1999999999",
        organisation="PIRATE",
    )
    directory = tmp_path_factory.mktemp("smtpd-pki")
    files = {
        "ca.pem": root.cert_pem + issuing.cert_pem,
        "server.crt": server.cert_pem,
        "server.key": server.key_pem,
        "client.crt": client.cert_pem,
        "client.key": client.key_pem,
        "rogue.crt": rogue.cert_pem,
        "rogue.key": rogue.key_pem,
        "revoked.crt": revoked.cert_pem,
        "revoked.key": revoked.key_pem,
        "crl.pem": crl.public_bytes(serialization.Encoding.PEM),
    }
    for name, data in files.items():
        (directory / name).write_bytes(data)
    return Pki(
        ca_bundle=directory / "ca.pem",
        server_cert=directory / "server.crt",
        server_key=directory / "server.key",
        client_cert=directory / "client.crt",
        client_key=directory / "client.key",
        rogue_cert=directory / "rogue.crt",
        rogue_key=directory / "rogue.key",
        revoked_cert=directory / "revoked.crt",
        revoked_key=directory / "revoked.key",
        crl=directory / "crl.pem",
    )


class Listener:
    def __init__(self, pki: Pki, database_name: str, *extra_args: str) -> None:
        self.port = free_port()
        db = django_settings.DATABASES["default"]
        host, port = db["HOST"] or "127.0.0.1", db["PORT"] or 5432
        env = dict(os.environ)
        env.update(
            DJANGO_SETTINGS_MODULE="enrs.settings.test",
            DATABASE_URL=f"postgres://{db['USER']}@{host}:{port}/{database_name}",
            TEST_REDIS_URL=django_settings.CELERY_BROKER_URL,
            MSSANTE_HOSTED_DOMAINS=DOMAIN,
            MSSANTE_MAX_MESSAGE_BYTES=str(MAX_BYTES),
        )
        self.log_path = REPO / "var" / "test-logs" / f"mssante-smtpd-{self.port}.log"
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self.log = open(self.log_path, "w")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            [
                PYTHON,
                "manage.py",
                "mssante_smtpd",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--cert",
                str(pki.server_cert),
                "--key",
                str(pki.server_key),
                "--client-ca",
                str(pki.ca_bundle),
                *extra_args,
            ],
            cwd=REPO,
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            wait_until(
                lambda: self.process.poll() is None and port_open(self.port), timeout=60, what="mssante_smtpd"
            )
        except TimeoutError as exc:
            self.stop()
            raise TimeoutError(f"{exc}; log:\n{self.log_path.read_text()[-3000:]}") from exc

    def wait_for_log(self, text: str) -> None:
        wait_until(lambda: text in self.log_path.read_text(), timeout=10, what=f"log line {text!r}")

    def stop(self) -> int:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
        try:
            code = self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            code = self.process.wait()
        self.log.close()
        return code


@pytest.fixture(scope="module")
def listener(pki: Pki, django_db_setup: None) -> Iterator[Listener]:
    server = Listener(pki, str(django_settings.DATABASES["default"]["NAME"]), "--crl", str(pki.crl))
    yield server
    server.stop()


@pytest.fixture
def boxes(transactional_db: None, settings: Any) -> None:
    settings.MSSANTE_HOSTED_DOMAINS = [DOMAIN]
    make_box(ALICE)
    make_box(f"ferme@{DOMAIN}", active=False)
    TrustedDomain.objects.create(domain=FOREIGN, operator="CH Exemple")
    TrustedDomain.objects.create(domain="radie.mssante.fr", is_active=False)


def client_context(pki: Pki, *, cert: Path | None, key: Path | None) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(pki.ca_bundle))
    if cert is not None and key is not None:
        context.load_cert_chain(str(cert), str(key))
    return context


def connect(listener: Listener) -> smtplib.SMTP:
    smtp = smtplib.SMTP("127.0.0.1", listener.port, local_hostname="mx.ch-exemple.mssante.fr", timeout=15)
    smtp.ehlo()
    return smtp


def tls_session(listener: Listener, pki: Pki) -> smtplib.SMTP:
    smtp = connect(listener)
    smtp.starttls(context=client_context(pki, cert=pki.client_cert, key=pki.client_key))
    smtp.ehlo()
    return smtp


def try_mail(listener: Listener, context: ssl.SSLContext) -> int | Exception:
    """STARTTLS with `context`, then MAIL FROM: the reply code, or the error that ended the session."""
    smtp = connect(listener)
    try:
        smtp.starttls(context=context)
        smtp.ehlo()
        code, _ = smtp.mail(SENDER)
        return code
    except (smtplib.SMTPException, ssl.SSLError, OSError) as exc:
        return exc
    finally:
        smtp.close()


def send(listener: Listener, pki: Pki, raw: bytes, *, mail_from: str = SENDER, rcpt: str = ALICE) -> int:
    """One message over mutual TLS; returns the InboundMessage id from ``250 OK queued as <id>``."""
    smtp = tls_session(listener, pki)
    try:
        assert smtp.mail(mail_from)[0] == 250
        assert smtp.rcpt(rcpt)[0] == 250
        code, text = smtp.data(raw)
        assert code == 250, text
        match = re.fullmatch(rb"OK queued as (\d+)", text)
        assert match is not None, text
        smtp.quit()
    finally:
        smtp.close()
    return int(match.group(1))


pytestmark = pytest.mark.integration


def test_plain_tcp_cannot_send(listener: Listener, boxes: None) -> None:
    smtp = connect(listener)
    try:
        assert smtp.has_extn("starttls")
        code, text = smtp.mail(SENDER)
        assert code == 530
        assert b"STARTTLS" in text
        assert smtp.rcpt(ALICE)[0] == 530
        assert smtp.docmd("DATA")[0] == 530
    finally:
        smtp.close()
    assert InboundMessage.objects.count() == 0


def test_starttls_without_client_certificate_is_refused(listener: Listener, pki: Pki, boxes: None) -> None:
    result = try_mail(listener, client_context(pki, cert=None, key=None))
    assert isinstance(result, Exception), result
    assert InboundMessage.objects.count() == 0
    listener.wait_for_log("TLS handshake refused: [SSL: PEER_DID_NOT_RETURN_A_CERTIFICATE]")


def test_certificate_from_an_unknown_ca_is_refused(listener: Listener, pki: Pki, boxes: None) -> None:
    result = try_mail(listener, client_context(pki, cert=pki.rogue_cert, key=pki.rogue_key))
    assert isinstance(result, Exception), result
    assert InboundMessage.objects.count() == 0
    listener.wait_for_log("TLS handshake refused: [SSL: CERTIFICATE_VERIFY_FAILED]")
    # The listener is still serving well-behaved peers.
    assert try_mail(listener, client_context(pki, cert=pki.client_cert, key=pki.client_key)) == 250


def test_revoked_certificate_is_refused(listener: Listener, pki: Pki, boxes: None) -> None:
    result = try_mail(listener, client_context(pki, cert=pki.revoked_cert, key=pki.revoked_key))
    assert isinstance(result, Exception), result
    listener.wait_for_log("certificate revoked")
    assert InboundMessage.objects.count() == 0


@pytest.mark.parametrize("sender", ["medecin@gmail.com", "ancien@radie.mssante.fr", "x@mssante.fr"])
def test_sender_domain_outside_the_trust_space_is_refused(
    listener: Listener, pki: Pki, boxes: None, sender: str
) -> None:
    smtp = tls_session(listener, pki)
    try:
        code, text = smtp.mail(sender)
        assert code == 550
        assert text.startswith(b"5.7.1")
    finally:
        smtp.close()


def test_hosted_sender_and_null_sender_are_accepted(listener: Listener, pki: Pki, boxes: None) -> None:
    smtp = tls_session(listener, pki)
    try:
        assert not smtp.has_extn("auth")  # peers authenticate with their certificate only
        assert smtp.mail(f"quelquun@{DOMAIN}")[0] == 250
        smtp.rset()
        assert smtp.mail("<>")[0] == 250  # delivery reports come from the null sender
    finally:
        smtp.close()


@pytest.mark.parametrize("recipient", [f"inconnu@{DOMAIN}", f"ferme@{DOMAIN}", "autre@ailleurs.mssante.fr"])
def test_unknown_recipient_is_refused(listener: Listener, pki: Pki, boxes: None, recipient: str) -> None:
    smtp = tls_session(listener, pki)
    try:
        assert smtp.mail(SENDER)[0] == 250
        code, text = smtp.rcpt(recipient)
        assert code == 550
        assert text.startswith(b"5.1.1")
        assert smtp.rcpt(ALICE)[0] == 250  # the other recipients are still accepted
    finally:
        smtp.close()


def test_message_too_big_is_refused(listener: Listener, pki: Pki, boxes: None) -> None:
    smtp = tls_session(listener, pki)
    try:
        assert smtp.esmtp_features.get("size") == str(MAX_BYTES)
        assert smtp.mail(SENDER)[0] == 250
        assert smtp.rcpt(ALICE)[0] == 250
        code, _ = smtp.data(build_mail(text="x" * (MAX_BYTES + 1000)))
        assert code == 552
    finally:
        smtp.close()
    assert InboundMessage.objects.count() == 0


def test_valid_message_is_stored_before_250_then_filed_once(
    listener: Listener, pki: Pki, boxes: None
) -> None:
    raw = build_mail()
    inbound_id = send(listener, pki, raw)
    # Durable when 250 came back: the row and its encrypted blob, with the peer and its certificate.
    item = InboundMessage.objects.get(pk=inbound_id)
    assert blob_read(item.raw) == raw
    assert item.mail_from == SENDER
    assert item.rcpt_to == [ALICE]
    assert item.message_id == "<m1@ch-exemple.mssante.fr>"
    assert item.peer == "127.0.0.1"
    assert "OU=1750000000" in item.peer_certificate
    assert "CN=mx.ch-exemple.mssante.fr" in item.peer_certificate
    # Processed (the listener's tasks run eagerly under the test settings) into the inbox.
    wait_until(
        lambda: Message.objects.filter(mailbox__address=ALICE, direction=Direction.INCOMING).exists(),
        timeout=20,
        what="inbox copy",
    )
    message = Message.objects.get(mailbox__address=ALICE)
    assert message.raw_id == item.raw_id
    assert message.subject == "Compte rendu de consultation"
    # The sender retries the same message: a second row, still one copy.
    second_id = send(listener, pki, raw)
    assert second_id != inbound_id
    wait_until(
        lambda: InboundMessage.objects.get(pk=second_id).status == "done",
        timeout=20,
        what="second processing",
    )
    assert (
        Message.objects.filter(mailbox__address=ALICE, message_id="<m1@ch-exemple.mssante.fr>").count() == 1
    )


def test_implicit_tls_then_sigterm_stops_gracefully(pki: Pki, boxes: None) -> None:
    server = Listener(pki, str(django_settings.DATABASES["default"]["NAME"]), "--implicit-tls")
    try:
        # A plain SMTP client gets no banner it can read: the connection is TLS from the first byte.
        with pytest.raises((smtplib.SMTPException, OSError)):
            smtplib.SMTP("127.0.0.1", server.port, timeout=5).close()
        context = client_context(pki, cert=pki.client_cert, key=pki.client_key)
        smtp = smtplib.SMTP_SSL("127.0.0.1", server.port, context=context, timeout=15)
        try:
            smtp.ehlo("mx.ch-exemple.mssante.fr")
            assert smtp.mail(SENDER)[0] == 250
            assert smtp.rcpt(ALICE)[0] == 250
            code, text = smtp.data(build_mail(message_id="<implicite@ch-exemple.mssante.fr>"))
            assert code == 250, text
        finally:
            smtp.close()
        assert InboundMessage.objects.filter(message_id="<implicite@ch-exemple.mssante.fr>").count() == 1
    finally:
        assert server.stop() == 0  # SIGTERM: clean exit
    assert not port_open(server.port)
    assert "mssante_smtpd stopped" in server.log_path.read_text()


# --- The handler alone (no process): storage errors and missing certificates ------------------------------


def _handler_call(accept: Any) -> str:
    envelope = Envelope()
    envelope.mail_from = SENDER
    envelope.rcpt_tos = [ALICE]
    envelope.original_content = b"Subject: x\r\n\r\nx\r\n"
    session = Session(loop=None)  # type: ignore[arg-type]
    session.peer = ("192.0.2.1", 4242)  # type: ignore[assignment]
    server = SimpleNamespace(transport=None)
    with ThreadPoolExecutor(max_workers=1) as executor:
        handler = smtpd.InboundHandler(executor=executor, accept=accept)
        return asyncio.run(handler.handle_DATA(server, session, envelope))  # type: ignore[arg-type]


def test_storage_error_answers_451() -> None:
    def broken(**kwargs: Any) -> Any:
        raise ConnectionError("base de données indisponible")

    assert _handler_call(broken) == smtpd.REPLY_TEMPORARY
    assert smtpd.REPLY_TEMPORARY.startswith("451 4.3.0")


def test_250_only_after_storage_returned() -> None:
    calls: list[dict[str, Any]] = []

    def store(**kwargs: Any) -> Any:
        calls.append(kwargs)
        return SimpleNamespace(pk=99)

    assert _handler_call(store) == "250 OK queued as 99"
    assert calls == [
        {
            "raw": b"Subject: x\r\n\r\nx\r\n",
            "mail_from": SENDER,
            "rcpt_to": [ALICE],
            "peer": "192.0.2.1",
            "peer_certificate": "",
        }
    ]


def test_mail_without_client_certificate_is_refused_by_the_handler() -> None:
    with ThreadPoolExecutor(max_workers=1) as executor:
        handler = smtpd.InboundHandler(executor=executor)
        reply = asyncio.run(
            handler.handle_MAIL(SimpleNamespace(transport=None), Session(loop=None), Envelope(), SENDER, [])  # type: ignore[arg-type]
        )
    assert reply == smtpd.REPLY_NO_CERT
