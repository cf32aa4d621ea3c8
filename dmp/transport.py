"""HTTPS transport to the DMP: mutual TLS with the structure's ORG certificate, bounded timeouts.

`post(url, body, content_type)` returns the peer's answer (any HTTP status) or raises `TransportError`
for what never produced an answer (connection refused or reset, TLS failure, timeout). The caller
decides what is temporary. Configuration comes from settings (``ENRS_DMP_*``, see `enrs.settings.base`).
"""

from __future__ import annotations

import ssl
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured


class TransportError(Exception):
    """No answer from the DMP. ``code`` is short and stable (timeout, connect, tls, protocol)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class Answer:
    status: int
    content_type: str
    body: bytes
    duration_ms: int


@dataclass(frozen=True)
class _Config:
    ca_bundle: str
    client_cert: str
    client_key: str
    timeout: float


_clients: dict[_Config, httpx.Client] = {}
_lock = threading.Lock()


def _config() -> _Config:
    return _Config(
        ca_bundle=str(getattr(settings, "ENRS_DMP_CA_BUNDLE", "")),
        client_cert=str(getattr(settings, "ENRS_DMP_CLIENT_CERT", "")),
        client_key=str(getattr(settings, "ENRS_DMP_CLIENT_KEY", "")),
        timeout=float(getattr(settings, "ENRS_DMP_TIMEOUT", 30.0)),
    )


def _ssl_context(config: _Config) -> ssl.SSLContext:
    if config.ca_bundle and not Path(config.ca_bundle).is_file():
        raise ImproperlyConfigured(f"ENRS_DMP_CA_BUNDLE : fichier « {config.ca_bundle} » introuvable.")
    context = ssl.create_default_context(cafile=config.ca_bundle or None)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if not config.client_cert or not config.client_key:
        raise ImproperlyConfigured(
            "ENRS_DMP_CLIENT_CERT et ENRS_DMP_CLIENT_KEY sont requis : le DMP exige un certificat client."
        )
    context.load_cert_chain(config.client_cert, config.client_key)
    return context


def _client(config: _Config) -> httpx.Client:
    with _lock:
        client = _clients.get(config)
        if client is None:
            client = httpx.Client(
                verify=_ssl_context(config),
                timeout=httpx.Timeout(config.timeout),
                follow_redirects=False,
                trust_env=False,
            )
            _clients[config] = client
        return client


def reset_clients() -> None:
    """Close pooled connections (tests that restart the peer, settings changes)."""
    with _lock:
        for client in _clients.values():
            client.close()
        _clients.clear()


def post(url: str, body: bytes, content_type: str) -> Answer:
    if not url.startswith("https://"):
        raise ImproperlyConfigured(f"Adresse du DMP « {url} » : HTTPS obligatoire.")
    client = _client(_config())
    started = time.monotonic()
    try:
        response = client.post(url, content=body, headers={"Content-Type": content_type})
    except httpx.TimeoutException as exc:
        raise TransportError(
            "timeout", f"Le DMP n'a pas répondu à temps ({exc.__class__.__name__})."
        ) from exc
    except httpx.ConnectError as exc:
        if isinstance(exc.__context__, ssl.SSLError) or "SSL" in str(exc) or "certificate" in str(exc):
            raise TransportError("tls", f"Échec de la connexion sécurisée au DMP : {exc}") from exc
        raise TransportError("connect", f"Connexion au DMP impossible : {exc}") from exc
    except (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError) as exc:
        raise TransportError("protocol", f"Connexion au DMP interrompue : {exc}") from exc
    except httpx.HTTPError as exc:
        raise TransportError("http", f"Erreur de communication avec le DMP : {exc}") from exc
    return Answer(
        status=response.status_code,
        content_type=response.headers.get("Content-Type", ""),
        body=response.content,
        duration_ms=int((time.monotonic() - started) * 1000),
    )
