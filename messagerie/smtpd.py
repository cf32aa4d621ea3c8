"""The incoming SMTP listener of the MSSanté operator (``manage.py mssante_smtpd``), built on aiosmtpd.

Rules (issue #6, item 5):

* TLS with a client certificate from the configured CA (IGC-Santé): STARTTLS is required before MAIL
  (``530`` otherwise), or the whole connection is TLS (``--implicit-tls``). The server context has
  ``verify_mode = CERT_REQUIRED``: a client without a certificate, or with one from another CA, fails the
  handshake (and, with ``--crl``, one that the issuing CA revoked).
* ``MAIL FROM``: the sender's domain must be a hosted domain or on the trust-space allow-list
  (`TrustedDomain`), else ``550 5.7.1``. The null sender ``<>`` (delivery reports) is accepted: the peer
  is an authenticated trust-space operator.
* ``RCPT TO``: an active hosted mailbox, else ``550 5.1.1``.
* Size: ``MSSANTE_MAX_MESSAGE_BYTES`` (announced with SIZE, ``552`` above it).
* ``DATA``: the message is stored durably (`incoming.inbound_accept`: vault blob + row, committed) and
  only then answered ``250 OK queued as <id>``; any storage error answers ``451 4.3.0`` so the sender
  retries. The peer IP and the client certificate subject are kept with the row.

Database work runs in a thread pool (aiosmtpd handlers are coroutines). SIGTERM/SIGINT stop accepting
connections, let messages being stored finish, then exit.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import signal
import ssl
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

from aiosmtpd.smtp import SMTP, Envelope, Session, TLSSetupException
from cryptography import x509
from django.core.exceptions import ValidationError
from django.db import close_old_connections

from messagerie.services import incoming
from messagerie.standards import mime

log = logging.getLogger("enrs.messagerie.smtpd")

T = TypeVar("T")

REPLY_NO_CERT = "530 5.7.0 Client certificate required (IGC-Sante)"
REPLY_BAD_SENDER = "553 5.1.7 Bad sender address syntax"
REPLY_UNTRUSTED = "550 5.7.1 Sender domain is not in the MSSante trust space"
REPLY_BAD_RCPT = "553 5.1.3 Bad recipient address syntax"
REPLY_UNKNOWN_RCPT = "550 5.1.1 No such mailbox here"
REPLY_TOO_MANY = "452 4.5.3 Too many recipients"
REPLY_TEMPORARY = "451 4.3.0 Temporary local problem, please try again later"
REPLY_TOO_BIG = "552 5.3.4 Message too big"
REPLY_REFUSED = "554 5.6.0 Message refused"


@dataclass(frozen=True)
class ListenerConfig:
    host: str
    port: int
    cert: str
    key: str
    client_ca: str
    max_message_bytes: int
    implicit_tls: bool = False
    crl: str = ""
    hostname: str = ""
    workers: int = 4
    grace_seconds: float = 30.0


def server_tls_context(*, cert: str, key: str, client_ca: str, crl: str = "") -> ssl.SSLContext:
    """TLS ≥ 1.2, our certificate, and a mandatory client certificate issued by `client_ca`. With `crl`
    (PEM, the issuing CA's list), a revoked client certificate is refused too — and a certificate whose
    issuer has no CRL in the file, since the check is strict."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(certfile=cert, keyfile=key)
    context.load_verify_locations(cafile=client_ca)
    if crl:
        context.load_verify_locations(cafile=crl)
        context.verify_flags |= ssl.VERIFY_CRL_CHECK_LEAF
    context.verify_mode = ssl.CERT_REQUIRED
    return context


def peer_certificate_subject(server: SMTP) -> str:
    """The RFC 4514 subject of the verified client certificate, or "" when there is none."""
    transport = server.transport
    if transport is None:
        return ""
    ssl_object = transport.get_extra_info("ssl_object")
    if ssl_object is None:
        return ""
    der = ssl_object.getpeercert(binary_form=True)
    if not der:
        return ""
    try:
        return x509.load_der_x509_certificate(der).subject.rfc4514_string()
    except ValueError:
        return ""


def _with_connection(function: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    close_old_connections()
    try:
        return function(*args, **kwargs)
    finally:
        close_old_connections()


class InboundHandler:
    """aiosmtpd handler: the MAIL / RCPT / DATA rules above."""

    def __init__(self, *, executor: ThreadPoolExecutor, accept: Callable[..., Any] | None = None) -> None:
        self.executor = executor
        self.accept = accept or incoming.inbound_accept
        self.storing = 0  # DATA commands whose message is being stored right now

    async def _db(self, function: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        loop = asyncio.get_running_loop()
        call = functools.partial(_with_connection, function, *args, **kwargs)
        return await loop.run_in_executor(self.executor, call)

    async def handle_exception(self, error: Exception) -> str:
        """A failed TLS handshake (no client certificate, unknown CA…) is a refusal, logged in one line;
        anything else is logged and answered as a temporary failure (no internals sent to the peer)."""
        if isinstance(error, TLSSetupException):
            log.warning("TLS handshake refused: %s", error.__cause__ or error)
            return "554 5.7.0 TLS handshake failed"
        log.error("SMTP session error", exc_info=error)
        return REPLY_TEMPORARY

    async def handle_EHLO(  # aiosmtpd hook name
        self, server: SMTP, session: Session, envelope: Envelope, hostname: str, responses: list[str]
    ) -> list[str]:
        session.host_name = hostname
        # No SMTP AUTH: operators authenticate with their certificate (aiosmtpd would announce it).
        return [line for line in responses if not line[4:].upper().startswith("AUTH")]

    async def handle_MAIL(  # aiosmtpd hook name
        self, server: SMTP, session: Session, envelope: Envelope, address: str, mail_options: list[str]
    ) -> str:
        if not peer_certificate_subject(server):
            return REPLY_NO_CERT
        if address.strip() == "<>":  # the null reverse-path, as aiosmtpd hands it over
            address = ""
        if address:
            domain = mime.split_address(address)
            if domain is None:
                return REPLY_BAD_SENDER
            try:
                trusted = await self._db(incoming.domain_is_trusted, domain[1])
            except Exception:
                log.exception("allow-list lookup failed")
                return REPLY_TEMPORARY
            if not trusted:
                log.info("%s refused sender domain %s", _peer_ip(session), domain[1])
                return REPLY_UNTRUSTED
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_RCPT(  # aiosmtpd hook name
        self, server: SMTP, session: Session, envelope: Envelope, address: str, rcpt_options: list[str]
    ) -> str:
        if not mime.is_valid_address(address):
            return REPLY_BAD_RCPT
        if len(envelope.rcpt_tos) >= incoming.MAX_RECIPIENTS:
            return REPLY_TOO_MANY
        try:
            hosted = await self._db(incoming.address_is_hosted, address)
        except Exception:
            log.exception("mailbox lookup failed")
            return REPLY_TEMPORARY
        if not hosted:
            return REPLY_UNKNOWN_RCPT
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return "250 OK"

    async def handle_DATA(  # aiosmtpd hook name
        self, server: SMTP, session: Session, envelope: Envelope
    ) -> str:
        raw = envelope.original_content or b""
        self.storing += 1
        try:
            item = await self._db(
                self.accept,
                raw=raw,
                mail_from=envelope.mail_from or "",
                rcpt_to=list(envelope.rcpt_tos),
                peer=_peer_ip(session),
                peer_certificate=peer_certificate_subject(server),
            )
        except ValidationError as exc:
            log.warning("%s message refused: %s", _peer_ip(session), exc)
            return REPLY_TOO_BIG if "taille" in str(exc) else REPLY_REFUSED
        except Exception:
            log.exception("%s message not stored", _peer_ip(session))
            return REPLY_TEMPORARY
        finally:
            self.storing -= 1
        log.info("%s stored inbound message %s (%d bytes)", _peer_ip(session), item.pk, len(raw))
        return f"250 OK queued as {item.pk}"


def _peer_ip(session: Session) -> str:
    peer: Any = session.peer
    if isinstance(peer, tuple | list) and peer:
        return str(peer[0])
    return str(peer or "")


class _QuietAiosmtpd(logging.Filter):
    """aiosmtpd warns on every connection that a mandatory client certificate "might cause client
    connection problems": that is the point here."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "verify_mode" not in str(record.msg)


def _tune_aiosmtpd_logging() -> None:
    library = logging.getLogger("mail.log")
    if library.level == logging.NOTSET or library.level < logging.WARNING:
        library.setLevel(logging.WARNING)  # it logs every command at INFO (addresses included)
    if not any(isinstance(f, _QuietAiosmtpd) for f in library.filters):
        library.addFilter(_QuietAiosmtpd())


async def serve(config: ListenerConfig, *, ready: Callable[[], None] | None = None) -> None:
    """Run the listener until SIGTERM/SIGINT, then stop gracefully."""
    _tune_aiosmtpd_logging()
    context = server_tls_context(cert=config.cert, key=config.key, client_ca=config.client_ca, crl=config.crl)
    loop = asyncio.get_running_loop()
    executor = ThreadPoolExecutor(max_workers=config.workers, thread_name_prefix="mssante-smtpd")
    handler = InboundHandler(executor=executor)

    def protocol() -> SMTP:
        return SMTP(
            handler,
            data_size_limit=config.max_message_bytes,
            hostname=config.hostname or None,
            ident="ENRS MSSante",
            tls_context=None if config.implicit_tls else context,
            require_starttls=not config.implicit_tls,
            auth_exclude_mechanism=["LOGIN", "PLAIN"],  # no AUTH: operators use their certificate
            loop=loop,
        )

    server = await loop.create_server(
        protocol, host=config.host, port=config.port, ssl=context if config.implicit_tls else None
    )
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    log.info(
        "mssante_smtpd listening on %s:%s (%s)",
        config.host,
        config.port,
        "implicit TLS" if config.implicit_tls else "STARTTLS required",
    )
    if ready is not None:
        ready()
    try:
        await stop.wait()
    finally:
        log.info("mssante_smtpd stopping: no new connections")
        server.close()
        deadline = loop.time() + config.grace_seconds
        while handler.storing and loop.time() < deadline:
            await asyncio.sleep(0.05)
        executor.shutdown(wait=True, cancel_futures=True)
        log.info("mssante_smtpd stopped")
