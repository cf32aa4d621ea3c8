"""The second factor: enrolling an authenticator app, backup codes, e-mailed codes, checking a code, and the
lockout that wrong codes feed.

Devices are django-otp's: `TOTPDevice` (RFC 6238, 30 s, 6 digits, ±1 step; `last_t` refuses a code whose
step was already used), `StaticDevice` for the backup codes (stored as keyed hashes, never in clear),
`EmailDevice` for the fallback code. Every write is atomic and audited.

Lockout: a wrong code is recorded as a failed attempt in django-axes against the account's username, the
same counter wrong passwords feed, so 5 failures of either kind within 15 minutes lock the account for
15 minutes (settings: "OTP and lockout"). The counter is cleared only once the sign-in is complete
(`lockout_reset`), not after the password alone.
"""

import secrets
import time
from base64 import b32encode
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from axes.handlers.proxy import AxesProxyHandler
from axes.models import AccessAttempt
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Max
from django.http import HttpRequest
from django.utils import timezone
from django.utils.crypto import salted_hmac
from django_otp.oath import TOTP
from django_otp.plugins.otp_email.models import EmailDevice
from django_otp.plugins.otp_static.models import StaticDevice, StaticToken
from django_otp.plugins.otp_totp.models import TOTPDevice

from enrs.audit.services import audit_record

from .forms import normalise_backup_code
from .roles import CLINICAL, user_has_role

TOTP_DEVICE_NAME = "Application d'authentification"
BACKUP_DEVICE_NAME = "Codes de secours"
EMAIL_DEVICE_NAME = "Code par e-mail"

TOTP_STEP = 30
TOTP_DIGITS = 6
TOTP_TOLERANCE = 1

BACKUP_CODE_COUNT = 10
BACKUP_CODE_LENGTH = 10
# No 0/o, 1/l/i: codes are copied by hand. 31 symbols ** 10 ≈ 2 ** 49.5.
BACKUP_CODE_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"
BACKUP_CODE_KEY_SALT = "enrs.accounts.otp_services.backup_code"


class OTPMethod(StrEnum):
    TOTP = "totp"
    BACKUP = "backup"
    EMAIL = "email"


class OTPError(ValidationError):
    """A second-factor operation refused, with a French message for the user."""


class OTPVerificationError(OTPError):
    """A code refused. `locked` is True when this failure (or an earlier one) locked the account."""

    def __init__(self, message: str, *, code: str, locked: bool = False) -> None:
        super().__init__(message, code=code)
        self.locked = locked


@dataclass(frozen=True, slots=True)
class TOTPSetup:
    """What the enrolment page shows: the provisioning URI (for the QR code) and the secret in base 32."""

    config_url: str
    secret: str


# --- Reads ----------------------------------------------------------------------------------------


def otp_required(user: Any) -> bool:
    """Clinicians and administrators must sign in with a second factor; other roles may."""
    return user_has_role(user, CLINICAL)


def totp_device_for(user: Any) -> TOTPDevice | None:
    """The user's confirmed authenticator app, or None when not enrolled."""
    return TOTPDevice.objects.filter(user=user, confirmed=True).order_by("pk").first()


def backup_codes_remaining(user: Any) -> int:
    return StaticToken.objects.filter(device__user=user, device__confirmed=True).count()


def totp_setup(device: TOTPDevice) -> TOTPSetup:
    return TOTPSetup(config_url=device.config_url, secret=b32encode(device.bin_key).decode("ascii"))


def email_fallback_available(user: Any) -> bool:
    return bool(settings.ENRS_OTP_EMAIL_FALLBACK and getattr(user, "email", ""))


def backup_code_hash(*, user: Any, code: str) -> str:
    """What is stored for a backup code: an HMAC keyed by SECRET_KEY and bound to the account, cut to the
    16 characters of otp_static's column (64 bits). A database dump alone does not give the codes."""
    message = f"{user.pk}:{normalise_backup_code(code)}"
    return salted_hmac(BACKUP_CODE_KEY_SALT, message, algorithm="sha256").hexdigest()[:16]


def format_backup_code(code: str) -> str:
    half = len(code) // 2
    return f"{code[:half]}-{code[half:]}"


# --- Lockout (django-axes) ------------------------------------------------------------------------


def _axes_enabled() -> bool:
    return bool(getattr(settings, "AXES_ENABLED", True))  # set by axes.conf when it is left out


def _lockout_credentials(user: Any) -> dict[str, str]:
    return {"username": user.get_username()}


def account_is_locked(*, request: HttpRequest, user: Any) -> bool:
    """True while the account is locked (too many failed passwords or codes)."""
    if not _axes_enabled():
        return False
    return not AxesProxyHandler.is_allowed(request, _lockout_credentials(user))


def lockout_failure_record(*, request: HttpRequest, user: Any) -> bool:
    """Count a wrong code as a failed attempt on the account; True when the account is now locked.

    Calls axes' handler directly rather than sending `user_login_failed`: the audit trail records the
    code failure itself (`otp.verify`), not as a wrong password."""
    if not _axes_enabled():
        return False
    AxesProxyHandler.user_login_failed(
        sender=__name__, credentials=_lockout_credentials(user), request=request
    )
    return bool(getattr(request, "axes_locked_out", False))


def lockout_reset(*, user: Any) -> None:
    """Forget the account's failed attempts: called when a sign-in is complete."""
    if _axes_enabled():
        AxesProxyHandler.reset_attempts(username=user.get_username())


def lockout_unlock_time(username: str) -> datetime | None:
    """When the lock on `username` ends: 15 minutes after its last recorded failure."""
    last = AccessAttempt.objects.filter(username=username).aggregate(last=Max("attempt_time"))["last"]
    if last is None or settings.AXES_COOLOFF_TIME is None:
        return None
    unlock_at: datetime = last + settings.AXES_COOLOFF_TIME
    return unlock_at


# --- Enrolment ------------------------------------------------------------------------------------


def totp_device_create(*, user: Any, request: HttpRequest | None = None) -> TOTPDevice:
    """The authenticator app being enrolled: a new unconfirmed device with a fresh random key, or the one
    already started (so that reloading the page shows the same QR code)."""
    with transaction.atomic():
        if TOTPDevice.objects.select_for_update().filter(user=user, confirmed=True).exists():
            raise OTPError(
                "Une application d'authentification est déjà activée sur ce compte.", code="already_enrolled"
            )
        device = TOTPDevice.objects.filter(user=user, confirmed=False).order_by("-pk").first()
        if device is not None:
            return device
        device = TOTPDevice(
            user=user,
            name=TOTP_DEVICE_NAME,
            confirmed=False,
            step=TOTP_STEP,
            digits=TOTP_DIGITS,
            tolerance=TOTP_TOLERANCE,
            t0=0,
            drift=0,
        )
        device.full_clean()
        device.save()
        audit_record(action="otp.enrol.start", request=request, actor=user, target=device)
    return device


def totp_device_confirm(*, device: TOTPDevice, token: str, request: HttpRequest | None = None) -> TOTPDevice:
    """Confirm the enrolment with a first code from the app. Raises `OTPVerificationError` when refused
    (the failure, and django-otp's back-off, are committed first)."""
    error: OTPVerificationError | None = None
    with transaction.atomic():
        device = TOTPDevice.objects.select_for_update().get(pk=device.pk)
        if device.confirmed:
            raise OTPError("Cette application d'authentification est déjà activée.", code="already_enrolled")
        reason = _refusal_reason(device, token)
        if reason is None:
            device.confirmed = True
            device.save(update_fields=["confirmed"])
            TOTPDevice.objects.filter(user_id=device.user_id, confirmed=False).delete()
            lockout_reset(user=device.user)
            audit_record(action="otp.enrol", request=request, actor=device.user, target=device)
        else:
            error = OTPVerificationError(_refusal_message(device, reason), code=reason)
            audit_record(
                action="otp.enrol",
                request=request,
                actor=device.user,
                target=device,
                outcome="failure",
                detail={"reason": reason},
            )
    if error is not None:
        raise error
    return device


def backup_codes_generate(*, user: Any, request: HttpRequest | None = None) -> list[str]:
    """Ten new one-time backup codes, replacing any previous ones. Returned once, in clear, to be shown to
    the user; only their keyed hashes are stored."""
    codes: set[str] = set()
    while len(codes) < BACKUP_CODE_COUNT:
        codes.add("".join(secrets.choice(BACKUP_CODE_ALPHABET) for _ in range(BACKUP_CODE_LENGTH)))
    ordered = sorted(codes)
    with transaction.atomic():
        device = StaticDevice.objects.select_for_update().filter(user=user).order_by("pk").first()
        if device is None:
            device = StaticDevice.objects.create(user=user, name=BACKUP_DEVICE_NAME, confirmed=True)
        StaticDevice.objects.filter(user=user).exclude(pk=device.pk).delete()
        device.token_set.all().delete()
        StaticToken.objects.bulk_create(
            [StaticToken(device=device, token=backup_code_hash(user=user, code=code)) for code in ordered]
        )
        device.confirmed = True
        device.throttle_reset(commit=False)
        device.save()
        audit_record(
            action="otp.backup_codes.generate",
            request=request,
            actor=user,
            target=device,
            detail={"count": len(ordered)},
        )
    return [format_backup_code(code) for code in ordered]


# --- The e-mail fallback ----------------------------------------------------------------------------


def otp_email_send(*, user: Any, request: HttpRequest | None = None) -> EmailDevice:
    """Send a 6-digit code, valid 5 minutes, to the account's e-mail address.

    Sent right away rather than through an outbox: the user is waiting for it and it expires in minutes,
    so a failure is reported to them (they can ask again or use a backup code) instead of retried."""
    if not settings.ENRS_OTP_EMAIL_FALLBACK:
        raise OTPError("L'envoi d'un code par e-mail n'est pas proposé sur ce portail.", code="disabled")
    if not user.email:
        raise OTPError("Aucune adresse e-mail n'est enregistrée sur votre compte.", code="no_email")
    if totp_device_for(user) is None:
        raise OTPError(
            "Le code par e-mail dépanne les comptes qui ont activé une application d'authentification.",
            code="not_enrolled",
        )
    try:
        with transaction.atomic():
            device = EmailDevice.objects.select_for_update().filter(user=user).order_by("pk").first()
            if device is None:
                device = EmailDevice.objects.create(user=user, name=EMAIL_DEVICE_NAME, confirmed=True)
            allowed, info = device.generate_is_allowed()
            if not allowed:
                wait = _seconds_until(info.get("next_generation_at") if info else None)
                raise OTPError(
                    f"Un code vient déjà de vous être envoyé : patientez {_seconds(wait)} avant "
                    "d'en demander un autre.",
                    code="cooldown",
                )
            device.generate_challenge(
                extra_context={"user": user, "validity_minutes": _email_validity_minutes()}
            )
            audit_record(action="otp.email.send", request=request, actor=user, target=device)
    except OTPError:
        raise
    except Exception as exc:  # the SMTP relay refused or did not answer: tell the user, keep a trace
        audit_record(
            action="otp.email.send",
            request=request,
            actor=user,
            outcome="failure",
            detail={"error": type(exc).__name__},
        )
        raise OTPError(
            "L'envoi du code par e-mail a échoué. Réessayez dans quelques minutes, ou utilisez un code "
            "de secours.",
            code="send_failed",
        ) from exc
    return device


# --- Checking a code --------------------------------------------------------------------------------


def otp_verify(*, user: Any, token: str, method: OTPMethod, request: HttpRequest) -> Any:
    """Check a one-time code of `user` and return the device that accepted it.

    Refused codes raise `OTPVerificationError` after the failure is committed: audit event, django-otp's
    back-off on the device, and one failed attempt in the account's lockout counter (`locked` tells
    whether the account is now locked). Accepted codes are consumed (a TOTP step or a backup code cannot
    be used twice) and clear the lockout counter."""
    method = OTPMethod(method)
    error: OTPVerificationError | None = None
    with transaction.atomic():
        device = _device_for_verify(user, method)
        if device is None:
            error = OTPVerificationError(_NO_DEVICE_MESSAGES[method], code="no_device")
            audit_record(
                action="otp.verify",
                request=request,
                actor=user,
                outcome="failure",
                detail={"method": method.value, "reason": "no_device"},
            )
        else:
            stored = backup_code_hash(user=user, code=token) if method is OTPMethod.BACKUP else token
            reason = _refusal_reason(device, stored)
            if reason is None:
                lockout_reset(user=user)
                audit_record(
                    action="otp.verify",
                    request=request,
                    actor=user,
                    target=device,
                    detail={"method": method.value},
                )
                if method is OTPMethod.BACKUP:
                    remaining = device.token_set.count()
                    audit_record(
                        action="otp.backup_code.used",
                        request=request,
                        actor=user,
                        target=device,
                        detail={"remaining": remaining},
                    )
            else:
                locked = lockout_failure_record(request=request, user=user)
                error = OTPVerificationError(_refusal_message(device, reason), code=reason, locked=locked)
                audit_record(
                    action="otp.verify",
                    request=request,
                    actor=user,
                    target=device,
                    outcome="failure",
                    detail={"method": method.value, "reason": reason, "locked": locked},
                )
    if error is not None:
        raise error
    return device


_NO_DEVICE_MESSAGES = {
    OTPMethod.TOTP: "Aucune application d'authentification n'est activée sur ce compte.",
    OTPMethod.BACKUP: "Vous n'avez plus de code de secours.",
    OTPMethod.EMAIL: "Demandez d'abord un code par e-mail.",
}


def _device_for_verify(user: Any, method: OTPMethod) -> Any:
    model: type[Any] = {
        OTPMethod.TOTP: TOTPDevice,
        OTPMethod.BACKUP: StaticDevice,
        OTPMethod.EMAIL: EmailDevice,
    }[method]
    # Row lock: two requests with the same code cannot both pass.
    return model.objects.select_for_update().filter(user=user, confirmed=True).order_by("pk").first()


def _refusal_reason(device: Any, token: str) -> str | None:
    """None when `device` accepts `token` (and consumes it); else why not: throttled, replay, wrong_code."""
    allowed, _ = device.verify_is_allowed()
    if not allowed:
        return "throttled"
    if device.verify_token(token):
        return None
    if isinstance(device, TOTPDevice) and _is_replay(device, token):
        return "replay"
    return "wrong_code"


def _is_replay(device: TOTPDevice, token: str) -> bool:
    """True when `token` is a code of the current window that was refused only because its step was used."""
    try:
        value = int(token)
    except ValueError:
        return False
    totp = TOTP(device.bin_key, device.step, device.t0, device.digits, device.drift)
    totp.time = time.time()
    return bool(totp.verify(value, device.tolerance))


def _refusal_message(device: Any, reason: str) -> str:
    if reason == "throttled":
        _, info = device.verify_is_allowed()
        wait = _seconds_until(info.get("locked_until") if info else None)
        return f"Trop de codes erronés à la suite : patientez {_seconds(wait)} avant de réessayer."
    if reason == "replay":
        return (
            "Ce code a déjà été utilisé. Attendez le code suivant de votre application (30 secondes au plus)."
        )
    if isinstance(device, StaticDevice):
        return "Code de secours incorrect ou déjà utilisé."
    if isinstance(device, EmailDevice):
        return "Code incorrect ou expiré. Vous pouvez demander un nouveau code par e-mail."
    return "Code incorrect. Vérifiez l'heure de votre téléphone et saisissez le code affiché."


def _seconds_until(moment: datetime | None) -> int:
    if moment is None:
        return 1
    return max(1, int((moment - timezone.now()).total_seconds()) + 1)


def _seconds(count: int) -> str:
    return f"{count} seconde{'s' if count > 1 else ''}"


def _email_validity_minutes() -> int:
    return max(1, int(settings.OTP_EMAIL_TOKEN_VALIDITY) // 60)
