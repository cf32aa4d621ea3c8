"""How a user got signed in, kept in the session, and the one place that opens a session.

Every sign-in path (password, password + OTP, CPS card, Pro Santé Connect) ends in `sign_in()`, which
rotates the session id, records the method and its strength, and writes the audit event. Views that
reach patient data require a strong method (see `enrs.accounts.roles`).
"""

from typing import Any

from django.contrib.auth import login
from django.db import models
from django.http import HttpRequest

SESSION_METHOD_KEY = "enrs_auth_method"


class AuthMethod(models.TextChoices):
    PASSWORD = "password", "Identifiant et mot de passe"
    OTP = "otp", "Mot de passe et code à usage unique"
    CPS = "cps", "Carte CPS"
    PSC = "psc", "Pro Santé Connect"

    @property
    def strong(self) -> bool:
        return self is not AuthMethod.PASSWORD


def auth_method(request: HttpRequest) -> AuthMethod | None:
    """The method the current session was opened (or last upgraded) with, or None when anonymous."""
    if not getattr(request, "user", None) or not request.user.is_authenticated:
        return None
    value = request.session.get(SESSION_METHOD_KEY)
    if not isinstance(value, str):
        return None
    try:
        return AuthMethod(value)
    except ValueError:
        return None


def is_strongly_authenticated(request: HttpRequest) -> bool:
    method = auth_method(request)
    return method is not None and method.strong


def sign_in(
    request: HttpRequest,
    user: Any,
    *,
    method: AuthMethod,
    backend: str | None = None,
    detail: dict[str, Any] | None = None,
) -> None:
    """Open a session for `user` (new session id) and record how, in the session and the audit trail.
    `detail` adds what identifies the credential (e.g. the CPS certificate's serial and issuer)."""
    from enrs.audit.services import audit_record
    from enrs.usage.services import usage_emit

    login(request, user, backend=backend or "django.contrib.auth.backends.ModelBackend")
    request.session[SESSION_METHOD_KEY] = method.value
    audit_record(
        action="auth.login", request=request, actor=user, detail={**(detail or {}), "method": method.value}
    )
    usage_emit("auth.sign_in", dims={"method": method.value, "role": getattr(user, "role", "")}, actor=user)


def upgrade(request: HttpRequest, *, method: AuthMethod) -> None:
    """Raise the strength of the current session (e.g. after the OTP step): new session id, new method."""
    from enrs.usage.services import usage_emit

    request.session.cycle_key()
    request.session[SESSION_METHOD_KEY] = method.value
    usage_emit(
        "auth.sign_in_upgraded",
        dims={"method": method.value, "role": getattr(request.user, "role", "")},
        actor=request.user,
    )
