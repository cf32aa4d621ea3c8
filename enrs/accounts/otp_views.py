"""The second factor's pages: enrolment of an authenticator app (QR code), the code step after the password
(app code, backup code, or a code sent by e-mail), and the backup codes.

A code accepted here turns the password session into a strong one (`authn.upgrade(method=OTP)`) and marks
it verified for django-otp (`django_otp.login`). Writes and checks are in `otp_services`.
"""

from typing import Any

import django_otp
import segno
from django.conf import settings
from django.contrib import messages
from django.contrib.auth import logout
from django.http import HttpRequest, HttpResponse, HttpResponseBase, HttpResponseRedirect
from django.shortcuts import render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods, require_POST

from . import otp_services
from .authn import AuthMethod, is_strongly_authenticated, upgrade
from .forms import BackupCodeForm, EmailCodeForm, TOTPCodeForm
from .otp_services import OTPError, OTPMethod, OTPVerificationError
from .roles import SIGNED_IN, SIGNED_IN_ACCESS, AccessRule, access_required
from .views import LOCKOUT_STEP_ATTR, lockout_audit, lockout_response, safe_next_url, url_with_next

# Managing one's backup codes needs a strong session (a password alone is sent to the code step first).
OTP_MANAGEMENT_ACCESS = AccessRule(SIGNED_IN, strong=True, name="otp_management")

# ?methode= on the code step: the authenticator app (default), a backup code, or the e-mailed code.
MODES: dict[str, tuple[OTPMethod, type[TOTPCodeForm] | type[BackupCodeForm]]] = {
    "application": (OTPMethod.TOTP, TOTPCodeForm),
    "secours": (OTPMethod.BACKUP, BackupCodeForm),
    "email": (OTPMethod.EMAIL, EmailCodeForm),
}
LOW_BACKUP_CODES = 3


def _complete_second_factor(request: HttpRequest, device: Any) -> None:
    """Mark the session verified by `device`; a password session becomes strong (new session id)."""
    django_otp.login(request, device)
    if not is_strongly_authenticated(request):
        upgrade(request, method=AuthMethod.OTP)


def _locked_out(request: HttpRequest) -> HttpResponse:
    """The account is locked: audit, close the half-open session, show the lockout page."""
    username = request.user.get_username()
    setattr(request, LOCKOUT_STEP_ATTR, "otp")
    lockout_audit(request, username)
    logout(request)
    return lockout_response(request, None, {"username": username})


def _qr_svg(config_url: str) -> str:
    qr = segno.make(config_url, error="m")
    return str(
        qr.svg_inline(
            scale=5,
            border=4,
            dark="#000",
            light="#fff",
            svgclass="enrs-qr",
            lineclass=None,
            title="QR code à scanner avec votre application d'authentification",
        )
    )


def _grouped(secret: str, size: int = 4) -> str:
    return " ".join(secret[i : i + size] for i in range(0, len(secret), size))


@access_required(SIGNED_IN_ACCESS)
@require_http_methods(["GET", "POST"])
@never_cache
def otp_enrol(request: HttpRequest) -> HttpResponseBase:
    """Enrol an authenticator app: QR code (and the key, to type it), confirmed by a first code; then the
    ten backup codes, shown once."""
    user = request.user
    next_url = safe_next_url(request)
    if otp_services.totp_device_for(user) is not None:
        if request.user.is_verified() or is_strongly_authenticated(request):  # type: ignore[union-attr]
            messages.info(request, "Une application d'authentification est déjà activée sur votre compte.")
            return HttpResponseRedirect(next_url)
        return HttpResponseRedirect(url_with_next("accounts:otp_verify", next_url))
    if otp_services.account_is_locked(request=request, user=user):
        return _locked_out(request)

    device = otp_services.totp_device_create(user=user, request=request)
    form = TOTPCodeForm(request.POST if request.method == "POST" else None)
    if request.method == "POST" and form.is_valid():
        try:
            device = otp_services.totp_device_confirm(
                device=device, token=form.cleaned_data["code"], request=request
            )
        except OTPVerificationError as exc:
            form.add_error("code", exc.messages[0])
        else:
            codes = otp_services.backup_codes_generate(user=user, request=request)
            _complete_second_factor(request, device)
            messages.success(request, "Votre application d'authentification est activée.")
            return render(
                request,
                "accounts/otp_backup_codes.html",
                {"title": "Vos codes de secours", "codes": codes, "next": next_url, "just_enrolled": True},
            )

    setup = otp_services.totp_setup(device)
    return render(
        request,
        "accounts/otp_enrol.html",
        {
            "title": "Activer le code à usage unique",
            "form": form,
            "qr_svg": _qr_svg(setup.config_url),
            "secret": _grouped(setup.secret),
            "issuer": settings.OTP_TOTP_ISSUER,
            "required": otp_services.otp_required(user),
            "next": next_url,
        },
    )


@access_required(SIGNED_IN_ACCESS)
@require_http_methods(["GET", "POST"])
@never_cache
def otp_verify(request: HttpRequest) -> HttpResponseBase:
    """The code step after the password: the app's code, or a backup code, or a code received by e-mail."""
    user = request.user
    next_url = safe_next_url(request)
    if is_strongly_authenticated(request):
        return HttpResponseRedirect(next_url)
    if otp_services.totp_device_for(user) is None:
        return HttpResponseRedirect(url_with_next("accounts:otp_enrol", next_url))
    if otp_services.account_is_locked(request=request, user=user):
        return _locked_out(request)

    mode = request.POST.get("methode", request.GET.get("methode", "application"))
    if mode not in MODES or (mode == "email" and not otp_services.email_fallback_available(user)):
        mode = "application"
    method, form_class = MODES[mode]
    form = form_class(request.POST if request.method == "POST" else None)
    if request.method == "POST" and form.is_valid():
        try:
            device = otp_services.otp_verify(
                user=user, token=form.cleaned_data["code"], method=method, request=request
            )
        except OTPVerificationError as exc:
            if exc.locked:
                return _locked_out(request)
            form.add_error("code", exc.messages[0])
        else:
            _complete_second_factor(request, device)
            if method is OTPMethod.BACKUP:
                remaining = otp_services.backup_codes_remaining(user)
                level = messages.WARNING if remaining <= LOW_BACKUP_CODES else messages.INFO
                messages.add_message(
                    request,
                    level,
                    f"Code de secours accepté. Il vous en reste {remaining} : vous pouvez en générer de "
                    "nouveaux depuis la page « Codes de secours ».",
                )
            return HttpResponseRedirect(next_url)

    return render(
        request,
        "accounts/otp_verify.html",
        {
            "title": "Vérification en deux étapes",
            "form": form,
            "mode": mode,
            "next": next_url,
            "email_available": otp_services.email_fallback_available(user),
            "email_masked": _masked_email(getattr(user, "email", "")),
            "backup_remaining": otp_services.backup_codes_remaining(user),
        },
    )


@access_required(SIGNED_IN_ACCESS)
@require_POST
def otp_email_send(request: HttpRequest) -> HttpResponseBase:
    """Send a fallback code by e-mail, then show the step where it is typed."""
    user = request.user
    next_url = safe_next_url(request)
    if is_strongly_authenticated(request):
        return HttpResponseRedirect(next_url)
    if otp_services.account_is_locked(request=request, user=user):
        return _locked_out(request)
    try:
        otp_services.otp_email_send(user=user, request=request)
    except OTPError as exc:
        messages.error(request, exc.messages[0])
        return HttpResponseRedirect(url_with_next("accounts:otp_verify", next_url))
    messages.success(
        request, f"Un code à 6 chiffres vient d'être envoyé à {_masked_email(getattr(user, 'email', ''))}."
    )
    return HttpResponseRedirect(url_with_next("accounts:otp_verify", next_url) + "&methode=email")


@access_required(OTP_MANAGEMENT_ACCESS)
@require_http_methods(["GET", "POST"])
@never_cache
def otp_backup_codes(request: HttpRequest) -> HttpResponseBase:
    """How many backup codes are left; a new set on request (the old codes stop working)."""
    user = request.user
    if otp_services.totp_device_for(user) is None:
        return HttpResponseRedirect(url_with_next("accounts:otp_enrol", request.get_full_path()))
    if request.method == "POST":
        codes = otp_services.backup_codes_generate(user=user, request=request)
        return render(
            request,
            "accounts/otp_backup_codes.html",
            {"title": "Vos codes de secours", "codes": codes, "next": safe_next_url(request)},
        )
    return render(
        request,
        "accounts/otp_backup_codes.html",
        {
            "title": "Codes de secours",
            "codes": None,
            "remaining": otp_services.backup_codes_remaining(user),
            "next": safe_next_url(request),
        },
    )


def _masked_email(email: str) -> str:
    """« jean.dupont@chu.fr » → « j…t@chu.fr »: enough to recognise one's address."""
    local, _, domain = (email or "").partition("@")
    if not domain:
        return ""
    shown = local[0] + "…" + local[-1] if len(local) > 2 else local[:1] + "…"
    return f"{shown}@{domain}"
