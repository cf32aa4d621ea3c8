"""Sign-in with identifier and password, sign-out, and the "account locked" page.

After the password, `sign_in()` opens a password-strength session; then:

* a user with an authenticator app goes to the code step (`accounts:otp_verify`);
* a clinician or administrator without one goes to its enrolment (`accounts:otp_enrol`);
* other roles (GCS staff, ARS analysts) are signed in, and offered the enrolment.

django-axes refuses sign-in to a locked account (5 failures in 15 minutes, wrong passwords and wrong codes
together); `lockout_response` is the page it then shows (AXES_LOCKOUT_CALLABLE), written to the audit trail.
"""

from typing import Any
from urllib.parse import urlencode

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_not_required
from django.contrib.auth.forms import AuthenticationForm
from django.http import HttpRequest, HttpResponse, HttpResponseBase, HttpResponseRedirect
from django.shortcuts import render, resolve_url
from django.urls import reverse
from django.utils.decorators import method_decorator
from django.utils.html import format_html
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.cache import never_cache

from .authn import AuthMethod, is_strongly_authenticated, sign_in
from .forms import LoginForm
from .otp_services import lockout_reset, lockout_unlock_time, otp_required, totp_device_for

LOCKOUT_STEP_ATTR = "enrs_lockout_step"  # set on the request by the view that detects the lockout
_LOCKOUT_RESPONSE_ATTR = "_enrs_lockout_response"
_LOCKOUT_AUDITED_ATTR = "_enrs_lockout_audited"


def safe_next_url(request: HttpRequest, candidate: str | None = None) -> str:
    """`next` from the form or the query string when it points to this site, else the home page."""
    value = candidate if candidate is not None else request.POST.get("next", request.GET.get("next", ""))
    if value and url_has_allowed_host_and_scheme(
        value, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return value
    return resolve_url(settings.LOGIN_REDIRECT_URL)


def url_with_next(url_name: str, next_url: str) -> str:
    return f"{reverse(url_name)}?{urlencode({'next': next_url})}"


def next_step_url(request: HttpRequest, user: Any, next_url: str) -> str:
    """Where a user goes once the password is checked (or when an open session comes back to sign-in)."""
    if is_strongly_authenticated(request):
        return next_url
    if totp_device_for(user) is not None:
        return url_with_next("accounts:otp_verify", next_url)
    if otp_required(user):
        return url_with_next("accounts:otp_enrol", next_url)
    return next_url


@method_decorator(login_not_required, name="dispatch")
@method_decorator(never_cache, name="dispatch")
class LoginView(auth_views.LoginView):
    template_name = "accounts/login.html"
    form_class = LoginForm
    extra_context = {"title": "Connexion"}

    def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        if request.user.is_authenticated:  # a session is open: finish its sign-in, or go on
            return HttpResponseRedirect(next_step_url(request, request.user, safe_next_url(request)))
        return super().dispatch(request, *args, **kwargs)

    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        form = self.get_form()
        if form.is_valid():
            return self.form_valid(form)
        if getattr(request, "axes_locked_out", False):  # refused by django-axes, or this failure locked it
            setattr(request, LOCKOUT_STEP_ATTR, "password")
            return lockout_response(request, None, {"username": str(form.data.get("username", ""))})
        return self.form_invalid(form)

    def form_valid(self, form: AuthenticationForm) -> HttpResponse:
        user = form.get_user()
        request = self.request
        sign_in(request, user, method=AuthMethod.PASSWORD, backend=getattr(user, "backend", None))
        next_url = safe_next_url(request)
        target = next_step_url(request, user, next_url)
        if target == next_url:  # no code due: the sign-in is complete
            lockout_reset(user=user)
            messages.info(
                request,
                format_html(
                    'Protégez votre compte : <a href="{}">activez un code à usage unique</a> '
                    "(application d'authentification sur votre téléphone).",
                    url_with_next("accounts:otp_enrol", next_url),
                ),
            )
        return HttpResponseRedirect(target)


class LogoutView(auth_views.LogoutView):
    pass


def lockout_audit(request: HttpRequest, username: str) -> None:
    """`auth.lockout`, once per request: the lock has just started (`locked_now`) or an attempt was refused
    while it lasts."""
    if getattr(request, _LOCKOUT_AUDITED_ATTR, False):
        return
    setattr(request, _LOCKOUT_AUDITED_ATTR, True)
    from django.contrib.auth import get_user_model

    from enrs.audit.services import audit_record

    account = get_user_model()._default_manager.filter(username=username).first() if username else None
    user = getattr(request, "user", None)
    actor = user if getattr(user, "is_authenticated", False) else None
    audit_record(
        action="auth.lockout",
        request=request,
        actor=actor,
        target=account,
        outcome="denied",
        detail={
            "username": username[:150],
            "step": getattr(request, LOCKOUT_STEP_ATTR, "password"),
            "locked_now": getattr(request, "axes_failures_since_start", None) is not None,
            "failure_limit": settings.AXES_FAILURE_LIMIT,
            "cooloff_minutes": _cooloff_minutes(),
        },
    )


def lockout_response(
    request: HttpRequest, original_response: HttpResponse | None = None, credentials: dict | None = None
) -> HttpResponse:
    """The "account locked" page (django-axes' AXES_LOCKOUT_CALLABLE), audited. Built once per request:
    the view that detects the lockout and axes' middleware both ask for it."""
    cached = getattr(request, _LOCKOUT_RESPONSE_ATTR, None)
    if cached is not None:
        return cached
    username = str((credentials or {}).get("username") or request.POST.get("username", ""))
    lockout_audit(request, username)
    response = render(
        request,
        "accounts/lockout.html",
        {
            "title": "Compte verrouillé",
            "failure_limit": settings.AXES_FAILURE_LIMIT,
            "cooloff_minutes": _cooloff_minutes(),
            "unlock_at": lockout_unlock_time(username) if username else None,
        },
        status=getattr(settings, "AXES_HTTP_RESPONSE_CODE", 429),  # Too Many Requests
    )
    setattr(request, _LOCKOUT_RESPONSE_ATTR, response)
    return response


def _cooloff_minutes() -> int:
    cooloff = settings.AXES_COOLOFF_TIME
    return int(cooloff.total_seconds() // 60) if cooloff is not None else 0
