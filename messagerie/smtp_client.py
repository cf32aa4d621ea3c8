"""SMTP submission to the MSSanté relay: TLS with the operator's client certificate, one reused connection.

`RelayClient.submit` sends one message (MAIL FROM, one RCPT per recipient, DATA) and returns the answer
for every recipient. What ends the attempt for the whole message (connection refused, timeout, TLS
failure, a 4xx/5xx on MAIL FROM or DATA) raises `SmtpTemporaryError` / `SmtpPermanentError`; what concerns
one recipient (a 4xx/5xx on RCPT) is in its `RecipientResult`. A 4xx is temporary, a 5xx permanent.

A worker process keeps one connection per relay configuration (`relay_client`) and reuses it from one
message to the next; a connection idle for a while is checked with NOOP, and a connection the peer
closed is opened again before MAIL FROM (never after DATA: a message is sent at most once per attempt).

Security modes: ``starttls`` (port 587/25), ``tls`` (implicit TLS, port 465) and ``none`` (plain SMTP,
only for benchmarks against a local sink and tests; never in production).

Pure code: no Django import.
"""

from __future__ import annotations

import contextlib
import smtplib
import socket
import ssl
import threading
import time
from dataclasses import dataclass, field

SECURITY_MODES = ("starttls", "tls", "none")
# A connection unused for this long is checked with NOOP before the next message.
IDLE_CHECK_SECONDS = 5.0


class SmtpError(Exception):
    """The attempt failed for the whole message. `code` is the SMTP reply code (or a short tag such as
    ``"conn-refused"``, ``"timeout"``, ``"tls"``); `message` is readable by support staff."""

    permanent = False

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code} {message}".strip())
        self.code = code
        self.message = message


class SmtpTemporaryError(SmtpError):
    permanent = False


class SmtpPermanentError(SmtpError):
    permanent = True


@dataclass(frozen=True)
class RelayConfig:
    host: str
    port: int
    security: str = "starttls"
    cert: str = ""
    key: str = ""
    ca_bundle: str = ""
    timeout: float = 30.0
    local_hostname: str | None = None

    def __post_init__(self) -> None:
        if self.security not in SECURITY_MODES:
            raise ValueError(
                f"MSSANTE_RELAY_SECURITY inconnu « {self.security} » ({', '.join(SECURITY_MODES)})."
            )


@dataclass(frozen=True)
class RecipientResult:
    code: int
    message: str

    @property
    def accepted(self) -> bool:
        return 200 <= self.code < 300

    @property
    def permanent(self) -> bool:
        return self.code >= 500

    @property
    def outcome(self) -> str:
        """``sent``, ``temporary`` or ``permanent``."""
        if self.accepted:
            return "sent"
        return "permanent" if self.permanent else "temporary"


@dataclass
class SubmitResult:
    recipients: dict[str, RecipientResult]
    reused_connection: bool = False
    data_reply: tuple[int, str] | None = None
    timings: dict[str, float] = field(default_factory=dict)


def _text(reply: bytes | str) -> str:
    if isinstance(reply, bytes):
        return reply.decode("utf-8", errors="replace")
    return str(reply)


def _error_for(code: int, message: str) -> SmtpError:
    if 500 <= code < 600:
        return SmtpPermanentError(str(code), message)
    return SmtpTemporaryError(str(code), message)


def tls_context(config: RelayConfig) -> ssl.SSLContext:
    """Client TLS context: verifies the relay against the CA bundle (and its name), presents our cert."""
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=config.ca_bundle or None)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if config.cert:
        context.load_cert_chain(config.cert, config.key or None)
    return context


class RelayClient:
    """One SMTP connection to the relay, opened on demand and reused across messages."""

    def __init__(self, config: RelayConfig) -> None:
        self.config = config
        self._smtp: smtplib.SMTP | None = None
        self._last_used = 0.0
        self._context: ssl.SSLContext | None = None
        self.connections_opened = 0
        self._busy = threading.Lock()

    # --- connection -------------------------------------------------------------------------------------

    def _ssl(self) -> ssl.SSLContext:
        if self._context is None:
            try:
                self._context = tls_context(self.config)
            except (OSError, ssl.SSLError) as exc:
                raise SmtpTemporaryError(
                    "tls-config", f"Certificat, clé ou autorités du relais illisibles : {exc}"
                ) from exc
        return self._context

    def _open(self) -> smtplib.SMTP:
        config = self.config
        context = self._ssl() if config.security != "none" else None
        smtp: smtplib.SMTP | None = None
        try:
            if config.security == "tls":
                smtp = smtplib.SMTP_SSL(
                    config.host,
                    config.port,
                    timeout=config.timeout,
                    context=context,
                    local_hostname=config.local_hostname,
                )
            else:
                smtp = smtplib.SMTP(
                    config.host, config.port, timeout=config.timeout, local_hostname=config.local_hostname
                )
            smtp.ehlo()
            if config.security == "starttls":
                if not smtp.has_extn("starttls"):
                    raise SmtpTemporaryError("tls", "Le relais ne propose pas STARTTLS.")
                code, reply = smtp.starttls(context=context)
                if code != 220:
                    raise _error_for(code, _text(reply))
                smtp.ehlo()
        except BaseException as exc:
            if smtp is not None:
                with contextlib.suppress(Exception):
                    smtp.close()
            if isinstance(exc, SmtpError):
                raise
            raise classify(exc) from exc
        self.connections_opened += 1
        return smtp

    def close(self) -> None:
        smtp, self._smtp = self._smtp, None
        if smtp is None:
            return
        try:
            smtp.quit()
        except Exception:
            with contextlib.suppress(Exception):
                smtp.close()

    def _drop(self) -> None:
        smtp, self._smtp = self._smtp, None
        if smtp is not None:
            with contextlib.suppress(Exception):
                smtp.close()

    def _connection(self) -> tuple[smtplib.SMTP, bool]:
        """The live connection (reused: True) or a new one (False)."""
        if self._smtp is not None and time.monotonic() - self._last_used > IDLE_CHECK_SECONDS:
            try:
                code, _ = self._smtp.noop()
                if code != 250:
                    self._drop()
            except Exception:
                self._drop()
        if self._smtp is not None:
            return self._smtp, True
        self._smtp = self._open()
        return self._smtp, False

    # --- one message ------------------------------------------------------------------------------------

    def submit(self, *, mail_from: str, rcpt_to: list[str], data: bytes) -> SubmitResult:
        """Send `data` to `rcpt_to`. Raises `SmtpError` when the whole message failed (nothing accepted)."""
        if not rcpt_to:
            raise ValueError("aucun destinataire")
        with self._busy:
            return self._submit(mail_from=mail_from, rcpt_to=rcpt_to, data=data)

    def _submit(self, *, mail_from: str, rcpt_to: list[str], data: bytes) -> SubmitResult:
        smtp, reused = self._connection()
        try:
            try:
                code, reply = smtp.mail(mail_from)
            except smtplib.SMTPServerDisconnected:
                if not reused:
                    raise
                # The relay closed our idle connection: open a new one (nothing was sent yet).
                self._drop()
                smtp, reused = self._connection()
                code, reply = smtp.mail(mail_from)
            if code != 250:
                self._reset_or_drop(code)
                raise _error_for(code, _text(reply))
            results: dict[str, RecipientResult] = {}
            for address in rcpt_to:
                rcode, rreply = smtp.rcpt(address)
                results[address] = RecipientResult(rcode, _text(rreply))
                if rcode == 421:  # the relay is closing the connection
                    self._drop()
                    for rest in rcpt_to[len(results) :]:
                        results[rest] = RecipientResult(rcode, _text(rreply))
                    return SubmitResult(results, reused_connection=reused)
            accepted = [a for a, r in results.items() if r.accepted]
            if not accepted:
                self._reset_or_drop(0)
                self._last_used = time.monotonic()
                return SubmitResult(results, reused_connection=reused)
            dreply: bytes | str
            try:
                dcode, dreply = smtp.data(data)
            except smtplib.SMTPDataError as exc:  # DATA itself refused (not 354)
                self._reset_or_drop(exc.smtp_code)
                dcode, dreply = exc.smtp_code, exc.smtp_error
            final = RecipientResult(dcode, _text(dreply))
            for address in accepted:
                results[address] = final
            if not final.accepted:
                self._reset_or_drop(dcode)
            self._last_used = time.monotonic()
            return SubmitResult(results, reused_connection=reused, data_reply=(dcode, _text(dreply)))
        except SmtpError:
            raise
        except BaseException as exc:
            self._drop()
            raise classify(exc) from exc

    def _reset_or_drop(self, code: int) -> None:
        if code == 421 or self._smtp is None:
            self._drop()
            return
        try:
            self._smtp.rset()
        except Exception:
            self._drop()


def classify(exc: BaseException) -> SmtpError:
    """Map a transport or protocol exception to a temporary or permanent error (4xx/network/TLS are
    temporary, 5xx permanent)."""
    if isinstance(exc, SmtpError):
        return exc
    if isinstance(exc, smtplib.SMTPResponseException):
        return _error_for(exc.smtp_code, _text(exc.smtp_error))
    if isinstance(exc, smtplib.SMTPServerDisconnected):
        return SmtpTemporaryError("disconnected", "Connexion fermée par le relais.")
    if isinstance(exc, ConnectionRefusedError):
        return SmtpTemporaryError("conn-refused", "Connexion refusée par le relais.")
    if isinstance(exc, ssl.SSLError | ssl.CertificateError):
        return SmtpTemporaryError("tls", f"Échec de la négociation TLS : {exc}")
    if isinstance(exc, TimeoutError | socket.timeout):
        return SmtpTemporaryError("timeout", "Délai dépassé en attendant le relais.")
    if isinstance(exc, OSError):
        return SmtpTemporaryError("network", f"Erreur réseau : {exc}")
    if isinstance(exc, smtplib.SMTPException):
        return SmtpTemporaryError("smtp", str(exc))
    if isinstance(exc, Exception):
        return SmtpTemporaryError("error", f"{type(exc).__name__}: {exc}")
    raise exc  # KeyboardInterrupt, SystemExit: never swallowed


_clients: dict[RelayConfig, RelayClient] = {}
_lock = threading.Lock()


def relay_client(config: RelayConfig) -> RelayClient:
    """The process-wide client of `config` (one connection per worker process, reused)."""
    with _lock:
        client = _clients.get(config)
        if client is None:
            client = _clients[config] = RelayClient(config)
        return client


def close_all() -> None:
    """Close every cached connection (tests, worker shutdown)."""
    with _lock:
        clients = list(_clients.values())
        _clients.clear()
    for client in clients:
        client.close()
