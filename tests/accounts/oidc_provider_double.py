"""A local OpenID Connect provider that behaves like Pro Santé Connect, for the integration tests.

A real HTTP server (stdlib `http.server`, one thread) on 127.0.0.1 and a free port. It serves the
discovery document, the JWKS, `/authorize` (no login page: it redirects straight back with a code for
the configured professional), `/token` (checks the code, the client credentials and the PKCE verifier,
returns an access token and an ID token signed with its own key), `/userinfo` (PSC-like claims, JSON or
a signed JWT) and `/logout`.

Switches on `behaviour` make it misbehave the way a broken or hostile provider could.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import threading
import time
from dataclasses import dataclass, field
from functools import cache
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote_plus, urlencode, urlsplit

from joserfc import jwt
from joserfc.jwk import ECKey, RSAKey

RSA_KID = "psc-double-rsa"
EC_KID = "psc-double-ec"


@cache
def _keys() -> dict[str, Any]:
    """Signing keys, made once per test run (RSA generation is slow). "wrong_*" share the real kids."""
    return {
        "RS256": RSAKey.generate_key(2048, parameters={"kid": RSA_KID, "use": "sig", "alg": "RS256"}),
        "ES256": ECKey.generate_key("P-256", parameters={"kid": EC_KID, "use": "sig", "alg": "ES256"}),
        "wrong_RS256": RSAKey.generate_key(2048, parameters={"kid": RSA_KID, "use": "sig", "alg": "RS256"}),
        "wrong_ES256": ECKey.generate_key("P-256", parameters={"kid": EC_KID, "use": "sig", "alg": "ES256"}),
    }


def psc_userinfo(
    *, subject_name_id: str = "899700367917", given_name: str = "Jeanne", family_name: str = "Martin"
) -> dict[str, Any]:
    """Userinfo claims shaped like the ANS sandbox sample (a subset)."""
    return {
        "sub": f"f:550dc1c8-d97b-4b1e-ac8c-8eb4471cf9dd:{subject_name_id}",
        "SubjectNameID": subject_name_id,
        "preferred_username": subject_name_id,
        "given_name": given_name,
        "family_name": family_name,
        "codeCivilite": "MME",
        "SubjectRole": ["10^1.2.250.1.213.1.1.5.5"],
        "SubjectOrganization": "Cabinet du Dr Martin",
        "SubjectOrganizationID": "499700367909006",
        "Secteur_Activite": "SA07^1.2.250.1.71.4.2.4",
        "Palier_Authentification": "APPPRIP3^1.2.250.1.213.1.5.1.1.1",
        "otherIds": [],
    }


@dataclass
class Behaviour:
    """How the double deviates from a correct provider. All off by default."""

    signing_alg: str = "RS256"  # RS256 or ES256
    bad_signature: bool = False  # ID token (and signed userinfo) signed with a key not in the JWKS
    wrong_nonce: bool = False
    wrong_issuer: bool = False
    wrong_audience: bool = False
    expired: bool = False  # exp (and iat) one hour in the past
    acr: str = "eidas1"
    userinfo_status: int = 200  # anything else: userinfo answers with that status
    userinfo_as_jwt: bool = False  # application/jwt instead of application/json
    authorize_error: str = ""  # e.g. "access_denied": /authorize redirects back with this error
    userinfo_sub: str = ""  # userinfo about another subject than the ID token


@dataclass
class Recorded:
    """What the double received, for the tests to assert on."""

    hits: dict[str, int] = field(default_factory=dict)
    authorize: list[dict[str, str]] = field(default_factory=list)
    token: list[dict[str, str]] = field(default_factory=list)
    logout: list[dict[str, str]] = field(default_factory=list)


def _left_hash(value: str) -> str:
    digest = hashlib.sha256(value.encode()).digest()
    return base64.urlsafe_b64encode(digest[:16]).rstrip(b"=").decode()


def _with_query(url: str, params: dict[str, str]) -> str:
    return f"{url}{'&' if urlsplit(url).query else '?'}{urlencode(params)}"


class OIDCProviderDouble:
    def __init__(self, *, client_id: str, client_secret: str, userinfo: dict[str, Any] | None = None) -> None:
        self.client_id = client_id
        self.client_secret = client_secret
        self.userinfo = userinfo or psc_userinfo()
        self.behaviour = Behaviour()
        self.recorded = Recorded()
        self._lock = threading.Lock()
        self._codes: dict[str, dict[str, Any]] = {}
        self._access_tokens: dict[str, dict[str, Any]] = {}
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # --- lifecycle ---------------------------------------------------------------------------------

    def start(self) -> OIDCProviderDouble:
        double = self

        class Handler(_Handler):
            provider = double

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="oidc-double", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = self._thread = None

    def __enter__(self) -> OIDCProviderDouble:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def issuer(self) -> str:
        assert self._server is not None, "start() the double first"
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    @property
    def discovery_url(self) -> str:
        return f"{self.issuer}/.well-known/openid-configuration"

    # --- what the endpoints answer ------------------------------------------------------------------

    def metadata(self) -> dict[str, Any]:
        return {
            "issuer": self.issuer,
            "authorization_endpoint": f"{self.issuer}/authorize",
            "token_endpoint": f"{self.issuer}/token",
            "userinfo_endpoint": f"{self.issuer}/userinfo",
            "jwks_uri": f"{self.issuer}/jwks",
            "end_session_endpoint": f"{self.issuer}/logout",
            "response_types_supported": ["code"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256", "ES256"],
            "userinfo_signing_alg_values_supported": ["RS256", "ES256"],
            "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
            "code_challenge_methods_supported": ["S256"],
            "scopes_supported": ["openid", "scope_all"],
            "acr_values_supported": ["eidas1", "eidas2", "eidas3"],
        }

    def jwks(self) -> dict[str, Any]:
        keys = _keys()
        return {"keys": [keys["RS256"].as_dict(private=False), keys["ES256"].as_dict(private=False)]}

    def sign(self, claims: dict[str, Any]) -> str:
        alg = self.behaviour.signing_alg
        key = _keys()[f"wrong_{alg}" if self.behaviour.bad_signature else alg]
        header = {"alg": alg, "kid": key.kid, "typ": "JWT"}
        return jwt.encode(header, claims, key, algorithms=[alg])

    def authorize(self, query: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
        with self._lock:
            self.recorded.authorize.append(query)
        problems = [
            name
            for name, ok in (
                ("response_type", query.get("response_type") == "code"),
                ("client_id", query.get("client_id") == self.client_id),
                ("redirect_uri", bool(query.get("redirect_uri"))),
                ("scope", "openid" in query.get("scope", "").split()),
                ("state", bool(query.get("state"))),
                ("nonce", bool(query.get("nonce"))),
                ("code_challenge", bool(query.get("code_challenge"))),
                ("code_challenge_method", query.get("code_challenge_method") == "S256"),
            )
            if not ok
        ]
        if problems:
            return 400, {"Content-Type": "text/plain"}, f"invalid request: {problems}".encode()
        if self.behaviour.authorize_error:
            params = {"error": self.behaviour.authorize_error, "state": query["state"]}
            return 302, {"Location": _with_query(query["redirect_uri"], params)}, b""
        code = secrets.token_urlsafe(24)
        with self._lock:
            self._codes[code] = {
                "redirect_uri": query["redirect_uri"],
                "nonce": query["nonce"],
                "code_challenge": query["code_challenge"],
                "issued": time.time(),
            }
        return (
            302,
            {"Location": _with_query(query["redirect_uri"], {"code": code, "state": query["state"]})},
            b"",
        )

    def token(self, form: dict[str, str], authorization: str) -> tuple[int, dict[str, Any]]:
        with self._lock:
            self.recorded.token.append({**form, "authorization": authorization})
        client_id, client_secret = form.get("client_id", ""), form.get("client_secret", "")
        if authorization.startswith("Basic "):
            decoded = base64.b64decode(authorization[6:]).decode()
            user, _, password = decoded.partition(":")
            client_id, client_secret = unquote_plus(user), unquote_plus(password)
        if client_id != self.client_id or not secrets.compare_digest(client_secret, self.client_secret):
            return 401, {"error": "invalid_client"}
        if form.get("grant_type") != "authorization_code":
            return 400, {"error": "unsupported_grant_type"}
        with self._lock:
            grant = self._codes.pop(form.get("code", ""), None)  # a code is good once
        if grant is None or time.time() - grant["issued"] > 60:
            return 400, {"error": "invalid_grant", "error_description": "unknown or used code"}
        if form.get("redirect_uri") != grant["redirect_uri"]:
            return 400, {"error": "invalid_grant", "error_description": "redirect_uri mismatch"}
        verifier = form.get("code_verifier", "")
        challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
        if not verifier or challenge != grant["code_challenge"]:
            return 400, {"error": "invalid_grant", "error_description": "PKCE verification failed"}

        access_token = secrets.token_urlsafe(32)
        with self._lock:
            self._access_tokens[access_token] = dict(self.userinfo)
            if self.behaviour.userinfo_sub:
                self._access_tokens[access_token]["sub"] = self.behaviour.userinfo_sub
        now = int(time.time()) - (3600 if self.behaviour.expired else 0)
        claims = {
            "iss": "https://attacker.example/realms/psc" if self.behaviour.wrong_issuer else self.issuer,
            "aud": "un-autre-service" if self.behaviour.wrong_audience else self.client_id,
            "azp": self.client_id,
            "sub": self.userinfo["sub"],
            "iat": now,
            "auth_time": now - 5,
            "exp": now + 300,
            "nonce": "nonce-rejoue-par-un-attaquant" if self.behaviour.wrong_nonce else grant["nonce"],
            "acr": self.behaviour.acr,
            "at_hash": _left_hash(access_token),
            "preferred_username": self.userinfo.get("preferred_username", ""),
        }
        return 200, {
            "access_token": access_token,
            "token_type": "Bearer",
            "expires_in": 120,
            "id_token": self.sign(claims),
            "scope": "openid scope_all",
        }

    def userinfo_response(self, authorization: str) -> tuple[int, dict[str, str], bytes]:
        token = authorization[7:] if authorization.startswith("Bearer ") else ""
        with self._lock:
            claims = self._access_tokens.get(token)
        if claims is None:
            return 401, {"WWW-Authenticate": 'Bearer error="invalid_token"'}, b""
        if self.behaviour.userinfo_status != 200:
            return self.behaviour.userinfo_status, {"Content-Type": "application/json"}, b'{"error":"boom"}'
        if self.behaviour.userinfo_as_jwt:
            signed = self.sign({**claims, "iss": self.issuer, "aud": self.client_id})
            return 200, {"Content-Type": "application/jwt"}, signed.encode()
        return 200, {"Content-Type": "application/json"}, json.dumps(claims).encode()

    def hit(self, path: str) -> None:
        with self._lock:
            self.recorded.hits[path] = self.recorded.hits.get(path, 0) + 1


class _Handler(BaseHTTPRequestHandler):
    provider: OIDCProviderDouble

    def log_message(self, format: str, *args: Any) -> None:  # quiet: pytest shows failures itself
        pass

    def _send(self, status: int, headers: dict[str, str], body: bytes = b"") -> None:
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)

    def _json(self, status: int, data: dict[str, Any]) -> None:
        self._send(status, {"Content-Type": "application/json"}, json.dumps(data).encode())

    def do_GET(self) -> None:
        parts = urlsplit(self.path)
        query = {k: v[0] for k, v in parse_qs(parts.query).items()}
        self.provider.hit(parts.path)
        if parts.path == "/.well-known/openid-configuration":
            self._json(200, self.provider.metadata())
        elif parts.path == "/jwks":
            self._json(200, self.provider.jwks())
        elif parts.path == "/authorize":
            self._send(*self.provider.authorize(query))
        elif parts.path == "/userinfo":
            self._send(*self.provider.userinfo_response(self.headers.get("Authorization", "")))
        elif parts.path == "/logout":
            with self.provider._lock:
                self.provider.recorded.logout.append(query)
            target = query.get("post_logout_redirect_uri")
            self._send(302, {"Location": target}) if target else self._send(200, {}, b"logged out")
        else:
            self._send(404, {"Content-Type": "text/plain"}, b"not found")

    def do_POST(self) -> None:
        parts = urlsplit(self.path)
        self.provider.hit(parts.path)
        length = int(self.headers.get("Content-Length", "0") or 0)
        body = self.rfile.read(length).decode()
        if parts.path != "/token":
            self._send(404, {"Content-Type": "text/plain"}, b"not found")
            return
        form = {k: v[0] for k, v in parse_qs(body).items()}
        self._json(*self.provider.token(form, self.headers.get("Authorization", "")))
