"""Pro Santé Connect (PSC): the OpenID Connect client that signs professionals in with CPS / e-CPS.

Authorization code flow with `state`, `nonce` and PKCE (S256). The provider's discovery document and
JWKS are fetched with httpx (explicit timeouts) and cached; the ID token signature is verified against
the JWKS (RS256 / ES256 only) and its `iss`, `aud`, `exp`, `iat`, `nonce` (and `acr` when
PSC_ACCEPTED_ACR is set) are checked. Userinfo, JSON or signed JWT (`application/jwt`), gives the
`SubjectNameID` (IdNat_PS) that designates the ENRS account (`User.idnat_ps`).

Every failure raises `PSCError` with a machine `reason` (written to the audit trail) and a French
`message` (shown to the user). The views in `psc_views.py` turn it into a 403 refusal page.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import secrets
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote_plus, urlencode, urlsplit

import httpx
from authlib.oauth2.rfc7636 import create_s256_code_challenge
from django.conf import settings
from django.core.cache import cache
from django.core.exceptions import ValidationError
from django.http import HttpRequest
from django.urls import reverse
from joserfc import jwt
from joserfc.errors import BadSignatureError, InvalidKeyIdError, JoseError, UnsupportedAlgorithmError
from joserfc.jwk import KeySet

from .models import User, idnat_ps_validator

SESSION_FLOW_KEY = "enrs_psc_flow"
SESSION_ID_TOKEN_KEY = "enrs_psc_id_token"  # noqa: S105 (a session key name, not a secret)
SESSION_CLAIMS_KEY = "enrs_psc_claims"

# Signature algorithms accepted for the ID token and a signed userinfo. Never "none", never HMAC.
ALLOWED_ALGORITHMS = ("RS256", "ES256")
# A pending sign-in (state, nonce, PKCE verifier) is valid this long, in seconds.
FLOW_MAX_AGE = 600
# Clock skew tolerated between ENRS and the provider, in seconds.
CLOCK_LEEWAY = 60

# Userinfo claims kept in the session after sign-in (VIHF, directory mapping). Never tokens.
SESSION_CLAIMS = (
    "sub",
    "SubjectNameID",
    "given_name",
    "family_name",
    "SubjectRole",
    "SubjectOrganization",
    "SubjectOrganizationID",
    "Secteur_Activite",
    "Palier_Authentification",
    "acr",
)

_UNAVAILABLE = (
    "Le service Pro Santé Connect est momentanément indisponible. Réessayez dans quelques minutes ou "
    "utilisez un autre moyen de connexion."
)
_UNVERIFIED = (
    "La réponse de Pro Santé Connect n'a pas pu être vérifiée. Par sécurité, la connexion a été refusée."
)
_RESTART = "La demande de connexion a expiré ou n'est pas valide. Recommencez la connexion."

MESSAGES: dict[str, str] = {
    "disabled": "La connexion par Pro Santé Connect n'est pas activée sur ce portail.",
    "discovery_failed": _UNAVAILABLE,
    "jwks_failed": _UNAVAILABLE,
    "insecure_endpoint": _UNAVAILABLE,
    "provider_error": "La connexion avec Pro Santé Connect a été annulée ou refusée.",
    "flow_missing": _RESTART,
    "flow_expired": _RESTART,
    "state_mismatch": _RESTART,
    "code_missing": _RESTART,
    "token_request_failed": _UNAVAILABLE,
    "token_response_invalid": _UNVERIFIED,
    "bad_signature": _UNVERIFIED,
    "unknown_key": _UNVERIFIED,
    "bad_algorithm": _UNVERIFIED,
    "malformed_token": _UNVERIFIED,
    "wrong_issuer": _UNVERIFIED,
    "wrong_audience": _UNVERIFIED,
    "expired": _UNVERIFIED,
    "issued_in_future": _UNVERIFIED,
    "stale_token": _UNVERIFIED,
    "wrong_nonce": _UNVERIFIED,
    "missing_claim": _UNVERIFIED,
    "wrong_at_hash": _UNVERIFIED,
    "acr_insufficient": (
        "Le niveau d'authentification utilisé avec Pro Santé Connect n'est pas suffisant pour accéder à "
        "ENRS. Connectez-vous avec votre carte CPS ou e-CPS."
    ),
    "userinfo_failed": _UNAVAILABLE,
    "userinfo_invalid": _UNVERIFIED,
    "subject_mismatch": _UNVERIFIED,
    "subject_name_id_missing": "Pro Santé Connect n'a pas transmis votre identifiant national (IdNat_PS).",
    "subject_name_id_invalid": (
        "L'identifiant national (IdNat_PS) transmis par Pro Santé Connect n'est pas valide."
    ),
    "unknown_professional": "Aucun compte ENRS n'est associé à votre identité Pro Santé Connect.",
    "inactive_account": "Votre compte ENRS est désactivé. Contactez l'équipe du GCS e-santé.",
    "unexpected_error": (
        "La connexion par Pro Santé Connect a échoué. Réessayez ou contactez l'équipe du GCS e-santé."
    ),
}

# Refusals that are a decision about this person (not a protocol or transport failure).
_DENIED_REASONS = frozenset(
    {"provider_error", "acr_insufficient", "unknown_professional", "inactive_account"}
)


class PSCError(Exception):
    """A refused Pro Santé Connect sign-in: `reason` for the audit trail, `message` for the user."""

    def __init__(self, reason: str, *, detail: dict[str, Any] | None = None, message: str = "") -> None:
        self.reason = reason
        self.detail = detail or {}
        self.message = message or MESSAGES.get(reason, MESSAGES["unexpected_error"])
        super().__init__(f"{reason}: {self.detail}" if self.detail else reason)

    @property
    def outcome(self) -> str:
        return "denied" if self.reason in _DENIED_REASONS else "failure"


@dataclass(frozen=True)
class PSCIdentity:
    """The outcome of a verified PSC sign-in."""

    user: User
    id_token: str
    id_token_claims: dict[str, Any]
    userinfo: dict[str, Any]
    next_url: str
    acr: str = ""
    session_claims: dict[str, Any] = field(default_factory=dict)


# --- Configuration ----------------------------------------------------------------------------------


def psc_enabled() -> bool:
    return bool(getattr(settings, "PSC_DISCOVERY_URL", ""))


def _timeout() -> httpx.Timeout:
    return httpx.Timeout(float(settings.PSC_HTTP_TIMEOUT))


def _http_client() -> httpx.Client:
    return httpx.Client(timeout=_timeout(), follow_redirects=False, headers={"User-Agent": "ENRS-PSC/1"})


def _is_loopback(host: str | None) -> bool:
    if not host:
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def require_secure_url(url: str, *, what: str) -> str:
    """HTTPS only; plain HTTP is tolerated on loopback (local provider double, development)."""
    parts = urlsplit(url)
    if parts.scheme == "https" and parts.hostname:
        return url
    if parts.scheme == "http" and _is_loopback(parts.hostname):
        return url
    raise PSCError("insecure_endpoint", detail={"endpoint": what, "url": url})


def _cache_key(kind: str, url: str) -> str:
    return f"psc:{kind}:{hashlib.sha256(url.encode()).hexdigest()[:32]}"


def clear_cache() -> None:
    """Forget the cached discovery document and JWKS (key rotation, tests)."""
    url = getattr(settings, "PSC_DISCOVERY_URL", "")
    if not url:
        return
    metadata = cache.get(_cache_key("metadata", url))
    keys = [_cache_key("metadata", url)]
    if isinstance(metadata, dict) and isinstance(metadata.get("jwks_uri"), str):
        keys.append(_cache_key("jwks", metadata["jwks_uri"]))
    cache.delete_many(keys)


def _get_json(url: str, *, reason: str) -> dict[str, Any]:
    try:
        with _http_client() as client:
            response = client.get(url, headers={"Accept": "application/json"})
    except httpx.HTTPError as exc:
        raise PSCError(reason, detail={"url": url, "error": type(exc).__name__}) from exc
    if response.status_code != 200:
        raise PSCError(reason, detail={"url": url, "status": response.status_code})
    try:
        data = response.json()
    except ValueError as exc:
        raise PSCError(reason, detail={"url": url, "error": "invalid JSON"}) from exc
    if not isinstance(data, dict):
        raise PSCError(reason, detail={"url": url, "error": "not a JSON object"})
    return data


def provider_metadata(*, refresh: bool = False) -> dict[str, Any]:
    """The provider's discovery document (cached PSC_METADATA_CACHE_SECONDS)."""
    if not psc_enabled():
        raise PSCError("disabled")
    url = require_secure_url(settings.PSC_DISCOVERY_URL, what="discovery")
    key = _cache_key("metadata", url)
    if not refresh:
        cached = cache.get(key)
        if isinstance(cached, dict):
            return cached
    metadata = _get_json(url, reason="discovery_failed")
    for name in ("issuer", "authorization_endpoint", "token_endpoint", "jwks_uri", "userinfo_endpoint"):
        value = metadata.get(name)
        if not isinstance(value, str) or not value:
            raise PSCError("discovery_failed", detail={"url": url, "missing": name})
        require_secure_url(value, what=name)
    end_session = metadata.get("end_session_endpoint")
    if end_session is not None and not isinstance(end_session, str):
        raise PSCError("discovery_failed", detail={"url": url, "invalid": "end_session_endpoint"})
    cache.set(key, metadata, timeout=settings.PSC_METADATA_CACHE_SECONDS)
    return metadata


def provider_keys(metadata: dict[str, Any], *, refresh: bool = False) -> KeySet:
    """The provider's signing keys (JWKS), cached like the discovery document."""
    url = metadata["jwks_uri"]
    key = _cache_key("jwks", url)
    data = None if refresh else cache.get(key)
    if not isinstance(data, dict):
        data = _get_json(url, reason="jwks_failed")
        if not isinstance(data.get("keys"), list):
            raise PSCError("jwks_failed", detail={"url": url, "error": "no keys"})
        cache.set(key, data, timeout=settings.PSC_METADATA_CACHE_SECONDS)
    # Keep only the signing keys; encryption keys published alongside are not for us.
    signing = [k for k in data["keys"] if isinstance(k, dict) and k.get("use", "sig") == "sig"]
    try:
        return KeySet.import_key_set({"keys": signing})
    except (JoseError, ValueError, TypeError, KeyError) as exc:
        raise PSCError("jwks_failed", detail={"url": url, "error": type(exc).__name__}) from exc


# --- Step 1: send the user to the provider ----------------------------------------------------------


def redirect_uri(request: HttpRequest) -> str:
    """The callback URL registered at PSC: PSC_REDIRECT_URI, or built from the request."""
    configured: str = getattr(settings, "PSC_REDIRECT_URI", "")
    return configured or request.build_absolute_uri(reverse("accounts:psc_callback"))


def authorization_url(request: HttpRequest, *, next_url: str) -> str:
    """Start a sign-in: remember state, nonce and PKCE verifier in the session, return the provider URL."""
    metadata = provider_metadata()
    state = secrets.token_urlsafe(32)
    nonce = secrets.token_urlsafe(32)
    verifier = secrets.token_urlsafe(64)  # 86 characters of [A-Za-z0-9_-]: RFC 7636 §4.1
    callback = redirect_uri(request)
    request.session[SESSION_FLOW_KEY] = {
        "state": state,
        "nonce": nonce,
        "verifier": verifier,
        "redirect_uri": callback,
        "next": next_url,
        "started": int(time.time()),
    }
    params = {
        "response_type": "code",
        "client_id": settings.PSC_CLIENT_ID,
        "redirect_uri": callback,
        "scope": settings.PSC_SCOPES,
        "state": state,
        "nonce": nonce,
        "code_challenge": create_s256_code_challenge(verifier),
        "code_challenge_method": "S256",
    }
    if settings.PSC_ACR_VALUES:
        params["acr_values"] = settings.PSC_ACR_VALUES
    endpoint: str = metadata["authorization_endpoint"]
    separator = "&" if urlsplit(endpoint).query else "?"
    return f"{endpoint}{separator}{urlencode(params)}"


# --- Step 2: the provider sends the user back -------------------------------------------------------


def _pop_flow(request: HttpRequest) -> dict[str, Any]:
    """The pending sign-in, removed from the session: a callback URL can be used once only."""
    flow = request.session.pop(SESSION_FLOW_KEY, None)
    if not isinstance(flow, dict):
        raise PSCError("flow_missing")
    if int(time.time()) - int(flow.get("started", 0)) > FLOW_MAX_AGE:
        raise PSCError("flow_expired")
    return flow


def _same(a: object, b: object) -> bool:
    return isinstance(a, str) and isinstance(b, str) and hmac.compare_digest(a.encode(), b.encode())


def authorization_complete(request: HttpRequest) -> PSCIdentity:
    """Check the callback, exchange the code, verify the ID token and userinfo, find the ENRS account."""
    if not psc_enabled():
        raise PSCError("disabled")
    flow = _pop_flow(request)
    if not _same(request.GET.get("state"), flow["state"]):
        raise PSCError(
            "state_mismatch", detail={"error": request.GET["error"][:100]} if "error" in request.GET else None
        )
    if "error" in request.GET:
        raise PSCError(
            "provider_error",
            detail={
                "error": request.GET.get("error", "")[:100],
                "error_description": request.GET.get("error_description", "")[:300],
            },
        )
    code = request.GET.get("code", "")
    if not code:
        raise PSCError("code_missing")

    metadata = provider_metadata()
    tokens = _exchange_code(metadata, code=code, flow=flow)
    id_token: str = tokens["id_token"]
    id_claims = _verify_id_token(metadata, id_token, nonce=flow["nonce"], access_token=tokens["access_token"])
    userinfo = _fetch_userinfo(metadata, access_token=tokens["access_token"])
    if not _same(userinfo.get("sub"), id_claims["sub"]):
        raise PSCError("subject_mismatch")

    acr = _check_acr(id_claims, userinfo)
    user = _find_user(userinfo)
    kept = {name: userinfo[name] for name in SESSION_CLAIMS if name in userinfo}
    if acr:
        kept["acr"] = acr
    return PSCIdentity(
        user=user,
        id_token=id_token,
        id_token_claims=id_claims,
        userinfo=userinfo,
        next_url=str(flow.get("next") or ""),
        acr=acr,
        session_claims=kept,
    )


def _exchange_code(metadata: dict[str, Any], *, code: str, flow: dict[str, Any]) -> dict[str, Any]:
    data = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": flow["redirect_uri"],
        "code_verifier": flow["verifier"],
    }
    headers = {"Accept": "application/json"}
    if settings.PSC_TOKEN_AUTH_METHOD == "client_secret_post":  # noqa: S105 (a method name)
        data |= {"client_id": settings.PSC_CLIENT_ID, "client_secret": settings.PSC_CLIENT_SECRET}
    else:  # client_secret_basic: credentials form-encoded first (RFC 6749 §2.3.1)
        credentials = f"{quote_plus(settings.PSC_CLIENT_ID)}:{quote_plus(settings.PSC_CLIENT_SECRET)}"
        headers["Authorization"] = "Basic " + base64.b64encode(credentials.encode()).decode("ascii")
    url = metadata["token_endpoint"]
    try:
        with _http_client() as client:
            response = client.post(url, data=data, headers=headers)
    except httpx.HTTPError as exc:
        raise PSCError("token_request_failed", detail={"error": type(exc).__name__}) from exc
    if response.status_code != 200:
        detail: dict[str, Any] = {"status": response.status_code}
        try:
            body = response.json()
        except ValueError:
            body = None
        if isinstance(body, dict) and isinstance(body.get("error"), str):
            detail["error"] = body["error"][:100]
        raise PSCError("token_request_failed", detail=detail)
    try:
        tokens = response.json()
    except ValueError as exc:
        raise PSCError("token_response_invalid", detail={"error": "invalid JSON"}) from exc
    if not isinstance(tokens, dict):
        raise PSCError("token_response_invalid", detail={"error": "not a JSON object"})
    for name in ("access_token", "id_token", "token_type"):
        if not isinstance(tokens.get(name), str) or not tokens[name]:
            raise PSCError("token_response_invalid", detail={"missing": name})
    if tokens["token_type"].lower() != "bearer":
        raise PSCError("token_response_invalid", detail={"token_type": tokens["token_type"][:20]})
    return tokens


def _decode_signed(metadata: dict[str, Any], token: str, *, what: str) -> jwt.Token:
    """Verify a JWS against the provider's JWKS; refetch the JWKS once for an unknown key id (rotation)."""
    if token.count(".") != 2:
        raise PSCError("malformed_token", detail={"token": what})
    for attempt in (0, 1):
        keys = provider_keys(metadata, refresh=attempt == 1)
        try:
            return jwt.decode(token, keys, algorithms=list(ALLOWED_ALGORITHMS))
        except InvalidKeyIdError as exc:
            if attempt == 1:
                raise PSCError("unknown_key", detail={"token": what}) from exc
        except BadSignatureError as exc:
            raise PSCError("bad_signature", detail={"token": what}) from exc
        except UnsupportedAlgorithmError as exc:
            raise PSCError("bad_algorithm", detail={"token": what}) from exc
        except (JoseError, ValueError, TypeError) as exc:
            raise PSCError("malformed_token", detail={"token": what, "error": type(exc).__name__}) from exc
    raise AssertionError("unreachable")  # pragma: no cover


def _check_audience(claims: dict[str, Any], *, what: str) -> None:
    client_id = settings.PSC_CLIENT_ID
    aud = claims.get("aud")
    audiences = [aud] if isinstance(aud, str) else aud
    if not isinstance(audiences, list) or client_id not in audiences:
        raise PSCError("wrong_audience", detail={"token": what, "aud": aud})
    azp = claims.get("azp")
    if (len(audiences) > 1 or azp is not None) and azp != client_id:
        raise PSCError("wrong_audience", detail={"token": what, "azp": azp})


def _number(claims: dict[str, Any], name: str) -> int:
    value = claims.get(name)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise PSCError("missing_claim", detail={"claim": name})
    return int(value)


def _verify_id_token(
    metadata: dict[str, Any], token: str, *, nonce: str, access_token: str
) -> dict[str, Any]:
    decoded = _decode_signed(metadata, token, what="id_token")
    claims = decoded.claims
    if claims.get("iss") != metadata["issuer"]:
        raise PSCError("wrong_issuer", detail={"iss": str(claims.get("iss"))[:200]})
    _check_audience(claims, what="id_token")
    now = int(time.time())
    if now > _number(claims, "exp") + CLOCK_LEEWAY:
        raise PSCError("expired", detail={"exp": claims["exp"]})
    iat = _number(claims, "iat")
    if iat > now + CLOCK_LEEWAY:
        raise PSCError("issued_in_future", detail={"iat": iat})
    if now - iat > FLOW_MAX_AGE + CLOCK_LEEWAY:
        raise PSCError("stale_token", detail={"iat": iat})
    if "nbf" in claims and _number(claims, "nbf") > now + CLOCK_LEEWAY:
        raise PSCError("issued_in_future", detail={"nbf": claims["nbf"]})
    if "nonce" not in claims:
        raise PSCError("missing_claim", detail={"claim": "nonce"})
    if not _same(claims.get("nonce"), nonce):
        raise PSCError("wrong_nonce")
    if not isinstance(claims.get("sub"), str) or not claims["sub"]:
        raise PSCError("missing_claim", detail={"claim": "sub"})
    at_hash = claims.get("at_hash")
    if at_hash is not None and not _same(at_hash, _left_hash(access_token)):
        raise PSCError("wrong_at_hash")
    return claims


def _left_hash(value: str) -> str:
    """OIDC `at_hash` for RS256 / ES256: left half of the SHA-256 of the access token, base64url."""
    digest = hashlib.sha256(value.encode()).digest()
    return base64.urlsafe_b64encode(digest[: len(digest) // 2]).rstrip(b"=").decode()


def _fetch_userinfo(metadata: dict[str, Any], *, access_token: str) -> dict[str, Any]:
    url = metadata["userinfo_endpoint"]
    headers = {"Authorization": f"Bearer {access_token}", "Accept": "application/json, application/jwt"}
    try:
        with _http_client() as client:
            response = client.get(url, headers=headers)
    except httpx.HTTPError as exc:
        raise PSCError("userinfo_failed", detail={"error": type(exc).__name__}) from exc
    if response.status_code != 200:
        raise PSCError("userinfo_failed", detail={"status": response.status_code})
    content_type = response.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type == "application/jwt":
        claims = _decode_signed(metadata, response.text.strip(), what="userinfo").claims
        # A signed userinfo SHOULD carry iss and aud (OIDC Core §5.3.2): check them when present.
        if "iss" in claims and claims["iss"] != metadata["issuer"]:
            raise PSCError("wrong_issuer", detail={"token": "userinfo", "iss": str(claims["iss"])[:200]})
        if "aud" in claims:
            _check_audience(claims, what="userinfo")
        return claims
    if content_type == "application/json" or content_type.endswith("+json"):
        try:
            data = response.json()
        except ValueError as exc:
            raise PSCError("userinfo_invalid", detail={"error": "invalid JSON"}) from exc
        if not isinstance(data, dict):
            raise PSCError("userinfo_invalid", detail={"error": "not a JSON object"})
        return data
    raise PSCError("userinfo_invalid", detail={"content_type": content_type[:100]})


def _check_acr(id_claims: dict[str, Any], userinfo: dict[str, Any]) -> str:
    """The `acr` of the ID token (or userinfo), which must be one of PSC_ACCEPTED_ACR when that is set."""
    acr = id_claims.get("acr", userinfo.get("acr", ""))
    acr = acr if isinstance(acr, str) else ""
    accepted = list(getattr(settings, "PSC_ACCEPTED_ACR", []) or [])
    if accepted and acr not in accepted:
        raise PSCError(
            "acr_insufficient",
            detail={"acr": acr[:100], "palier": str(userinfo.get("Palier_Authentification", ""))[:100]},
        )
    return acr


def _find_user(userinfo: dict[str, Any]) -> User:
    idnat_ps = userinfo.get("SubjectNameID")
    if not isinstance(idnat_ps, str) or not idnat_ps.strip():
        raise PSCError("subject_name_id_missing")
    idnat_ps = idnat_ps.strip()
    try:
        idnat_ps_validator(idnat_ps)
    except ValidationError as exc:
        raise PSCError("subject_name_id_invalid", detail={"subject_name_id": idnat_ps[:50]}) from exc
    user = User.objects.filter(idnat_ps=idnat_ps).first()
    if user is None:
        raise PSCError("unknown_professional", detail={"subject_name_id": idnat_ps})
    if not user.is_active:
        raise PSCError("inactive_account", detail={"subject_name_id": idnat_ps, "user_id": user.pk})
    return user


# --- Logout at the provider -------------------------------------------------------------------------


def end_session_url(*, id_token_hint: str, post_logout_redirect_uri: str) -> str | None:
    """The provider's logout URL (RP-initiated logout), or None when it publishes none."""
    metadata = provider_metadata()
    endpoint = metadata.get("end_session_endpoint")
    if not endpoint:
        return None
    require_secure_url(endpoint, what="end_session_endpoint")
    params = {
        "client_id": settings.PSC_CLIENT_ID,
        "id_token_hint": id_token_hint,
        "post_logout_redirect_uri": post_logout_redirect_uri,
    }
    separator = "&" if urlsplit(endpoint).query else "?"
    return f"{endpoint}{separator}{urlencode(params)}"
