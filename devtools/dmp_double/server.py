"""HTTP(S) server of the DMP double: SOAP 1.2 endpoints and a JSON control API (double-only).

Endpoints
* `POST /repository` — ITI-41 (ProvideAndRegisterDocumentSetRequest) and ITI-43 (RetrieveDocumentSetRequest)
* `POST /registry`   — ITI-18 (AdhocQueryRequest) and ITI-57 (SubmitObjectsRequest, UpdateDocumentSet)
* `/_control/...`    — for tests only, never part of the real DMP (see devtools/README.md)

Responses to an MTOM request are MTOM packaged (ITI-43 always); to a plain SOAP request, plain SOAP.
Every failure becomes an HTTP error or a SOAP fault; a handler exception never stops the server.
"""

from __future__ import annotations

import contextlib
import json
import logging
import socket
import ssl
import threading
import time
import traceback
import uuid
from dataclasses import asdict, dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from cryptography import x509
from lxml import etree

from . import codes, mime
from .constants import (
    ACTION_FAULT,
    ACTION_ITI18,
    ACTION_ITI41,
    ACTION_ITI43,
    ACTION_ITI57,
    LCM,
    QUERY,
    RS,
    SOAP,
    WSA,
    WSSE,
    XDSB,
    response_action,
)
from .store import PATIENT_STATUSES, Store, utcnow_iso
from .transactions import (
    Context,
    RegistryError,
    RequestError,
    provide_and_register,
    registry_response,
    retrieve,
    stored_query,
    update_document_set,
)
from .vihf import VihfError, verify_vihf
from .xmlsafe import UnsafeXmlError, parse

log = logging.getLogger("dmp_double")

DEFAULT_MAX_BODY = 50 * 1024 * 1024
DEFAULT_REPOSITORY_ID = "1.2.250.1.213.1.1.9.999.1"
FAULT_KINDS = ("hang", "http", "registry_error", "soap_fault", "reset")

ROUTES: dict[tuple[str, str], tuple[str, str]] = {
    ("/repository", f"{{{XDSB}}}ProvideAndRegisterDocumentSetRequest"): ("ITI-41", ACTION_ITI41),
    ("/repository", f"{{{XDSB}}}RetrieveDocumentSetRequest"): ("ITI-43", ACTION_ITI43),
    ("/registry", f"{{{QUERY}}}AdhocQueryRequest"): ("ITI-18", ACTION_ITI18),
    ("/registry", f"{{{LCM}}}SubmitObjectsRequest"): ("ITI-57", ACTION_ITI57),
}


@dataclass
class Config:
    data_dir: Path
    ca_certs: list[x509.Certificate]
    repository_id: str = DEFAULT_REPOSITORY_ID
    max_body: int = DEFAULT_MAX_BODY
    cda_xsd: bool = True
    read_timeout: float = 30.0


@dataclass
class FaultRule:
    """A misbehaviour for the next `count` SOAP requests (optionally only some paths/transactions)."""

    kind: str
    count: int = 1
    seconds: float = 0.0  # hang: how long
    then: str = "drop"  # hang: afterwards "drop" (close, no answer) or "process" (answer normally)
    status: int = 503  # http: the HTTP status
    error_code: str = "XDSRegistryError"  # registry_error
    code_context: str = "Erreur simulée par le double DMP"
    paths: list[str] = field(default_factory=list)
    transactions: list[str] = field(default_factory=list)
    id: str = field(default_factory=lambda: uuid.uuid4().hex[:12])

    @classmethod
    def from_json(cls, data: Any) -> FaultRule:
        if not isinstance(data, dict):
            raise ValueError("objet JSON attendu")
        allowed = {
            "kind",
            "count",
            "seconds",
            "then",
            "status",
            "error_code",
            "code_context",
            "paths",
            "transactions",
        }
        unknown = set(data) - allowed
        if unknown:
            raise ValueError(f"champs inconnus : {sorted(unknown)}")
        rule = cls(**data)
        if rule.kind not in FAULT_KINDS:
            raise ValueError(f"kind doit être l'un de {FAULT_KINDS}")
        if not isinstance(rule.count, int) or rule.count < 1:
            raise ValueError("count doit être un entier ≥ 1")
        if not isinstance(rule.seconds, (int, float)) or not 0 <= rule.seconds <= 600:
            raise ValueError("seconds doit être entre 0 et 600")
        if rule.then not in ("drop", "process"):
            raise ValueError("then doit valoir drop ou process")
        if not isinstance(rule.status, int) or not 400 <= rule.status <= 599:
            raise ValueError("status doit être un code HTTP 4xx/5xx")
        return rule

    def matches(self, path: str, transaction: str) -> bool:
        return (not self.paths or path in self.paths) and (
            not self.transactions or transaction in self.transactions
        )


class SoapFault(Exception):
    def __init__(self, reason: str, *, code: str = "Sender", subcode: str = "", http_status: int = 0) -> None:
        super().__init__(reason)
        self.reason = reason
        self.code = code
        self.subcode = subcode
        self.http_status = http_status or (400 if code in ("Sender", "VersionMismatch") else 500)


@dataclass
class Reply:
    status: int
    content_type: str
    body: bytes
    drop: bool = False


class DmpDouble:
    """The application: state, fault rules and request log; HTTP-agnostic `handle_*` methods."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.store = Store(config.data_dir)
        self.context = Context(store=self.store, repository_id=config.repository_id, cda_xsd=config.cda_xsd)
        self.faults: list[FaultRule] = []
        self.requests: list[dict[str, Any]] = []
        self.lock = threading.Lock()

    # --- faults and log ----------------------------------------------------------------------------
    def take_fault(self, path: str, transaction: str) -> FaultRule | None:
        with self.lock:
            for rule in self.faults:
                if rule.matches(path, transaction):
                    rule.count -= 1
                    if rule.count <= 0:
                        self.faults.remove(rule)
                    return rule
        return None

    def record(self, **info: Any) -> None:
        with self.lock:
            self.requests.append({"at": utcnow_iso(), **info})
            del self.requests[:-1000]

    # --- SOAP --------------------------------------------------------------------------------------
    def handle_soap(self, path: str, content_type: str, body: bytes) -> Reply:
        transaction = "?"
        message_id = ""
        mtom_reply = False
        try:
            try:
                package = mime.split(content_type, body)
            except mime.MimeError as exc:
                raise SoapFault(str(exc), http_status=415) from exc
            mtom_reply = package.mtom
            try:
                envelope = parse(package.envelope)
            except UnsafeXmlError as exc:
                raise SoapFault(f"Enveloppe SOAP invalide : {exc}") from exc
            if envelope.tag != f"{{{SOAP}}}Envelope":
                raise SoapFault("Enveloppe SOAP 1.2 attendue.", code="VersionMismatch")
            header = envelope.find(f"{{{SOAP}}}Header")
            if header is not None:
                message_id = (header.findtext(f"{{{WSA}}}MessageID") or "").strip()
            soap_body = envelope.find(f"{{{SOAP}}}Body")
            children = [c for c in soap_body if isinstance(c.tag, str)] if soap_body is not None else []
            if len(children) != 1:
                raise SoapFault("Le corps SOAP doit contenir exactement une requête.")
            request = children[0]
            route = ROUTES.get((path, request.tag))
            if route is None:
                raise SoapFault(f"Opération {etree.QName(request).localname} non prise en charge sur {path}.")
            transaction, action = route
            wsa_action = (header.findtext(f"{{{WSA}}}Action") or "").strip() if header is not None else ""
            if wsa_action and wsa_action != action:
                raise SoapFault(
                    f"wsa:Action {wsa_action} incohérente avec la requête ({action}).",
                    subcode="wsa:ActionNotSupported",
                )
            rule = self.take_fault(path, transaction)
            if rule is not None:
                self.record(path=path, transaction=transaction, outcome=f"fault:{rule.kind}")
                reply = self._apply_fault(rule, transaction, message_id, action, mtom_reply)
                if reply is not None:
                    return reply
            try:
                claims = verify_vihf(envelope, ca_certs=self.config.ca_certs)
            except VihfError as exc:
                raise SoapFault(exc.reason, subcode=f"wsse:{exc.subcode}") from exc
            attachments: list[tuple[str, str, bytes]] = []
            try:
                if transaction == "ITI-41":
                    with self.store.lock:  # check-then-write must not interleave (duplicate uniqueIds)
                        payload = provide_and_register(self.context, request, package.attachments, claims)
                elif transaction == "ITI-43":
                    payload, attachments = retrieve(self.context, request, claims)
                    mtom_reply = True
                elif transaction == "ITI-18":
                    payload = stored_query(self.context, request, claims)
                else:
                    with self.store.lock:
                        payload = update_document_set(self.context, request, claims)
            except RequestError as exc:
                raise SoapFault(str(exc)) from exc
            holder = payload if payload.get("status") else payload.find(f"{{{RS}}}RegistryResponse")
            outcome = holder.get("status", "") if holder is not None else ""
            codes_seen = [e.get("errorCode") for e in payload.iter(f"{{{RS}}}RegistryError")]
            self.record(
                path=path,
                transaction=transaction,
                outcome=outcome.rsplit(":", 1)[-1],
                errors=codes_seen,
                subject=claims.subject_id,
                structure=claims.structure_id,
                patient=claims.ins,
            )
            return self._envelope_reply(payload, response_action(action), message_id, mtom_reply, attachments)
        except SoapFault as fault:
            self.record(path=path, transaction=transaction, outcome="soap_fault", reason=fault.reason)
            return self._fault_reply(fault, message_id, mtom_reply)
        except Exception:
            log.error("Erreur interne du double DMP :\n%s", traceback.format_exc())
            self.record(path=path, transaction=transaction, outcome="internal_error")
            return self._fault_reply(
                SoapFault("Erreur interne du double DMP.", code="Receiver"), message_id, mtom_reply
            )

    def _apply_fault(
        self, rule: FaultRule, transaction: str, message_id: str, action: str, mtom_reply: bool
    ) -> Reply | None:
        if rule.kind == "hang":
            time.sleep(rule.seconds)
            if rule.then == "drop":
                return Reply(0, "", b"", drop=True)
            return None
        if rule.kind == "reset":
            return Reply(0, "", b"", drop=True)
        if rule.kind == "http":
            text = f"Erreur HTTP {rule.status} simulée par le double DMP\n".encode()
            return Reply(rule.status, "text/plain; charset=utf-8", text)
        if rule.kind == "soap_fault":
            return self._fault_reply(SoapFault(rule.code_context, code="Receiver"), message_id, mtom_reply)
        payload = registry_response([RegistryError(rule.error_code, rule.code_context)])
        if transaction == "ITI-43":
            wrapper = etree.Element(f"{{{XDSB}}}RetrieveDocumentSetResponse", nsmap={"xdsb": XDSB})
            wrapper.append(payload)
            payload = wrapper
        elif transaction == "ITI-18":
            wrapper = etree.Element(f"{{{QUERY}}}AdhocQueryResponse", nsmap={"query": QUERY})
            wrapper.set("status", payload.get("status", ""))
            for child in payload:
                wrapper.append(child)
            payload = wrapper
        return self._envelope_reply(payload, response_action(action), message_id, mtom_reply, [])

    def _envelope(self, action: str, message_id: str, payload: etree._Element) -> bytes:
        envelope = etree.Element(f"{{{SOAP}}}Envelope", nsmap={"soap": SOAP, "wsa": WSA})
        header = etree.SubElement(envelope, f"{{{SOAP}}}Header")
        action_el = etree.SubElement(header, f"{{{WSA}}}Action")
        action_el.set(f"{{{SOAP}}}mustUnderstand", "true")
        action_el.text = action
        etree.SubElement(header, f"{{{WSA}}}MessageID").text = f"urn:uuid:{uuid.uuid4()}"
        if message_id:
            etree.SubElement(header, f"{{{WSA}}}RelatesTo").text = message_id
        etree.SubElement(envelope, f"{{{SOAP}}}Body").append(payload)
        return etree.tostring(envelope, xml_declaration=True, encoding="UTF-8")

    def _envelope_reply(
        self,
        payload: etree._Element,
        action: str,
        message_id: str,
        mtom_reply: bool,
        attachments: list[tuple[str, str, bytes]],
        status: int = 200,
    ) -> Reply:
        data = self._envelope(action, message_id, payload)
        if mtom_reply:
            content_type, body = mime.build(data, attachments)
            return Reply(status, content_type, body)
        return Reply(status, f'application/soap+xml; charset=UTF-8; action="{action}"', data)

    def _fault_reply(self, fault: SoapFault, message_id: str, mtom_reply: bool) -> Reply:
        f = etree.Element(f"{{{SOAP}}}Fault", nsmap={"soap": SOAP, "wsse": WSSE, "wsa": WSA})
        code = etree.SubElement(f, f"{{{SOAP}}}Code")
        etree.SubElement(code, f"{{{SOAP}}}Value").text = f"soap:{fault.code}"
        if fault.subcode:
            sub = etree.SubElement(code, f"{{{SOAP}}}Subcode")
            etree.SubElement(sub, f"{{{SOAP}}}Value").text = fault.subcode
        reason = etree.SubElement(f, f"{{{SOAP}}}Reason")
        text = etree.SubElement(reason, f"{{{SOAP}}}Text")
        text.set("{http://www.w3.org/XML/1998/namespace}lang", "fr")
        text.text = fault.reason
        return self._envelope_reply(f, ACTION_FAULT, message_id, mtom_reply, [], status=fault.http_status)

    # --- control API (double-only) -------------------------------------------------------------------
    def handle_control(
        self, method: str, path: str, query: dict[str, list[str]], body: bytes
    ) -> tuple[int, Any]:
        def payload() -> Any:
            try:
                return json.loads(body or b"{}")
            except ValueError as exc:
                raise ValueError(f"JSON invalide : {exc}") from exc

        try:
            if path == "/_control/health" and method == "GET":
                return 200, {
                    "status": "ok",
                    "repository_unique_id": self.config.repository_id,
                    "codes": codes.source(),
                }
            if path == "/_control/patients":
                if method == "GET":
                    return 200, self.store.patients()
                if method == "POST":
                    data = payload()
                    if not isinstance(data, dict):
                        raise ValueError("objet JSON attendu")
                    ins = str(data.get("ins", "")).strip()
                    oid = str(data.get("oid", "1.2.250.1.213.1.4.10")).strip()
                    status = str(data.get("status", "open"))
                    if len(ins) != 15 or not ins.isalnum():
                        raise ValueError("ins : 15 caractères attendus")
                    if status not in PATIENT_STATUSES:
                        raise ValueError(f"status doit être l'un de {PATIENT_STATUSES}")
                    return 201, self.store.put_patient(ins=ins, oid=oid, status=status)
            if path == "/_control/faults":
                if method == "GET":
                    with self.lock:
                        return 200, [asdict(r) for r in self.faults]
                if method == "POST":
                    rule = FaultRule.from_json(payload())
                    with self.lock:
                        self.faults.append(rule)
                    return 201, asdict(rule)
                if method == "DELETE":
                    with self.lock:
                        self.faults.clear()
                    return 200, []
            if path == "/_control/documents" and method == "GET":
                entries = self.store.entries()
                patient = query.get("patient", [""])[0]
                if patient:
                    entries = [e for e in entries if e["ins"] == patient]
                for e in entries:
                    e.pop("extrinsic_xml", None)
                entries.sort(key=lambda e: (e["submitted_at"], e["entry_uuid"]))
                return 200, entries
            if path == "/_control/requests":
                if method == "GET":
                    with self.lock:
                        return 200, list(self.requests)
                if method == "DELETE":
                    with self.lock:
                        self.requests.clear()
                    return 200, []
            if path == "/_control/reset" and method == "POST":
                self.store.reset()
                with self.lock:
                    self.faults.clear()
                    self.requests.clear()
                return 200, {"status": "reset"}
        except (ValueError, TypeError) as exc:
            return 400, {"error": str(exc)}
        return 404, {"error": f"{method} {path} inconnu"}


class Handler(BaseHTTPRequestHandler):
    server_version = "DMP-double/1.0"
    protocol_version = "HTTP/1.1"
    app: DmpDouble  # set on the subclass made by make_server

    def setup(self) -> None:
        # The TLS handshake happens here, in the connection's own thread, not in the accept loop.
        if isinstance(self.request, ssl.SSLSocket):
            self.request.settimeout(self.app.config.read_timeout)
            self.request.do_handshake()
        super().setup()

    def log_message(self, format: str, *args: Any) -> None:
        log.info("%s %s", self.address_string(), format % args)

    def _send(self, status: int, content_type: str, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, status: int, data: Any) -> None:
        self._send(status, "application/json; charset=utf-8", json.dumps(data, ensure_ascii=False).encode())

    def _read_body(self) -> bytes | None:
        if self.headers.get("Transfer-Encoding"):
            self.close_connection = True
            self._send(411, "text/plain; charset=utf-8", b"Content-Length requis (pas de chunked).\n")
            return None
        raw = self.headers.get("Content-Length")
        try:
            length = int(raw) if raw is not None else -1
        except ValueError:
            length = -1
        if length < 0:
            self.close_connection = True
            self._send(411, "text/plain; charset=utf-8", b"Content-Length requis.\n")
            return None
        if length > self.app.config.max_body:
            self.close_connection = True
            self._send(413, "text/plain; charset=utf-8", "Requête trop volumineuse.\n".encode())
            return None
        self.connection.settimeout(self.app.config.read_timeout)
        return self.rfile.read(length)

    def _dispatch(self, method: str) -> None:
        url = urlsplit(self.path)
        try:
            if url.path.startswith("/_control/"):
                body = (
                    self._read_body()
                    if method in ("POST", "DELETE") and self.headers.get("Content-Length")
                    else b""
                )
                if body is None:
                    return
                status, data = self.app.handle_control(method, url.path, parse_qs(url.query), body)
                self._json(status, data)
                return
            if url.path not in ("/repository", "/registry"):
                self._send(404, "text/plain; charset=utf-8", b"Ressource inconnue.\n")
                return
            if method != "POST":
                self._send(405, "text/plain; charset=utf-8", b"POST attendu.\n")
                return
            body = self._read_body()
            if body is None:
                return
            reply = self.app.handle_soap(url.path, self.headers.get("Content-Type", ""), body)
            if reply.drop:
                self.close_connection = True
                with contextlib.suppress(OSError):
                    self.connection.shutdown(socket.SHUT_RDWR)
                return
            self._send(reply.status, reply.content_type, reply.body)
        except (ConnectionError, TimeoutError, ssl.SSLError, OSError) as exc:
            log.info("Connexion interrompue : %s", exc)
            self.close_connection = True

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")


class DoubleServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 64

    def handle_error(self, request: Any, client_address: Any) -> None:
        log.info("Erreur de connexion %s : %s", client_address, traceback.format_exc(limit=1))


def make_server(
    app: DmpDouble,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    tls_cert: Path | None = None,
    tls_key: Path | None = None,
    client_ca: Path | None = None,
) -> DoubleServer:
    """A ready-to-serve server (call `serve_forever()`); HTTPS when `tls_cert`/`tls_key` are given,
    requiring a client certificate issued by `client_ca` when that is given too."""
    handler = type("BoundHandler", (Handler,), {"app": app})
    server = DoubleServer((host, port), handler)
    if tls_cert is not None and tls_key is not None:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.load_cert_chain(str(tls_cert), str(tls_key))
        if client_ca is not None:
            context.verify_mode = ssl.CERT_REQUIRED
            context.load_verify_locations(cafile=str(client_ca))
        server.socket = context.wrap_socket(server.socket, server_side=True, do_handshake_on_connect=False)
    return server
