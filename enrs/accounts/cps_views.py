"""CPS card sign-in: the client certificate nginx received, checked again here, opens a strong session.

nginx (deploy/nginx/enrs.conf) terminates TLS with `ssl_verify_client optional_no_ca`, so that it never
answers an error page of its own for an expired or unknown card, and forwards the certificate and its
own verdict in two headers (settings CPS_CERT_HEADER / CPS_VERIFY_HEADER). Those headers are read only
when the TCP peer is one of TRUSTED_PROXY_CIDRS; from anyone else they are a spoofing attempt: ignored,
audited, refused. The certificate checks themselves are in `cps.py` (pure code).
"""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from cryptography import x509
from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_not_required
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render, resolve_url
from django.urls import reverse
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from enrs.core.net import from_trusted_proxy

from . import cps
from .authn import AuthMethod, sign_in
from .models import User

logger = logging.getLogger(__name__)

NO_CARD_MESSAGE = (
    "Aucune carte CPS n'a été présentée. Vérifiez que votre carte est insérée dans le lecteur et "
    "choisissez son certificat d'authentification, ou connectez-vous avec votre identifiant, votre mot "
    "de passe et votre code à usage unique."
)
DISABLED_MESSAGE = (
    "La connexion par carte CPS n'est pas activée sur ce portail : connectez-vous avec votre identifiant, "
    "votre mot de passe et votre code à usage unique."
)
UNAVAILABLE_MESSAGE = (
    "La connexion par carte CPS est momentanément indisponible. Connectez-vous avec votre identifiant, "
    "votre mot de passe et votre code à usage unique, ou réessayez plus tard."
)
SPOOFING_MESSAGE = (
    "Cette demande de connexion par carte CPS ne provient pas du point d'entrée sécurisé du portail : "
    "elle a été refusée et enregistrée."
)


# --- Trust material: CA bundle and CRL, loaded once and reloaded when a file changes -------------
class CpsUnavailable(Exception):
    """The configured CA bundle or CRL file cannot be read or parsed."""


@dataclass(frozen=True)
class TrustMaterial:
    ca_bundle: list[x509.Certificate]
    crls: list[x509.CertificateRevocationList] | None


_Stamp = tuple[int, int, int]
_lock = threading.Lock()
_cache: dict[tuple[str, str], tuple[tuple[_Stamp, _Stamp | None], TrustMaterial]] = {}


def _stamp(path: str) -> _Stamp:
    st = os.stat(path)
    return (st.st_mtime_ns, st.st_size, st.st_ino)


def cps_enabled() -> bool:
    return bool(getattr(settings, "CPS_CA_BUNDLE", ""))


def trust_material() -> TrustMaterial:
    """The CA bundle and CRLs of the settings, cached per process and reloaded when a file changes (an
    updated CRL is picked up at the next sign-in, without a restart)."""
    bundle_path = str(settings.CPS_CA_BUNDLE)
    crl_path = str(getattr(settings, "CPS_CRL_FILE", "") or "")
    key = (bundle_path, crl_path)
    try:
        stamps = (_stamp(bundle_path), _stamp(crl_path) if crl_path else None)
    except OSError as exc:
        raise CpsUnavailable(f"cannot read {exc.filename}: {exc.strerror}") from exc
    with _lock:
        cached = _cache.get(key)
        if cached and cached[0] == stamps:
            return cached[1]
        try:
            material = TrustMaterial(
                ca_bundle=cps.load_ca_bundle(Path(bundle_path).read_bytes()),
                crls=cps.load_crls(Path(crl_path).read_bytes()) if crl_path else None,
            )
        except (OSError, ValueError) as exc:
            raise CpsUnavailable(str(exc)) from exc
        _cache[key] = (stamps, material)
        logger.info(
            "CPS trust material loaded: %d CA certificate(s), %s CRL(s)",
            len(material.ca_bundle),
            len(material.crls) if material.crls is not None else "no",
        )
        return material


def cps_context(request: HttpRequest) -> dict[str, Any]:
    """Template context processor: the login page shows the CPS button only when CPS is configured."""
    return {"cps_enabled": cps_enabled()}


# --- The view -----------------------------------------------------------------------------------
def _safe_next(request: HttpRequest) -> str:
    candidate = request.GET.get("next", "")
    if candidate and url_has_allowed_host_and_scheme(
        candidate, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return candidate
    return ""


def _login_url(next_url: str) -> str:
    url = reverse("accounts:login")
    return f"{url}?{urlencode({'next': next_url})}" if next_url else url


def _audit(**kwargs: Any) -> None:
    # Imported here, like in `authn.sign_in`: the URL conf imports this module early.
    from enrs.audit.services import audit_record

    audit_record(**kwargs)


def _refuse(
    request: HttpRequest, *, message: str, reason: str, next_url: str, status: int = 403
) -> HttpResponse:
    return render(
        request,
        "accounts/cps_refused.html",
        {
            "title": "Connexion par carte CPS refusée",
            "message": message,
            "reason": reason,
            "retry_url": f"{reverse('accounts:cps_login')}?{urlencode({'next': next_url})}"
            if next_url
            else reverse("accounts:cps_login"),
            "login_url": _login_url(next_url),
        },
        status=status,
    )


def _presented_summary(pem: bytes | None) -> dict[str, str]:
    """Subject, issuer, serial… of the presented certificate for the audit trail, when it parses."""
    if not pem:
        return {}
    try:
        return cps.certificate_summary(cps.load_certificate(pem))
    except Exception:  # what cannot be read is not summarised; the refusal is audited all the same
        return {}


@login_not_required
@never_cache
@require_GET
def cps_login(request: HttpRequest) -> HttpResponse:
    """Sign in with the CPS card certificate forwarded by nginx; redirect to `next` or the home page."""
    cert_header = settings.CPS_CERT_HEADER
    verify_header = settings.CPS_VERIFY_HEADER
    next_url = _safe_next(request)

    if not from_trusted_proxy(request):
        forged = [h for h in (cert_header, verify_header) if h and h in request.META]
        if forged:
            logger.warning(
                "CPS headers %s from untrusted peer %s ignored", forged, request.META.get("REMOTE_ADDR")
            )
            _audit(
                action="auth.cps.spoofing",
                request=request,
                outcome="denied",
                detail={"peer": request.META.get("REMOTE_ADDR", ""), "headers": forged},
            )
            return _refuse(request, message=SPOOFING_MESSAGE, reason="spoofing", next_url=next_url)
        raw, verdict = "", ""
    else:
        raw = request.META.get(cert_header, "").strip()
        verdict = request.META.get(verify_header, "").strip() if verify_header else ""

    if not cps_enabled():
        messages.info(request, DISABLED_MESSAGE)
        return HttpResponseRedirect(_login_url(next_url))
    if not raw or verdict == "NONE":
        messages.info(request, NO_CARD_MESSAGE)
        return HttpResponseRedirect(_login_url(next_url))

    try:
        material = trust_material()
    except CpsUnavailable as exc:
        logger.error("CPS sign-in unavailable: %s", exc)
        _audit(
            action="auth.cps.refused",
            request=request,
            outcome="failure",
            detail={"reason": "configuration", "problem": str(exc)[:300]},
        )
        return _refuse(
            request, message=UNAVAILABLE_MESSAGE, reason="configuration", next_url=next_url, status=503
        )

    pem: bytes | None = None
    try:
        pem = cps.decode_header_certificate(raw)
        identity = cps.validate_cps_certificate(
            pem, ca_bundle=material.ca_bundle, crl=material.crls, now=timezone.now()
        )
        if verify_header:
            cps.check_proxy_verdict(verdict)
    except Exception as exc:
        if isinstance(exc, cps.CpsError):
            error = exc
            log = logger.error if isinstance(error, cps.CpsRevocationUnavailable) else logger.warning
            log("CPS sign-in refused (%s): %s", error.code, error.detail)
        else:  # a certificate that trips the parser in an unforeseen way: a refusal, never a 500
            logger.exception("CPS sign-in: unexpected error while checking the certificate")
            error = cps.CpsError(detail={"problem": f"{type(exc).__name__}: {exc}"[:300]})
        summary = _presented_summary(pem)
        _audit(
            action="auth.cps.refused",
            request=request,
            outcome="failure",
            target_type="certificate" if summary else "",
            target_id=summary.get("serial", ""),
            detail={"reason": error.code, **error.detail, **summary, "proxy_verify": verdict[:200]},
        )
        return _refuse(request, message=error.message, reason=error.code, next_url=next_url)

    user = User.objects.filter(idnat_ps=identity.idnat_ps).first()
    if user is None or not user.is_active:
        reason = "unknown_account" if user is None else "inactive_account"
        _audit(
            action="auth.cps.refused",
            request=request,
            target=user,
            target_type="professional" if user is None else "",
            target_id=identity.idnat_ps if user is None else "",
            outcome="denied",
            detail={
                "reason": reason,
                "idnat_ps": identity.idnat_ps,
                "serial": identity.serial_number,
                "issuer": identity.issuer,
            },
        )
        if user is None:
            message = (
                f"Aucun compte ENRS n'est associé à la carte CPS de {identity.display_name} "
                f"(identifiant national {identity.idnat_ps}). Contactez l'équipe du GCS e-santé pour "
                "faire rattacher votre carte à votre compte."
            )
        else:
            message = (
                f"Le compte ENRS associé à la carte CPS de {identity.display_name} est désactivé. "
                "Contactez l'équipe du GCS e-santé."
            )
        return _refuse(request, message=message, reason=reason, next_url=next_url)

    sign_in(
        request,
        user,
        method=AuthMethod.CPS,
        detail={"serial": identity.serial_number, "issuer": identity.issuer, "idnat_ps": identity.idnat_ps},
    )
    return HttpResponseRedirect(next_url or resolve_url(settings.LOGIN_REDIRECT_URL))
